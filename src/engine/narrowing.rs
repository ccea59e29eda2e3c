//! A `creds/<role>` write may narrow what its key gets, never widen it: a
//! shorter TTL, a subset of the role's models, a smaller budget, and
//! metadata under keys the role allows. Anything wider is a 400 naming the
//! field, before anything happens in LiteLLM.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::roles::{distinct, Role, RESERVED_METADATA};
use crate::framework::{Error, Result};

/// What the request asked for (the `creds/<role>` write's input), checked
/// against its role.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub(super) struct Narrowing {
    pub ttl: Option<Duration>,
    pub models: Option<Vec<String>>,
    pub max_budget: Option<f64>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl Narrowing {
    /// `role_ttl` is the TTL a plain read would get (the role's, else the
    /// mount's default).
    pub(super) fn check(mut self, role: &Role, role_ttl: Duration) -> Result<Self> {
        self.models = self.models.as_deref().map(distinct);
        if let Some(ttl) = self.ttl {
            if ttl.is_zero() || ttl > role_ttl {
                return Err(Error::invalid(format!(
                    "field \"ttl\" must be between 1s and the role's TTL ({}s)",
                    role_ttl.as_secs()
                )));
            }
        }
        if let Some(models) = &self.models {
            if models.is_empty() {
                return Err(Error::invalid(
                    "field \"models\" names no model; leave it out to get the role's models",
                ));
            }
            if !role.all_models() {
                if let Some(m) = models.iter().find(|m| !role.models.contains(m)) {
                    return Err(Error::invalid(format!(
                        "field \"models\": {m:?} is not one of the role's models ({})",
                        role.models.join(", ")
                    )));
                }
            }
        }
        if let Some(budget) = self.max_budget {
            let cap = role.max_budget;
            if budget <= 0.0 || (cap > 0.0 && budget > cap) {
                return Err(Error::invalid(if cap > 0.0 {
                    format!("field \"max_budget\" must be > 0 and at most the role's {cap}")
                } else {
                    "field \"max_budget\" must be > 0".to_string()
                }));
            }
        }
        for key in self.metadata.keys() {
            if RESERVED_METADATA.contains(&key.as_str())
                || !role.allowed_request_metadata.contains(key)
            {
                return Err(Error::invalid(format!(
                    "field \"metadata\": key {key:?} is not allowed by the role \
                         (allowed_request_metadata: {})",
                    if role.allowed_request_metadata.is_empty() {
                        "none".to_string()
                    } else {
                        role.allowed_request_metadata.join(", ")
                    }
                )));
            }
        }
        Ok(self)
    }
}
