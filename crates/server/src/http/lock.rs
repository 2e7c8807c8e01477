//! The crate's one policy for a lock whose holder panicked: take the data and carry on.
//!
//! Every lock in this crate guards a cache, counters, or state whose holder never leaves it
//! half-changed across a call that can panic (the incident service and the writer own their
//! state on threads of their own, and reload from the store after a failed step). A panic in
//! one request must not turn every later request that takes the same lock into a panic too,
//! so a poisoned lock is logged once per taking and used as it is.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Takes `mutex`, even if a holder panicked.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(recovered)
}

/// Takes `lock` for reading, even if a writer panicked.
pub fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(recovered)
}

/// Takes `lock` for writing, even if a holder panicked.
pub fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(recovered)
}

fn recovered<G>(poisoned: PoisonError<G>) -> G {
    tracing::warn!("a lock's holder panicked; its data is used as it was left");
    poisoned.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_with_its_data() {
        let mutex = std::sync::Arc::new(Mutex::new(1));
        let held = mutex.clone();
        let panicked = std::thread::spawn(move || {
            let mut guard = held.lock().unwrap();
            *guard = 2;
            panic!("the holder panicked");
        })
        .join();
        assert!(panicked.is_err());
        assert!(mutex.is_poisoned());
        assert_eq!(*lock(&mutex), 2);
    }
}
