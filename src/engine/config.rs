//! `config`: how to reach the LiteLLM proxy.
//!
//! The master key is write-only: a read says whether it is set, never what
//! it is. A write is verified against the proxy before anything is stored.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map};
use url::Url;

use super::Engine;
use crate::framework::storage::{get_json, put_json};
use crate::framework::{
    callback, Error, Field, FieldType, Operation, Path, Request, Response, Result, Storage,
};
use crate::litellm;

pub const STORAGE_KEY: &str = "config";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// The stored configuration.
#[derive(Clone, Serialize, Deserialize)]
pub struct Config {
    pub base_url: String,
    pub master_key: String,
    #[serde(default)]
    pub ca_cert: String,
    #[serde(default)]
    pub tls_skip_verify: bool,
    pub request_timeout_secs: u64,
}

impl Config {
    pub fn settings(&self) -> Result<litellm::Settings> {
        Ok(litellm::Settings {
            base_url: parse_base_url(&self.base_url)?,
            master_key: self.master_key.clone(),
            ca_cert: Some(self.ca_cert.clone()).filter(|c| !c.is_empty()),
            tls_skip_verify: self.tls_skip_verify,
            timeout: Duration::from_secs(self.request_timeout_secs),
        })
    }
}

pub async fn load(storage: &dyn Storage) -> Result<Option<Config>> {
    get_json(storage, STORAGE_KEY).await
}

pub fn path(engine: &Arc<Engine>) -> Path {
    Path::new("config")
        .field(Field::new(
            "base_url",
            FieldType::String,
            "URL of the LiteLLM proxy, e.g. http://litellm:4000.",
        ))
        .field(
            Field::new(
                "master_key",
                FieldType::String,
                "LiteLLM master key (or an admin key) used to manage keys. Never returned.",
            )
            .sensitive(),
        )
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
            "base_url and master_key are required when the config is first written; later writes \
             change only the fields given. The connection and the key are verified before saving \
             unless verify_connection=false. The master key is never returned.",
        )
}

async fn exists(_: Arc<Engine>, req: Request) -> Result<bool> {
    Ok(req.storage.get(STORAGE_KEY).await?.is_some())
}

async fn read(_: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let Some(c) = load(req.storage.as_ref()).await? else {
        return Ok(None);
    };
    let mut data = Map::new();
    data.insert("base_url".into(), json!(c.base_url));
    data.insert("master_key_set".into(), json!(!c.master_key.is_empty()));
    data.insert("ca_cert".into(), json!(c.ca_cert));
    data.insert("tls_skip_verify".into(), json!(c.tls_skip_verify));
    data.insert("request_timeout".into(), json!(c.request_timeout_secs));
    Ok(Some(Response::with_data(data)))
}

async fn write(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let f = &req.fields;
    let existing = load(req.storage.as_ref()).await?;
    let base_url = match (f.str("base_url"), &existing) {
        (Some(u), _) => parse_base_url(u)?.to_string(),
        (None, Some(c)) => c.base_url.clone(),
        (None, None) => return Err(Error::invalid("field \"base_url\" is required")),
    };
    let master_key = match (f.str("master_key"), &existing) {
        (Some(k), _) => validate_master_key(k)?,
        (None, Some(c)) => c.master_key.clone(),
        (None, None) => return Err(Error::invalid("field \"master_key\" is required")),
    };
    let timeout = match f.duration("request_timeout") {
        Some(t) if t.is_zero() || t > MAX_TIMEOUT => {
            return Err(Error::invalid(format!(
                "field \"request_timeout\" must be between 1s and {}s",
                MAX_TIMEOUT.as_secs()
            )))
        }
        Some(t) => t,
        None => existing.as_ref().map_or(DEFAULT_TIMEOUT, |c| {
            Duration::from_secs(c.request_timeout_secs)
        }),
    };
    let config = Config {
        base_url,
        master_key,
        ca_cert: f
            .str("ca_cert")
            .map(|c| c.trim().to_string())
            .or_else(|| existing.as_ref().map(|c| c.ca_cert.clone()))
            .unwrap_or_default(),
        tls_skip_verify: f
            .bool("tls_skip_verify")
            .or_else(|| existing.as_ref().map(|c| c.tls_skip_verify))
            .unwrap_or(false),
        request_timeout_secs: timeout.as_secs(),
    };
    // Building the client validates ca_cert even when not verifying.
    let client =
        litellm::Client::new(&config.settings()?).map_err(|e| Error::invalid(e.to_string()))?;
    if f.bool("verify_connection").unwrap_or(true) {
        client.check_admin().await.map_err(|e| {
            Error::invalid(format!(
                "cannot verify the LiteLLM connection, nothing was saved: {e} (set verify_connection=false to save anyway)"
            ))
        })?;
    }
    put_json(req.storage.as_ref(), STORAGE_KEY, &config).await?;
    engine.forget_client();
    tracing::info!(base_url = %config.base_url, "LiteLLM connection configured");
    Ok(None)
}

async fn delete(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    req.storage.delete(STORAGE_KEY).await?;
    engine.forget_client();
    Ok(None)
}

/// An http(s) URL with a host and no credentials, query or fragment; the
/// path gets a trailing `/` so API paths join below it.
pub fn parse_base_url(raw: &str) -> Result<Url> {
    let bad = |why: &str| Error::invalid(format!("field \"base_url\": {why}"));
    let mut url =
        Url::parse(raw.trim()).map_err(|e| bad(&format!("{raw:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain credentials; use master_key"));
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

fn validate_master_key(key: &str) -> Result<String> {
    if key.is_empty() || key.chars().any(char::is_whitespace) || key.len() > 1024 {
        return Err(Error::invalid(
            "field \"master_key\" must be a non-empty key without whitespace",
        ));
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
        assert!(validate_master_key("sk-1234").is_ok());
        assert!(validate_master_key("").is_err());
        assert!(validate_master_key("sk 1").is_err());
    }
}
