//! `static-roles/<name>`: one long-lived LiteLLM key per role, owned by the
//! engine and rotated on a period; `static-creds/<name>` reads it (no
//! lease), `rotate-role/<name>` rotates it now.
//!
//! A rotation mints the next generation (alias `<prefix>-<name>-<n>-<random>`, its
//! material chosen here so that a WAL entry names it by hash first), stores
//! it, and either deletes the predecessor or, with a `grace_period`, keeps it
//! as the previous generation until the grace ends (the periodic tick deletes
//! it then). At most two generations are ever alive: a previous key still in
//! its grace is deleted before the next rotation mints anything. After a crash
//! the rollback keeps the stored generations and deletes the other key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::clock::{rfc3339, unix_now};
use super::creds::key_alias;
use super::proxy::Home;
use super::roles::{self, KeyType, Role};
use super::rotation::crash_point;
use super::{inventory, Engine, EXPIRED_KEY_MARGIN, ISSUE_MARGIN};
use crate::framework::storage::{get_json, put_json};
use crate::framework::wal::{self, WalEntry};
use crate::framework::{
    callback, Error, Field, FieldType, Operation, Path, PeriodicTask, Request, Response, Result,
    Storage,
};
use crate::litellm::{self, key_token, new_key, KeyMaterial};

pub(super) const ROLE_PREFIX: &str = "static-roles/";
/// The keys themselves; seal-wrapped.
pub(super) const KEY_PREFIX: &str = "static-keys/";
/// WAL kind; data `{"role", "new_token", "key_alias", "proxy_id", "proxy_url",
/// "old_token"?, "old_home"?}`.
pub(super) const KIND: &str = "litellm_static_rotation";
const DEFAULT_PERIOD: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_ALIAS_PREFIX: &str = "vault-static";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StaticRole {
    /// What the key may do: the scope fields of a dynamic role (its lease
    /// and identity fields do not apply).
    #[serde(flatten)]
    pub scope: Role,
    pub rotation_period_secs: u64,
    /// How long the previous generation keeps working after a rotation.
    pub grace_period_secs: u64,
}

#[derive(Clone, Serialize, Deserialize)]
pub(super) struct StaticKey {
    pub key: String,
    pub key_alias: String,
    pub home: Home,
    pub last_rotated: u64,
    pub generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousKey>,
    /// When LiteLLM expires the key unless the engine pushes it forward
    /// (unix seconds); `None` for keys minted before keys had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The latest expiry LiteLLM may have given the key: moved before an
    /// extension is asked for, since one that fails (a timeout, a 5xx) may
    /// still have happened. What deciding the key is dead goes by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_latest: Option<u64>,
    /// Why the periodic tick last failed for this role (a rotation LiteLLM
    /// refuses, a previous key that cannot be deleted), and since when it
    /// fails: shown in the read-outs, cleared by the next good tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<u64>,
}

impl StaticKey {
    /// When LiteLLM expires the key at the latest (`None`: not known).
    fn latest_expiry(&self) -> Option<u64> {
        self.expires_at
            .map(|e| e.max(self.expires_at_latest.unwrap_or(0)))
    }
}

/// The generation before the current one, alive until `delete_after`.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct PreviousKey {
    pub token: String,
    pub key_alias: String,
    pub home: Home,
    pub delete_after: u64,
    /// When LiteLLM expires it at the latest (unix seconds); `None` for
    /// keys that became previous before this was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// How long a static key lives in LiteLLM without the engine: two rotation
/// periods, the grace and a few ticks. The tick pushes it forward once half
/// of that has passed, so a key whose mount is gone (or whose server
/// stopped) dies by itself within that time, and never while the engine runs.
fn lifetime(role: &StaticRole) -> u64 {
    2 * role.rotation_period_secs + role.grace_period_secs + TICK_SLACK.as_secs()
}

/// How long a previous generation must still work after a rotation: its
/// grace, and the ticks until one deletes it.
fn previous_life(grace: u64) -> Duration {
    Duration::from_secs(grace) + TICK_SLACK
}

/// The server's rollback tick comes about once a minute: a lifetime that
/// short periods (a test mount's) would leave between two ticks gets five.
const TICK_SLACK: Duration = Duration::from_secs(300);

async fn load_role(storage: &dyn Storage, name: &str) -> Result<Option<StaticRole>> {
    get_json(storage, &format!("{ROLE_PREFIX}{name}")).await
}

async fn load_key(storage: &dyn Storage, name: &str) -> Result<Option<StaticKey>> {
    get_json(storage, &format!("{KEY_PREFIX}{name}")).await
}

async fn store_key(storage: &dyn Storage, name: &str, key: &StaticKey) -> Result<()> {
    put_json(storage, &format!("{KEY_PREFIX}{name}"), key).await
}

/// Aliases of every key the static roles hold (current and previous), for
/// tidy: these are known keys, not orphans.
pub(super) async fn known_aliases(storage: &dyn Storage) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for name in storage.list(KEY_PREFIX).await? {
        if let Some(k) = load_key(storage, &name).await? {
            out.extend(k.previous.map(|p| p.key_alias));
            out.push(k.key_alias);
        }
    }
    Ok(out)
}

pub(super) fn list_path(engine: &Arc<Engine>) -> Path {
    Path::new("static-roles/")
        .on(Operation::List, callback(engine, list))
        .help(
            "List the static roles.",
            "Lists the names of all static roles.",
        )
}

pub(super) fn role_path(engine: &Arc<Engine>) -> Path {
    roles::scope_fields(Path::new("static-roles/{name}"), DEFAULT_ALIAS_PREFIX)
        .field(
            Field::new(
                "rotation_period",
                FieldType::Duration,
                "How often the engine replaces the key (at least 1h).",
            )
            .default_value("24h"),
        )
        .field(
            Field::new(
                "grace_period",
                FieldType::Duration,
                "How long the previous key keeps working after a rotation; shorter than \
                 rotation_period. 0 = it stops at once.",
            )
            .default_value(0),
        )
        .on(Operation::Read, callback(engine, read_role))
        .on_write(callback(engine, write_role))
        .on(Operation::Patch, callback(engine, patch_role))
        .on(Operation::Delete, callback(engine, delete_role))
        // Tells create from update, so that policies can grant them apart.
        .exists(callback(engine, role_exists))
        .help(
            "A long-lived LiteLLM key owned by the engine and rotated on a period.",
            "Creating the role mints its key (the scope fields of a role apply, model calls \
             only by default; it expires in LiteLLM two periods after its last move forward, \
             which the engine makes while it runs); read it at static-creds/<name>. The engine replaces it every \
             rotation_period; the previous key keeps working for grace_period, then is deleted. \
             A patch changes the fields given of a role that exists (null: back to the \
             default). Deleting the role deletes its keys.",
        )
}

pub(super) fn creds_path(engine: &Arc<Engine>) -> Path {
    Path::new("static-creds/{name}")
        .on(Operation::Read, callback(engine, read_creds))
        .help(
            "The current key of a static role.",
            "Returns the key, when it was last rotated and when it will be next (ttl in seconds). \
             No lease: the key changes on rotation, so read it again after ttl.",
        )
}

pub(super) fn rotate_path(engine: &Arc<Engine>) -> Path {
    Path::new("rotate-role/{name}")
        .on(Operation::Update, callback(engine, rotate_now))
        .help(
            "Rotate a static role's key now.",
            "Mints the next generation of the static role's key. The old key keeps working for \
             the role's grace_period; a previous generation still in its grace stops at once.",
        )
}

fn name(req: &Request) -> String {
    req.fields.str("name").unwrap_or_default().to_string()
}

fn unknown(name: &str) -> Error {
    Error::invalid(format!("unknown static role {name:?}"))
}

async fn list(_: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    Ok(Some(Response::list(req.storage.list(ROLE_PREFIX).await?)))
}

/// Generation, alias and rotation times of the stored key, as read-out data.
fn key_data(role: &StaticRole, k: &StaticKey, data: &mut Map<String, Value>) {
    let next = k.last_rotated + role.rotation_period_secs;
    data.insert("key_alias".into(), json!(k.key_alias));
    data.insert("token_hash".into(), json!(key_token(&k.key)));
    data.insert("generation".into(), json!(k.generation));
    data.insert("last_rotated".into(), json!(rfc3339(k.last_rotated)));
    data.insert("next_rotation".into(), json!(rfc3339(next)));
    if let Some(expires) = k.expires_at {
        data.insert("key_expires".into(), json!(rfc3339(expires)));
    }
    if let Some(p) = &k.previous {
        data.insert("previous_key_alias".into(), json!(p.key_alias));
        data.insert(
            "previous_key_expires".into(),
            json!(rfc3339(p.delete_after)),
        );
    }
    if let (Some(error), Some(since)) = (&k.tick_error, k.failing_since) {
        data.insert("rotation_error".into(), json!(error));
        data.insert("rotation_failing_since".into(), json!(rfc3339(since)));
    }
}

/// A warning for a role whose periodic rotation keeps failing: its key
/// works (the tick keeps it alive) but is not replaced.
fn failing_warning(k: &StaticKey) -> Option<String> {
    let (error, since) = (k.tick_error.as_ref()?, k.failing_since?);
    Some(format!(
        "the periodic rotation of this role has failed since {}: {error}",
        rfc3339(since)
    ))
}

async fn read_role(_: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let name = name(&req);
    let Some(role) = load_role(storage, &name).await? else {
        return Ok(None);
    };
    let mut data = role.scope.scope_data();
    data.insert("rotation_period".into(), json!(role.rotation_period_secs));
    data.insert("grace_period".into(), json!(role.grace_period_secs));
    let key = load_key(storage, &name).await?;
    if let Some(k) = &key {
        key_data(&role, k, &mut data);
    }
    let warnings = role
        .scope
        .warnings()
        .into_iter()
        .chain(key.as_ref().and_then(failing_warning));
    Ok(Some(
        warnings.fold(Response::with_data(data), Response::warn),
    ))
}

async fn role_exists(_: Arc<Engine>, req: Request) -> Result<bool> {
    Ok(load_role(req.storage.as_ref(), &name(&req))
        .await?
        .is_some())
}

async fn write_role(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    change_role(engine, req, false).await
}

/// `vault patch`: a write to a static role that must exist already.
async fn patch_role(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    change_role(engine, req, true).await
}

async fn change_role(
    engine: Arc<Engine>,
    req: Request,
    must_exist: bool,
) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let name = name(&req);
    let f = &req.fields;
    let _writing = engine.writes.lock().await;
    let existing = load_role(storage, &name).await?;
    if must_exist && existing.is_none() {
        return Err(Error::coded(
            404,
            format!("no static role named {name:?} to patch"),
        ));
    }
    let scope = match &existing {
        Some(r) => r.scope.clone(),
        None => Role {
            key_type: Some(KeyType::LlmApi),
            key_alias_prefix: DEFAULT_ALIAS_PREFIX.into(),
            ..Role::default()
        },
    }
    .apply(f)?;
    let seconds = |field: &str, old: Option<u64>, default: Duration| {
        f.duration(field)
            .map(|d| d.as_secs())
            .or(old)
            .unwrap_or(default.as_secs())
    };
    let role = StaticRole {
        scope,
        rotation_period_secs: seconds(
            "rotation_period",
            existing.as_ref().map(|r| r.rotation_period_secs),
            DEFAULT_PERIOD,
        ),
        grace_period_secs: seconds(
            "grace_period",
            existing.as_ref().map(|r| r.grace_period_secs),
            Duration::ZERO,
        ),
    };
    let min = engine.min_rotation_period.as_secs();
    if role.rotation_period_secs < min {
        return Err(Error::invalid(format!(
            "field \"rotation_period\" must be at least {min}s"
        )));
    }
    if role.grace_period_secs >= role.rotation_period_secs {
        return Err(Error::invalid(format!(
            "field \"grace_period\" ({}s) must be shorter than rotation_period ({}s): at most \
             two generations of a key live at once",
            role.grace_period_secs, role.rotation_period_secs
        )));
    }
    let role_key = format!("{ROLE_PREFIX}{name}");
    put_json(storage, &role_key, &role).await?;
    // A new role gets its key now; a changed one on its next rotation.
    if load_key(storage, &name).await?.is_none() {
        if let Err(e) = rotate(&engine, storage, &name, &role, None).await {
            // A refused write leaves nothing behind: no role that the next
            // tick would mint a key for after all.
            let undone = match &existing {
                Some(old) => put_json(storage, &role_key, old).await,
                None => storage.delete(&role_key).await,
            };
            if let Err(ue) = undone {
                tracing::warn!(role = %name, error = %ue,
                    "cannot undo the write of a static role whose key was refused");
            }
            return Err(e);
        }
    }
    let mut warnings = role.scope.warnings();
    warnings.extend(roles::litellm_warnings(&engine, storage, &role.scope).await);
    Ok(Response::warnings_only(warnings))
}

async fn delete_role(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let name = name(&req);
    let _writing = engine.writes.lock().await;
    if let Some(mut k) = load_key(storage, &name).await? {
        // The keys go first: a role whose keys could not be deleted stays,
        // so the delete can be retried.
        drop_previous(&engine, storage, &name, &mut k, |_| true).await?;
        let current = KeyToDelete {
            token: &key_token(&k.key),
            key_alias: &k.key_alias,
            home: &k.home,
            expires_at: k.latest_expiry(),
        };
        delete_unless_long_expired(&engine, storage, &name, current).await?;
        storage.delete(&format!("{KEY_PREFIX}{name}")).await?;
    }
    storage.delete(&format!("{ROLE_PREFIX}{name}")).await?;
    Ok(None)
}

/// Deletes the previous generation of `key` if `due` says so, then stores
/// the key without it: in that order, so a failed delete leaves it recorded
/// (the callers give up on an error).
async fn drop_previous(
    engine: &Engine,
    storage: &dyn Storage,
    name: &str,
    key: &mut StaticKey,
    due: impl FnOnce(&PreviousKey) -> bool,
) -> Result<()> {
    let Some(p) = key.previous.as_ref().filter(|p| due(p)) else {
        return Ok(());
    };
    let previous = KeyToDelete {
        token: &p.token,
        key_alias: &p.key_alias,
        home: &p.home,
        expires_at: p.expires_at,
    };
    delete_unless_long_expired(engine, storage, name, previous).await?;
    let alias = p.key_alias.clone();
    key.previous = None;
    store_key(storage, name, key).await?;
    tracing::info!(role = %name, key_alias = %alias, "previous static key deleted");
    Ok(())
}

/// How long until both the key a rotation mints and the one it replaces
/// have expired in LiteLLM, with the clock margin; `None` for a key stored
/// before keys recorded their expiry.
fn keys_expired_within(role: &StaticRole, old: Option<&StaticKey>, now: u64) -> Option<Duration> {
    let old_left = match old {
        Some(k) => k.latest_expiry()?.saturating_sub(now),
        None => 0,
    };
    Some(Duration::from_secs(lifetime(role).max(old_left)) + EXPIRED_KEY_MARGIN)
}

/// A stored generation to delete in LiteLLM.
struct KeyToDelete<'a> {
    token: &'a str,
    key_alias: &'a str,
    home: &'a Home,
    expires_at: Option<u64>,
}

/// Deletes a generation; when LiteLLM cannot do it (its proxy down, or
/// retired for good) and the key expired by itself over an hour ago, lets
/// it go with a warning: it no longer works, and a retired proxy would
/// otherwise hold the role (its rotation, its delete) forever.
async fn delete_unless_long_expired(
    engine: &Engine,
    storage: &dyn Storage,
    role: &str,
    key: KeyToDelete<'_>,
) -> Result<()> {
    let Err(e) = delete_key(engine, storage, key.token, key.home).await else {
        return Ok(());
    };
    match key.expires_at {
        Some(at) if at + EXPIRED_KEY_MARGIN.as_secs() < unix_now() => {
            tracing::warn!(role = %role, key_alias = %key.key_alias, proxy = %key.home.base_url,
                expired_at = %rfc3339(at), error = %e,
                "gave up deleting a static key: it expired in LiteLLM by itself");
            Ok(())
        }
        _ => Err(e),
    }
}

async fn delete_key(
    engine: &Engine,
    storage: &dyn Storage,
    token: &str,
    home: &Home,
) -> Result<()> {
    let client = engine.clients.for_key(storage, Some(home)).await?;
    client
        .delete_keys(&[token.to_string()])
        .await
        .map_err(Error::from)?;
    Ok(())
}

async fn read_creds(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let name = name(&req);
    let (Some(mut role), Some(mut k)) = (
        load_role(storage, &name).await?,
        load_key(storage, &name).await?,
    ) else {
        return Err(unknown(&name));
    };
    // A key deleted in LiteLLM (by hand, or lost with its database) would be
    // handed out dead until the next rotation: its successor is minted now.
    let mut replaced = None;
    if is_gone(&engine, storage, &k).await {
        let _writing = engine.writes.lock().await;
        // Read again under the lock: the role may have been deleted (no
        // key may be minted for it then) or rotated meanwhile.
        let (Some(latest_role), Some(latest)) = (
            load_role(storage, &name).await?,
            load_key(storage, &name).await?,
        ) else {
            return Err(unknown(&name));
        };
        role = latest_role;
        k = if latest.key != k.key {
            latest
        } else {
            let gone = k.key_alias.clone();
            let next = rotate(&engine, storage, &name, &role, Some(latest)).await?;
            tracing::warn!(role = %name, key_alias = %gone, "static key gone from LiteLLM; rotated on read");
            replaced = Some(gone);
            next
        };
    }
    let next = k.last_rotated + role.rotation_period_secs;
    let mut data = Map::new();
    key_data(&role, &k, &mut data);
    data.insert("key".into(), json!(k.key));
    // The database engine's name for the same time, for tools that read it.
    data.insert("last_vault_rotation".into(), json!(rfc3339(k.last_rotated)));
    data.insert("ttl".into(), json!(next.saturating_sub(unix_now())));
    data.insert("rotation_period".into(), json!(role.rotation_period_secs));
    data.insert("grace_period".into(), json!(role.grace_period_secs));
    let mut response = Response::with_data(data);
    if let Some(gone) = replaced {
        response = response.warn(format!(
            "the role's key {gone} was gone from LiteLLM (deleted there); this is its successor"
        ));
    }
    Ok(Some(match failing_warning(&k) {
        Some(w) => response.warn(w),
        None => response,
    }))
}

/// Whether LiteLLM says `k` is gone (no answer within a few seconds, or
/// any other answer: not known to be gone, so never rotated on a guess).
async fn is_gone(engine: &Engine, storage: &dyn Storage, k: &StaticKey) -> bool {
    let Ok(client) = engine.clients.for_key(storage, Some(&k.home)).await else {
        return false;
    };
    let token = key_token(&k.key);
    roles::litellm_says(client.key_deleted(&token)).await == Some(true)
}

async fn rotate_now(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let name = name(&req);
    let _writing = engine.writes.lock().await;
    let role = load_role(storage, &name)
        .await?
        .ok_or_else(|| unknown(&name))?;
    let old = load_key(storage, &name).await?;
    let stored = rotate(&engine, storage, &name, &role, old).await?;
    let mut data = Map::new();
    key_data(&role, &stored, &mut data);
    data.insert("rotated_at".into(), json!(rfc3339(stored.last_rotated)));
    Ok(Some(Response::with_data(data)))
}

/// Mints the role's next generation and stores it; `old` becomes the
/// previous generation for the grace period, or is deleted at once without
/// one. The caller holds `engine.writes`.
async fn rotate(
    engine: &Engine,
    storage: &dyn Storage,
    name: &str,
    role: &StaticRole,
    mut old: Option<StaticKey>,
) -> Result<StaticKey> {
    if let Some(k) = old.as_mut() {
        // Two generations at most: one still in its grace goes first.
        drop_previous(engine, storage, name, k, |_| true).await?;
    }
    let current = engine.clients.current(storage).await?;
    let mount_id = inventory::ensure_mount_id(engine, storage).await?;
    let now = unix_now();
    let generation = old.as_ref().map_or(1, |k| k.generation + 1);
    // Random like a dynamic key's: mounts sharing a proxy may have static
    // roles of the same name, and LiteLLM wants aliases unique.
    let alias = key_alias(
        &role.scope.key_alias_prefix,
        &format!("{name}-{generation}"),
    );
    let new_key = new_key();
    let mut wal_data = Map::new();
    wal_data.insert("role".into(), json!(name));
    wal_data.insert("new_token".into(), json!(key_token(&new_key)));
    wal_data.insert("key_alias".into(), json!(alias));
    current.home.record(&mut wal_data);
    if let Some(o) = &old {
        wal_data.insert("old_token".into(), json!(key_token(&o.key)));
        wal_data.insert("old_home".into(), json!(o.home));
    }
    let wal_id = wal::put(
        storage,
        KIND,
        Value::Object(wal_data),
        wal::Schedule {
            hold_for: 3 * current.config.request_timeout() + ISSUE_MARGIN,
            // Both keys the entry names have expired by then: a retired
            // proxy is not asked forever.
            give_up_after: keys_expired_within(role, old.as_ref(), now),
        },
    )
    .await?;
    let mut metadata: BTreeMap<String, String> = role.scope.metadata.clone();
    metadata.insert("vault_static_role".into(), name.into());
    metadata.insert("created_by".into(), "vault-plugin-secrets-litellm".into());
    metadata.insert(inventory::MOUNT_ID_METADATA.into(), mount_id);
    let mut request = role.scope.generate_request(
        alias.clone(),
        metadata,
        role.scope.user_id.clone(),
        role.scope.team_id.clone(),
    );
    request.key = Some(KeyMaterial(new_key.clone()));
    request.duration = Some(format!("{}s", lifetime(role)));
    match current.client.generate_key(&request).await {
        Err(e) => {
            super::creds::settle_failed_generate(&current.client, storage, &wal_id, &alias, &e)
                .await;
            return Err(e.into());
        }
        Ok(key) => {
            if let Some(field) = request.unapplied_scope(&key) {
                if super::creds::discard_minted(&current.client, &alias).await {
                    super::creds::forget_wal(storage, &wal_id, "a discarded static key").await;
                }
                return Err(super::creds::unapplied_scope_error(
                    field,
                    &current.home.base_url,
                ));
            }
        }
    }
    if old.is_some() {
        crash_point("static_after_generate");
    }
    let grace = role.grace_period_secs;
    let stored = StaticKey {
        key: new_key,
        key_alias: alias.clone(),
        home: current.home.clone(),
        last_rotated: now,
        generation,
        previous: old.as_ref().filter(|_| grace > 0).map(|o| PreviousKey {
            token: key_token(&o.key),
            key_alias: o.key_alias.clone(),
            home: o.home.clone(),
            delete_after: now + grace,
            // What `extend_for_grace` moves it to, when it was earlier: the
            // later of the two, whether or not that move succeeds.
            expires_at: o
                .latest_expiry()
                .map(|e| e.max(now + previous_life(grace).as_secs())),
        }),
        expires_at: Some(now + lifetime(role)),
        expires_at_latest: None,
        tick_error: None,
        failing_since: None,
    };
    store_key(storage, name, &stored).await?;
    if old.is_some() {
        crash_point("static_after_store");
    }
    if let Some(o) = old.as_ref().filter(|_| grace > 0) {
        extend_for_grace(engine, storage, name, o, grace).await;
    }
    if let Some(o) = old.filter(|_| grace == 0) {
        if let Err(e) = delete_key(engine, storage, &key_token(&o.key), &o.home).await {
            tracing::warn!(role = %name, error = %e, "cannot delete the old static key yet; the rollback retries");
            return Ok(stored);
        }
    }
    // The rotation has happened: a WAL entry left behind only makes the
    // rollback confirm it (it keeps the generations the role holds).
    super::creds::forget_wal(storage, &wal_id, "a finished static rotation").await;
    tracing::info!(role = %name, key_alias = %alias, generation, "static role key rotated");
    Ok(stored)
}

/// The previous key works until its grace ends: a role whose periods grew
/// since the key's expiry was last moved needs it moved now. Best effort:
/// failing, the key only stops working before its grace is over.
async fn extend_for_grace(
    engine: &Engine,
    storage: &dyn Storage,
    name: &str,
    previous: &StaticKey,
    grace: u64,
) {
    let needed = previous_life(grace);
    if previous
        .expires_at
        .is_none_or(|e| e >= unix_now() + needed.as_secs())
    {
        return;
    }
    let extended = async {
        let client = engine
            .clients
            .for_key(storage, Some(&previous.home))
            .await?;
        client
            .extend_key(&key_token(&previous.key), needed)
            .await
            .map_err(Error::from)
    }
    .await;
    if let Err(e) = extended {
        tracing::warn!(role = %name, key_alias = %previous.key_alias, error = %e,
            "cannot move the previous static key's expiry to the end of its grace");
    }
}

/// Rollback of an interrupted creation or rotation: the generations the
/// role holds stay, the other key of the entry goes.
pub(super) async fn roll_back(
    engine: &Engine,
    storage: &dyn Storage,
    entry: &WalEntry,
) -> Result<()> {
    let text = |k: &str| entry.data[k].as_str().map(str::to_string);
    let (Some(role), Some(new_token)) = (text("role"), text("new_token")) else {
        return Err(Error::Internal(
            "static rotation WAL entry without role".into(),
        ));
    };
    let new_home = entry.data.as_object().and_then(Home::recorded);
    let old_home: Option<Home> = serde_json::from_value(entry.data["old_home"].clone()).ok();
    let _writing = engine.writes.lock().await;
    let stored = load_key(storage, &role).await?;
    let kept: Vec<String> = stored
        .iter()
        .flat_map(|k| {
            [
                Some(key_token(&k.key)),
                k.previous.as_ref().map(|p| p.token.clone()),
            ]
        })
        .flatten()
        .collect();
    let candidates = [
        (Some(new_token), new_home.clone()),
        (text("old_token"), old_home.or(new_home)),
    ];
    for (token, home) in candidates {
        let Some(token) = token.filter(|t| !kept.contains(t)) else {
            continue;
        };
        let client = engine.clients.for_key(storage, home.as_ref()).await?;
        let outcome = client.delete_keys(&[token]).await.map_err(Error::from)?;
        tracing::info!(role = %role, outcome = ?outcome, "rollback: interrupted static key rotation settled");
    }
    Ok(())
}

pub(super) fn periodic_task(engine: &Arc<Engine>) -> PeriodicTask {
    PeriodicTask::on_each_tick("static-roles", callback(engine, rotate_due))
}

/// Ends the grace of previous keys and rotates every static role whose key
/// is due; one failure does not stop the others, and a failed role is
/// retried on the next tick.
async fn rotate_due(engine: Arc<Engine>, req: Request) -> Result<()> {
    let storage = req.storage.as_ref();
    let mut failed = Vec::new();
    for name in storage.list(ROLE_PREFIX).await? {
        let _writing = engine.writes.lock().await;
        let outcome = rotate_if_due(&engine, storage, &name).await;
        if let Err(e) = &outcome {
            failed.push(format!("{name}: {e}"));
        }
        if let Err(e) = note_tick_outcome(storage, &name, outcome.err()).await {
            tracing::warn!(role = %name, error = %e, "cannot store the outcome of the static role's tick");
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

/// Keeps the role's last tick error (and since when it fails) with its key,
/// or clears it after a good tick; writes only when that changes.
async fn note_tick_outcome(storage: &dyn Storage, name: &str, error: Option<Error>) -> Result<()> {
    let Some(mut k) = load_key(storage, name).await? else {
        return Ok(());
    };
    let error = error.map(|e| e.to_string());
    if k.tick_error == error {
        return Ok(());
    }
    k.failing_since = error
        .as_ref()
        .map(|_| k.failing_since.unwrap_or_else(unix_now));
    k.tick_error = error;
    store_key(storage, name, &k).await
}

async fn rotate_if_due(engine: &Engine, storage: &dyn Storage, name: &str) -> Result<()> {
    let (Some(role), mut key) = (
        load_role(storage, name).await?,
        load_key(storage, name).await?,
    ) else {
        return Ok(());
    };
    let now = unix_now();
    // A previous key that cannot be deleted yet (its proxy down, say) stays
    // recorded and is retried next tick; meanwhile the current key must
    // still be kept alive. Rotation waits for it: two generations at most.
    let mut dropped = Ok(());
    if let Some(k) = key.as_mut() {
        dropped = drop_previous(engine, storage, name, k, |p| now >= p.delete_after).await;
    }
    let mut due = key
        .as_ref()
        .is_none_or(|k| now >= k.last_rotated + role.rotation_period_secs);
    if let Some(k) = key.as_mut().filter(|_| !due) {
        due = !keep_alive(engine, storage, name, &role, k, now).await?;
    }
    if due {
        if let Err(e) = rotate(engine, storage, name, &role, key).await {
            // The key in use must not expire while its successor keeps
            // failing (LiteLLM refusing a changed scope, say).
            if let Some(mut current) = load_key(storage, name).await? {
                if let Err(ke) = keep_alive(engine, storage, name, &role, &mut current, now).await {
                    tracing::warn!(role = %name, error = %ke, "cannot move the static key's expiry forward");
                }
            }
            return Err(e);
        }
    }
    dropped
}

/// Pushes the key's expiry forward once half its lifetime has passed (and
/// gives a key minted before keys had one its expiry). `false`: LiteLLM no
/// longer has the key (deleted there by hand), so the next generation is
/// due now.
async fn keep_alive(
    engine: &Engine,
    storage: &dyn Storage,
    name: &str,
    role: &StaticRole,
    key: &mut StaticKey,
    now: u64,
) -> Result<bool> {
    let lifetime = lifetime(role);
    if key.expires_at.is_some_and(|e| e > now + lifetime / 2) {
        return Ok(true);
    }
    let client = engine.clients.for_key(storage, Some(&key.home)).await?;
    let token = key_token(&key.key);
    key.expires_at_latest = key.latest_expiry().map(|e| e.max(now + lifetime));
    store_key(storage, name, key).await?;
    match client
        .extend_key(&token, Duration::from_secs(lifetime))
        .await
    {
        Ok(_) => {
            key.expires_at = Some(now + lifetime);
            store_key(storage, name, key).await?;
            tracing::info!(role = %name, key_alias = %key.key_alias, "static key expiry moved forward");
            Ok(true)
        }
        Err(litellm::Error::KeyGone) => {
            tracing::warn!(role = %name, key_alias = %key.key_alias,
                "the static key is gone from LiteLLM; minting the next generation now");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}
