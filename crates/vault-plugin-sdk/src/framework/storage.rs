//! The mount's private storage and the host's system view, as engines see
//! them. The runtime implements both over the broker; `MemoryStorage` and
//! `StaticSystemView` serve unit tests.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{Error, Result};
use super::identity::{Entity, Group};

/// Key/value storage scoped to the mount.
#[async_trait]
pub trait Storage: Send + Sync {
    /// Direct children of `prefix`; sub-folders end with `/`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// At most `limit` direct children of `prefix` that sort after `after`
    /// (all when `after` is empty), sorted: one page of [`Storage::list`].
    /// OpenBao pages in its storage (the cost of a page is its size); on a
    /// server without paged listing (Vault) this lists all and cuts the page.
    async fn list_page(&self, prefix: &str, after: &str, limit: usize) -> Result<Vec<String>> {
        Ok(page_of(self.list(prefix).await?, after, limit))
    }
    /// The value at `key`; `None` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Writes `key`. Fails on a standby with the server's read-only text
    /// (kept in [`Error::Storage`], so the server forwards the request).
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()>;
    /// Removes `key`; removing a missing key is no error.
    async fn delete(&self, key: &str) -> Result<()>;
}

/// One page of a full listing: sorted, after `after`, at most `limit`.
pub(crate) fn page_of(mut keys: Vec<String>, after: &str, limit: usize) -> Vec<String> {
    keys.sort_unstable();
    keys.into_iter()
        .filter(|k| after.is_empty() || k.as_str() > after)
        .take(limit)
        .collect()
}

/// Reads a JSON document; `None` when the key does not exist.
pub async fn get_json<T: DeserializeOwned>(storage: &dyn Storage, key: &str) -> Result<Option<T>> {
    match storage.get(key).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            // Not `{e}`: serde quotes the offending value, and a stored
            // entry may hold a secret (an admin key).
            .map_err(|e| {
                Error::Internal(format!(
                    "stored entry {key:?} is not valid: {:?} error at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                ))
            }),
    }
}

/// Writes `value` as a JSON document.
pub async fn put_json<T: Serialize>(storage: &dyn Storage, key: &str, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string()))?;
    storage.put(key, bytes).await
}

/// What the host tells a mount about itself.
#[async_trait]
pub trait SystemView: Send + Sync {
    /// The mount's default lease TTL.
    async fn default_lease_ttl(&self) -> Result<Duration>;
    /// The mount's maximum lease TTL.
    async fn max_lease_ttl(&self) -> Result<Duration>;
    /// True while the mount is being disabled or moved (`sys/remount`).
    async fn tainted(&self) -> Result<bool>;
    /// Bit set of replication/HA states ([`PERFORMANCE_STANDBY`],
    /// [`PERFORMANCE_SECONDARY`], ...), the Go SDK's
    /// `consts.ReplicationState`.
    async fn replication_state(&self) -> Result<u32>;
    /// True when the mount is local to this cluster: not replicated to
    /// performance secondaries, so a secondary owns its data. Only asked
    /// for operations with `forward_performance_secondary`; `false` unless
    /// the implementation asks the server.
    async fn local_mount(&self) -> Result<bool> {
        Ok(false)
    }
    /// The identity entity `entity_id`, `None` when the server has none.
    async fn entity_info(&self, entity_id: &str) -> Result<Option<Entity>>;
    /// The groups `entity_id` belongs to, directly or through other groups.
    async fn groups_for_entity(&self, entity_id: &str) -> Result<Vec<Group>>;
}

/// Replication state bit set on standby nodes that serve reads locally
/// (OpenBao's read-enabled standbys, Vault Enterprise performance standbys).
/// Their storage is read-only: anything that writes must be forwarded.
pub const PERFORMANCE_STANDBY: u32 = 1 << 14;

/// Replication state bit set on a Vault Enterprise performance-replication
/// secondary cluster, whose replicated mounts' storage belongs to the
/// primary.
pub const PERFORMANCE_SECONDARY: u32 = 1 << 6;

/// In-memory storage for tests.
#[derive(Default)]
pub struct MemoryStorage {
    entries: Mutex<BTreeMap<String, Vec<u8>>>,
    read_only: bool,
}

impl MemoryStorage {
    /// Storage that fails every write the way a standby's does.
    pub fn read_only() -> Self {
        Self {
            read_only: true,
            ..Self::default()
        }
    }

    /// Stores an entry even in read-only storage (test set-up).
    pub fn seed(&self, key: &str, value: Vec<u8>) {
        self.entries.lock().unwrap().insert(key.to_string(), value);
    }

    /// Every stored key, sorted: for asserting what a handler wrote.
    pub fn keys(&self) -> Vec<String> {
        self.entries.lock().unwrap().keys().cloned().collect()
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let entries = self.entries.lock().unwrap();
        let mut children: Vec<String> = entries
            .keys()
            .filter_map(|k| k.strip_prefix(prefix))
            .map(|rest| match rest.find('/') {
                Some(i) => rest[..=i].to_string(),
                None => rest.to_string(),
            })
            .collect();
        children.dedup();
        Ok(children)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.entries.lock().unwrap().get(key).cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        if self.read_only {
            return Err(Error::Storage("cannot write to readonly storage".into()));
        }
        self.entries.lock().unwrap().insert(key.to_string(), value);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        if self.read_only {
            return Err(Error::Storage("cannot write to readonly storage".into()));
        }
        self.entries.lock().unwrap().remove(key);
        Ok(())
    }
}

/// A system view with fixed answers, for tests.
#[derive(Debug, Clone)]
pub struct StaticSystemView {
    /// Answer to [`SystemView::default_lease_ttl`] (default 768h, the
    /// servers' own).
    pub default_ttl: Duration,
    /// Answer to [`SystemView::max_lease_ttl`] (default 768h).
    pub max_ttl: Duration,
    /// Answer to [`SystemView::replication_state`]: set
    /// [`PERFORMANCE_STANDBY`] to test a standby.
    pub replication_state: u32,
    /// Answer to [`SystemView::local_mount`].
    pub local_mount: bool,
    /// Answer to [`SystemView::tainted`]: set it to test an unmount.
    pub tainted: bool,
    /// What [`SystemView::entity_info`] finds (by id).
    pub entities: Vec<Entity>,
    /// `(entity id, its groups)`.
    pub groups: Vec<(String, Vec<Group>)>,
}

impl Default for StaticSystemView {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(768 * 3600),
            max_ttl: Duration::from_secs(768 * 3600),
            replication_state: 0,
            local_mount: false,
            tainted: false,
            entities: Vec::new(),
            groups: Vec::new(),
        }
    }
}

#[async_trait]
impl SystemView for StaticSystemView {
    async fn default_lease_ttl(&self) -> Result<Duration> {
        Ok(self.default_ttl)
    }
    async fn max_lease_ttl(&self) -> Result<Duration> {
        Ok(self.max_ttl)
    }
    async fn tainted(&self) -> Result<bool> {
        Ok(self.tainted)
    }
    async fn replication_state(&self) -> Result<u32> {
        Ok(self.replication_state)
    }
    async fn local_mount(&self) -> Result<bool> {
        Ok(self.local_mount)
    }
    async fn entity_info(&self, entity_id: &str) -> Result<Option<Entity>> {
        Ok(self.entities.iter().find(|e| e.id == entity_id).cloned())
    }
    async fn groups_for_entity(&self, entity_id: &str) -> Result<Vec<Group>> {
        Ok(self
            .groups
            .iter()
            .find(|(id, _)| id == entity_id)
            .map(|(_, g)| g.clone())
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreadable_entry_is_named_without_its_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Settings {
            admin_key: u64,
        }
        let s = MemoryStorage::default();
        s.put("config", br#"{"admin_key": "sk-secret-1234"}"#.to_vec())
            .await
            .unwrap();
        let err = get_json::<Settings>(&s, "config").await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"config\"") && text.contains("line 1"),
            "{text}"
        );
        assert!(!text.contains("sk-secret"), "{text}");
    }

    #[tokio::test]
    async fn memory_storage_lists_direct_children() {
        let s = MemoryStorage::default();
        for k in ["roles/a", "roles/b", "wal/x", "config"] {
            s.put(k, b"{}".to_vec()).await.unwrap();
        }
        assert_eq!(s.list("").await.unwrap(), vec!["config", "roles/", "wal/"]);
        assert_eq!(s.list("roles/").await.unwrap(), vec!["a", "b"]);
        s.delete("roles/a").await.unwrap();
        assert_eq!(s.list("roles/").await.unwrap(), vec!["b"]);
    }

    #[tokio::test]
    async fn json_round_trip() {
        let s = MemoryStorage::default();
        put_json(&s, "k", &serde_json::json!({"a": 1}))
            .await
            .unwrap();
        let v: serde_json::Value = get_json(&s, "k").await.unwrap().unwrap();
        assert_eq!(v["a"], 1);
        assert!(get_json::<serde_json::Value>(&s, "missing")
            .await
            .unwrap()
            .is_none());
    }
}
