//! Transient store errors tried again inside the request, with a short capped backoff within a
//! bounded budget, so that a busy SQLite file, a PostgreSQL serialization conflict or a
//! connection the pool lost costs a client a few milliseconds rather than a 503.
//!
//! Only what is safe to repeat goes through here: reads, a group commit (its dedup keys make a
//! repeat count nothing twice), and an incident step whose commit is known to have written
//! nothing. It blocks the calling thread while it waits: call it on a blocking thread.

use std::time::Duration;

use revloop_store::StoreError;

/// Tries of one call, the first included.
pub const TRANSIENT_TRIES_MAX: u32 = 4;
/// The wait before the second try; each later wait doubles, up to the cap.
pub const TRANSIENT_BACKOFF_MS_FIRST: u64 = 20;
pub const TRANSIENT_BACKOFF_MS_MAX: u64 = 200;
/// No try starts once this much real time has passed since the first began: a transient error
/// that took long to come (a statement cut at the store's statement limit, a pool that stayed
/// busy for its whole wait) is answered with 503 at once rather than waited for again, so that
/// one request never holds a thread and a connection for several such waits.
pub const TRANSIENT_BUDGET: Duration = Duration::from_secs(2);

/// The waits between tries: doubling from the first, capped, at most `TRANSIENT_TRIES_MAX - 1`
/// of them (at most 20 + 40 + 80 = 140 ms in all).
#[derive(Debug, Clone)]
pub struct Backoff {
    tries: u32,
    started: std::time::Instant,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            tries: 1,
            started: std::time::Instant::now(),
        }
    }

    /// After a failed try: whether another is allowed, having waited before it. Only a
    /// transient error is worth another try.
    pub fn wait_after(&mut self, err: &StoreError) -> bool {
        if !err.is_transient()
            || self.tries >= TRANSIENT_TRIES_MAX
            || self.started.elapsed() >= TRANSIENT_BUDGET
        {
            return false;
        }
        let wait_ms = self.next_wait_ms();
        self.tries += 1;
        tracing::debug!(error = %err, wait_ms, "transient store error; trying again");
        std::thread::sleep(Duration::from_millis(wait_ms));
        true
    }

    fn next_wait_ms(&self) -> u64 {
        TRANSIENT_BACKOFF_MS_FIRST
            .saturating_mul(1 << (self.tries - 1).min(16))
            .min(TRANSIENT_BACKOFF_MS_MAX)
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

/// Calls `read` until it succeeds, fails for good, or the tries are spent; blocking.
pub fn retrying<T>(mut read: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let mut backoff = Backoff::new();
    loop {
        match read() {
            Err(err) if backoff.wait_after(&err) => {}
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy() -> StoreError {
        StoreError::PoolTimeout {
            size_max: 1,
            waited_ms: 0,
        }
    }

    #[test]
    fn waits_double_up_to_the_cap() {
        let waits: Vec<u64> = (1..8)
            .map(|tries| {
                Backoff {
                    tries,
                    ..Backoff::new()
                }
                .next_wait_ms()
            })
            .collect();
        assert_eq!(waits, [20, 40, 80, 160, 200, 200, 200]);
    }

    #[test]
    fn a_transient_error_is_tried_again_and_a_fault_is_not() {
        let mut calls = 0;
        let read = retrying(|| {
            calls += 1;
            if calls < 3 { Err(busy()) } else { Ok(calls) }
        });
        assert_eq!(read.unwrap(), 3);
        let mut calls = 0;
        let read: Result<(), _> = retrying(|| {
            calls += 1;
            Err(StoreError::Io("disk".into()))
        });
        assert!(read.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn tries_are_bounded() {
        let mut calls = 0;
        let read: Result<(), _> = retrying(|| {
            calls += 1;
            Err(busy())
        });
        assert!(read.is_err());
        assert_eq!(calls, TRANSIENT_TRIES_MAX);
    }

    /// A transient error that took the whole budget to come is not waited for again.
    #[test]
    fn a_slow_transient_error_is_not_tried_again() {
        let mut backoff = Backoff {
            started: std::time::Instant::now() - TRANSIENT_BUDGET,
            ..Backoff::new()
        };
        assert!(!backoff.wait_after(&busy()));
        assert!(Backoff::new().wait_after(&busy()));
    }
}
