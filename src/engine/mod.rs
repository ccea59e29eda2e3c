//! The LiteLLM secrets engine: paths, the leased key, and the rollback that
//! guarantees no key outlives its lease.
//!
//! Storage layout of a mount:
//!
//! | key            | what                                             |
//! |----------------|--------------------------------------------------|
//! | `config`       | proxy URL, admin key (seal-wrapped), TLS, timeout, rotation policy |
//! | `roles/<name>` | what a minted key may do                         |
//! | `proxies/<id>` | settings of proxies keys were minted on before (seal-wrapped) |
//! | `wal/<id>`     | keys being minted, admin keys being rotated (local to the cluster) |
//! | `inventory/mount_id` | this mount's id, written into every key's metadata (local) |
//! | `inventory/keys/<alias>` | what was issued: token hash, role, lease expiry, proxy (local) |
//! | `inventory/tidy_status` | the last tidy's report (local) |
//! | `inventory/unfinished_revokes/<alias>` | a key whose revoke failed, to delete (local) |
//! | `auto_tidy`    | when and how tidy runs by itself |
//! | `static-roles/<name>` | a static role: models, owner, rotation period |
//! | `static-keys/<name>`  | its current key (seal-wrapped) |

mod attribution;
mod clock;
mod config;
mod creds;
mod cron;
mod inventory;
mod key_secret;
mod keys;
mod narrowing;
mod proxy;
mod roles;
mod rollback;
mod rotation;
mod static_roles;
mod tidy;
mod unfinished_revokes;
mod usage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::framework::{Backend, Result, SpecialPaths};

const HELP: &str = "\
The LiteLLM secrets engine issues LiteLLM proxy virtual keys on demand.

Each key is scoped to a role's models and limits, capped by its budget, and
bound to a lease: renewing the lease extends the key, revoking the lease
deletes the key in LiteLLM, and the key expires in LiteLLM on its own when
the lease would have. Configure the proxy at `config`, define `roles/<name>`
and read `creds/<name>` to get a key.";

/// Mount option: how old an unfinished WAL entry must be before the rollback
/// deletes its key. Whatever it says, an entry is never touched before its
/// own hold ends (`ISSUE_MARGIN` plus twice the request timeout: the longest
/// an issue can take), so a key being issued right now is never deleted
/// under its caller.
pub const ROLLBACK_MIN_AGE_OPTION: &str = "rollback_min_age";
const DEFAULT_ROLLBACK_MIN_AGE: Duration = Duration::from_secs(600);
/// Mount option, for tests: the smallest `rotation_period` accepted
/// (default 1h). Rotation still happens at most once per rollback tick.
pub const MIN_ROTATION_PERIOD_OPTION: &str = "min_rotation_period";
/// Beyond the LiteLLM calls of an issue (generate, and a clean-up delete
/// after a failure): storage writes and scheduling.
pub const ISSUE_MARGIN: Duration = Duration::from_secs(15);
/// How much longer a key lives in LiteLLM than its lease: LiteLLM starts the
/// clock when it creates the key, the server when it stores the lease a
/// moment later, and the two clocks may differ a little. The key must never
/// expire before the lease that promises it.
pub const EXPIRY_GRACE: Duration = Duration::from_secs(30);

/// How long past its expiry a key that cannot be deleted (its proxy down,
/// or retired) is still tried: LiteLLM's clock may run behind the
/// server's. After that it no longer works, and the engine stops asking.
const EXPIRED_KEY_MARGIN: Duration = Duration::from_secs(3600);
/// Rollback entries that do not say when their key expires at the latest
/// (an issue for a role without max_ttl, or entries written before entries
/// said it) are given up after this long: longer than the longest lease a
/// mount allows by default (32 days).
const LEGACY_ROLLBACK_MAX_AGE: Duration = Duration::from_secs(33 * 24 * 3600);

/// The state shared by all handlers of one mount.
pub struct Engine {
    clients: proxy::Clients,
    roles: roles::RoleCache,
    /// Serialises read-modify-write of `config` and roles.
    writes: tokio::sync::Mutex<()>,
    /// The mount's id, once known (it never changes).
    mount_id: std::sync::OnceLock<String>,
    mount_id_lock: tokio::sync::Mutex<()>,
    /// Held while a tidy runs: one at a time, whoever starts it.
    tidying: Arc<tokio::sync::Mutex<()>>,
    min_rotation_period: Duration,
}

impl Engine {
    fn new() -> Self {
        Self {
            clients: proxy::Clients::default(),
            roles: roles::RoleCache::default(),
            writes: tokio::sync::Mutex::new(()),
            mount_id: std::sync::OnceLock::new(),
            mount_id_lock: tokio::sync::Mutex::new(()),
            tidying: Arc::new(tokio::sync::Mutex::new(())),
            min_rotation_period: rotation::DEFAULT_MIN_PERIOD,
        }
    }
}

/// Builds the backend of one mount. `config` holds the mount options.
pub fn factory(options: &HashMap<String, String>) -> Result<Backend, String> {
    let mut unusable = Vec::new();
    let mut duration_option = |name: &str, default: Duration| match options.get(name) {
        None => default,
        Some(v) => crate::framework::field::parse_duration(v).unwrap_or_else(|| {
            unusable.push(format!("mount option {name}: {v:?} is not a duration"));
            default
        }),
    };
    let rollback_min_age = duration_option(ROLLBACK_MIN_AGE_OPTION, DEFAULT_ROLLBACK_MIN_AGE);
    let min_rotation_period =
        duration_option(MIN_ROTATION_PERIOD_OPTION, rotation::DEFAULT_MIN_PERIOD);
    let engine = Arc::new(Engine {
        min_rotation_period,
        ..Engine::new()
    });
    let mut backend = Backend::new(HELP)
        .named(crate::PLUGIN.name, crate::PLUGIN.version)
        .operation_prefix("litellm")
        .path(config::path(&engine))
        .path(roles::list_path(&engine))
        .path(roles::path(&engine))
        .path(creds::path(&engine))
        .path(keys::list_path(&engine))
        .path(keys::path(&engine))
        .path(usage::path(&engine))
        .path(tidy::path(&engine))
        .path(tidy::status_path(&engine))
        .path(tidy::auto_path(&engine))
        .path(rotation::path(&engine))
        .path(static_roles::list_path(&engine))
        .path(static_roles::role_path(&engine))
        .path(static_roles::creds_path(&engine))
        .path(static_roles::rotate_path(&engine))
        .secret(key_secret::secret_type(&engine))
        .periodic(tidy::auto_tidy_task(&engine))
        .periodic(rotation::periodic_task(&engine))
        .periodic(static_roles::periodic_task(&engine))
        .periodic(unfinished_revokes::periodic_task(&engine));
    backend.special_paths = SpecialPaths {
        seal_wrap_storage: vec![
            config::STORAGE_KEY.into(),
            proxy::RETIRED_PREFIX.into(),
            static_roles::KEY_PREFIX.into(),
        ],
        // A WAL entry belongs to the cluster whose node wrote it: it must
        // not replicate to (or be forwarded from) performance secondaries.
        // The inventory goes with the leases, which are the cluster's own.
        local_storage: vec![
            crate::framework::wal::WAL_PREFIX.into(),
            inventory::PREFIX.into(),
        ],
        ..SpecialPaths::default()
    };
    backend.unusable_options = (!unusable.is_empty()).then(|| unusable.join("; "));
    backend.wal_rollback = Some(rollback::wal_rollback(
        &engine,
        rollback_min_age,
        LEGACY_ROLLBACK_MAX_AGE,
    ));
    let on_invalidate = Arc::clone(&engine);
    backend.invalidate = Some(Arc::new(move |key: &str| {
        if key == config::STORAGE_KEY || key.starts_with(proxy::RETIRED_PREFIX) {
            on_invalidate.clients.forget();
        }
        if roles::is_role_key(key) {
            on_invalidate.roles.forget();
        }
    }));
    let on_cleanup = Arc::clone(&engine);
    backend.cleanup = Some(Arc::new(move || {
        on_cleanup.clients.forget();
        on_cleanup.roles.forget();
    }));
    Ok(backend)
}

#[cfg(test)]
mod tests;
