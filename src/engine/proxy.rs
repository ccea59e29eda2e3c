//! Which LiteLLM proxy a key lives on, and the clients that reach it.
//!
//! Every lease and WAL entry records the `proxy_id` of the proxy its key was
//! minted on. `config` names the current proxy; when it is deleted or points
//! at a different proxy, the old connection settings are kept under
//! `proxies/<id>` ("retired"), so the keys minted there still renew and
//! revoke *there*, never on a proxy that never had them. A proxy that only
//! moved to a new URL keeps its id (`config` write with `proxy_moved=true`).

use std::sync::Arc;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::{self, Config};
use crate::framework::storage::{get_json, put_json};
use crate::framework::{Error, Result, Storage, StorageCache};
use crate::litellm::Client;

pub(super) const RETIRED_PREFIX: &str = "proxies/";

/// Where a key lives, as recorded in its lease and WAL entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Home {
    pub proxy_id: String,
    /// For messages only: the URL may change while the id stays.
    pub base_url: String,
}

impl Home {
    /// Where keys minted with `config` live.
    pub(super) fn of(config: &Config) -> Home {
        Home {
            proxy_id: config.proxy_id.clone(),
            base_url: config.base_url.clone(),
        }
    }

    pub(super) fn record(&self, data: &mut Map<String, Value>) {
        data.insert("proxy_id".into(), self.proxy_id.clone().into());
        data.insert("proxy_url".into(), self.base_url.clone().into());
    }

    /// `None` for leases and WAL entries written before proxies were
    /// recorded: those keys belong to the configured proxy.
    pub(super) fn recorded(data: &Map<String, Value>) -> Option<Home> {
        let id = data.get("proxy_id")?.as_str()?;
        Some(Home {
            proxy_id: id.to_string(),
            base_url: data
                .get("proxy_url")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
        })
    }
}

pub(super) fn new_proxy_id() -> String {
    let mut raw = [0u8; 8];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

pub(super) async fn load_retired(storage: &dyn Storage, id: &str) -> Result<Option<Config>> {
    get_json(storage, &format!("{RETIRED_PREFIX}{id}")).await
}

pub(super) async fn retire(storage: &dyn Storage, config: &Config) -> Result<()> {
    put_json(
        storage,
        &format!("{RETIRED_PREFIX}{}", config.proxy_id),
        config,
    )
    .await
}

pub(super) async fn forget_retired(storage: &dyn Storage, id: &str) -> Result<()> {
    storage.delete(&format!("{RETIRED_PREFIX}{id}")).await
}

/// Every retired proxy's settings.
pub(super) async fn list_retired(storage: &dyn Storage) -> Result<Vec<Config>> {
    let mut out = Vec::new();
    for id in storage.list(RETIRED_PREFIX).await? {
        if let Some(c) = load_retired(storage, &id).await? {
            out.push(c);
        }
    }
    Ok(out)
}

/// Every proxy keys may live on: the configured one (`None`) and the
/// retired ones.
pub(super) async fn all_homes(storage: &dyn Storage) -> Result<Vec<Option<Home>>> {
    let mut homes = vec![None];
    homes.extend(
        list_retired(storage)
            .await?
            .iter()
            .map(|c| Some(Home::of(c))),
    );
    Ok(homes)
}

/// The configured proxy, ready to mint keys on.
pub(super) struct Current {
    pub client: Arc<Client>,
    pub home: Home,
    pub config: Arc<Config>,
}

/// Clients built from stored settings, built once and reused until the
/// settings change (see [`StorageCache`]).
#[derive(Default)]
pub(super) struct Clients {
    /// The configured proxy: its settings and client (the one key is `()`).
    current: StorageCache<(), (Arc<Config>, Arc<Client>)>,
    /// Retired proxies that may still hold keys, by proxy id.
    retired: StorageCache<String, Arc<Client>>,
}

impl Clients {
    /// The client of the configured proxy.
    pub(super) async fn current(&self, storage: &dyn Storage) -> Result<Current> {
        self.try_current(storage).await?.ok_or_else(|| {
            Error::invalid("the LiteLLM connection is not configured: write config first")
        })
    }

    async fn try_current(&self, storage: &dyn Storage) -> Result<Option<Current>> {
        let load = || async {
            let Some(config) = config::load(storage).await? else {
                return Ok(None);
            };
            let client = Client::new(&config.settings()?).map_err(Error::from)?;
            Ok(Some((Arc::new(config), Arc::new(client))))
        };
        let loaded = self.current.get_or_load(&(), load).await?;
        Ok(loaded.map(|(config, client)| current(&config, &client)))
    }

    /// The client of the proxy a key lives on.
    pub(super) async fn for_key(
        &self,
        storage: &dyn Storage,
        home: Option<&Home>,
    ) -> Result<Arc<Client>> {
        let Some(home) = home else {
            return Ok(self.current(storage).await?.client);
        };
        // Not configured (deleted) is fine: the key's proxy may be retired.
        if let Some(c) = self.try_current(storage).await? {
            if c.home.proxy_id == home.proxy_id {
                return Ok(c.client);
            }
        }
        let load = || async {
            let Some(config) = load_retired(storage, &home.proxy_id).await? else {
                return Ok(None);
            };
            let client = Client::new(&config.settings()?).map_err(Error::from)?;
            Ok(Some(Arc::new(client)))
        };
        self.retired
            .get_or_load(home.proxy_id.as_str(), load)
            .await?
            .ok_or_else(|| {
                Error::Internal(format!(
                "this key was minted on the LiteLLM proxy at {} (proxy id {}), which this mount no \
                 longer knows; nothing was deleted. If that proxy now answers at the configured \
                 base_url, write config with base_url and proxy_moved=true",
                home.base_url, home.proxy_id
            ))
            })
    }

    /// Drops every cached client: settings changed (here or on another node).
    pub(super) fn forget(&self) {
        self.current.forget();
        self.retired.forget();
    }
}

fn current(config: &Arc<Config>, client: &Arc<Client>) -> Current {
    Current {
        client: Arc::clone(client),
        home: Home::of(config),
        config: Arc::clone(config),
    }
}
