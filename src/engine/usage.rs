//! `usage/<role>`: the live keys of a role, their total spend and budget,
//! and the top spenders, straight from LiteLLM.
//!
//! One `/key/list` page per 100 matching keys and proxy: the listing is
//! narrowed on LiteLLM's side to aliases containing `-<role>-` (every alias
//! the engine makes does), then filtered exactly on this mount's id and the
//! role in the key's metadata.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::clock::{self, rfc3339};
use super::inventory::{self, MOUNT_ID_METADATA};
use super::keys::expired;
use super::proxy;
use super::{roles, Engine};
use crate::framework::{callback, Error, Operation, Path, Request, Response, Result};
use crate::litellm::KeyView;

const TOP: usize = 10;

pub(super) fn path(engine: &Arc<Engine>) -> Path {
    Path::new("usage/{role}")
        .on(Operation::Read, callback(engine, read))
        .help(
            "Live keys of a role, their spend and budget, and the top spenders.",
            "Counts the role's keys this mount minted that LiteLLM still has (live, expired, \
             blocked), sums their spend and budgets, and lists the biggest spenders.",
        )
}

/// Totals over one role's keys.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Usage {
    pub live_keys: usize,
    pub expired_keys: usize,
    pub blocked_keys: usize,
    pub total_spend: f64,
    pub total_max_budget: f64,
    pub keys_without_budget: usize,
    pub top: Vec<KeyView>,
}

/// Sums `keys` (already filtered to the role). Spend counts every key
/// LiteLLM still has; budgets and counts only the live ones.
pub(super) fn summarize(keys: Vec<KeyView>, now: u64) -> Usage {
    let mut usage = Usage::default();
    let mut live = Vec::new();
    for k in keys {
        usage.total_spend += k.spend;
        if k.blocked == Some(true) {
            usage.blocked_keys += 1;
        } else if expired(&k, now) {
            usage.expired_keys += 1;
        } else {
            usage.live_keys += 1;
            match k.max_budget {
                Some(b) => usage.total_max_budget += b,
                None => usage.keys_without_budget += 1,
            }
            live.push(k);
        }
    }
    live.sort_by(|a, b| b.spend.total_cmp(&a.spend));
    live.truncate(TOP);
    usage.top = live;
    usage
}

async fn read(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let role = req.fields.str("role").unwrap_or_default().to_string();
    if roles::load(storage, &role).await?.is_none() {
        return Err(Error::invalid(format!(
            "field \"role\": unknown role {role:?}"
        )));
    }
    let mut keys = Vec::new();
    let mut calls = 0;
    let mut warnings = Vec::new();
    if let Some(mount_id) = inventory::mount_id(&engine, storage).await? {
        let homes = proxy::all_homes(storage).await?;
        let needle = format!("-{role}-");
        for (i, home) in homes.iter().enumerate() {
            let listing = async {
                let client = engine.clients.for_key(storage, home.as_ref()).await?;
                client.list_keys(Some(&needle)).await.map_err(Error::from)
            }
            .await;
            match listing {
                Ok(l) => {
                    calls += l.calls;
                    keys.extend(l.keys.into_iter().filter(|k| {
                        k.meta(MOUNT_ID_METADATA) == Some(mount_id.as_str())
                            && k.meta("vault_role") == Some(role.as_str())
                    }));
                }
                // The configured proxy must answer; a retired one may be gone.
                Err(e) if i == 0 => return Err(e),
                Err(e) => warnings.push(format!(
                    "keys on the retired proxy {} are not counted: {e}",
                    home.as_ref().map_or("?", |h| h.base_url.as_str())
                )),
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| k.first_seen(&mut seen));
    let usage = summarize(keys, clock::unix_now());
    let mut data = Map::new();
    data.insert("role".into(), json!(role));
    data.insert("live_keys".into(), json!(usage.live_keys));
    data.insert("expired_keys".into(), json!(usage.expired_keys));
    data.insert("blocked_keys".into(), json!(usage.blocked_keys));
    data.insert("total_spend".into(), json!(usage.total_spend));
    data.insert("total_max_budget".into(), json!(usage.total_max_budget));
    data.insert(
        "keys_without_budget".into(),
        json!(usage.keys_without_budget),
    );
    let top: Vec<Value> = usage
        .top
        .iter()
        .map(|k| {
            json!({
                "key_alias": k.key_alias,
                "spend": k.spend,
                "max_budget": k.max_budget,
                "expires": k.expires,
            })
        })
        .collect();
    data.insert("top_spenders".into(), json!(top));
    data.insert("litellm_calls".into(), json!(calls));
    data.insert("as_of".into(), json!(rfc3339(clock::unix_now())));
    Ok(Some(
        warnings
            .into_iter()
            .fold(Response::with_data(data), Response::warn),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(alias: &str, spend: f64, budget: Option<f64>, expires: u64) -> KeyView {
        KeyView {
            key_alias: Some(alias.into()),
            spend,
            max_budget: budget,
            expires: Some(rfc3339(expires)),
            ..KeyView::default()
        }
    }

    #[test]
    fn sums_and_ranks() {
        let now = 1_000;
        let mut blocked = key("b", 1.0, Some(5.0), 2_000);
        blocked.blocked = Some(true);
        let u = summarize(
            vec![
                key("a", 0.5, Some(2.0), 2_000),
                key("c", 2.0, None, 2_000),
                key("old", 0.25, Some(1.0), 10),
                blocked,
            ],
            now,
        );
        assert_eq!(u.live_keys, 2);
        assert_eq!(u.expired_keys, 1);
        assert_eq!(u.blocked_keys, 1);
        assert_eq!(u.total_spend, 3.75);
        assert_eq!(u.total_max_budget, 2.0);
        assert_eq!(u.keys_without_budget, 1);
        let top: Vec<_> = u.top.iter().map(|k| k.key_alias.clone().unwrap()).collect();
        assert_eq!(top, vec!["c", "a"]);
    }
}
