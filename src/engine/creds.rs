//! `creds/<name>`: mint a key for a role, as a lease.
//!
//! The order of steps is what makes orphaned keys impossible:
//! 1. refuse on a standby (the lease could not be stored there);
//! 2. write a WAL entry naming the alias the key will have;
//! 3. ask LiteLLM for the key, with a `duration` equal to the lease TTL;
//! 4. delete the WAL entry and return the lease.
//!
//! A crash after 3 leaves the WAL entry; the rollback deletes the key by its
//! alias. If the host fails to store the lease it revokes it at once. And a
//! key nobody revokes still dies in LiteLLM when its duration runs out.

use std::sync::Arc;
use std::time::SystemTime;

use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Map};

use super::{key_secret, roles, rollback, upstream, Engine};
use crate::framework::storage::PERFORMANCE_STANDBY;
use crate::framework::{
    calculate_ttl, callback, wal, Error, Operation, Path, Request, Response, Result, Secret,
    TtlRequest,
};
use crate::litellm::GenerateKeyRequest;

pub fn path(engine: &Arc<Engine>) -> Path {
    Path::new("creds/{name}")
        .on(Operation::Read, callback(engine, read))
        .help(
            "Mint a LiteLLM virtual key for a role.",
            "Returns a new key limited by the role, leased: renew the lease to extend the key, \
             revoke it to delete the key. The key also expires in LiteLLM when the lease would.",
        )
}

/// `<prefix>-<role>-<12 random characters>`: unique, and readable in the
/// LiteLLM UI as coming from this engine.
fn key_alias(prefix: &str, role: &str) -> String {
    let suffix = Alphanumeric
        .sample_string(&mut rand::rng(), 12)
        .to_ascii_lowercase();
    format!("{prefix}-{role}-{suffix}")
}

async fn read(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let role_name = req.fields.str("name").unwrap_or_default().to_string();
    // Independent reads from the server: one round trip instead of four.
    let (replication, role, mount_default_ttl, mount_max_ttl) = tokio::try_join!(
        req.system.replication_state(),
        roles::load(req.storage.as_ref(), &role_name),
        req.system.default_lease_ttl(),
        req.system.max_lease_ttl(),
    )?;
    if replication & PERFORMANCE_STANDBY != 0 {
        return Err(Error::ReadOnly);
    }
    let role = role.ok_or_else(|| Error::invalid(format!("unknown role {role_name:?}")))?;
    let client = engine.client(req.storage.as_ref()).await?;

    let now = SystemTime::now();
    let grant = calculate_ttl(&TtlRequest {
        increment: std::time::Duration::ZERO,
        backend_ttl: role.ttl(),
        backend_max_ttl: role.max_ttl(),
        mount_default_ttl,
        mount_max_ttl,
        issue_time: now,
        now,
    })?;

    let alias = key_alias(&role.key_alias_prefix, &role_name);
    let wal_id = wal::put(
        req.storage.as_ref(),
        rollback::KIND,
        json!({ "key_alias": alias }),
    )
    .await?;

    let mut metadata = role.metadata.clone();
    metadata.insert("vault_role".into(), role_name.clone());
    metadata.insert("vault_request_id".into(), req.id.clone());
    metadata.insert("vault_mount".into(), req.mount_point.clone());
    metadata.insert("vault_display_name".into(), req.display_name.clone());
    metadata.insert("created_by".into(), "vault-plugin-secrets-litellm".into());
    let request = GenerateKeyRequest {
        key_alias: alias.clone(),
        duration: format!("{}s", grant.ttl.as_secs()),
        models: role.models.clone(),
        max_budget: (role.max_budget > 0.0).then_some(role.max_budget),
        budget_duration: role.budget_duration.clone(),
        tpm_limit: role.tpm_limit,
        rpm_limit: role.rpm_limit,
        max_parallel_requests: role.max_parallel_requests,
        team_id: role.team_id.clone(),
        user_id: role.user_id.clone(),
        metadata,
    };
    let key = match client.generate_key(&request).await {
        Ok(key) => key,
        Err(e) => {
            // Did LiteLLM create it anyway (timeout after commit)? Delete by
            // alias now; if that is not possible, the WAL stays for rollback.
            if client
                .delete_key_aliases(std::slice::from_ref(&alias))
                .await
                .is_ok()
            {
                let _ = wal::delete(req.storage.as_ref(), &wal_id).await;
            }
            return Err(upstream(e));
        }
    };

    #[cfg(feature = "fault-injection")]
    if std::env::var_os("LITELLM_PLUGIN_CRASH_AFTER_GENERATE").is_some() {
        tracing::warn!(key_alias = %alias, "fault injection: dying after /key/generate");
        std::process::abort();
    }

    wal::delete(req.storage.as_ref(), &wal_id).await?;
    tracing::info!(role = %role_name, key_alias = %alias, ttl_s = grant.ttl.as_secs(), "issued LiteLLM key");

    let mut data = Map::new();
    data.insert("key".into(), json!(key.key));
    data.insert("key_alias".into(), json!(alias));
    data.insert("models".into(), json!(role.models));
    data.insert("max_budget".into(), json!(role.max_budget));
    data.insert("expires".into(), json!(key.expires));
    data.extend(role.limits());
    let secret = Secret::new(
        key_secret::SECRET_TYPE,
        key_secret::internal_data(&alias, &key.token, &role_name),
        grant.ttl,
        role.max_ttl(),
    );
    let mut response = Response::with_data(data);
    response.secret = Some(secret);
    if let Some(w) = grant.warning {
        response = response.warn(w);
    }
    Ok(Some(response))
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
