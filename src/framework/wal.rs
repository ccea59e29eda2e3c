//! Write-ahead log entries in the mount's storage.
//!
//! An engine writes an entry naming what it is about to create outside the
//! server *before* creating it, and deletes the entry once the result is
//! safely in a lease. Entries left behind by a crash are handed back to the
//! engine by the periodic rollback, which undoes the half-done work.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::Result;
use super::storage::{get_json, put_json, Storage};

pub const WAL_PREFIX: &str = "wal/";

/// One pending operation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WalEntry {
    /// What kind of work this is, chosen by the engine.
    pub kind: String,
    pub data: Value,
    /// Unix seconds at creation.
    pub created_at: u64,
}

impl WalEntry {
    pub fn age(&self, now: SystemTime) -> Duration {
        let created = UNIX_EPOCH + Duration::from_secs(self.created_at);
        now.duration_since(created).unwrap_or(Duration::ZERO)
    }
}

/// Stores a new entry and returns its id.
pub async fn put(storage: &dyn Storage, kind: &str, data: Value) -> Result<String> {
    let mut raw = [0u8; 16];
    rand::rng().fill_bytes(&mut raw);
    let id = hex::encode(raw);
    let entry = WalEntry {
        kind: kind.to_string(),
        data,
        created_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    put_json(storage, &format!("{WAL_PREFIX}{id}"), &entry).await?;
    Ok(id)
}

pub async fn get(storage: &dyn Storage, id: &str) -> Result<Option<WalEntry>> {
    get_json(storage, &format!("{WAL_PREFIX}{id}")).await
}

pub async fn delete(storage: &dyn Storage, id: &str) -> Result<()> {
    storage.delete(&format!("{WAL_PREFIX}{id}")).await
}

pub async fn list(storage: &dyn Storage) -> Result<Vec<String>> {
    storage.list(WAL_PREFIX).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::storage::MemoryStorage;

    #[tokio::test]
    async fn put_get_list_delete() {
        let s = MemoryStorage::default();
        let id = put(&s, "key", serde_json::json!({"alias": "a"}))
            .await
            .unwrap();
        assert_eq!(list(&s).await.unwrap(), vec![id.clone()]);
        let e = get(&s, &id).await.unwrap().unwrap();
        assert_eq!(e.kind, "key");
        assert!(e.age(SystemTime::now()) < Duration::from_secs(5));
        delete(&s, &id).await.unwrap();
        assert!(list(&s).await.unwrap().is_empty());
    }
}
