//! The inventory: which keys this mount minted, and the mount's identity.
//!
//! Every key carries the mount's id in its LiteLLM metadata
//! (`vault_mount_id`), and every issued key has a record here
//! (`inventory/keys/<alias>`) from just before its WAL entry is deleted until
//! its lease is revoked. The record never holds the key itself, only its
//! token hash. Listing, usage and tidy only ever look at keys carrying this
//! mount's id, so mounts sharing a LiteLLM never touch each other's keys.
//!
//! Both live in local storage: a performance secondary mints (and leases)
//! its own keys, so it keeps its own id and records.

use std::collections::HashSet;

use futures_util::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::clock::unix_now;
use super::proxy::Home;
use super::{rollback, static_roles, Engine};
use crate::framework::storage::{get_json, put_json};
use crate::framework::{wal, Error, Result, Storage};

pub(super) const PREFIX: &str = "inventory/";
const MOUNT_ID_KEY: &str = "inventory/mount_id";
pub(super) const RECORDS: &str = "inventory/keys/";
/// The metadata key naming the mount that minted a key.
pub(super) const MOUNT_ID_METADATA: &str = "vault_mount_id";

#[derive(Serialize, Deserialize)]
struct MountId {
    id: String,
}

/// The mount's id, if it minted anything yet. Read-only: safe on standbys.
pub(super) async fn mount_id(engine: &Engine, storage: &dyn Storage) -> Result<Option<String>> {
    if let Some(id) = engine.mount_id.get() {
        return Ok(Some(id.clone()));
    }
    let stored: Option<MountId> = get_json(storage, MOUNT_ID_KEY).await?;
    Ok(stored.map(|m| {
        // Written once and never changed: safe to keep for the mount's life.
        let _ = engine.mount_id.set(m.id.clone());
        m.id
    }))
}

/// The mount's id, created (once) on first use.
pub(super) async fn ensure_mount_id(engine: &Engine, storage: &dyn Storage) -> Result<String> {
    if let Some(id) = mount_id(engine, storage).await? {
        return Ok(id);
    }
    // Two first issues at once must not both create an id.
    let _creating = engine.mount_id_lock.lock().await;
    if let Some(id) = mount_id(engine, storage).await? {
        return Ok(id);
    }
    let id = super::proxy::new_proxy_id() + &super::proxy::new_proxy_id();
    put_json(storage, MOUNT_ID_KEY, &MountId { id: id.clone() }).await?;
    let _ = engine.mount_id.set(id.clone());
    tracing::info!(mount_id = %id, "created the mount's id");
    Ok(id)
}

/// What the mount knows about one key it issued. Never the key itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct KeyRecord {
    pub alias: String,
    /// sha256 of the key, as LiteLLM calls it (`token`).
    pub token: String,
    pub role: String,
    /// Unix seconds.
    pub issued_at: u64,
    /// When the lease ends unless renewed (unix seconds); moved by renewals.
    pub lease_expires: u64,
    pub proxy_id: String,
    pub proxy_url: String,
    #[serde(default)]
    pub display_name: String,
    /// The requester's identity entity. Always empty for now: the request
    /// model does not carry the entity id yet.
    #[serde(default)]
    pub entity_id: String,
    /// First failed revocation (unix seconds): the lease was meant to end
    /// then (`unfinished_revokes` deletes the key once LiteLLM answers;
    /// tidy drops the record once the buffer has passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_failed_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_error: Option<String>,
}

impl KeyRecord {
    pub(super) fn home(&self) -> Home {
        Home {
            proxy_id: self.proxy_id.clone(),
            base_url: self.proxy_url.clone(),
        }
    }

    /// When the lease ended, or will at the latest: a failed revoke, or
    /// the expiry plus `start_lag` (the recorded expiry counts from the
    /// call to LiteLLM, the server's from the engine's answer).
    pub(super) fn ended_at(&self, start_lag: u64) -> u64 {
        let expiry = self.lease_expires + start_lag;
        self.revoke_failed_at.map_or(expiry, |t| t.min(expiry))
    }
}

fn record_key(alias: &str) -> String {
    format!("{RECORDS}{alias}")
}

pub(super) async fn put(storage: &dyn Storage, record: &KeyRecord) -> Result<()> {
    put_json(storage, &record_key(&record.alias), record).await
}

pub(super) async fn get(storage: &dyn Storage, alias: &str) -> Result<Option<KeyRecord>> {
    get_json(storage, &record_key(alias)).await
}

pub(super) async fn delete(storage: &dyn Storage, alias: &str) -> Result<()> {
    storage.delete(&record_key(alias)).await
}

/// Storage reads in flight at once when records are read in bulk.
const RECORD_READS_IN_FLIGHT: usize = 16;

/// The records of `aliases`, in their order, read a few at a time (one
/// round trip each); aliases without a record are skipped.
pub(super) fn records<'a>(
    storage: &'a dyn Storage,
    aliases: Vec<String>,
) -> impl Stream<Item = Result<KeyRecord>> + 'a {
    futures_util::stream::iter(aliases)
        .map(move |alias| async move { get(storage, &alias).await })
        .buffered(RECORD_READS_IN_FLIGHT)
        .try_filter_map(|record| async move { Ok(record) })
}

/// Aliases of every record, sorted.
pub(super) async fn aliases(storage: &dyn Storage) -> Result<Vec<String>> {
    let mut all = storage.list(RECORDS).await?;
    all.retain(|a| !a.ends_with('/'));
    all.sort();
    Ok(all)
}

/// Aliases of at most `limit` records that sort after `after`, sorted: a
/// page costs its size on OpenBao (paged storage listing).
pub(super) async fn aliases_page(
    storage: &dyn Storage,
    after: &str,
    limit: usize,
) -> Result<Vec<String>> {
    let mut page = storage.list_page(RECORDS, after, limit).await?;
    page.retain(|a| !a.ends_with('/'));
    Ok(page)
}

/// Notes a failed revocation on the key's record (if it has one), keeping
/// the time of the first failure. Best effort: the revoke's own error is
/// what matters, and the server retries it.
pub(super) async fn mark_revoke_failed(storage: &dyn Storage, alias: &str, error: &str) {
    let result = async {
        if let Some(mut record) = get(storage, alias).await? {
            record.revoke_failed_at.get_or_insert_with(unix_now);
            record.revoke_error = Some(error.chars().take(300).collect());
            put(storage, &record).await?;
        }
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(key_alias = %alias, error = %e, "cannot mark the key's record after a failed revoke");
    }
}

/// Aliases of keys being minted right now (their WAL entries): tidy leaves
/// them alone whatever their age.
pub(super) async fn aliases_in_flight(storage: &dyn Storage) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for id in wal::list(storage).await? {
        if let Some(entry) = wal::get(storage, &id).await? {
            if entry.kind == rollback::KIND || entry.kind == static_roles::KIND {
                if let Some(alias) = entry.data["key_alias"].as_str() {
                    out.insert(alias.to_string());
                }
            }
        }
    }
    Ok(out)
}

/// Shared by the paths that take a key's alias or token hash.
pub(super) enum KeyId {
    Token(String),
    Alias(String),
}

/// An alias (`[A-Za-z0-9_-]`, as the engine makes them) or a token hash
/// (64 hex digits). A plaintext key is refused: it would sit in URLs and
/// audit logs.
pub(super) fn parse_key_id(field: &str, raw: &str) -> Result<KeyId> {
    let raw = raw.trim();
    if raw.starts_with("sk-") {
        return Err(Error::invalid(format!(
            "field {field:?}: this looks like a key itself; give its alias or token hash (sha256) instead"
        )));
    }
    if raw.len() == 64 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(KeyId::Token(raw.to_ascii_lowercase()));
    }
    if raw.is_empty()
        || raw.len() > 128
        || !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Error::invalid(format!(
            "field {field:?}: expected a key alias (letters, digits, -, _ and .: a role's name may have dots) or a token hash (64 hex digits)"
        )));
    }
    Ok(KeyId::Alias(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::storage::MemoryStorage;

    #[tokio::test]
    async fn the_mount_id_is_created_once_and_kept() {
        let engine = Engine::new();
        let s = MemoryStorage::default();
        assert_eq!(mount_id(&engine, &s).await.unwrap(), None);
        let id = ensure_mount_id(&engine, &s).await.unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(ensure_mount_id(&engine, &s).await.unwrap(), id);
        // A new process (reload) reads the same id.
        let fresh = Engine::new();
        assert_eq!(mount_id(&fresh, &s).await.unwrap(), Some(id));
    }

    #[tokio::test]
    async fn a_failed_revoke_keeps_its_first_time() {
        let s = MemoryStorage::default();
        let record = KeyRecord {
            alias: "vault-dev-abc".into(),
            token: "t".into(),
            role: "dev".into(),
            issued_at: 10,
            lease_expires: unix_now() + 3600,
            proxy_id: "p".into(),
            proxy_url: "http://x/".into(),
            display_name: String::new(),
            entity_id: String::new(),
            revoke_failed_at: None,
            revoke_error: None,
        };
        put(&s, &record).await.unwrap();
        mark_revoke_failed(&s, "vault-dev-abc", "down").await;
        let first = get(&s, "vault-dev-abc").await.unwrap().unwrap();
        let at = first.revoke_failed_at.unwrap();
        assert_eq!(first.ended_at(600), at);
        mark_revoke_failed(&s, "vault-dev-abc", "still down").await;
        let second = get(&s, "vault-dev-abc").await.unwrap().unwrap();
        assert_eq!(second.revoke_failed_at, Some(at));
        assert_eq!(second.revoke_error.as_deref(), Some("still down"));
        // No record (a lease from before the inventory): nothing happens.
        mark_revoke_failed(&s, "other", "x").await;
        assert_eq!(aliases(&s).await.unwrap(), vec!["vault-dev-abc"]);
    }

    #[test]
    fn key_ids() {
        let hash = "a".repeat(64);
        assert!(matches!(parse_key_id("id", &hash), Ok(KeyId::Token(t)) if t == hash));
        assert!(matches!(
            parse_key_id("id", "vault-dev-abc"),
            Ok(KeyId::Alias(_))
        ));
        // A role named with a dot gives its keys' aliases one.
        assert!(matches!(
            parse_key_id("id", "vault-team.a-abc"),
            Ok(KeyId::Alias(a)) if a == "vault-team.a-abc"
        ));
        for bad in ["sk-abc", "a/b", "", "x y"] {
            let e = parse_key_id("id", bad).err().unwrap();
            assert_eq!(e.status(), 400);
            assert!(e.to_string().contains("\"id\""), "{e}");
        }
    }
}
