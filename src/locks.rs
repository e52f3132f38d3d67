//! Async locks by key, for work that must not overlap with itself: one source reference in
//! the Docker engine, one blob uploaded into one repository, one digest fetched into the
//! cache. Each lock is made on first use and kept for the life of the process.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

/// Async locks by key.
pub(crate) struct Locks<K> {
    locks: std::sync::Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for Locks<K> {
    fn default() -> Self {
        Locks {
            locks: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash> Locks<K> {
    /// The lock for `key`.
    pub(crate) fn of(&self, key: K) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(key).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_one_lock() {
        let locks = Locks::default();
        assert!(Arc::ptr_eq(&locks.of("a"), &locks.of("a")));
        assert!(!Arc::ptr_eq(&locks.of("a"), &locks.of("b")));
    }
}
