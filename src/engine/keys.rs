//! `keys/` (list) and `keys/<id>`: what this mount issued, joined with
//! LiteLLM's live view of each key (spend, budget, expiry, blocked, models).
//!
//! The list is paged like Vault's paginated lists (`after`, `limit`) and
//! costs one LiteLLM call per proxy and page (`/v2/key/info` takes up to 100
//! keys); a read costs one `/v2/key/info`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::clock::{self, parse_time, rfc3339};
use super::inventory::{self, KeyId, KeyRecord};
use super::proxy::Home;
use super::Engine;
use crate::framework::{
    callback, Error, Field, FieldType, Operation, Path, Request, Response, Result, Storage,
};
use crate::litellm::{Client, KeyView};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

pub(super) fn list_path(engine: &Arc<Engine>) -> Path {
    Path::new("keys/")
        .field(Field::new(
            "after",
            FieldType::String,
            "List the keys whose alias sorts after this one (paging).",
        ))
        .field(
            Field::new(
                "limit",
                FieldType::Int,
                "At most this many keys per page (1-1000).",
            )
            .default_value(DEFAULT_LIMIT),
        )
        .on(Operation::List, callback(engine, list))
        .help(
            "List the keys this mount issued and whose lease is not revoked yet.",
            "Keys are listed by alias, with key_info joining the inventory record (role, issue \
             time, lease expiry, proxy, requester) and LiteLLM's live view (spend, max_budget, \
             expires, blocked, models). Page with after=<last alias> and limit.",
        )
}

pub(super) fn path(engine: &Arc<Engine>) -> Path {
    Path::new("keys/{id}")
        .on(Operation::Read, callback(engine, read))
        .help(
            "One key this mount issued, by alias or token hash.",
            "The inventory record joined with LiteLLM's live view of the key (/v2/key/info). Never \
             the key itself: pass its alias or its token hash (sha256 of the key).",
        )
}

/// The record as shown to operators.
pub(super) fn record_json(r: &KeyRecord) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("key_alias".into(), json!(r.alias));
    m.insert("token_hash".into(), json!(r.token));
    m.insert("role".into(), json!(r.role));
    m.insert("issued_at".into(), json!(rfc3339(r.issued_at)));
    m.insert("lease_expires".into(), json!(rfc3339(r.lease_expires)));
    m.insert("proxy_id".into(), json!(r.proxy_id));
    m.insert("display_name".into(), json!(r.display_name));
    m.insert("entity_id".into(), json!(r.entity_id));
    m.insert(
        "revoke_failed_at".into(),
        json!(r.revoke_failed_at.map(rfc3339)),
    );
    m.insert("revoke_error".into(), json!(r.revoke_error));
    m
}

/// LiteLLM's view: `status` is `active`, `expired`, `blocked` or `gone`.
pub(super) fn live_json(view: Option<&KeyView>, now: u64) -> Map<String, Value> {
    let mut m = Map::new();
    let Some(v) = view else {
        m.insert("status".into(), json!("gone"));
        return m;
    };
    m.insert("status".into(), json!(status(v, now)));
    m.insert("spend".into(), json!(v.spend));
    m.insert("max_budget".into(), json!(v.max_budget));
    m.insert("expires".into(), json!(v.expires));
    m.insert("blocked".into(), json!(v.blocked.unwrap_or(false)));
    m.insert("models".into(), json!(v.models));
    m
}

pub(super) fn status(v: &KeyView, now: u64) -> &'static str {
    if v.blocked == Some(true) {
        "blocked"
    } else if expired(v, now) {
        "expired"
    } else {
        "active"
    }
}

pub(super) fn expired(v: &KeyView, now: u64) -> bool {
    v.expires
        .as_deref()
        .and_then(parse_time)
        .is_some_and(|t| t <= now)
}

/// The proxy a record's key lives on (`None`: recorded before proxies
/// were, so the configured one).
pub(super) fn record_home(r: &KeyRecord) -> Option<Home> {
    (!r.proxy_id.is_empty()).then(|| r.home())
}

pub(super) async fn client_for(
    engine: &Engine,
    storage: &dyn Storage,
    r: &KeyRecord,
) -> Result<Arc<Client>> {
    engine
        .clients
        .for_key(storage, record_home(r).as_ref())
        .await
}

/// A page of `LIST keys/`.
#[derive(Deserialize)]
struct ListInput {
    #[serde(default)]
    after: String,
    limit: i64,
}

async fn list(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let ListInput { after, limit } = req.fields.decode()?;
    let after = after.as_str();
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid(format!(
            "field \"limit\" must be between 1 and {MAX_LIMIT}"
        )));
    }
    let page =
        inventory::aliases_page(storage, after, usize::try_from(limit).unwrap_or(usize::MAX))
            .await?;
    let records: Vec<KeyRecord> = inventory::records(storage, page).try_collect().await?;
    // One /v2/key/info per proxy (and 100 keys).
    let mut by_proxy: BTreeMap<String, Vec<&KeyRecord>> = BTreeMap::new();
    for r in &records {
        by_proxy.entry(r.proxy_id.clone()).or_default().push(r);
    }
    let mut live: HashMap<String, KeyView> = HashMap::new();
    let mut unreached = HashSet::new();
    let mut warnings = Vec::new();
    for group in by_proxy.values() {
        let views = async {
            let client = client_for(&engine, storage, group[0]).await?;
            let tokens: Vec<String> = group.iter().map(|r| r.token.clone()).collect();
            client.keys_info(&tokens).await.map_err(Error::from)
        }
        .await;
        match views {
            Ok(listing) => live.extend(
                listing
                    .keys
                    .into_iter()
                    .filter_map(|v| v.key_alias.clone().map(|a| (a, v))),
            ),
            Err(e) => {
                unreached.insert(group[0].proxy_id.clone());
                warnings.push(format!(
                    "no live view of the keys on proxy {}: {e}",
                    group[0].proxy_url
                ));
            }
        }
    }
    let now = clock::unix_now();
    let mut info = Map::new();
    for r in &records {
        let mut entry = record_json(r);
        if unreached.contains(&r.proxy_id) {
            entry.insert("status".into(), json!("unknown"));
        } else {
            entry.extend(live_json(live.get(&r.alias), now));
        }
        info.insert(r.alias.clone(), Value::Object(entry));
    }
    let mut response = Response::list(records.iter().map(|r| r.alias.clone()).collect());
    response.data.insert("key_info".into(), Value::Object(info));
    Ok(Some(warnings.into_iter().fold(response, Response::warn)))
}

async fn read(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let id = inventory::parse_key_id("id", req.fields.str("id").unwrap_or_default())?;
    let record = match &id {
        KeyId::Alias(alias) => inventory::get(storage, alias).await?,
        KeyId::Token(token) => find_by_token(&engine, storage, token).await?,
    };
    let Some(record) = record else {
        return Ok(None);
    };
    let view = async {
        let client = client_for(&engine, storage, &record).await?;
        client.key_info(&record.token).await.map_err(Error::from)
    }
    .await;
    let mut data = record_json(&record);
    // The record is this mount's own word (a failed revoke's mark matters
    // most when its proxy is down): shown whether or not LiteLLM answers.
    match view {
        Ok(view) => data.extend(live_json(view.as_ref(), clock::unix_now())),
        Err(e) => {
            data.insert("status".into(), json!("unknown"));
            let warning = format!("no live view of the key on proxy {}: {e}", record.proxy_url);
            return Ok(Some(Response::with_data(data).warn(warning)));
        }
    }
    Ok(Some(Response::with_data(data)))
}

/// The record of a token hash: LiteLLM names the alias in one call; a key
/// LiteLLM no longer has is looked for among the records.
async fn find_by_token(
    engine: &Engine,
    storage: &dyn Storage,
    token: &str,
) -> Result<Option<KeyRecord>> {
    if let Ok(current) = engine.clients.current(storage).await {
        if let Ok(Some(view)) = current.client.key_info(token).await {
            if let Some(alias) = view.key_alias.as_deref() {
                if let Some(r) = inventory::get(storage, alias).await? {
                    if r.token == token {
                        return Ok(Some(r));
                    }
                }
            }
        }
    }
    let records = inventory::records(storage, inventory::aliases(storage).await?);
    let mut records = std::pin::pin!(records);
    while let Some(r) = records.try_next().await? {
        if r.token == token {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:01:00Z"), Some(60));
        assert_eq!(
            parse_time("2026-11-30T18:03:44.316000+00:00"),
            Some(1_796_061_824)
        );
        assert_eq!(parse_time("soon"), None);
        assert_eq!(rfc3339(60), "1970-01-01T00:01:00Z");
    }

    #[test]
    fn live_status() {
        let now = 1_000;
        let mut v = KeyView {
            expires: Some(rfc3339(2_000)),
            ..KeyView::default()
        };
        assert_eq!(status(&v, now), "active");
        v.expires = Some(rfc3339(500));
        assert_eq!(status(&v, now), "expired");
        v.blocked = Some(true);
        assert_eq!(status(&v, now), "blocked");
        assert_eq!(live_json(None, now)["status"], "gone");
    }
}
