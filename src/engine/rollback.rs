//! Deletes keys whose minting was interrupted before their lease existed,
//! and settles interrupted admin key rotations (see `rotation`).

use std::sync::Arc;
use std::time::Duration;

use super::proxy::Home;
use super::{inventory, rotation, static_roles, Engine};
use crate::framework::wal::WalEntry;
use crate::framework::{callback, Error, Request, Result, WalRollback};

/// WAL kind of a key being minted; data `{"key_alias", "proxy_id", "proxy_url"}`.
pub(super) const KIND: &str = "litellm_key";

pub(super) fn wal_rollback(
    engine: &Arc<Engine>,
    min_age: Duration,
    max_age: Duration,
) -> WalRollback {
    WalRollback {
        min_age,
        max_age,
        handler: callback(engine, delete_abandoned_key),
    }
}

async fn delete_abandoned_key(
    engine: Arc<Engine>,
    (req, entry): (Request, WalEntry),
) -> Result<()> {
    if entry.kind == rotation::KIND {
        return rotation::roll_back(&engine, req.storage.as_ref(), &entry).await;
    }
    if entry.kind == static_roles::KIND {
        return static_roles::roll_back(&engine, req.storage.as_ref(), &entry).await;
    }
    if entry.kind != KIND {
        return Err(Error::Internal(format!(
            "unknown WAL kind {:?}",
            entry.kind
        )));
    }
    let alias = entry.data["key_alias"]
        .as_str()
        .ok_or_else(|| Error::Internal("WAL entry without key_alias".into()))?
        .to_string();
    let home = entry.data.as_object().and_then(Home::recorded);
    let client = engine
        .clients
        .for_key(req.storage.as_ref(), home.as_ref())
        .await?;
    let outcome = client
        .delete_key_aliases(std::slice::from_ref(&alias))
        .await
        .map_err(Error::from)?;
    // The issue may have got as far as recording the key.
    inventory::delete(req.storage.as_ref(), &alias).await?;
    tracing::info!(key_alias = %alias, outcome = ?outcome, "rollback: abandoned key handled");
    Ok(())
}
