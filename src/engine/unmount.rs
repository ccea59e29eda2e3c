//! Disabling the mount deletes every key it still holds in LiteLLM.
//!
//! The server revokes every lease before it cleans the mount up, and each
//! revoke deletes its key; what is left is what no lease covers: the static
//! roles' keys (current and previous generation), keys whose revocation
//! failed and that tidy would have finished (their records), and keys whose
//! minting was cut short (their WAL entries). Once the server clears the
//! mount's storage nothing could find them again, so they go now; last go
//! the admin keys `rotate-root` minted, which only this mount knew. A
//! failure is logged with the aliases left: nothing retries an unmount.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::TryStreamExt;
use serde_json::Value;

use super::config::{self, Config};
use super::proxy::{self, Home};
use super::{inventory, rollback, static_roles, Engine};
use crate::framework::{wal, Error, Request, Result, Storage};
use crate::litellm::{key_token, Client, PAGE_SIZE};

/// The keys to delete on one proxy (`home`; `None`: the configured one).
#[derive(Default)]
struct OnProxy {
    home: Option<Home>,
    /// `(alias, token hash)`
    by_token: Vec<(String, String)>,
    /// Keys known by alias only (a mint cut short before its answer).
    by_alias: Vec<String>,
}

#[derive(Default)]
struct Leftovers(BTreeMap<String, OnProxy>);

impl Leftovers {
    fn on(&mut self, home: Option<Home>) -> &mut OnProxy {
        let id = home
            .as_ref()
            .map(|h| h.proxy_id.clone())
            .unwrap_or_default();
        let entry = self.0.entry(id).or_default();
        if entry.home.is_none() {
            entry.home = home;
        }
        entry
    }
}

pub(super) async fn delete_leftovers(engine: Arc<Engine>, req: Request) -> Result<()> {
    let storage = req.storage.as_ref();
    let leftovers = collect(storage).await?;
    let mut deleted = 0;
    let mut left: Vec<String> = Vec::new();
    for mut group in leftovers.0.into_values() {
        // A static key's generation may also be named by its WAL entry.
        group.by_token.sort_by(|a, b| a.1.cmp(&b.1));
        group.by_token.dedup_by(|a, b| a.1 == b.1);
        let client = match engine.clients.for_key(storage, group.home.as_ref()).await {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "unmount: no client for a proxy that holds keys");
                left.extend(group.by_token.into_iter().map(|(alias, _)| alias));
                left.extend(group.by_alias);
                continue;
            }
        };
        for batch in group.by_token.chunks(PAGE_SIZE) {
            let tokens: Vec<String> = batch.iter().map(|(_, t)| t.clone()).collect();
            match client.delete_keys(&tokens).await {
                Ok(_) => deleted += batch.len(),
                Err(e) => {
                    tracing::error!(error = %e, keys = batch.len(), "unmount: key delete failed");
                    left.extend(batch.iter().map(|(alias, _)| alias.clone()));
                }
            }
        }
        for batch in group.by_alias.chunks(PAGE_SIZE) {
            match client.delete_key_aliases(batch).await {
                Ok(_) => deleted += batch.len(),
                Err(e) => {
                    tracing::error!(error = %e, keys = batch.len(), "unmount: key delete failed");
                    left.extend(batch.iter().cloned());
                }
            }
        }
    }
    // Last: the engine's own admin keys, which the deletes above used.
    let (admin_deleted, admin_left) = delete_minted_admin_keys(storage).await?;
    deleted += admin_deleted;
    left.extend(admin_left);
    if left.is_empty() {
        tracing::info!(
            keys = deleted,
            "unmount: deleted the keys no lease covered (static roles, failed revocations, interrupted issues)"
        );
        return Ok(());
    }
    Err(Error::Internal(format!(
        "{} key(s) could not be deleted and stay in LiteLLM; delete them there by alias: {}",
        left.len(),
        left.join(", ")
    )))
}

/// Admin keys `rotate-root` minted (the current one, and any a retired
/// setting holds): nobody but this mount knows them. Each deletes itself.
async fn delete_minted_admin_keys(storage: &dyn Storage) -> Result<(usize, Vec<String>)> {
    let mut configs: Vec<Config> = config::load(storage).await?.into_iter().collect();
    configs.extend(proxy::list_retired(storage).await?);
    configs.retain(|c| c.key_minted_here);
    configs.sort_by(|a, b| a.master_key.cmp(&b.master_key));
    configs.dedup_by(|a, b| a.master_key == b.master_key);
    let (mut deleted, mut left) = (0, Vec::new());
    for c in configs {
        let token = key_token(&c.master_key);
        let outcome = match Client::new(&c.settings()?) {
            Ok(client) => client.delete_keys(std::slice::from_ref(&token)).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(_) => deleted += 1,
            Err(e) => {
                tracing::error!(error = %e, proxy = %c.base_url, "unmount: the admin key minted by rotate-root could not be deleted");
                left.push(format!(
                    "the admin key with token hash {token} on {}",
                    c.base_url
                ));
            }
        }
    }
    Ok((deleted, left))
}

async fn collect(storage: &dyn Storage) -> Result<Leftovers> {
    let mut out = Leftovers::default();
    for (alias, token, home) in static_roles::held_keys(storage).await? {
        out.on(Some(home)).by_token.push((alias, token));
    }
    let records = inventory::records(storage, inventory::aliases(storage).await?);
    let records: Vec<_> = records.try_collect().await?;
    for r in records {
        out.on(Some(r.home()))
            .by_token
            .push((r.alias.clone(), r.token));
    }
    for id in wal::list(storage).await? {
        let Some(entry) = wal::get(storage, &id).await? else {
            continue;
        };
        let text = |k: &str| entry.data[k].as_str().map(str::to_string);
        let home = entry.data.as_object().and_then(Home::recorded);
        let alias = text("key_alias").unwrap_or_default();
        if entry.kind == rollback::KIND && !alias.is_empty() {
            out.on(home).by_alias.push(alias);
        } else if entry.kind == static_roles::KIND {
            if let Some(token) = text("new_token") {
                out.on(home.clone()).by_token.push((alias.clone(), token));
            }
            if let Some(token) = text("old_token") {
                let old_home = serde_json::from_value::<Home>(
                    entry.data.get("old_home").cloned().unwrap_or(Value::Null),
                )
                .ok()
                .or(home);
                out.on(old_home)
                    .by_token
                    .push((format!("{alias} (previous)"), token));
            }
        }
    }
    Ok(out)
}
