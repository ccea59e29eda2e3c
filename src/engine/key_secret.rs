//! The `litellm_key` lease: renew extends the key, revoke deletes it.
//!
//! The lease stores only the alias, the token hash (sha256 of the key), the
//! role and the proxy the key lives on: never the key.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

use super::clock;
use super::inventory::{self, KeyRecord};
use super::proxy::Home;
use super::{unfinished_revokes, Engine, EXPIRY_GRACE};
use crate::framework::{
    calculate_ttl, callback, field::format_duration, Error, Request, Response, Result, SecretType,
    TtlRequest,
};
use crate::litellm::Deleted;

pub(super) const SECRET_TYPE: &str = "litellm_key";
/// Internal data: the TTL a `creds` write asked for, below the role's.
pub(super) const REQUESTED_TTL: &str = "requested_ttl";

pub(super) fn internal_data(
    alias: &str,
    token: &str,
    role: &str,
    home: &Home,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("key_alias".into(), json!(alias));
    m.insert("token".into(), json!(token));
    m.insert("role".into(), json!(role));
    home.record(&mut m);
    m
}

pub(super) fn secret_type(engine: &Arc<Engine>) -> SecretType {
    SecretType {
        name: SECRET_TYPE,
        renew: callback(engine, renew),
        revoke: callback(engine, revoke),
    }
}

async fn renew(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let mut secret = req
        .secret
        .clone()
        .ok_or_else(|| Error::invalid("renew without a lease"))?;
    let role_name = secret.internal_str("role")?.to_string();
    let token = secret.internal_str("token")?.to_string();
    // From the cache, as for an issue (every role change empties it).
    let (role, mount_max_ttl) = tokio::try_join!(
        engine.roles.get(req.storage.as_ref(), &role_name),
        req.system.max_lease_ttl(),
    )?;
    let role = role.ok_or_else(|| {
        Error::invalid(format!(
            "role {role_name:?} was deleted; its keys can no longer be renewed"
        ))
    })?;
    // The max TTL counts from the issue time: guessing "now" would let a
    // lease be renewed forever.
    let issue_time = secret.issue_time.ok_or_else(|| {
        Error::Internal("the server sent no issue time with the renewal; refusing to guess".into())
    })?;
    let role_ttl = role.ttl_or_mount_default(req.system.as_ref()).await?;
    let now = SystemTime::now();
    // A narrowed lease keeps its TTL as a ceiling: neither an increment nor
    // the role's (possibly later) TTL takes it past what its issue asked
    // for, and a role tightened since then tightens it too.
    let narrowed = secret
        .internal
        .get(REQUESTED_TTL)
        .and_then(Value::as_u64)
        .map(Duration::from_secs)
        .map(|requested| requested.min(role_ttl));
    let increment = match narrowed {
        Some(ceiling) if !secret.increment.is_zero() => secret.increment.min(ceiling),
        _ => secret.increment,
    };
    let grant = calculate_ttl(&TtlRequest {
        increment,
        backend_ttl: narrowed.unwrap_or(role_ttl),
        backend_max_ttl: role.max_ttl(),
        // The mount's default when the role has no TTL of its own.
        mount_default_ttl: role_ttl,
        mount_max_ttl,
        issue_time,
        now,
    })?;
    let home = Home::recorded(&secret.internal);
    let client = engine
        .clients
        .for_key(req.storage.as_ref(), home.as_ref())
        .await?;
    let alias = secret.internal_str("key_alias").unwrap_or("?").to_string();
    // The record moves first: if the key's extension then fails, the record
    // is ahead of the lease (tidy and the failed-revoke notes wait longer),
    // never behind the key's life in LiteLLM.
    if secret.internal_str("key_alias").is_ok() {
        let record = KeyRecord {
            alias: alias.clone(),
            token: token.clone(),
            role: role_name.clone(),
            issued_at: clock::unix(issue_time),
            lease_expires: clock::unix(now) + grant.ttl.as_secs(),
            proxy_id: home
                .as_ref()
                .map(|h| h.proxy_id.clone())
                .unwrap_or_default(),
            proxy_url: home
                .as_ref()
                .map(|h| h.base_url.clone())
                .unwrap_or_default(),
            display_name: String::new(),
            entity_id: String::new(),
            revoke_failed_at: None,
            revoke_error: None,
        };
        renewed(req.storage.as_ref(), record).await?;
    }
    let updated = client
        .extend_key(&token, grant.ttl + EXPIRY_GRACE)
        .await
        .map_err(Error::from)?;
    tracing::info!(role = %role_name, key_alias = %alias, ttl = %format_duration(grant.ttl),
        expires = updated.expires.as_deref().unwrap_or("never"), "renewed LiteLLM key");
    secret.ttl = grant.ttl;
    secret.max_ttl = match narrowed {
        // The server gives a renewal the increment it was asked for,
        // capped only by the max TTL counted from the issue time: a cap
        // that ends where this grant ends keeps the lease within the
        // narrowed TTL (and the key's expiry).
        Some(_) => {
            // Whole seconds, rounded down: never past the ceiling.
            let age = now.duration_since(issue_time).unwrap_or_default();
            Duration::from_secs(age.as_secs()) + grant.ttl
        }
        None => role.max_ttl(),
    };
    // No data, as the database engine renews: the server stores a renewal's
    // data with the lease in place of the original (so the key leaves the
    // lease entry here) and shows it to whoever renews, and agents keep the
    // data they rendered only when a renewal brings none.
    let asked_increment = !secret.increment.is_zero();
    let mut response = Response::with_data(Map::new());
    response.secret = Some(secret);
    // The server caps a renewal's increment itself and says so: the same
    // warning twice would only be noise.
    if let Some(w) = grant.warning.filter(|_| !asked_increment) {
        response = response.warn(w);
    }
    Ok(Some(response))
}

async fn revoke(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let secret = req
        .secret
        .as_ref()
        .ok_or_else(|| Error::invalid("revoke without a lease"))?;
    let token = secret.internal_str("token")?.to_string();
    let alias = secret.internal_str("key_alias").unwrap_or("?").to_string();
    // Any error makes the host retry with backoff: the key is never
    // forgotten while it may still exist.
    let home = Home::recorded(&secret.internal);
    let storage = Arc::clone(&req.storage);
    // In a task of its own: the server drops a revoke that outlasts its
    // deadline (a hanging LiteLLM), and the failure must still be noted.
    let deleting = {
        let (alias, storage) = (alias.clone(), Arc::clone(&storage));
        tokio::spawn(async move {
            let storage = storage.as_ref();
            let outcome = async {
                let client = engine.clients.for_key(storage, home.as_ref()).await?;
                client.delete_key_batched(&token).await.map_err(Error::from)
            }
            .await;
            if let Err(e) = &outcome {
                // The server retries, but gives up after a few attempts
                // (or is told to with -force): the note lets the engine
                // finish the job once LiteLLM answers, the mark shows it
                // in `keys/`.
                let error = e.to_string();
                tokio::join!(
                    inventory::mark_revoke_failed(storage, &alias, &error),
                    unfinished_revokes::note(storage, &alias, &token, home.as_ref()),
                );
            }
            outcome
        })
    };
    let outcome = deleting
        .await
        .map_err(|e| Error::Internal(format!("the revoke stopped: {e}")))??;
    match outcome {
        Deleted::Now => tracing::info!(key_alias = %alias, "revoked LiteLLM key"),
        Deleted::AlreadyGone => {
            tracing::info!(key_alias = %alias, "LiteLLM key was already gone")
        }
    }
    inventory::delete(storage.as_ref(), &alias).await?;
    Ok(None)
}

/// Moves the record's expiry. The lease is alive: a revoke that failed
/// earlier is history. A lease from before the inventory gets its record
/// now (with what the lease knows). Failing here fails the renewal: a
/// record whose expiry lags its lease could let tidy delete a live key.
async fn renewed(storage: &dyn crate::framework::Storage, fresh: KeyRecord) -> Result<()> {
    // A revoke of this lease may have failed (the record's mark is best
    // effort, so it is not asked): its key must not be deleted now that the
    // lease goes on.
    let (old, forgotten) = tokio::join!(
        inventory::get(storage, &fresh.alias),
        unfinished_revokes::forget(storage, &fresh.alias),
    );
    forgotten?;
    let old = old?;
    let record = match old {
        Some(old) => KeyRecord {
            lease_expires: fresh.lease_expires,
            revoke_failed_at: None,
            revoke_error: None,
            ..old
        },
        None => fresh,
    };
    inventory::put(storage, &record).await
}
