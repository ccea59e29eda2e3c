//! A small client for the LiteLLM proxy's key management API
//! (`/key/generate`, `/key/update`, `/key/delete`, `/key/list`,
//! `/key/info`, `/v2/key/info`).
//!
//! Observed behaviour it relies on (LiteLLM 1.106): `token` in the generate
//! answer is sha256 of the key and is accepted wherever a key is; a second
//! delete answers 404 "No keys found"; `duration` needs a unit suffix.

mod batch;
mod types;

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

pub use types::{GenerateKeyRequest, GeneratedKey, KeyMaterial, KeyView, UpdatedKey};
use types::{KeyPage, KeysInfo};

/// What can go wrong talking to LiteLLM. Messages never contain the master
/// key. Converts into the engine's error with the status an operator sees
/// (`From` below), kept as its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid LiteLLM connection settings: {0}")]
    Config(String),
    /// Nothing was sent: the connection could not be made.
    #[error("cannot reach LiteLLM at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The connection broke after the request may have been sent: LiteLLM
    /// may or may not have acted on it.
    #[error("the connection to LiteLLM at {url} broke: {reason}")]
    Interrupted { url: String, reason: String },
    #[error("LiteLLM did not answer within {}s", .0.as_secs())]
    Timeout(Duration),
    #[error(
        "LiteLLM rejected the admin key (HTTP {status}): {message}; update admin_key at config"
    )]
    Unauthorized { status: u16, message: String },
    /// A 404 that is not LiteLLM's own "No keys found": a wrong path
    /// prefix, a gateway, a route missing during a redeploy. Never taken to
    /// mean that a key is gone.
    #[error("HTTP 404 from {url}: {message} (is base_url the LiteLLM proxy itself?)")]
    NotFound { url: String, message: String },
    /// LiteLLM has no such key: deleted there by hand, or expired.
    #[error("the key no longer exists in LiteLLM (deleted there, or expired)")]
    KeyGone,
    #[error("LiteLLM refused the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("LiteLLM failed (HTTP {status}): {message}")]
    Server { status: u16, message: String },
    /// 429: LiteLLM (or a gateway before it) sheds load; nothing was done.
    #[error("LiteLLM is busy (HTTP 429): {message}; try again later")]
    Busy { message: String },
    #[error("LiteLLM sent an unexpected answer: {0}")]
    InvalidResponse(String),
}

impl Error {
    /// Worth retrying later: the proxy is down, slow or failing.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. }
                | Self::Interrupted { .. }
                | Self::Timeout(_)
                | Self::Server { .. }
                | Self::Busy { .. }
        )
    }

    /// The same failure for each key of a failed batch, when deleting them
    /// one by one cannot go better: nothing reached LiteLLM, or it is busy
    /// or hanging (each single delete would wait its own timeout). A
    /// refusal or a 5xx may be one key's doing: those keys go one by one.
    pub fn for_every_key(&self) -> Option<Error> {
        match self {
            Self::Unreachable { url, reason } => Some(Self::Unreachable {
                url: url.clone(),
                reason: reason.clone(),
            }),
            Self::Timeout(after) => Some(Self::Timeout(*after)),
            Self::Busy { message } => Some(Self::Busy {
                message: message.clone(),
            }),
            _ => None,
        }
    }

    /// The request may have taken effect although it failed: a timeout, a
    /// broken connection, a 5xx or an answer that could not be read.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            Self::Interrupted { .. }
                | Self::Timeout(_)
                | Self::Server { .. }
                | Self::InvalidResponse(_)
        )
    }
}

/// The HTTP status each failure is answered with: 400 when the request (or
/// the settings) cannot work, 503 when LiteLLM is unreachable or busy, 504
/// when it is slow, 502 for any other failure of LiteLLM itself.
impl From<Error> for crate::framework::Error {
    fn from(e: Error) -> Self {
        use crate::framework::Error as E;
        let status = match &e {
            Error::Config(_) | Error::Rejected { .. } | Error::KeyGone => {
                return E::invalid(e.to_string())
            }
            Error::Unreachable { .. } | Error::Busy { .. } => 503,
            Error::Timeout(_) => 504,
            Error::Interrupted { .. }
            | Error::Unauthorized { .. }
            | Error::NotFound { .. }
            | Error::Server { .. }
            | Error::InvalidResponse(_) => 502,
        };
        E::upstream(status, e)
    }
}

/// How to reach the proxy.
#[derive(Clone)]
pub struct Settings {
    pub base_url: Url,
    pub master_key: String,
    /// Extra PEM CA bundle trusted for https.
    pub ca_cert: Option<String>,
    pub tls_skip_verify: bool,
    pub timeout: Duration,
}

/// A reusable connection pool to one proxy.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: Url,
    master_key: String,
    /// LiteLLM echoes the sha256 of a rejected key in its error text.
    master_key_hash: String,
    timeout: Duration,
    deletes: batch::DeleteQueue,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

/// Outcome of a delete that may be a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// LiteLLM removed a key just now.
    Now,
    /// LiteLLM itself answered that no such key exists.
    AlreadyGone,
}

/// What LiteLLM stores and returns as `token` for a key: sha256 of the key,
/// hex. It stands for the key wherever a key is accepted.
pub fn key_token(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Fresh key material for `/key/generate`'s `key`, chosen by the engine so
/// that its hash is known before the key exists: `sk-` and 32 characters
/// from the OS-seeded CSPRNG (190 bits; LiteLLM's own keys carry 128).
pub fn new_key() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!("sk-{}", Alphanumeric.sample_string(&mut rand::rng(), 32))
}

/// How long an idle connection to LiteLLM is kept for the next call: less
/// than the keep-alive of the servers it runs on (uvicorn closes an idle
/// connection after 5 s, gunicorn after 2 s), so that a call never goes
/// out on a connection the proxy is closing at that moment (which breaks
/// it: seen live with `/key/generate`, which cannot be repeated). Under
/// load connections stay busy and are reused all the same.
const POOL_IDLE: Duration = Duration::from_secs(1);

/// LiteLLM's words when none of the keys of a delete exist (inside a 404).
const NO_KEYS_FOUND: &str = "No keys found";
/// LiteLLM's words for a `/key/update` or `/key/info` of a key it does not
/// have (inside a 404).
const KEY_NOT_FOUND: &str = "Key not found";
/// LiteLLM's words for a `/team/info` of a team it does not have (inside a 404).
const TEAM_NOT_FOUND: &str = "Team not found";
/// The largest page `/key/list` serves (422 above), and the batch size used
/// for `/v2/key/info` and `/key/delete`.
pub const PAGE_SIZE: usize = 100;

/// Every key of a listing, and how many LiteLLM calls it took.
#[derive(Debug, Default)]
pub struct Listing {
    pub keys: Vec<KeyView>,
    pub calls: usize,
}

impl Client {
    pub fn new(settings: &Settings) -> Result<Self, Error> {
        // aws-lc-rs, the one provider in the binary (reqwest is built without its own).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(POOL_IDLE)
            .user_agent(concat!(
                "vault-plugin-secrets-litellm/",
                env!("CARGO_PKG_VERSION")
            ));
        if let Some(pem) = settings.ca_cert.as_deref().filter(|p| !p.trim().is_empty()) {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                Error::Config(format!("ca_cert is not a PEM certificate bundle: {e}"))
            })?;
            if certs.is_empty() {
                return Err(Error::Config("ca_cert holds no PEM certificate".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if settings.tls_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            http,
            base_url: settings.base_url.clone(),
            master_key: settings.master_key.clone(),
            master_key_hash: key_token(&settings.master_key),
            timeout: settings.timeout,
            deletes: batch::DeleteQueue::default(),
        })
    }

    /// Checks that the proxy answers and the master key may manage keys.
    pub async fn check_admin(&self) -> Result<(), Error> {
        let _: Value = self
            .call(Method::GET, "key/list?page=1&size=1", None::<&()>)
            .await?;
        Ok(())
    }

    /// `/key/info` of the client's own key, by its hash: `None` when
    /// LiteLLM has no virtual key by that hash, which is what it answers
    /// for the master key (it lives in LiteLLM's configuration, not its
    /// key table).
    pub async fn own_key_info(&self) -> Result<Option<Value>, Error> {
        let path = format!("key/info?key={}", self.master_key_hash);
        match self.call::<Value>(Method::GET, &path, None::<&()>).await {
            Ok(v) => Ok(Some(v["info"].clone())),
            Err(Error::NotFound { message, .. })
                if message.to_ascii_lowercase().contains("key not found") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The role of a LiteLLM user (`proxy_admin`, `internal_user`, ...);
    /// `None` when LiteLLM does not say.
    pub async fn user_role(&self, user_id: &str) -> Result<Option<String>, Error> {
        let path = format!("user/info?{}", query("user_id", user_id));
        let answer: Value = self.call(Method::GET, &path, None::<&()>).await?;
        Ok(answer["user_info"]["user_role"]
            .as_str()
            .map(str::to_string))
    }

    /// Whether LiteLLM has team `team_id` (`/team/info`; a key of a team
    /// it does not have is minted all the same, and every call with it
    /// fails).
    pub async fn team_exists(&self, team_id: &str) -> Result<bool, Error> {
        let path = format!("team/info?{}", query("team_id", team_id));
        match self.call::<Value>(Method::GET, &path, None::<&()>).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { message, .. }) if message.contains(TEAM_NOT_FOUND) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether LiteLLM says key `token` is gone: `/key/info` answers 404 "Key
    /// not found" or (1.8x and later) shows it archived as deleted. A key the
    /// admin key may not see (403), or no answer, is not taken for gone:
    /// `/v2/key/info` would leave out a key it may not see just as one that
    /// no longer exists.
    pub async fn key_deleted(&self, token: &str) -> Result<bool, Error> {
        let path = format!("key/info?{}", query("key", token));
        match self.call::<Value>(Method::GET, &path, None::<&()>).await {
            Ok(answer) => Ok(answer["info"]["status"] == "deleted"),
            Err(Error::NotFound { message, .. }) if message.contains(KEY_NOT_FOUND) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Whether the proxy runs with an Enterprise licence (`/health/license`,
    /// LiteLLM 1.8x and later; an older proxy answers 404, an error here).
    pub async fn licensed(&self) -> Result<bool, Error> {
        let answer: Value = self
            .call(Method::GET, "health/license", None::<&()>)
            .await?;
        Ok(answer["license_type"] == "enterprise")
    }

    /// `/key/generate` with a body built by the caller (the admin key
    /// rotation copies fields of an existing key).
    pub async fn generate_key_json(&self, body: &Value) -> Result<(), Error> {
        let _: Value = self
            .call_once(Method::POST, "key/generate", Some(body))
            .await?;
        Ok(())
    }

    pub async fn generate_key(&self, request: &GenerateKeyRequest) -> Result<GeneratedKey, Error> {
        self.call_once(Method::POST, "key/generate", Some(request))
            .await
    }

    /// Sets a key's expiry to `now + duration` (LiteLLM computes it).
    pub async fn extend_key(&self, token: &str, duration: Duration) -> Result<UpdatedKey, Error> {
        let body =
            serde_json::json!({"key": token, "duration": format!("{}s", duration.as_secs())});
        match self.call(Method::POST, "key/update", Some(&body)).await {
            Err(Error::NotFound { message, .. }) if message.contains(KEY_NOT_FOUND) => {
                Err(Error::KeyGone)
            }
            other => other,
        }
    }

    /// Deletes keys by their token hash. A key that is already gone is not
    /// an error: revocations are retried.
    pub async fn delete_keys(&self, tokens: &[String]) -> Result<Deleted, Error> {
        self.delete(serde_json::json!({ "keys": tokens })).await
    }

    /// Deletes keys by alias (used by the rollback, which knows only the
    /// alias it was about to create).
    pub async fn delete_key_aliases(&self, aliases: &[String]) -> Result<Deleted, Error> {
        self.delete(serde_json::json!({ "key_aliases": aliases }))
            .await
    }

    /// Every key LiteLLM holds (full objects), page by page, oldest first so
    /// keys created meanwhile land on later pages. `alias_contains` narrows
    /// the listing on LiteLLM's side (case-insensitive substring); callers
    /// still filter exactly. A key deleted by someone else meanwhile may
    /// shift another one past a page boundary: a listing is a snapshot of
    /// best effort, never a proof that a key does not exist.
    pub async fn list_keys(&self, alias_contains: Option<&str>) -> Result<Listing, Error> {
        let mut listing = Listing::default();
        let mut seen = std::collections::HashSet::new();
        for page in 1u64.. {
            // Built before any await: the serializer is not Send.
            let query = {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                q.append_pair("page", &page.to_string())
                    .append_pair("size", &PAGE_SIZE.to_string())
                    .append_pair("return_full_object", "true")
                    .append_pair("sort_by", "created_at")
                    .append_pair("sort_order", "asc");
                if let Some(part) = alias_contains {
                    q.append_pair("key_alias", part)
                        .append_pair("substring_matching", "true");
                }
                q.finish()
            };
            let answer: KeyPage = self
                .call(Method::GET, &format!("key/list?{query}"), None::<&()>)
                .await?;
            listing.calls += 1;
            let count = answer.keys.len();
            for key in answer.keys {
                let fresh = key.token.as_ref().is_none_or(|t| seen.insert(t.clone()));
                if fresh {
                    listing.keys.push(key);
                }
            }
            if count < PAGE_SIZE || answer.total_pages.is_some_and(|t| page >= t) {
                break;
            }
        }
        Ok(listing)
    }

    /// One key by its token hash, without its metadata; `None` when
    /// LiteLLM has no such key. `/v2/key/info` (as for many keys) reads the
    /// live key table only, where `/key/info` also answers for a deleted
    /// key (from LiteLLM's deleted-keys table, with a status to tell them
    /// apart).
    pub async fn key_info(&self, token: &str) -> Result<Option<KeyView>, Error> {
        let listing = self.keys_info(&[token.to_string()]).await?;
        Ok(listing.keys.into_iter().next().map(|mut view| {
            view.token.get_or_insert_with(|| token.to_string());
            view
        }))
    }

    /// LiteLLM's view of several keys by token hash, without their
    /// metadata, in `/v2/key/info` calls of [`PAGE_SIZE`] keys. LiteLLM
    /// leaves out keys it does not have and does not echo the hash: match
    /// the answers by `key_alias`.
    pub async fn keys_info(&self, tokens: &[String]) -> Result<Listing, Error> {
        let mut listing = Listing::default();
        for chunk in tokens.chunks(PAGE_SIZE) {
            // Parsed straight into views: a page of full key objects is
            // never held twice.
            let answer: KeysInfo = self
                .call(
                    Method::POST,
                    "v2/key/info",
                    Some(&serde_json::json!({ "keys": chunk })),
                )
                .await?;
            listing.calls += 1;
            // A live view needs no metadata: dropped per page, so a page
            // of 1,000 keys is not held with it.
            listing.keys.extend(answer.info.into_iter().map(|mut view| {
                view.metadata = serde_json::Map::new();
                view
            }));
        }
        Ok(listing)
    }

    async fn delete(&self, body: Value) -> Result<Deleted, Error> {
        match self
            .call::<Value>(Method::POST, "key/delete", Some(&body))
            .await
        {
            Ok(_) => Ok(Deleted::Now),
            Err(Error::NotFound { message, .. }) if message.contains(NO_KEYS_FOUND) => {
                Ok(Deleted::AlreadyGone)
            }
            Err(e) => Err(e),
        }
    }

    /// A call whose repetition does what the first did (a read, a delete:
    /// "already gone" then, an update of the expiry), tried once more when
    /// the connection broke: a proxy closing an idle connection just as a
    /// request goes out on it (uvicorn's keep-alive) is no failure of its.
    /// `/key/generate` is never repeated (see [`Client::call_once`]).
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Error> {
        match self.call_once(method.clone(), path, body).await {
            Err(Error::Interrupted { reason, .. }) => {
                tracing::debug!(
                    path,
                    reason,
                    "the connection to LiteLLM broke; trying again"
                );
                self.call_once(method, path, body).await
            }
            other => other,
        }
    }

    /// One request, never repeated: what `/key/generate` needs, since a
    /// generate whose connection broke may still have minted its key (the
    /// engine then deletes it by alias).
    async fn call_once<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Error> {
        let url = self
            .base_url
            .join(path)
            .map_err(|e| Error::Config(e.to_string()))?;
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(&self.master_key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = std::time::Instant::now();
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        // With the SDK's `request handled` line, tells LiteLLM's share of a
        // request's time from the engine's own (`make bench` reports both).
        tracing::debug!(
            path,
            status = status.as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "LiteLLM answered"
        );
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                Error::InvalidResponse(format!(
                    "{path}: HTTP {status} with a body that is not the expected JSON ({e})"
                ))
            });
        }
        let message = self.scrub(&error_message(&bytes));
        let code = status.as_u16();
        // A licence refusal is about the request, not the master key.
        let needs_licence = status == StatusCode::FORBIDDEN && {
            let m = message.to_ascii_lowercase();
            m.contains("enterprise") || m.contains("premium")
        };
        Err(match status {
            _ if needs_licence => Error::Rejected {
                status: code,
                message,
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Unauthorized {
                status: code,
                message,
            },
            StatusCode::NOT_FOUND => Error::NotFound {
                url: redact_url(&url),
                message,
            },
            StatusCode::TOO_MANY_REQUESTS => Error::Busy { message },
            // A gateway's request timeout: LiteLLM may have acted on it.
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => Error::Server {
                status: code,
                message,
            },
            _ => Error::Rejected {
                status: code,
                message,
            },
        })
    }

    fn transport_error(&self, e: &reqwest::Error) -> Error {
        // A connect timeout is both: nothing was sent, so it is unreachable
        // (503, and no key can exist), not slow.
        if e.is_timeout() && !e.is_connect() {
            return Error::Timeout(self.timeout);
        }
        // The innermost cause says what actually failed (refused, DNS, TLS).
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        let url = self.base_url.to_string();
        let reason = self.scrub(&reason);
        if e.is_connect() {
            Error::Unreachable { url, reason }
        } else {
            Error::Interrupted { url, reason }
        }
    }

    /// Belt and braces: never let the admin key, or a part of it, into an
    /// error message.
    fn scrub(&self, text: &str) -> String {
        let text = hide_masked_keys(text);
        if self.master_key.len() < 4 {
            return text;
        }
        text.replace(&self.master_key, "<master key>")
            .replace(&self.master_key_hash, "<master key hash>")
    }
}

/// LiteLLM echoes a refused key with its ends showing (`Received=Secr****w0rd`,
/// `sk-...2345`): characters of what may be a mistyped admin key. Those words
/// become `<redacted>`.
fn hide_masked_keys(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let core = word.trim_end_matches(|c: char| c.is_whitespace() || c == ',' || c == '.');
            if !(core.contains("****") || core.contains("sk-...")) {
                return word.to_string();
            }
            // Keep a label glued to it (`Received=`).
            let label = core.find('=').map_or("", |i| &core[..=i]);
            format!("{label}<redacted>{}", &word[core.len()..])
        })
        .collect()
}

/// A query string of one pair, encoded.
fn query(name: &str, value: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair(name, value)
        .finish()
}

/// The URL without any query (it never carries credentials: `base_url` has
/// none, and keys travel in bodies and headers).
fn redact_url(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// LiteLLM's error text: `{"error":{"message":..}}`, FastAPI's
/// `{"detail":..}`, or the raw body, shortened.
fn error_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => match (&v["error"]["message"], &v["detail"], &v["error"]) {
            (Value::String(m), _, _) => m.clone(),
            (_, Value::String(d), _) => d.clone(),
            (_, d @ (Value::Array(_) | Value::Object(_)), _) => d.to_string(),
            (_, _, Value::String(e)) => e.clone(),
            _ => v.to_string(),
        },
        Err(_) => {
            let raw = String::from_utf8_lossy(body);
            match html_title(&raw) {
                Some(page) => return page,
                None => raw.into_owned(),
            }
        }
    };
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    if text.chars().count() > 400 {
        format!("{}...", text.chars().take(400).collect::<String>())
    } else {
        text.to_string()
    }
}

/// An HTML page (a gateway's error page, a UI path) told by its title:
/// its markup says nothing an operator can use.
fn html_title(text: &str) -> Option<String> {
    let lower = text.trim_start().to_ascii_lowercase();
    if !(lower.starts_with("<!doctype html") || lower.starts_with("<html")) {
        return None;
    }
    let title = lower.find("<title").and_then(|start| {
        let open = start + lower[start..].find('>')? + 1;
        let close = open + lower[open..].find("</title")?;
        // Byte offsets of the lowercased ASCII copy hold in the original.
        text.trim_start().get(open..close).map(str::trim)
    });
    Some(match title {
        Some(t) if !t.is_empty() => format!("an HTML page titled {t:?}, not an API answer"),
        _ => "an HTML page, not an API answer".to_string(),
    })
}

#[cfg(test)]
pub(crate) mod stub;
#[cfg(test)]
mod tests;
