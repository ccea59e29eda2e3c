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

/// Where entries live in the mount's storage; keep engine data out of it.
pub const WAL_PREFIX: &str = "wal/";

/// One pending operation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WalEntry {
    /// What kind of work this is, chosen by the engine.
    pub kind: String,
    /// What the rollback needs to undo the work (ids, names), chosen by
    /// the engine.
    pub data: Value,
    /// Unix seconds at creation.
    pub created_at: u64,
    /// Unix seconds before which the rollback must leave the entry alone:
    /// the operation may still be in flight until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_until: Option<u64>,
    /// Unix seconds after which undoing the operation no longer matters
    /// (what it created has expired by itself), so a rollback that keeps
    /// failing may drop the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub give_up_after: Option<u64>,
}

/// When the rollback may act on a new entry, relative to its creation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Schedule {
    /// The longest the operation can take: the rollback waits this long.
    pub hold_for: Duration,
    /// How long what the operation creates can live (None: unknown, the
    /// rollback's own limit applies).
    pub give_up_after: Option<Duration>,
}

impl WalEntry {
    /// Time since creation (zero if the clock went back).
    pub fn age(&self, now: SystemTime) -> Duration {
        let created = UNIX_EPOCH + Duration::from_secs(self.created_at);
        now.duration_since(created).unwrap_or(Duration::ZERO)
    }

    /// Still inside its own hold period.
    pub fn is_held(&self, now: SystemTime) -> bool {
        self.hold_until.is_some_and(|t| unix_secs(now) < t)
    }

    /// Past its own give-up time; `None` when the entry does not say.
    pub fn is_past_give_up(&self, now: SystemTime) -> Option<bool> {
        self.give_up_after.map(|t| unix_secs(now) > t)
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Stores a new entry and returns its id.
pub async fn put(
    storage: &dyn Storage,
    kind: &str,
    data: Value,
    schedule: Schedule,
) -> Result<String> {
    let mut raw = [0u8; 16];
    rand::rng().fill_bytes(&mut raw);
    let id = hex::encode(raw);
    let created_at = unix_secs(SystemTime::now());
    let entry = WalEntry {
        kind: kind.to_string(),
        data,
        created_at,
        // Rounded up: a second too long is harmless, a second too short is not.
        hold_until: (!schedule.hold_for.is_zero())
            .then(|| created_at + schedule.hold_for.as_secs() + 1),
        give_up_after: schedule.give_up_after.map(|d| created_at + d.as_secs() + 1),
    };
    put_json(storage, &format!("{WAL_PREFIX}{id}"), &entry).await?;
    Ok(id)
}

/// The entry `id`; `None` once deleted.
pub async fn get(storage: &dyn Storage, id: &str) -> Result<Option<WalEntry>> {
    get_json(storage, &format!("{WAL_PREFIX}{id}")).await
}

/// Deletes the entry `id`: the work is safe (in a lease) or undone.
pub async fn delete(storage: &dyn Storage, id: &str) -> Result<()> {
    storage.delete(&format!("{WAL_PREFIX}{id}")).await
}

/// The ids of all entries.
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
        let schedule = Schedule {
            hold_for: Duration::from_secs(60),
            give_up_after: Some(Duration::from_secs(3600)),
        };
        let id = put(&s, "key", serde_json::json!({"alias": "a"}), schedule)
            .await
            .unwrap();
        assert_eq!(list(&s).await.unwrap(), vec![id.clone()]);
        let e = get(&s, &id).await.unwrap().unwrap();
        assert_eq!(e.kind, "key");
        let now = SystemTime::now();
        assert!(e.age(now) < Duration::from_secs(5));
        assert!(e.is_held(now));
        assert!(!e.is_held(now + Duration::from_secs(62)));
        assert_eq!(e.is_past_give_up(now), Some(false));
        assert_eq!(
            e.is_past_give_up(now + Duration::from_secs(3602)),
            Some(true)
        );
        delete(&s, &id).await.unwrap();
        // Entries written before the schedule existed still load.
        let legacy: WalEntry =
            serde_json::from_str(r#"{"kind":"k","data":{},"created_at":1}"#).unwrap();
        assert!(!legacy.is_held(now));
        assert_eq!(legacy.is_past_give_up(now), None);
        assert!(list(&s).await.unwrap().is_empty());
    }
}
