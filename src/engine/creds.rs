//! `creds/<name>`: mint a key for a role, as a lease.
//!
//! The order of steps is what makes orphaned keys impossible:
//! 1. take the role (cached) and the config, and draw the key's alias;
//! 2. write a WAL entry naming that alias, together with the last reads
//!    (the mount's max TTL, its default TTL if the role has none, the
//!    caller's entity: a request they refuse removes its entry). On a
//!    standby this first write (on a mount's first issue, its id) fails
//!    with the read-only error on which the server forwards the request to
//!    the active node: nothing has happened outside the server yet, so no
//!    separate check of the node's state is needed;
//! 3. ask LiteLLM for the key (key material chosen here, with a `duration`
//!    of the lease TTL plus a small grace: it must not die before its
//!    lease) while its inventory record is written;
//! 4. once both are done, delete the WAL entry and return the lease.
//!
//! A crash after 2 leaves the WAL entry; the rollback deletes the key by its
//! alias and its record. The record exists before the WAL entry goes, so no
//! live key is ever in neither. If the host fails to store the lease it
//! revokes it at once. And a key nobody revokes still dies in LiteLLM when
//! its duration runs out.

use std::sync::Arc;
use std::time::SystemTime;

use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Map, Value};

use super::clock;
use super::inventory::{self, KeyRecord};
use super::narrowing::Narrowing;
use super::{attribution, key_secret, rollback, Engine, EXPIRY_GRACE, ISSUE_MARGIN};
use crate::framework::{
    calculate_ttl, callback, field::format_duration, wal, Error, Field, FieldType, Operation, Path,
    Request, Response, Result, Secret, Storage, TtlRequest,
};
use crate::litellm::{self, Client, Deleted};

pub(super) fn path(engine: &Arc<Engine>) -> Path {
    Path::new("creds/{name}")
        .field(Field::new(
            "ttl",
            FieldType::Duration,
            "Write only: a lease TTL shorter than the role's.",
        ))
        .field(Field::new(
            "models",
            FieldType::StringList,
            "Write only: a subset of the role's models.",
        ))
        .field(Field::new(
            "max_budget",
            FieldType::Float,
            "Write only: a budget at most the role's.",
        ))
        .field(Field::new(
            "metadata",
            FieldType::StringMap,
            "Write only: key metadata under the keys the role's allowed_request_metadata lists.",
        ))
        .on(Operation::Read, callback(engine, read))
        .on(Operation::Update, callback(engine, read))
        .help(
            "Mint a LiteLLM virtual key for a role.",
            "Returns a new key limited by the role, leased: renew the lease to extend the key, \
             revoke it to delete the key. The key also expires in LiteLLM when the lease would. \
             A write may narrow the key (ttl, models, max_budget, allowed metadata), never widen it.",
        )
}

/// `<prefix>-<role>-<12 random characters>`: unique, and readable in the
/// LiteLLM UI as coming from this engine.
pub(super) fn key_alias(prefix: &str, role: &str) -> String {
    let suffix = Alphanumeric
        .sample_string(&mut rand::rng(), 12)
        .to_ascii_lowercase();
    format!("{prefix}-{role}-{suffix}")
}

async fn read(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let role_name = req.fields.str("name").unwrap_or_default().to_string();
    let storage = req.storage.as_ref();
    // From the cache (see `roles::RoleCache`: every change empties it).
    let role = engine
        .roles
        .get(storage, &role_name)
        .await?
        .ok_or_else(|| Error::invalid(format!("unknown role {role_name:?}")))?;
    let proxy = engine.clients.current(storage).await?;
    // One storage read on the first issue of a process, then cached.
    let mount_id = inventory::ensure_mount_id(&engine, storage).await?;
    let narrowing = req.fields.decode_given::<Narrowing>()?;

    // The WAL entry travels with the reads that remain (the mount's TTLs,
    // the caller's entity): one round trip to the server before LiteLLM,
    // not two. A request those reads refuse removes its entry again.
    let alias = key_alias(&role.key_alias_prefix, &role_name);
    let mut wal_data = Map::new();
    wal_data.insert("key_alias".into(), json!(alias));
    proxy.home.record(&mut wal_data);
    let timeout = proxy.config.request_timeout();
    let schedule = wal::Schedule {
        // generate, then possibly a clean-up delete, each up to the timeout
        hold_for: 2 * timeout + ISSUE_MARGIN,
        // The lease is not granted yet: the role's max_ttl bounds it (and
        // a role without one, the rollback's own limit).
        give_up_after: (!role.max_ttl().is_zero()).then(|| role.max_ttl() + EXPIRY_GRACE),
    };
    let checks = async {
        let (role_ttl, mount_max_ttl, attributed) = tokio::try_join!(
            role.ttl_or_mount_default(req.system.as_ref()),
            req.system.max_lease_ttl(),
            attribution::resolve(&role, &req),
        )?;
        let narrowing = narrowing.check(&role, role_ttl)?;
        let now = SystemTime::now();
        let grant = calculate_ttl(&TtlRequest {
            increment: std::time::Duration::ZERO,
            backend_ttl: narrowing.ttl.unwrap_or(role_ttl),
            backend_max_ttl: role.max_ttl(),
            // The mount's default when the role has no TTL of its own.
            mount_default_ttl: role_ttl,
            mount_max_ttl,
            issue_time: now,
            now,
        })?;
        Ok::<_, Error>((narrowing, grant, now, attributed))
    };
    let (wal_id, checked) = tokio::join!(
        wal::put(storage, rollback::KIND, Value::Object(wal_data), schedule),
        checks
    );
    // On a standby the entry cannot be written, and that error is the one
    // on which the server forwards the request to the active node.
    let wal_id = wal_id?;
    let (narrowing, grant, now, (user_id, team_id)) = match checked {
        Ok(checked) => checked,
        Err(e) => {
            forget_wal(storage, &wal_id, "a refused issue").await;
            return Err(e);
        }
    };
    // The key outlives its lease by the grace, never the other way round.
    let key_lifetime = grant.ttl + EXPIRY_GRACE;

    let mut metadata = role.metadata.clone();
    metadata.extend(narrowing.metadata.clone());
    metadata.insert("vault_role".into(), role_name.clone());
    metadata.insert("vault_request_id".into(), req.id.clone());
    metadata.insert("vault_mount".into(), req.mount_point.clone());
    metadata.insert("vault_display_name".into(), req.display_name.clone());
    if !req.entity_id.is_empty() {
        metadata.insert("vault_entity_id".into(), req.entity_id.clone());
    }
    metadata.insert("created_by".into(), "vault-plugin-secrets-litellm".into());
    metadata.insert(inventory::MOUNT_ID_METADATA.into(), mount_id);
    let mut request =
        role.generate_request(alias.clone(), metadata, user_id.clone(), team_id.clone());
    request.duration = Some(format!("{}s", key_lifetime.as_secs()));
    if let Some(models) = &narrowing.models {
        request.models = models.clone();
    }
    if narrowing.max_budget.is_some() {
        request.max_budget = narrowing.max_budget;
    }
    // The engine chooses the key, so its record can be stored while LiteLLM
    // mints it: the write costs no time of its own.
    let chosen = litellm::new_key();
    request.key = Some(litellm::KeyMaterial(chosen.clone()));
    let issued_at = clock::unix(now);
    let mut record = KeyRecord {
        alias: alias.clone(),
        token: litellm::key_token(&chosen),
        role: role_name.clone(),
        issued_at,
        lease_expires: issued_at + grant.ttl.as_secs(),
        proxy_id: proxy.home.proxy_id.clone(),
        proxy_url: proxy.home.base_url.clone(),
        display_name: req.display_name.clone(),
        entity_id: req.entity_id.clone(),
        revoke_failed_at: None,
        revoke_error: None,
    };
    let (generated, recorded) = tokio::join!(
        proxy.client.generate_key(&request),
        inventory::put(storage, &record)
    );
    let key = match generated {
        Ok(key) => key,
        Err(e) => {
            // No key, no record: the record goes before the WAL entry. If
            // it cannot, the entry stays and the rollback removes both.
            match inventory::delete(storage, &alias).await {
                Ok(()) => settle_failed_generate(&proxy.client, storage, &wal_id, &alias, &e).await,
                Err(de) => tracing::warn!(key_alias = %alias, error = %de,
                    "cannot delete the record of a failed issue; the rollback will"),
            }
            return Err(e.into());
        }
    };

    if let Some(field) = request.unapplied_scope(&key) {
        // Wider than its role: deleted before anyone sees it, then its
        // record, then the WAL entry (which covers both until then).
        if discard_minted(&proxy.client, &alias).await {
            match inventory::delete(storage, &alias).await {
                Ok(()) => forget_wal(storage, &wal_id, "a discarded key").await,
                Err(e) => tracing::warn!(key_alias = %alias, error = %e,
                    "cannot delete the record of a discarded key; the rollback will"),
            }
        }
        return Err(unapplied_scope_error(field, &proxy.home.base_url));
    }

    #[cfg(feature = "fault-injection")]
    if std::env::var_os("LITELLM_PLUGIN_CRASH_AFTER_GENERATE").is_some() {
        tracing::warn!(key_alias = %alias, "fault injection: dying after /key/generate");
        std::process::abort();
    }

    // The key exists: its record must be stored before the WAL entry goes
    // (a failure here leaves the entry, and the rollback deletes the key and
    // any record), never neither.
    recorded?;
    if key.token != record.token {
        // A LiteLLM that made a key of its own (a custom key hook): record
        // the key it returned.
        tracing::warn!(key_alias = %alias, "LiteLLM did not keep the engine's key material; recording its own");
        record.token = key.token.clone();
        inventory::put(storage, &record).await?;
    }
    #[cfg(feature = "fault-injection")]
    if std::env::var_os("LITELLM_PLUGIN_CRASH_AFTER_RECORD").is_some() {
        tracing::warn!(key_alias = %alias, "fault injection: dying between the record and the WAL delete");
        std::process::abort();
    }
    wal::delete(storage, &wal_id).await?;
    tracing::info!(role = %role_name, key_alias = %alias, ttl = %format_duration(grant.ttl), "issued LiteLLM key");

    let mut data = Map::new();
    data.insert("key".into(), json!(key.key));
    data.insert("key_alias".into(), json!(alias));
    // LiteLLM's id for the key (its spend logs, `/key/info`, this mount's
    // `keys/<id>`): a hash, not a credential.
    data.insert("token_hash".into(), json!(key.token));
    data.insert("models".into(), json!(request.models));
    data.insert(
        "max_budget".into(),
        json!(request.max_budget.unwrap_or(0.0)),
    );
    data.insert("expires".into(), json!(key.expires));
    data.extend(role.limits());
    // What the key got, where LiteLLM says: its proxy may have filled in
    // limits the role leaves open (default or upper-bound key settings).
    for (field, stored) in key.stored_limits() {
        match stored {
            Value::Null if field == "max_budget" => data.insert(field.into(), json!(0.0)),
            Value::Null if field == "models" => data.insert(field.into(), json!([])),
            Value::Null => data.remove(field),
            v => data.insert(field.into(), v.clone()),
        };
    }
    for (field, value) in [("user_id", user_id), ("team_id", team_id)] {
        if let Some(v) = value {
            data.insert(field.into(), json!(v));
        }
    }
    let mut internal = key_secret::internal_data(&alias, &key.token, &role_name, &proxy.home);
    if let Some(ttl) = narrowing.ttl {
        // Renewals keep the narrower TTL.
        internal.insert(key_secret::REQUESTED_TTL.into(), json!(ttl.as_secs()));
    }
    let secret = Secret::new(key_secret::SECRET_TYPE, internal, grant.ttl, role.max_ttl());
    let mut response = Response::with_data(data);
    response.secret = Some(secret);
    if let Some(w) = grant.warning {
        response = response.warn(w);
    }
    Ok(Some(response))
}

/// The answer when LiteLLM ignored the role's `field` (`key_type`,
/// `allowed_routes`): a 502 that says what to do.
pub(super) fn unapplied_scope_error(field: &str, base_url: &str) -> Error {
    Error::coded(
        502,
        format!(
            "LiteLLM at {base_url} did not apply the role's {field} (its answer limits the key to \
             no routes): it is too old for scoped keys, so the key was deleted instead of handed \
             out; upgrade LiteLLM, or give the role key_type=default if keys with their user's \
             powers are meant"
        ),
    )
}

/// Deletes a key the engine just minted and must not hand out; `true` once
/// it is gone. Failing, the caller keeps the WAL entry: the rollback
/// deletes the key by its alias.
pub(super) async fn discard_minted(client: &Client, alias: &str) -> bool {
    match client.delete_key_aliases(&[alias.to_string()]).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(key_alias = %alias, error = %e,
                "cannot delete a key that must not be handed out; the rollback will");
            false
        }
    }
}

/// Deletes a WAL entry whose work is settled (`what` names it for the
/// log); a failure only leaves the rollback a check to make.
pub(super) async fn forget_wal(storage: &dyn Storage, wal_id: &str, what: &str) {
    if let Err(e) = wal::delete(storage, wal_id).await {
        tracing::warn!(wal_id = %wal_id, error = %e, "cannot delete the WAL entry of {what}; the rollback will");
    }
}

/// After `/key/generate` failed: the WAL entry goes only when no key can
/// exist. A clear refusal (4xx, nothing sent) created none. After an
/// ambiguous failure (timeout, broken connection, 5xx, unreadable answer)
/// LiteLLM may have created the key, or may still commit it: the entry goes
/// only if deleting by alias removed a key now; otherwise the rollback
/// deletes it once the entry's hold is over.
pub(super) async fn settle_failed_generate(
    client: &Client,
    storage: &dyn Storage,
    wal_id: &str,
    alias: &str,
    error: &litellm::Error,
) {
    if error.is_ambiguous() {
        match client.delete_key_aliases(&[alias.to_string()]).await {
            Ok(Deleted::Now) => {}
            outcome => {
                tracing::warn!(key_alias = %alias, error = %error, outcome = ?outcome,
                    "generate failed ambiguously; the rollback will delete the key if LiteLLM created it");
                return;
            }
        }
    }
    forget_wal(storage, wal_id, "a failed issue").await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_unique_and_valid() {
        let a = key_alias("vault", "dev");
        let b = key_alias("vault", "dev");
        assert_ne!(a, b);
        assert!(a.starts_with("vault-dev-"));
        assert_eq!(a.len(), "vault-dev-".len() + 12);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
