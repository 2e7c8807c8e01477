//! A bounded pool of database connections, the one both backends read through: at most
//! `size_max` connections open, busy or idle, and a caller that finds them all busy waits for
//! one at most `wait_max`, then gets [`StoreError::PoolTimeout`].
//!
//! It owns the counting and the waiting only. It never opens a connection itself (the caller
//! does, in the slot the lease holds, so a connect error frees the slot) and knows no SQL.
//!
//! Why not a pooling crate: `r2d2_sqlite`'s newest release needs rusqlite 0.40, and two rusqlite
//! versions cannot link one SQLite; `r2d2_postgres` fits, but would give the two backends two
//! pooling styles, check out with an extra query, and not know which errors lose a connection.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::StoreError;

pub(crate) struct Pool<C> {
    state: Mutex<PoolState<C>>,
    /// Signalled when a connection is put back or a slot freed.
    changed: Condvar,
    size_max: usize,
    wait_max: Duration,
    /// Whether an idle connection may still be used; an unusable one is dropped, freeing its
    /// slot.
    usable: fn(&C) -> bool,
}

struct PoolState<C> {
    idle: Vec<C>,
    /// Connections open, idle or busy, and slots leased to open one; at most `size_max`.
    n_open: usize,
}

/// A pooled connection, or a slot for one, on loan. Dropping it puts the connection back, or
/// frees the slot, even when the work panicked.
pub(crate) struct Lease<'p, C> {
    pool: &'p Pool<C>,
    connection: Option<C>,
}

impl<C> Pool<C> {
    pub(crate) fn new(size_max: usize, wait_max: Duration, usable: fn(&C) -> bool) -> Pool<C> {
        assert!(size_max > 0, "a pool of no connections");
        Pool {
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                n_open: 0,
            }),
            changed: Condvar::new(),
            size_max,
            wait_max,
            usable,
        }
    }

    /// An idle usable connection, or a slot to open one when the pool has room; else waits for
    /// either, at most `wait_max`.
    pub(crate) fn lease(&self) -> Result<Lease<'_, C>, StoreError> {
        let deadline = Instant::now() + self.wait_max;
        let mut state = self.lock();
        loop {
            match state.idle.pop() {
                Some(connection) if (self.usable)(&connection) => {
                    return Ok(self.lent(Some(connection)));
                }
                Some(_) => state.n_open -= 1,
                None if state.n_open < self.size_max => {
                    state.n_open += 1;
                    return Ok(self.lent(None));
                }
                None => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(StoreError::PoolTimeout {
                            size_max: self.size_max,
                            waited_ms: self.wait_max.as_millis() as u64,
                        });
                    }
                    state = self
                        .changed
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    fn lent(&self, connection: Option<C>) -> Lease<'_, C> {
        Lease {
            pool: self,
            connection,
        }
    }

    /// Never panics on a poisoned lock: this runs while unwinding, and the state is two plain
    /// fields that every holder leaves consistent.
    fn lock(&self) -> MutexGuard<'_, PoolState<C>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<C> Lease<'_, C> {
    /// The leased connection, opening it with `open` if the lease holds only a slot.
    pub(crate) fn connection(
        &mut self,
        open: impl FnOnce() -> Result<C, StoreError>,
    ) -> Result<&mut C, StoreError> {
        match &mut self.connection {
            Some(connection) => Ok(connection),
            empty => Ok(empty.insert(open()?)),
        }
    }

    /// Closes the connection instead of putting it back (it may have been lost).
    pub(crate) fn discard(&mut self) {
        self.connection = None;
    }
}

impl<C> Drop for Lease<'_, C> {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        match self.connection.take() {
            Some(connection) if (self.pool.usable)(&connection) => state.idle.push(connection),
            _ => state.n_open -= 1,
        }
        self.pool.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(20);

    fn open(n_opened: &mut u32) -> impl FnOnce() -> Result<u32, StoreError> + '_ {
        move || {
            *n_opened += 1;
            Ok(*n_opened)
        }
    }

    #[test]
    fn a_full_pool_times_out_until_a_connection_comes_back() {
        let pool: Pool<u32> = Pool::new(2, WAIT, |_| true);
        let mut n_opened = 0;
        let mut first = pool.lease().expect("room");
        assert_eq!(*first.connection(open(&mut n_opened)).unwrap(), 1);
        let mut second = pool.lease().expect("room");
        assert_eq!(*second.connection(open(&mut n_opened)).unwrap(), 2);
        let err = pool.lease().err().expect("the pool is full");
        assert_eq!(
            err.to_string(),
            "no free database connection within 20 ms (all 2 are busy)"
        );

        drop(first);
        let mut reused = pool.lease().expect("one came back");
        assert_eq!(
            *reused.connection(open(&mut n_opened)).unwrap(),
            1,
            "reused, not opened"
        );

        second.discard();
        drop(second);
        let mut fresh = pool.lease().expect("a slot was freed");
        assert_eq!(
            *fresh.connection(open(&mut n_opened)).unwrap(),
            3,
            "opened afresh"
        );
        assert!(pool.lease().is_err());
    }

    #[test]
    fn a_failed_open_and_an_unusable_connection_free_their_slots() {
        let pool: Pool<u32> = Pool::new(1, WAIT, |connection| *connection != 0);
        let mut lease = pool.lease().expect("room");
        assert!(
            lease
                .connection(|| Err(StoreError::Io("refused".into())))
                .is_err()
        );
        drop(lease);
        let mut lease = pool.lease().expect("the slot was freed");
        lease.connection(|| Ok(0)).unwrap();
        drop(lease);
        // Not put back: unusable.
        let mut lease = pool.lease().expect("the slot was freed");
        assert_eq!(*lease.connection(|| Ok(7)).unwrap(), 7);
    }

    #[test]
    fn a_waiter_gets_the_connection_put_back() {
        let pool: Pool<u32> = Pool::new(1, Duration::from_secs(10), |_| true);
        let mut held = pool.lease().expect("room");
        held.connection(|| Ok(1)).unwrap();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let mut lease = pool.lease().expect("put back in time");
                *lease.connection(|| Ok(2)).unwrap()
            });
            std::thread::sleep(WAIT);
            drop(held);
            assert_eq!(waiter.join().unwrap(), 1);
        });
    }
}
