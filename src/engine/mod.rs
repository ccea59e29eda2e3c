//! The LiteLLM secrets engine: paths, the leased key, and the rollback that
//! guarantees no key outlives its lease.
//!
//! Storage layout of a mount:
//!
//! | key            | what                                             |
//! |----------------|--------------------------------------------------|
//! | `config`       | proxy URL, master key (seal-wrapped), TLS, timeout |
//! | `roles/<name>` | what a minted key may do                         |
//! | `wal/<id>`     | aliases of keys being minted right now           |

mod config;
mod creds;
mod key_secret;
mod roles;
mod rollback;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::framework::{Backend, Error, Result, SpecialPaths, Storage};
use crate::litellm;

const HELP: &str = "\
The LiteLLM secrets engine issues LiteLLM proxy virtual keys on demand.

Each key is scoped to a role's models and limits, capped by its budget, and
bound to a lease: renewing the lease extends the key, revoking the lease
deletes the key in LiteLLM, and the key expires in LiteLLM on its own when
the lease would have. Configure the proxy at `config`, define `roles/<name>`
and read `creds/<name>` to get a key.";

/// Mount option: how old an unfinished WAL entry must be before the rollback
/// deletes its key. It must exceed the longest a `creds` request can take
/// (`request_timeout` is at most 5 minutes), or a key being issued right now
/// could be deleted under its caller.
pub const ROLLBACK_MIN_AGE_OPTION: &str = "rollback_min_age";
const DEFAULT_ROLLBACK_MIN_AGE: Duration = Duration::from_secs(600);
/// After this long a failing rollback gives up (the key has expired in
/// LiteLLM by itself long before, since its duration is the lease TTL).
const ROLLBACK_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The state shared by all handlers of one mount.
pub struct Engine {
    /// The client for the stored config, built on first use. The counter
    /// makes sure a client built from a config that changed meanwhile is
    /// never cached.
    client: Mutex<(u64, Option<Arc<litellm::Client>>)>,
}

impl Engine {
    fn new() -> Self {
        Self {
            client: Mutex::new((0, None)),
        }
    }

    /// The LiteLLM client for the current config.
    async fn client(&self, storage: &dyn Storage) -> Result<Arc<litellm::Client>> {
        let generation = {
            let cached = self.client.lock().unwrap();
            if let Some(client) = &cached.1 {
                return Ok(Arc::clone(client));
            }
            cached.0
        };
        let config = config::load(storage).await?.ok_or_else(|| {
            Error::invalid("the LiteLLM connection is not configured: write config first")
        })?;
        let client = Arc::new(litellm::Client::new(&config.settings()?).map_err(upstream)?);
        let mut cached = self.client.lock().unwrap();
        if cached.0 == generation {
            cached.1 = Some(Arc::clone(&client));
        }
        Ok(client)
    }

    /// Drops the cached client: the config changed (here or on another node).
    fn forget_client(&self) {
        let mut cached = self.client.lock().unwrap();
        cached.0 += 1;
        cached.1 = None;
    }
}

/// Maps a LiteLLM failure to what the caller of the engine sees.
fn upstream(e: litellm::Error) -> Error {
    use litellm::Error as L;
    match &e {
        L::Config(_) | L::Rejected { .. } => Error::invalid(e.to_string()),
        L::Unreachable { .. } => Error::coded(503, e.to_string()),
        L::Timeout(_) => Error::coded(504, e.to_string()),
        L::Unauthorized { .. } => {
            Error::coded(502, format!("{e}; update the master key at config"))
        }
        L::NotFound(_) | L::Server { .. } | L::InvalidResponse(_) => {
            Error::coded(502, e.to_string())
        }
    }
}

/// Builds the backend of one mount. `config` holds the mount options.
pub fn factory(options: &HashMap<String, String>) -> Result<Backend, String> {
    let rollback_min_age = match options.get(ROLLBACK_MIN_AGE_OPTION) {
        Some(v) => crate::framework::field::parse_duration(v).ok_or_else(|| {
            format!("mount option {ROLLBACK_MIN_AGE_OPTION}: {v:?} is not a duration")
        })?,
        None => DEFAULT_ROLLBACK_MIN_AGE,
    };
    let engine = Arc::new(Engine::new());
    let mut backend = Backend::new(HELP)
        .path(config::path(&engine))
        .path(roles::list_path(&engine))
        .path(roles::path(&engine))
        .path(creds::path(&engine))
        .secret(key_secret::secret_type(&engine));
    backend.special_paths = SpecialPaths {
        seal_wrap_storage: vec![config::STORAGE_KEY.into()],
        ..SpecialPaths::default()
    };
    backend.wal_rollback = Some(rollback::wal_rollback(
        &engine,
        rollback_min_age,
        ROLLBACK_MAX_AGE,
    ));
    let on_invalidate = Arc::clone(&engine);
    backend.invalidate = Some(Arc::new(move |key: &str| {
        if key == config::STORAGE_KEY {
            on_invalidate.forget_client();
        }
    }));
    let on_cleanup = Arc::clone(&engine);
    backend.cleanup = Some(Arc::new(move || on_cleanup.forget_client()));
    Ok(backend)
}

#[cfg(test)]
mod tests;
