//! `config`: how to reach the LiteLLM proxy.
//!
//! The admin key (`admin_key`, formerly `master_key`) is write-only: a read
//! says whether it is set, never what it is. A write is verified against
//! the proxy before anything is stored. The rotation policy of the admin
//! key lives here too (see `rotation`).
//! Pointing `config` at a different proxy, or deleting it, keeps the old
//! settings for the keys minted there (see `proxy`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::clock;
use super::proxy::{self, new_proxy_id};
use super::rotation::{self, PolicyChange};
use super::Engine;
use crate::framework::storage::{get_json, put_json};
use crate::framework::{
    callback, Error, Field, FieldType, Operation, Path, Request, Response, Result, Storage,
};
use crate::litellm;

pub(super) const STORAGE_KEY: &str = "config";
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// The stored configuration.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Config {
    pub base_url: String,
    /// The admin key (`admin_key` in the API); the storage name predates it.
    pub master_key: String,
    #[serde(default)]
    pub ca_cert: String,
    #[serde(default)]
    pub tls_skip_verify: bool,
    pub request_timeout_secs: u64,
    /// Identifies the proxy (its key store) across URL changes; recorded
    /// in every lease. Empty in configs stored before it existed.
    #[serde(default)]
    pub proxy_id: String,
    /// Scheduled rotation of the admin key; empty in older configs.
    #[serde(default)]
    pub rotation: rotation::Policy,
    /// The admin key was minted by `rotate-root`: nobody else knows it, so
    /// the engine deletes it when another key is written in its place.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_minted_here: bool,
}

impl Config {
    pub(super) fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub(super) fn settings(&self) -> Result<litellm::Settings> {
        Ok(litellm::Settings {
            base_url: parse_base_url(&self.base_url)?,
            master_key: self.master_key.clone(),
            ca_cert: Some(self.ca_cert.clone()).filter(|c| !c.is_empty()),
            tls_skip_verify: self.tls_skip_verify,
            timeout: Duration::from_secs(self.request_timeout_secs),
        })
    }
}

pub(super) async fn load(storage: &dyn Storage) -> Result<Option<Config>> {
    let mut config: Option<Config> = get_json(storage, STORAGE_KEY).await?;
    if let Some(c) = config.as_mut().filter(|c| c.proxy_id.is_empty()) {
        // Stable without a write, so standbys agree with the active node.
        c.proxy_id = legacy_proxy_id(&c.base_url);
    }
    Ok(config)
}

fn legacy_proxy_id(base_url: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(base_url.as_bytes());
    format!("url-{}", hex::encode(&digest[..8]))
}

pub(super) fn path(engine: &Arc<Engine>) -> Path {
    Path::new("config")
        .field(Field::new(
            "base_url",
            FieldType::String,
            "URL of the LiteLLM proxy, e.g. http://litellm:4000.",
        ))
        .field(
            Field::new(
                "admin_key",
                FieldType::String,
                "LiteLLM key the engine manages keys with. Preferably a virtual key of a \
                 proxy_admin user (rotate-root can rotate it) rather than the master key. \
                 Never returned.",
            )
            .sensitive(),
        )
        .field(
            Field::new(
                "master_key",
                FieldType::String,
                "Older name of admin_key, still accepted; admin_key is preferred.",
            )
            .sensitive(),
        )
        .field(Field::new(
            "rotation_period",
            FieldType::Duration,
            "Rotate the admin key this long after the last rotation (at least 1h; 0 clears). \
             Not with rotation_schedule.",
        ))
        .field(Field::new(
            "rotation_schedule",
            FieldType::String,
            "Rotate the admin key at the times of this 5-field cron expression, in UTC \
             (\"\" clears). Not with rotation_period.",
        ))
        .field(Field::new(
            "rotation_window",
            FieldType::Duration,
            "With rotation_schedule: how long after a scheduled time the rotation may still \
             happen; a rotation missed by more waits for the next time (0 clears: no limit).",
        ))
        .field(Field::new(
            "disable_automated_rotation",
            FieldType::Bool,
            "Pause scheduled rotation, keeping its settings.",
        ))
        .field(
            Field::new(
                "ca_cert",
                FieldType::String,
                "PEM CA bundle to trust for an https base_url.",
            )
            .max_len(1 << 20),
        )
        .field(
            Field::new(
                "tls_skip_verify",
                FieldType::Bool,
                "Skip TLS certificate verification (testing only).",
            )
            .default_value(false),
        )
        .field(
            Field::new(
                "request_timeout",
                FieldType::Duration,
                "Timeout of each call to LiteLLM.",
            )
            .default_value("30s"),
        )
        .field(
            Field::new(
                "proxy_moved",
                FieldType::Bool,
                "With a new base_url: it is the same LiteLLM proxy (same key store) under a new \
                 URL, so keys minted before renew and revoke there. Not stored.",
            )
            .default_value(false),
        )
        .field(
            Field::new(
                "verify_connection",
                FieldType::Bool,
                "Check the URL and master key against LiteLLM before saving.",
            )
            .default_value(true),
        )
        .on(Operation::Read, callback(engine, read))
        .on_write(callback(engine, write))
        .on(Operation::Delete, callback(engine, delete))
        .exists(callback(engine, exists))
        .help(
            "Configure the connection to the LiteLLM proxy.",
            "base_url and admin_key (or its older name master_key) are required when the config \
             is first written; later writes change only the fields given. The connection and the \
             key are verified before saving unless verify_connection=false. The admin key is never \
             returned. Prefer a virtual key of a LiteLLM proxy_admin user to the master key: it \
             can be rotated (rotate-root, rotation_period, rotation_schedule); the master key \
             cannot be changed through LiteLLM's API. last_rotated and next_rotation are read only.",
        )
}

async fn exists(_: Arc<Engine>, req: Request) -> Result<bool> {
    Ok(req.storage.get(STORAGE_KEY).await?.is_some())
}

/// What a `config` read shows: every setting but the admin key itself.
#[derive(Serialize)]
struct ConfigView {
    base_url: String,
    admin_key_set: bool,
    /// Older clients look for this name.
    master_key_set: bool,
    rotation_period: u64,
    rotation_schedule: String,
    rotation_window: u64,
    disable_automated_rotation: bool,
    last_rotated: Option<String>,
    next_rotation: Option<String>,
    ca_cert: String,
    tls_skip_verify: bool,
    request_timeout: u64,
    proxy_id: String,
    /// Proxies this mount used before, by id, with their URL.
    retired_proxies: BTreeMap<String, String>,
}

async fn read(_: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let Some(c) = load(req.storage.as_ref()).await? else {
        return Ok(None);
    };
    let retired_proxies = proxy::list_retired(req.storage.as_ref())
        .await?
        .into_iter()
        .map(|r| (r.proxy_id, r.base_url))
        .collect();
    let r = c.rotation;
    let view = ConfigView {
        admin_key_set: !c.master_key.is_empty(),
        master_key_set: !c.master_key.is_empty(),
        base_url: c.base_url,
        rotation_period: r.period_secs.unwrap_or(0),
        rotation_schedule: r.schedule.unwrap_or_default(),
        rotation_window: r.window_secs.unwrap_or(0),
        disable_automated_rotation: r.disabled,
        last_rotated: r.last_rotated.map(clock::rfc3339),
        next_rotation: r.next_rotation.map(clock::rfc3339),
        ca_cert: c.ca_cert,
        tls_skip_verify: c.tls_skip_verify,
        request_timeout: c.request_timeout_secs,
        proxy_id: c.proxy_id,
        retired_proxies,
    };
    Ok(Some(Response::from_output(&view)?))
}

/// What a `config` write gives; `None` keeps the stored value.
#[derive(Deserialize)]
struct ConfigInput {
    base_url: Option<String>,
    admin_key: Option<String>,
    master_key: Option<String>,
    rotation_period: Option<Duration>,
    rotation_schedule: Option<String>,
    rotation_window: Option<Duration>,
    disable_automated_rotation: Option<bool>,
    ca_cert: Option<String>,
    tls_skip_verify: Option<bool>,
    request_timeout: Option<Duration>,
    proxy_moved: Option<bool>,
    verify_connection: Option<bool>,
}

async fn write(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let given: ConfigInput = req.fields.decode_given()?;
    // A first write starts from the schema's defaults.
    let defaults: ConfigInput = req.fields.defaults()?;
    let storage = req.storage.as_ref();
    // Read-modify-write: two partial writes at once must not lose a field.
    let _writing = engine.writes.lock().await;
    let existing = load(storage).await?;
    let base_url = match (&given.base_url, &existing) {
        (Some(u), _) => parse_base_url(u)?.to_string(),
        (None, Some(c)) => c.base_url.clone(),
        (None, None) => return Err(Error::invalid("field \"base_url\" is required")),
    };
    let given_key = match (given.admin_key.as_deref(), given.master_key.as_deref()) {
        (Some(a), Some(m)) if a != m => {
            return Err(Error::invalid(
                "fields \"admin_key\" and \"master_key\" are the same setting: give one",
            ))
        }
        (Some(k), _) => Some(("admin_key", k)),
        (None, Some(k)) => Some(("master_key", k)),
        (None, None) => None,
    };
    let master_key = match (given_key, &existing) {
        (Some((field, k)), _) => validate_admin_key(field, k)?,
        (None, Some(c)) => c.master_key.clone(),
        (None, None) => {
            return Err(Error::invalid(
                "field \"admin_key\" (older name: master_key) is required",
            ))
        }
    };
    let change = PolicyChange {
        period: given.rotation_period,
        schedule: given.rotation_schedule.as_deref(),
        window: given.rotation_window,
        disable: given.disable_automated_rotation,
    };
    let old_policy = existing
        .as_ref()
        .map(|c| c.rotation.clone())
        .unwrap_or_default();
    let policy = old_policy.apply(&change, engine.min_rotation_period, clock::unix_now())?;
    let timeout = match given.request_timeout {
        Some(t) if t.is_zero() || t > MAX_TIMEOUT => {
            return Err(Error::invalid(format!(
                "field \"request_timeout\" must be between 1s and {}s",
                MAX_TIMEOUT.as_secs()
            )))
        }
        Some(t) => t,
        None => existing
            .as_ref()
            .map(Config::request_timeout)
            .or(defaults.request_timeout)
            .unwrap_or_default(),
    };
    let key_minted_here = existing
        .as_ref()
        .is_some_and(|c| c.key_minted_here && c.master_key == master_key);
    let mut config = Config {
        base_url,
        master_key,
        ca_cert: given
            .ca_cert
            .map(|c| c.trim().to_string())
            .or_else(|| existing.as_ref().map(|c| c.ca_cert.clone()))
            .unwrap_or_default(),
        tls_skip_verify: given
            .tls_skip_verify
            .or_else(|| existing.as_ref().map(|c| c.tls_skip_verify))
            .or(defaults.tls_skip_verify)
            .unwrap_or_default(),
        request_timeout_secs: timeout.as_secs(),
        proxy_id: String::new(),
        rotation: policy,
        key_minted_here,
    };
    let moved = given
        .proxy_moved
        .or(defaults.proxy_moved)
        .unwrap_or_default();
    let mut warnings = Vec::new();
    let mut reactivated = None;
    config.proxy_id = match &existing {
        Some(old) if old.base_url == config.base_url || moved => old.proxy_id.clone(),
        None if moved => {
            return Err(Error::invalid(
                "field \"proxy_moved\": there is no configured proxy that could have moved",
            ))
        }
        _ => {
            // A proxy this mount used before under the same URL takes its
            // keys back; anything else is a proxy of its own.
            let known = proxy::list_retired(storage)
                .await?
                .into_iter()
                .find(|r| r.base_url == config.base_url);
            match known {
                Some(r) => {
                    let id = r.proxy_id.clone();
                    reactivated = Some(r);
                    id
                }
                None => new_proxy_id(),
            }
        }
    };
    if let Some(old) = existing.as_ref().filter(|o| o.proxy_id != config.proxy_id) {
        warnings.push(format!(
            "keys minted on {} stay bound to it: their leases renew and revoke there with the \
             settings kept for it. If {} is the same proxy under a new URL, write config with \
             base_url={} (that proxy takes its keys back), then with base_url={} \
             proxy_moved=true",
            old.base_url, config.base_url, old.base_url, config.base_url
        ));
    }
    // Building the client validates ca_cert even when not verifying.
    let client =
        litellm::Client::new(&config.settings()?).map_err(|e| Error::invalid(e.to_string()))?;
    if given
        .verify_connection
        .or(defaults.verify_connection)
        .unwrap_or(true)
    {
        client.check_admin().await.map_err(|e| {
            Error::invalid(format!(
                "cannot verify the LiteLLM connection, nothing was saved: {e} (set verify_connection=false to save anyway)"
            ))
        })?;
        // Scheduled rotation of a key that cannot rotate would only fail
        // every minute: say so now.
        let key_changed = existing
            .as_ref()
            .is_none_or(|c| c.master_key != config.master_key);
        if key_changed {
            warnings.extend(rotation::admin_standing(&client).await);
        }
        if config.rotation.is_automated() && (!change.is_empty() || key_changed) {
            rotation::check_rotatable(&client).await.map_err(|e| {
                Error::invalid(format!(
                    "automated rotation cannot work with this key, nothing was saved: {e}"
                ))
            })?;
        }
    } else if config.rotation.is_automated() && !change.is_empty() {
        warnings.push(
            "automated rotation was not checked against LiteLLM (verify_connection=false): if \
             admin_key is LiteLLM's master key, every scheduled rotation will fail"
                .to_string(),
        );
    }
    // Retire before replacing, so the old keys never lose their proxy.
    if let Some(old) = existing.as_ref().filter(|o| o.proxy_id != config.proxy_id) {
        proxy::retire(storage, old).await?;
    }
    put_json(storage, STORAGE_KEY, &config).await?;
    if let Some(r) = &reactivated {
        proxy::forget_retired(storage, &r.proxy_id).await?;
    }
    engine.clients.forget();
    // The settings this write replaced for the same proxy: the current ones,
    // or those kept for a proxy taken back. A key rotate-root minted there
    // is known to nobody else.
    let replaced = existing
        .as_ref()
        .filter(|o| o.proxy_id == config.proxy_id)
        .or(reactivated.as_ref());
    if let Some(old) = replaced.filter(|o| o.key_minted_here && o.master_key != config.master_key) {
        warnings.extend(delete_replaced_key(storage, old, &client).await?);
    }
    tracing::info!(base_url = %config.base_url, proxy_id = %config.proxy_id, "LiteLLM connection configured");
    Ok(Response::warnings_only(warnings))
}

/// Deletes an admin key that `rotate-root` minted and that another key has
/// just replaced on the same proxy: nobody else knows it. A retired setting
/// still holding it (the same proxy under an older URL) keeps it alive.
async fn delete_replaced_key(
    storage: &dyn Storage,
    old: &Config,
    client: &litellm::Client,
) -> Result<Option<String>> {
    if proxy::list_retired(storage)
        .await?
        .iter()
        .any(|r| r.master_key == old.master_key)
    {
        return Ok(None);
    }
    let token = litellm::key_token(&old.master_key);
    if let Err(e) = client.delete_keys(std::slice::from_ref(&token)).await {
        return Ok(Some(format!(
            "the admin key this one replaced was minted by rotate-root and only this mount knew \
             it; deleting it failed ({e}): delete the key with token hash {token} in LiteLLM"
        )));
    }
    tracing::info!("the replaced admin key minted by rotate-root was deleted");
    Ok(None)
}

/// Removes the config, keeping its connection settings for the keys
/// already minted: their leases still revoke (and renew) on that proxy.
async fn delete(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let _writing = engine.writes.lock().await;
    if let Some(config) = load(storage).await? {
        proxy::retire(storage, &config).await?;
    }
    storage.delete(STORAGE_KEY).await?;
    engine.clients.forget();
    Ok(None)
}

/// An http(s) URL with a host and no credentials, query or fragment; the
/// path gets a trailing `/` so API paths join below it.
pub(super) fn parse_base_url(raw: &str) -> Result<Url> {
    let bad = |why: &str| Error::invalid(format!("field \"base_url\": {why}"));
    // The input is never echoed: it may hold credentials.
    let mut url = Url::parse(raw.trim()).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain credentials; use admin_key"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `field` is the name the caller used, so the error names it.
fn validate_admin_key(field: &str, key: &str) -> Result<String> {
    if key.is_empty() || key.chars().any(char::is_whitespace) || key.len() > 1024 {
        return Err(Error::invalid(format!(
            "field \"{field}\" must be a non-empty key without whitespace"
        )));
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            parse_base_url("http://litellm:4000").unwrap().as_str(),
            "http://litellm:4000/"
        );
        assert_eq!(
            parse_base_url("https://x.example/proxy").unwrap().as_str(),
            "https://x.example/proxy/"
        );
        for bad in [
            "litellm:4000",
            "ftp://x",
            "http://",
            "http://u:p@x",
            "http://x/?a=b",
            "not a url",
            "",
        ] {
            let err = parse_base_url(bad).unwrap_err();
            assert!(err.to_string().contains("base_url"), "{bad}: {err}");
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn master_keys() {
        assert!(validate_admin_key("admin_key", "sk-1234").is_ok());
        assert!(validate_admin_key("admin_key", "").is_err());
        let e = validate_admin_key("master_key", "sk 1").unwrap_err();
        assert!(e.to_string().contains("\"master_key\""), "{e}");
    }
}
