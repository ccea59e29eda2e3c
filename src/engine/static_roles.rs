//! `static-roles/<name>`: one long-lived LiteLLM key per role, owned by the
//! engine and rotated on a period; `static-creds/<name>` reads it (no
//! lease), `rotate-role/<name>` rotates it now.
//!
//! Creating and rotating a key are the same step: a successor is generated
//! (its material chosen here, so a WAL entry can name it by hash first),
//! stored, and the predecessor (if any) deleted. After a crash the rollback
//! keeps whichever key is stored and deletes the other, as for the admin key.

use std::sync::Arc;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::clock::{rfc3339, unix_now};
use super::proxy::Home;
use super::{upstream, Engine, ISSUE_MARGIN};
use crate::framework::storage::{get_json, put_json};
use crate::framework::wal::{self, WalEntry};
use crate::framework::{
    callback, Error, Field, FieldType, Operation, Path, PeriodicTask, Request, Response, Result,
    Storage,
};
use crate::litellm::key_token;

pub const ROLE_PREFIX: &str = "static-roles/";
/// The keys themselves; seal-wrapped.
pub const KEY_PREFIX: &str = "static-keys/";
/// WAL kind; data `{"role", "old_token"?, "new_token", "key_alias", "proxy_id", "proxy_url"}`.
pub const KIND: &str = "litellm_static_rotation";
const DEFAULT_PERIOD: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaticRole {
    pub models: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    pub rotation_period_secs: u64,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct StaticKey {
    pub key: String,
    pub key_alias: String,
    pub home: Home,
    pub last_rotated: u64,
}

async fn load_role(storage: &dyn Storage, name: &str) -> Result<Option<StaticRole>> {
    get_json(storage, &format!("{ROLE_PREFIX}{name}")).await
}

async fn load_key(storage: &dyn Storage, name: &str) -> Result<Option<StaticKey>> {
    get_json(storage, &format!("{KEY_PREFIX}{name}")).await
}

pub fn list_path(engine: &Arc<Engine>) -> Path {
    Path::new("static-roles/")
        .on(Operation::List, callback(engine, list))
        .help(
            "List the static roles.",
            "Lists the names of all static roles.",
        )
}

pub fn role_path(engine: &Arc<Engine>) -> Path {
    Path::new("static-roles/{name}")
        .field(Field::new(
            "models",
            FieldType::StringList,
            "Models the key may call (required).",
        ))
        .field(Field::new(
            "user_id",
            FieldType::String,
            "LiteLLM user the key belongs to.",
        ))
        .field(Field::new(
            "team_id",
            FieldType::String,
            "LiteLLM team the key belongs to.",
        ))
        .field(
            Field::new(
                "rotation_period",
                FieldType::Duration,
                "How often the engine replaces the key (at least 1h).",
            )
            .default_value("24h"),
        )
        .on(Operation::Read, callback(engine, read_role))
        .on_write(callback(engine, write_role))
        .on(Operation::Delete, callback(engine, delete_role))
        .help(
            "A long-lived LiteLLM key owned by the engine and rotated on a period.",
            "Creating the role mints its key (model calls only, no expiry); read it at \
             static-creds/<name>. The engine replaces it every rotation_period (the old key \
             stops working) and deletes it with the role.",
        )
}

pub fn creds_path(engine: &Arc<Engine>) -> Path {
    Path::new("static-creds/{name}")
        .on(Operation::Read, callback(engine, read_creds))
        .help(
            "The current key of a static role.",
            "Returns the key, when it was last rotated and when it will be next (ttl in seconds). \
             No lease: the key changes on rotation, so read it again after ttl.",
        )
}

pub fn rotate_path(engine: &Arc<Engine>) -> Path {
    Path::new("rotate-role/{name}")
        .on(Operation::Update, callback(engine, rotate_now))
        .help(
            "Rotate a static role's key now.",
            "Replaces the key of the static role; the old key stops working.",
        )
}

fn name(req: &Request) -> String {
    req.fields.str("name").unwrap_or_default().to_string()
}

async fn list(_: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let names = req.storage.list(ROLE_PREFIX).await?;
    Ok(Some(Response::with_data(
        json!({"keys": names})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )))
}

async fn read_role(_: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let name = name(&req);
    let Some(role) = load_role(storage, &name).await? else {
        return Ok(None);
    };
    let key = load_key(storage, &name).await?;
    let mut data = Map::new();
    data.insert("models".into(), json!(role.models));
    data.insert("user_id".into(), json!(role.user_id));
    data.insert("team_id".into(), json!(role.team_id));
    data.insert("rotation_period".into(), json!(role.rotation_period_secs));
    if let Some(k) = key {
        data.insert("key_alias".into(), json!(k.key_alias));
        data.insert("last_rotated".into(), json!(rfc3339(k.last_rotated)));
        data.insert(
            "next_rotation".into(),
            json!(rfc3339(k.last_rotated + role.rotation_period_secs)),
        );
    }
    Ok(Some(Response::with_data(data)))
}

async fn write_role(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let name = name(&req);
    let f = &req.fields;
    let _writing = engine.writes.lock().await;
    let existing = load_role(storage, &name).await?;
    let models: Vec<String> = match (f.list("models"), &existing) {
        (Some(m), _) => m.iter().map(|s| s.trim().to_string()).collect(),
        (None, Some(r)) => r.models.clone(),
        (None, None) => Vec::new(),
    };
    if models.is_empty() || models.iter().any(String::is_empty) {
        return Err(Error::invalid(
            "field \"models\" must list at least one model, none blank",
        ));
    }
    let period = f
        .duration("rotation_period")
        .or(existing
            .as_ref()
            .map(|r| Duration::from_secs(r.rotation_period_secs)))
        .unwrap_or(DEFAULT_PERIOD);
    if period < engine.min_rotation_period {
        return Err(Error::invalid(format!(
            "field \"rotation_period\" must be at least {}s",
            engine.min_rotation_period.as_secs()
        )));
    }
    let text = |field: &str, old: Option<&Option<String>>| {
        f.str(field)
            .map(|s| Some(s.to_string()).filter(|s| !s.is_empty()))
            .or_else(|| old.cloned())
            .flatten()
    };
    let role = StaticRole {
        models,
        user_id: text("user_id", existing.as_ref().map(|r| &r.user_id)),
        team_id: text("team_id", existing.as_ref().map(|r| &r.team_id)),
        rotation_period_secs: period.as_secs(),
    };
    put_json(storage, &format!("{ROLE_PREFIX}{name}"), &role).await?;
    // A new role gets its key now; a changed one on its next rotation.
    if load_key(storage, &name).await?.is_none() {
        rotate(&engine, storage, &name, &role, None).await?;
    }
    Ok(None)
}

async fn delete_role(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let name = name(&req);
    let _writing = engine.writes.lock().await;
    if let Some(k) = load_key(storage, &name).await? {
        // The key goes first: a role whose key could not be deleted stays,
        // so the delete can be retried.
        let client = engine.clients.for_key(storage, Some(&k.home)).await?;
        client
            .delete_keys(&[key_token(&k.key)])
            .await
            .map_err(upstream)?;
        storage.delete(&format!("{KEY_PREFIX}{name}")).await?;
    }
    storage.delete(&format!("{ROLE_PREFIX}{name}")).await?;
    Ok(None)
}

async fn read_creds(_: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let name = name(&req);
    let (Some(role), Some(k)) = (
        load_role(storage, &name).await?,
        load_key(storage, &name).await?,
    ) else {
        return Err(Error::invalid(format!("unknown static role {name:?}")));
    };
    let next = k.last_rotated + role.rotation_period_secs;
    let mut data = Map::new();
    data.insert("key".into(), json!(k.key));
    data.insert("key_alias".into(), json!(k.key_alias));
    data.insert("last_rotated".into(), json!(rfc3339(k.last_rotated)));
    data.insert("next_rotation".into(), json!(rfc3339(next)));
    data.insert("ttl".into(), json!(next.saturating_sub(unix_now())));
    data.insert("rotation_period".into(), json!(role.rotation_period_secs));
    Ok(Some(Response::with_data(data)))
}

async fn rotate_now(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let name = name(&req);
    let _writing = engine.writes.lock().await;
    let role = load_role(storage, &name)
        .await?
        .ok_or_else(|| Error::invalid(format!("unknown static role {name:?}")))?;
    let old = load_key(storage, &name).await?;
    let alias = rotate(&engine, storage, &name, &role, old).await?;
    let mut data = Map::new();
    data.insert("key_alias".into(), json!(alias));
    data.insert("rotated_at".into(), json!(rfc3339(unix_now())));
    Ok(Some(Response::with_data(data)))
}

/// Mints the role's next key, stores it, deletes `old`. The caller holds
/// `engine.writes`. Returns the new key's alias.
async fn rotate(
    engine: &Engine,
    storage: &dyn Storage,
    name: &str,
    role: &StaticRole,
    old: Option<StaticKey>,
) -> Result<String> {
    let current = engine.clients.current(storage).await?;
    let now = unix_now();
    let new_key = format!("sk-{}", Alphanumeric.sample_string(&mut rand::rng(), 32));
    let new_token = key_token(&new_key);
    let suffix = Alphanumeric
        .sample_string(&mut rand::rng(), 8)
        .to_ascii_lowercase();
    let alias = format!("vault-static-{name}-{suffix}");
    let mut wal_data = Map::new();
    wal_data.insert("role".into(), json!(name));
    if let Some(o) = &old {
        wal_data.insert("old_token".into(), json!(key_token(&o.key)));
    }
    wal_data.insert("new_token".into(), json!(new_token));
    wal_data.insert("key_alias".into(), json!(alias));
    current.home.record(&mut wal_data);
    let wal_id = wal::put(
        storage,
        KIND,
        Value::Object(wal_data),
        wal::Schedule {
            hold_for: 3 * current.config.request_timeout() + ISSUE_MARGIN,
            give_up_after: None,
        },
    )
    .await?;
    let mut metadata = Map::new();
    metadata.insert("vault_static_role".into(), json!(name));
    metadata.insert("created_by".into(), json!("vault-plugin-secrets-litellm"));
    let mut body = json!({
        "key": new_key, "key_alias": alias, "models": role.models,
        "key_type": "llm_api", "metadata": metadata,
    });
    if let Some(u) = &role.user_id {
        body["user_id"] = json!(u);
    }
    if let Some(t) = &role.team_id {
        body["team_id"] = json!(t);
    }
    if let Err(e) = current.client.generate_key_json(&body).await {
        super::creds::settle_failed_generate(&current.client, storage, &wal_id, &alias, &e).await;
        return Err(super::upstream(e));
    }
    let stored = StaticKey {
        key: new_key,
        key_alias: alias.clone(),
        home: current.home.clone(),
        last_rotated: now,
    };
    put_json(storage, &format!("{KEY_PREFIX}{name}"), &stored).await?;
    if let Some(o) = old {
        // The old key may live on a proxy that was current before.
        let client = engine.clients.for_key(storage, Some(&o.home)).await?;
        if let Err(e) = client.delete_keys(&[key_token(&o.key)]).await {
            tracing::warn!(role = %name, error = %e, "cannot delete the old static key yet; the rollback retries");
            return Ok(alias);
        }
    }
    wal::delete(storage, &wal_id).await?;
    tracing::info!(role = %name, key_alias = %alias, "static role key rotated");
    Ok(alias)
}

/// Rollback of an interrupted creation or rotation: the stored key stays,
/// the other one goes.
pub async fn roll_back(engine: &Engine, storage: &dyn Storage, entry: &WalEntry) -> Result<()> {
    let text = |k: &str| entry.data[k].as_str().map(str::to_string);
    let (Some(role), Some(new_token)) = (text("role"), text("new_token")) else {
        return Err(Error::Internal(
            "static rotation WAL entry without role".into(),
        ));
    };
    let home = entry.data.as_object().and_then(Home::recorded);
    let _writing = engine.writes.lock().await;
    let stored = load_key(storage, &role).await?.map(|k| key_token(&k.key));
    let old_token = text("old_token");
    let delete: Vec<String> = if stored.as_deref() == Some(new_token.as_str()) {
        old_token.into_iter().collect()
    } else if stored.is_some() && stored == old_token {
        vec![new_token]
    } else {
        // Rotated again since, or the role is gone: neither key is stored.
        old_token.into_iter().chain([new_token]).collect()
    };
    if delete.is_empty() {
        return Ok(());
    }
    let client = engine.clients.for_key(storage, home.as_ref()).await?;
    let outcome = client.delete_keys(&delete).await.map_err(upstream)?;
    tracing::info!(role = %role, outcome = ?outcome, "rollback: interrupted static key rotation settled");
    Ok(())
}

pub fn periodic_task(engine: &Arc<Engine>) -> PeriodicTask {
    PeriodicTask {
        name: "static-roles",
        every: Duration::ZERO,
        active_node_only: true,
        handler: callback(engine, rotate_due),
    }
}

/// Rotates every static role whose key is due; one failure does not stop
/// the others, and a failed role is retried on the next tick.
async fn rotate_due(engine: Arc<Engine>, req: Request) -> Result<()> {
    let storage = req.storage.as_ref();
    let now = unix_now();
    let mut failed = Vec::new();
    for name in storage.list(ROLE_PREFIX).await? {
        let _writing = engine.writes.lock().await;
        let (Some(role), old) = (
            load_role(storage, &name).await?,
            load_key(storage, &name).await?,
        ) else {
            continue;
        };
        let due = old
            .as_ref()
            .is_none_or(|k| now >= k.last_rotated + role.rotation_period_secs);
        if due {
            if let Err(e) = rotate(&engine, storage, &name, &role, old).await {
                failed.push(format!("{name}: {e}"));
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "static role rotation failed, retrying on the next tick: {}",
            failed.join("; ")
        )))
    }
}
