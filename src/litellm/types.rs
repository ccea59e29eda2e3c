//! Request and response bodies of the key management API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /key/generate`; unset fields are left out so LiteLLM's defaults apply.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GenerateKeyRequest {
    pub key_alias: String,
    /// `"<seconds>s"`: the key dies by itself when the lease would.
    pub duration: String,
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
