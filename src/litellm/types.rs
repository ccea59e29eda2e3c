//! Request and response bodies of the key management API.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

/// A key the engine chose, on its way to `/key/generate`: sent as the plain
/// string, never shown by `Debug` (requests may end up in error messages).
#[derive(Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct KeyMaterial(pub String);

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

/// `POST /key/generate`; unset fields are left out so LiteLLM's defaults apply.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GenerateKeyRequest {
    /// The key itself when the engine chooses it (so that its hash is known
    /// before it exists); unset = LiteLLM makes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyMaterial>,
    pub key_alias: String,
    /// `"<seconds>s"`: the key dies by itself when its lease would (or, for
    /// a static role's key, unless the engine pushes it forward). Unset: no
    /// expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Empty = every model.
    pub models: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_budget: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_parallel_requests: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `llm_api`, `read_only`, `default` or `management`; unset = LiteLLM's
    /// `default`, whose powers are those of the key's user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    /// Routes or route groups the key may call; overrides `key_type`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<Vec<String>>,
    pub metadata: BTreeMap<String, String>,
    /// Further fields, passed as they are (the engine makes sure none
    /// repeats a field above).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The parts of the `/key/generate` answer the engine uses.
#[derive(Clone, Deserialize)]
pub struct GeneratedKey {
    /// The secret itself: returned to the caller once, stored nowhere.
    pub key: String,
    /// sha256 of the key: what revocation uses.
    pub token: String,
    #[serde(default)]
    pub key_alias: Option<String>,
    #[serde(default)]
    pub expires: Option<String>,
    /// The routes LiteLLM limits the key to (it turns a `key_type` into
    /// route groups); empty for a key limited to nothing.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub allowed_routes: Vec<String>,
    /// The limits LiteLLM stored, each `None` when the answer leaves it out
    /// and `Some(Null)` for "none": a proxy's `default_key_generate_params`
    /// and `upperbound_key_generate_params` fill in what a request leaves
    /// open, so these can be tighter than what was asked.
    #[serde(default, deserialize_with = "present")]
    pub models: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    pub max_budget: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    pub budget_duration: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    pub tpm_limit: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    pub rpm_limit: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    pub max_parallel_requests: Option<serde_json::Value>,
}

impl GeneratedKey {
    /// The limits the answer states, by field name (`Null`: none).
    pub fn stored_limits(&self) -> impl Iterator<Item = (&'static str, &serde_json::Value)> {
        [
            ("models", &self.models),
            ("max_budget", &self.max_budget),
            ("budget_duration", &self.budget_duration),
            ("tpm_limit", &self.tpm_limit),
            ("rpm_limit", &self.rpm_limit),
            ("max_parallel_requests", &self.max_parallel_requests),
        ]
        .into_iter()
        .filter_map(|(field, value)| value.as_ref().map(|v| (field, v)))
    }
}

impl GenerateKeyRequest {
    /// The scope field LiteLLM did not apply, if any. LiteLLM ignores
    /// request fields it does not know: a proxy older than `key_type`
    /// would mint a `default` key, with all the powers of its user, for a
    /// role that asked for model calls only.
    pub fn unapplied_scope(&self, answer: &GeneratedKey) -> Option<&'static str> {
        if !answer.allowed_routes.is_empty() {
            return None;
        }
        if self.allowed_routes.as_ref().is_some_and(|r| !r.is_empty()) {
            return Some("allowed_routes");
        }
        self.key_type
            .as_deref()
            .filter(|t| *t != "default")
            .map(|_| "key_type")
    }
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("token", &self.token)
            .field("key_alias", &self.key_alias)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// The parts of the `/key/update` answer the engine uses.
#[derive(Debug, Clone, Deserialize)]
pub struct UpdatedKey {
    #[serde(default)]
    pub expires: Option<String>,
}

/// A key as LiteLLM shows it (`/key/list?return_full_object=true`,
/// `/key/info`, `/v2/key/info`): the fields the inventory reports.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct KeyView {
    /// sha256 of the key; absent in `/v2/key/info` answers.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub key_alias: Option<String>,
    #[serde(default, deserialize_with = "null_as_zero")]
    pub spend: f64,
    #[serde(default)]
    pub max_budget: Option<f64>,
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub blocked: Option<bool>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub models: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub created_at: Option<String>,
}

impl KeyView {
    /// Whether `seen` meets this key for the first time (by token, else by
    /// alias; a key with neither always counts): two proxy settings may name
    /// one LiteLLM (a URL changed without proxy_moved), and its keys must
    /// count once.
    pub fn first_seen(&self, seen: &mut HashSet<String>) -> bool {
        self.token
            .as_deref()
            .or(self.key_alias.as_deref())
            .is_none_or(|id| seen.insert(id.to_string()))
    }

    /// A string value of the key's metadata.
    pub fn meta(&self, name: &str) -> Option<&str> {
        self.metadata.get(name).and_then(serde_json::Value::as_str)
    }
}

fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(0.0))
}

fn null_as_empty<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A field that is there, even as `null` (`Some(Null)`); with
/// `#[serde(default)]`, one that is not there stays `None`.
fn present<'de, D>(d: D) -> Result<Option<serde_json::Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    serde_json::Value::deserialize(d).map(Some)
}

/// The answer of `/v2/key/info`.
#[derive(Debug, Deserialize)]
pub(crate) struct KeysInfo {
    pub info: Vec<KeyView>,
}

/// One page of `/key/list`.
#[derive(Debug, Deserialize)]
pub(crate) struct KeyPage {
    #[serde(default)]
    pub keys: Vec<KeyView>,
    #[serde(default)]
    pub total_pages: Option<u64>,
}
