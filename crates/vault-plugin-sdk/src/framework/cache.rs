//! Values an engine derives from its storage (a parsed role, a client built
//! from stored settings), kept in memory until that storage changes.
//!
//! The one subtlety is a load racing a change: a request reads the old
//! value from storage, a write and its [`StorageCache::forget`] happen, then
//! the request would cache what it read. A generation counter, moved by
//! every `forget`, keeps such a stale value out of the cache (the request
//! that read it still gets it, as it would without a cache).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;

use super::error::Result;

/// A map of loaded values, emptied by [`forget`](Self::forget) whenever what
/// they were loaded from may have changed (a write through the mount, or the
/// server's invalidation of a key written on another node).
pub struct StorageCache<K, V> {
    inner: Mutex<Generation<K, V>>,
}

struct Generation<K, V> {
    number: u64,
    values: HashMap<K, V>,
}

impl<K, V> Default for StorageCache<K, V> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Generation {
                number: 0,
                values: HashMap::new(),
            }),
        }
    }
}

impl<K: Eq + Hash, V: Clone> StorageCache<K, V> {
    /// The cached value of `key`, or else what `load` returns (`None`, not
    /// found, is not cached: the next call loads again). The key is looked
    /// up borrowed (a `&str` for `String` keys) and owned only when cached.
    pub async fn get_or_load<Q, F, Fut>(&self, key: &Q, load: F) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>>>,
    {
        let generation = {
            let inner = self.inner.lock().unwrap();
            if let Some(value) = inner.values.get(key) {
                return Ok(Some(value.clone()));
            }
            inner.number
        };
        let Some(value) = load().await? else {
            return Ok(None);
        };
        let mut inner = self.inner.lock().unwrap();
        if inner.number == generation {
            inner.values.insert(key.to_owned(), value.clone());
        }
        Ok(Some(value))
    }

    /// Drops every value; a load that began before this call does not cache
    /// what it read.
    pub fn forget(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.number += 1;
        inner.values.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Error;

    type Cache = StorageCache<String, u32>;

    async fn get(cache: &Cache, stored: u32) -> Option<u32> {
        cache
            .get_or_load("k", || async move { Ok(Some(stored)) })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_loaded_value_is_served_until_forgotten() {
        let cache = Cache::default();
        assert_eq!(get(&cache, 1).await, Some(1));
        assert_eq!(get(&cache, 2).await, Some(1), "served from the cache");
        cache.forget();
        assert_eq!(get(&cache, 2).await, Some(2), "loaded again");
    }

    #[tokio::test]
    async fn not_found_is_not_cached() {
        let cache = Cache::default();
        let none = cache.get_or_load("k", || async { Ok(None) }).await.unwrap();
        assert_eq!(none, None);
        assert_eq!(get(&cache, 3).await, Some(3));
    }

    #[tokio::test]
    async fn a_load_that_raced_a_change_is_not_cached() {
        let cache = Cache::default();
        let raced = cache
            .get_or_load("k", || async {
                cache.forget(); // the change lands while the old value is read
                Ok(Some(1))
            })
            .await
            .unwrap();
        assert_eq!(raced, Some(1), "the racing request still gets what it read");
        assert_eq!(
            get(&cache, 2).await,
            Some(2),
            "the stale value was not kept"
        );
    }

    #[tokio::test]
    async fn a_failed_load_caches_nothing() {
        let cache = Cache::default();
        let failed = cache
            .get_or_load("k", || async {
                Err(Error::Internal("storage down".into()))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(get(&cache, 4).await, Some(4));
    }
}
