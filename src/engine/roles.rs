//! `roles/` and `roles/<name>`: what a key minted for a role may do.
//!
//! Writes are partial: fields not given keep their stored values (or the
//! defaults on create). Every rule failure is a 400 naming the field.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::Engine;
use crate::framework::field::FieldData;
use crate::framework::storage::{get_json, put_json};
use crate::framework::{
    callback, Error, Field, FieldType, Operation, Path, Request, Response, Result, Storage,
    StorageCache, SystemView, Template,
};
use crate::litellm::GenerateKeyRequest;

const PREFIX: &str = "roles/";
const DEFAULT_ALIAS_PREFIX: &str = "vault";
/// Metadata keys the engine sets on every key.
pub(super) const RESERVED_METADATA: &[&str] = &[
    "vault_role",
    "vault_request_id",
    "vault_mount",
    "vault_display_name",
    "vault_entity_id",
    "created_by",
    "vault_mount_id",
    "vault_static_role",
];

/// What a key may call in LiteLLM, as LiteLLM's `key_type` presets.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum KeyType {
    /// Model calls only (LiteLLM's `llm_api_routes`).
    LlmApi,
    /// Read-only info routes (`info_routes`): no model calls, no changes.
    ReadOnly,
    /// Whatever the key's user may do: an internal user's key can mint keys.
    Default,
    /// Key and user management (`management_routes`).
    Management,
}

impl KeyType {
    const NAMES: &'static str = "llm_api, read_only, default or management";

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::LlmApi => "llm_api",
            Self::ReadOnly => "read_only",
            Self::Default => "default",
            Self::Management => "management",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "llm_api" => Self::LlmApi,
            "read_only" => Self::ReadOnly,
            "default" => Self::Default,
            "management" => Self::Management,
            _ => return None,
        })
    }
}

/// LiteLLM route groups that cannot create, change or delete keys or users.
const ROUTE_GROUPS_WITHOUT_MANAGEMENT: &[&str] = &[
    "llm_api_routes",
    "openai_routes",
    "anthropic_routes",
    "google_routes",
    "mapped_pass_through_routes",
    "passthrough_routes_wildcard",
    "mcp_inference_routes",
    "agent_inference_routes",
    "litellm_native_routes",
    "model_info_routes",
    "info_routes",
];
/// Path prefixes of model calls (an explicit route such as `/v1/chat/completions`).
const MODEL_CALL_PREFIXES: &[&str] = &[
    "/v1/",
    "/chat/",
    "/completions",
    "/embeddings",
    "/images/",
    "/audio/",
    "/moderations",
    "/responses",
    "/messages",
    "/models",
];

/// True unless `route` is known not to manage keys or users. A wildcard
/// (`/v1/*`) may reach management routes LiteLLM serves under the prefix.
fn route_may_manage(route: &str) -> bool {
    !(ROUTE_GROUPS_WITHOUT_MANAGEMENT.contains(&route)
        || (!route.contains('*') && MODEL_CALL_PREFIXES.iter().any(|p| route.starts_with(p))))
}

/// A stored role. Optional limits are `None` when unset (0 in a write).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct Role {
    pub models: Vec<String>,
    /// Every model, explicitly. `None`: stored before this field existed,
    /// when an empty `models` meant every model.
    #[serde(default)]
    pub allow_all_models: Option<bool>,
    /// `None`: stored before `key_type` existed; its keys get LiteLLM's
    /// `default` type, as they always did.
    #[serde(default)]
    pub key_type: Option<KeyType>,
    /// Overrides `key_type` when not empty.
    #[serde(default)]
    pub allowed_routes: Vec<String>,
    /// 0 = no budget cap.
    pub max_budget: f64,
    pub key_alias_prefix: String,
    pub metadata: BTreeMap<String, String>,
    /// Seconds; 0 = the mount's default.
    pub ttl: u64,
    /// Seconds; 0 = the mount's max.
    pub max_ttl: u64,
    pub budget_duration: Option<String>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    /// Identity template for `user_id`, rendered per request; a fixed
    /// `user_id` wins.
    #[serde(default)]
    pub user_id_template: Option<String>,
    #[serde(default)]
    pub team_id_template: Option<String>,
    /// Metadata keys a `creds` write may set on its key.
    #[serde(default)]
    pub allowed_request_metadata: Vec<String>,
    /// Further typed `/key/generate` fields, by their LiteLLM names.
    #[serde(default)]
    pub key_settings: Map<String, Value>,
    /// Raw `/key/generate` fields, merged under everything typed.
    #[serde(default)]
    pub key_request: Map<String, Value>,
}

/// Typed per-key settings passed to LiteLLM as they are, by name. Those
/// marked enterprise need a LiteLLM Enterprise licence (LiteLLM's refusal
/// comes back as a 400).
#[derive(Clone, Copy)]
enum Limit {
    /// `model=n` pairs.
    PerModelInt,
    /// `alias=model` pairs.
    StringMap,
    NonNegativeFloat,
    PositiveInt,
    List,
    Text,
    OneOf(&'static [&'static str]),
}

const LIMITS: &[(&str, Limit, &str)] = &[
    (
        "model_rpm_limit",
        Limit::PerModelInt,
        "Requests per minute per model: model=n pairs.",
    ),
    (
        "model_tpm_limit",
        Limit::PerModelInt,
        "Tokens per minute per model: model=n pairs.",
    ),
    (
        "soft_budget",
        Limit::NonNegativeFloat,
        "Spend in USD at which LiteLLM alerts; 0 unsets.",
    ),
    (
        "aliases",
        Limit::StringMap,
        "Model aliases for the key: alias=model pairs.",
    ),
    ("tpd_limit", Limit::PositiveInt, "Tokens per day; 0 unsets."),
    (
        "allowed_cache_controls",
        Limit::List,
        "Cache-control values the key may send.",
    ),
    (
        "organization_id",
        Limit::Text,
        "LiteLLM organization of the keys.",
    ),
    (
        "rpm_limit_type",
        Limit::OneOf(&["guaranteed_throughput", "best_effort_throughput", "dynamic"]),
        "How rpm_limit is enforced.",
    ),
    (
        "tpm_limit_type",
        Limit::OneOf(&["guaranteed_throughput", "best_effort_throughput", "dynamic"]),
        "How tpm_limit is enforced.",
    ),
    (
        "tags",
        Limit::List,
        "Tags for spend tracking (LiteLLM Enterprise).",
    ),
    (
        "guardrails",
        Limit::List,
        "Guardrails applied to the key (LiteLLM Enterprise).",
    ),
    (
        "enforced_params",
        Limit::List,
        "Request parameters the key must send (LiteLLM Enterprise).",
    ),
];

/// Key fields LiteLLM (1.106) refuses to set without an Enterprise licence
/// (its `LiteLLM_ManagementEndpoint_MetadataFields_Premium`).
const ENTERPRISE_KEY_FIELDS: &[&str] = &[
    "tags",
    "guardrails",
    "policies",
    "prompts",
    "disable_global_guardrails",
    "allowed_passthrough_routes",
    "denied_passthrough_routes",
    "team_member_key_duration",
    "logging",
    "secret_manager_settings",
];

/// A value LiteLLM counts as set (Python's truth).
fn is_set(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `/key/generate` fields a role's `key_request` may not set: the engine
/// owns them, or a typed role field does.
const ENGINE_OWNED_KEY_FIELDS: &[&str] = &[
    "key",
    "key_alias",
    "duration",
    "metadata",
    "spend",
    "key_type",
    "allowed_routes",
    "auto_rotate",
    "rotation_interval",
    "send_invite_email",
    "token",
    "expires",
    "models",
    "max_budget",
    "budget_duration",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "team_id",
    "user_id",
];

fn parse_limit(name: &str, kind: Limit, f: &FieldData) -> Result<Option<Value>> {
    let bad = |rule: &str| Error::invalid(format!("field {name:?} {rule}"));
    Ok(match kind {
        Limit::PerModelInt => f
            .map(name)
            .map(|m| {
                m.iter()
                    .map(|(model, n)| match n.trim().parse::<i64>() {
                        Ok(n) if n >= 0 => Ok((model.clone(), Value::from(n))),
                        _ => Err(bad(&format!("needs a whole number >= 0 for {model:?}"))),
                    })
                    .collect::<Result<Map<String, Value>>>()
                    .map(Value::Object)
            })
            .transpose()?,
        Limit::StringMap => f.map(name).map(|m| json!(m)),
        Limit::NonNegativeFloat => match f.float(name) {
            Some(v) if v < 0.0 => return Err(bad("must be >= 0")),
            v => v.map(Value::from),
        },
        Limit::PositiveInt => match f.int(name) {
            Some(v) if v < 0 => return Err(bad("must be >= 0")),
            v => v.map(Value::from),
        },
        Limit::List => f.list(name).map(|l| json!(l)),
        Limit::Text => f.str(name).map(|t| json!(t.trim())),
        Limit::OneOf(allowed) => match f.str(name).map(str::trim) {
            Some(v) if !v.is_empty() && !allowed.contains(&v) => {
                return Err(bad(&format!("must be one of {}", allowed.join(", "))))
            }
            v => v.map(Value::from),
        },
    })
}

/// An empty value unsets a limit: `0`, `""`, `[]`, `{}`.
fn is_unset(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

impl Default for Role {
    /// A role being created: model calls only, and no model until named.
    fn default() -> Self {
        Self {
            models: Vec::new(),
            allow_all_models: Some(false),
            key_type: Some(KeyType::LlmApi),
            allowed_routes: Vec::new(),
            max_budget: 0.0,
            key_alias_prefix: DEFAULT_ALIAS_PREFIX.into(),
            metadata: BTreeMap::new(),
            ttl: 0,
            max_ttl: 0,
            budget_duration: None,
            tpm_limit: None,
            rpm_limit: None,
            max_parallel_requests: None,
            team_id: None,
            user_id: None,
            user_id_template: None,
            team_id_template: None,
            allowed_request_metadata: Vec::new(),
            key_settings: Map::new(),
            key_request: Map::new(),
        }
    }
}

impl Role {
    pub(super) fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl)
    }

    /// The TTL a plain issue gets: the role's, else the mount's default.
    /// The server is asked only in the second case: each question is a
    /// round trip to it, on the path of every issue and renewal.
    pub(super) async fn ttl_or_mount_default(&self, system: &dyn SystemView) -> Result<Duration> {
        if self.ttl == 0 {
            system.default_lease_ttl().await
        } else {
            Ok(self.ttl())
        }
    }

    pub(super) fn max_ttl(&self) -> Duration {
        Duration::from_secs(self.max_ttl)
    }

    /// The `/key/generate` fields this role sets that LiteLLM mints only
    /// with an Enterprise licence (a value that is set: not empty, not
    /// false, not zero).
    pub(super) fn enterprise_fields(&self) -> Vec<&'static str> {
        let fields = self.extra_key_fields();
        ENTERPRISE_KEY_FIELDS
            .iter()
            .copied()
            .filter(|name| fields.get(*name).is_some_and(is_set))
            .collect()
    }

    /// The `/key/generate` fields beyond the engine's own: the raw
    /// `key_request`, then the typed limits over it.
    pub(super) fn extra_key_fields(&self) -> Map<String, Value> {
        let mut out = self.key_request.clone();
        out.extend(self.key_settings.clone());
        out
    }

    /// The `/key/generate` request for a key of this role: its scope and
    /// limits; the caller adds what is per key (duration, the engine's own
    /// choice of key).
    pub(super) fn generate_request(
        &self,
        key_alias: String,
        metadata: BTreeMap<String, String>,
        user_id: Option<String>,
        team_id: Option<String>,
    ) -> GenerateKeyRequest {
        let (key_type, allowed_routes) = self.litellm_scope();
        GenerateKeyRequest {
            key: None,
            key_alias,
            duration: None,
            models: if self.all_models() {
                Vec::new()
            } else {
                self.models.clone()
            },
            max_budget: (self.max_budget > 0.0).then_some(self.max_budget),
            budget_duration: self.budget_duration.clone(),
            tpm_limit: self.tpm_limit,
            rpm_limit: self.rpm_limit,
            max_parallel_requests: self.max_parallel_requests,
            team_id,
            user_id,
            key_type: key_type.map(str::to_string),
            allowed_routes,
            metadata,
            extra: self.extra_key_fields(),
        }
    }

    /// Whether keys may call every model.
    pub(super) fn all_models(&self) -> bool {
        self.allow_all_models.unwrap_or(self.models.is_empty())
    }

    /// What LiteLLM is asked for: `(key_type, allowed_routes)`. An explicit
    /// route list wins, and LiteLLM applies `key_type` over it, so only one
    /// is sent.
    pub(super) fn litellm_scope(&self) -> (Option<&'static str>, Option<Vec<String>>) {
        if self.allowed_routes.is_empty() {
            (self.key_type.map(KeyType::as_str), None)
        } else {
            (None, Some(self.allowed_routes.clone()))
        }
    }

    /// Keys of this role may create, change or delete keys or users
    /// (depending on their user, for `default`).
    pub(super) fn may_manage_keys(&self) -> bool {
        if !self.allowed_routes.is_empty() {
            return self.allowed_routes.iter().any(|r| route_may_manage(r));
        }
        matches!(
            self.key_type,
            None | Some(KeyType::Default | KeyType::Management)
        )
    }

    /// What an operator should know when reading the role.
    pub(super) fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.key_type.is_none() && self.allowed_routes.is_empty() {
            out.push(
                "this role predates key_type: its keys are LiteLLM \"default\" keys, which may mint \
                 and delete keys when user_id names an internal user or admin; tighten it with \
                 key_type=llm_api (model calls only)"
                    .to_string(),
            );
        } else if self.may_manage_keys() {
            out.push(
                "keys of this role may manage keys or users in LiteLLM (key_type or allowed_routes); \
                 keys they mint are not leased and outlive their parent: use key_type=llm_api unless \
                 this is intended"
                    .to_string(),
            );
        }
        if self.key_settings.contains_key("enforced_params") {
            out.push(
                "enforced_params is a LiteLLM Enterprise feature that LiteLLM checks when the key \
                 is used, not when it is minted: without a licence every call with these keys fails"
                    .to_string(),
            );
        }
        if self.allow_all_models.is_none() && self.models.is_empty() {
            out.push(
                "this role predates allow_all_models: its keys may call every model; name them with \
                 models=... or confirm with allow_all_models=true"
                    .to_string(),
            );
        }
        out
    }

    /// The read-out of the fields `scope_fields` declares.
    pub(super) fn scope_data(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("models".into(), json!(self.models));
        data.insert("allow_all_models".into(), json!(self.all_models()));
        data.insert(
            "key_type".into(),
            json!(self.key_type.unwrap_or(KeyType::Default).as_str()),
        );
        data.insert("allowed_routes".into(), json!(self.allowed_routes));
        data.insert("may_manage_keys".into(), json!(self.may_manage_keys()));
        data.insert("max_budget".into(), json!(self.max_budget));
        data.insert("key_alias_prefix".into(), json!(self.key_alias_prefix));
        data.insert("metadata".into(), json!(self.metadata));
        data.insert(
            "budget_duration".into(),
            json!(self.budget_duration.clone().unwrap_or_default()),
        );
        data.insert("tpm_limit".into(), json!(self.tpm_limit.unwrap_or(0)));
        data.insert("rpm_limit".into(), json!(self.rpm_limit.unwrap_or(0)));
        data.insert(
            "max_parallel_requests".into(),
            json!(self.max_parallel_requests.unwrap_or(0)),
        );
        for (name, value) in [("team_id", &self.team_id), ("user_id", &self.user_id)] {
            data.insert(name.into(), json!(value.clone().unwrap_or_default()));
        }
        for (name, _, _) in LIMITS {
            if let Some(v) = self.key_settings.get(*name) {
                data.insert((*name).into(), v.clone());
            }
        }
        data.insert("key_request".into(), json!(self.key_request));
        data
    }

    /// The role's LiteLLM limits that are set, as response/help data.
    pub(super) fn limits(&self) -> Map<String, Value> {
        let mut out = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                out.insert(k.into(), v);
            }
        };
        put(
            "budget_duration",
            self.budget_duration.clone().map(Value::from),
        );
        put("tpm_limit", self.tpm_limit.map(Value::from));
        put("rpm_limit", self.rpm_limit.map(Value::from));
        put(
            "max_parallel_requests",
            self.max_parallel_requests.map(Value::from),
        );
        put("team_id", self.team_id.clone().map(Value::from));
        put("user_id", self.user_id.clone().map(Value::from));
        // The typed limits (tpd_limit, soft_budget, per-model limits, ...).
        out.extend(self.key_settings.clone());
        out
    }

    /// Applies the fields of a write on top of `self`, then checks the whole.
    pub(super) fn apply(mut self, f: &FieldData) -> Result<Self> {
        // An empty list beside allow_all_models=true (a patch's null) says
        // the same thing: no list.
        let models = f
            .list("models")
            .filter(|m| !(m.is_empty() && f.bool("allow_all_models") == Some(true)));
        if let Some(models) = models {
            // Blank input ("", " , ", [""]) parses to nothing: never "every model".
            if models.is_empty() {
                return Err(Error::invalid(format!(
                    "field \"models\" names no model; {MODELS_HINT}"
                )));
            }
            // LiteLLM's names for "every model": only allow_all_models says so.
            if let Some(all) = models.iter().find(|m| EVERY_MODEL.contains(&m.as_str())) {
                return Err(Error::invalid(format!(
                    "field \"models\": {all:?} means every model to LiteLLM; set \
                     allow_all_models=true (without models) if that is meant"
                )));
            }
            self.models = distinct(models);
        }
        match f.bool("allow_all_models") {
            Some(true) if models.is_some() => {
                return Err(Error::invalid(
                    "fields \"models\" and \"allow_all_models\"=true exclude each other: give one",
                ))
            }
            Some(all) => {
                self.allow_all_models = Some(all);
                if all {
                    self.models.clear();
                }
            }
            None if models.is_some() => self.allow_all_models = Some(false),
            None => {}
        }
        if let Some(key_type) = f.str("key_type") {
            self.key_type = Some(KeyType::parse(key_type).ok_or_else(|| {
                Error::invalid(format!("field \"key_type\" must be {}", KeyType::NAMES))
            })?);
        }
        if let Some(routes) = f.list("allowed_routes") {
            if let Some(bad) = routes
                .iter()
                .find(|r| r.len() > 256 || r.chars().any(char::is_whitespace))
            {
                return Err(Error::invalid(format!(
                    "field \"allowed_routes\": {bad:?} is not a route or route group"
                )));
            }
            self.allowed_routes = routes.to_vec();
        }
        if let Some(budget) = f.float("max_budget") {
            if budget < 0.0 {
                return Err(Error::invalid(
                    "field \"max_budget\" must be >= 0 (0 = no budget cap)",
                ));
            }
            self.max_budget = budget;
        }
        if let Some(prefix) = f.str("key_alias_prefix") {
            let ok = !prefix.is_empty()
                && prefix.len() <= 32
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(Error::invalid(
                    "field \"key_alias_prefix\" must be 1-32 characters of letters, digits, '-' and '_'",
                ));
            }
            self.key_alias_prefix = prefix.to_string();
        }
        if let Some(metadata) = f.map("metadata") {
            if let Some(k) = metadata
                .keys()
                .find(|k| RESERVED_METADATA.contains(&k.as_str()))
            {
                return Err(Error::invalid(format!(
                    "field \"metadata\": key {k:?} is set by the engine and cannot be overridden"
                )));
            }
            self.metadata = metadata.clone();
        }
        if let Some(ttl) = f.duration("ttl") {
            self.ttl = ttl.as_secs();
        }
        if let Some(max_ttl) = f.duration("max_ttl") {
            self.max_ttl = max_ttl.as_secs();
        }
        if self.max_ttl > 0 && self.ttl > self.max_ttl {
            return Err(Error::invalid(format!(
                "field \"ttl\" ({}s) must not exceed field \"max_ttl\" ({}s)",
                self.ttl, self.max_ttl
            )));
        }
        if let Some(d) = f.str("budget_duration") {
            self.budget_duration = match d.trim() {
                "" => None,
                d if is_litellm_duration(d) => Some(d.to_string()),
                _ => {
                    return Err(Error::invalid(
                        "field \"budget_duration\" must be like \"30s\", \"10m\", \"24h\", \"30d\" or \"1mo\" (empty to unset)",
                    ))
                }
            };
        }
        for (name, slot) in [
            ("tpm_limit", &mut self.tpm_limit),
            ("rpm_limit", &mut self.rpm_limit),
            ("max_parallel_requests", &mut self.max_parallel_requests),
        ] {
            if let Some(v) = f.int(name) {
                if v < 0 {
                    return Err(Error::invalid(format!(
                        "field {name:?} must be >= 0 (0 = no limit)"
                    )));
                }
                *slot = (v > 0).then_some(v);
            }
        }
        for (name, slot) in [
            ("team_id", &mut self.team_id),
            ("user_id", &mut self.user_id),
        ] {
            if let Some(v) = f.str(name) {
                *slot = Some(v.trim().to_string()).filter(|v| !v.is_empty());
            }
        }
        for (name, slot) in [
            ("user_id_template", &mut self.user_id_template),
            ("team_id_template", &mut self.team_id_template),
        ] {
            if let Some(v) = f.str(name) {
                let v = v.trim();
                if !v.is_empty() {
                    Template::parse(v)
                        .map_err(|e| Error::invalid(format!("field {name:?}: {e}")))?;
                }
                *slot = Some(v.to_string()).filter(|v| !v.is_empty());
            }
        }
        for (name, kind, _) in LIMITS {
            if let Some(v) = parse_limit(name, *kind, f)? {
                if is_unset(&v) {
                    self.key_settings.remove(*name);
                } else {
                    self.key_settings.insert((*name).to_string(), v);
                }
            }
        }
        if let Some(raw) = f.object("key_request") {
            let owned = |k: &String| {
                ENGINE_OWNED_KEY_FIELDS.contains(&k.as_str())
                    || LIMITS.iter().any(|(n, _, _)| n == k)
            };
            if let Some(k) = raw.keys().find(|k| owned(k)) {
                return Err(Error::invalid(format!(
                    "field \"key_request\": {k:?} is set by the engine or by a role field of its own"
                )));
            }
            self.key_request = raw.clone();
        }
        if let Some(keys) = f.list("allowed_request_metadata") {
            if let Some(k) = keys
                .iter()
                .find(|k| RESERVED_METADATA.contains(&k.as_str()))
            {
                return Err(Error::invalid(format!(
                    "field \"allowed_request_metadata\": {k:?} is set by the engine"
                )));
            }
            self.allowed_request_metadata = keys.to_vec();
        }
        // Last, so that a wrong value elsewhere is reported first.
        if !self.all_models() && self.models.is_empty() {
            return Err(Error::invalid(format!(
                "field \"models\" is required; {MODELS_HINT}"
            )));
        }
        Ok(self)
    }
}

/// The names once each, in their first order (a list given twice over is
/// still the same scope).
pub(super) fn distinct(names: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names.iter().filter(|n| seen.insert(*n)).cloned().collect()
}

/// Model names LiteLLM reads as every model the proxy serves.
const EVERY_MODEL: &[&str] = &["*", "all-proxy-models"];

const MODELS_HINT: &str = "list the models keys may call (models=gpt-4o,claude-3-haiku), or set \
     allow_all_models=true to allow every model";

/// LiteLLM's duration syntax: a count and one unit.
fn is_litellm_duration(s: &str) -> bool {
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    // LiteLLM refuses a count of 0 when the key is minted.
    digits > 0
        && s[..digits].chars().any(|c| c != '0')
        && matches!(&s[digits..], "s" | "m" | "h" | "d" | "w" | "mo")
}

pub(super) async fn load(storage: &dyn Storage, name: &str) -> Result<Option<Role>> {
    get_json(storage, &format!("{PREFIX}{name}")).await
}

/// Whether a storage key the server invalidates is a role's.
pub(super) fn is_role_key(key: &str) -> bool {
    key.starts_with(PREFIX)
}

/// The roles `creds` issued from, as last read. Every change to a role
/// passes through this mount (a write or delete here, or the server's
/// invalidation of replicated storage), and each one empties the cache, so
/// an issue skips one storage read without ever using an outdated role.
#[derive(Default)]
pub(super) struct RoleCache(StorageCache<String, Arc<Role>>);

impl RoleCache {
    /// The role, from the cache or else from storage; `None`: no such role.
    pub(super) async fn get(&self, storage: &dyn Storage, name: &str) -> Result<Option<Arc<Role>>> {
        let load = || async { Ok(load(storage, name).await?.map(Arc::new)) };
        self.0.get_or_load(name, load).await
    }

    /// Drops every cached role (a role changed).
    pub(super) fn forget(&self) {
        self.0.forget();
    }
}

pub(super) fn list_path(engine: &Arc<Engine>) -> Path {
    Path::new("roles/")
        .on(Operation::List, callback(engine, list))
        .help("List the roles.", "Lists the names of all roles.")
}

/// The fields that say what a key may do, shared with static roles.
pub(super) fn scope_fields(path: Path, default_alias_prefix: &'static str) -> Path {
    path
        .field(Field::new(
            "models",
            FieldType::StringList,
            "Models the key may call; required unless allow_all_models=true.",
        ))
        .field(
            Field::new(
                "allow_all_models",
                FieldType::Bool,
                "Let keys call every model (instead of listing them in models).",
            )
            .default_value(false),
        )
        .field(
            Field::new(
                "key_type",
                FieldType::String,
                "LiteLLM key type: llm_api (model calls only), read_only, default (the powers of \
                 the key's user) or management.",
            )
            .default_value("llm_api"),
        )
        .field(Field::new(
            "allowed_routes",
            FieldType::StringList,
            "LiteLLM routes or route groups keys may call; overrides key_type. Empty = unset.",
        ))
        .field(
            Field::new(
                "max_budget",
                FieldType::Float,
                "Spend cap of each key in USD; 0 = none.",
            )
            .default_value(0),
        )
        .field(
            Field::new(
                "key_alias_prefix",
                FieldType::String,
                "Prefix of the key aliases: <prefix>-<role>-<random> (static roles: <prefix>-<name>-<generation>-<random>).",
            )
            .default_value(default_alias_prefix),
        )
        .field(Field::new(
            "metadata",
            FieldType::StringMap,
            "Metadata stored on each key, besides the engine's own.",
        ))
        .field(Field::new(
            "budget_duration",
            FieldType::String,
            "Budget reset period in LiteLLM syntax, e.g. 30d.",
        ))
        .field(Field::new(
            "tpm_limit",
            FieldType::Int,
            "Tokens per minute; 0 = no limit.",
        ))
        .field(Field::new(
            "rpm_limit",
            FieldType::Int,
            "Requests per minute; 0 = no limit.",
        ))
        .field(Field::new(
            "max_parallel_requests",
            FieldType::Int,
            "Concurrent requests; 0 = no limit.",
        ))
        .field(Field::new(
            "team_id",
            FieldType::String,
            "LiteLLM team the keys belong to.",
        ))
        .field(Field::new(
            "user_id",
            FieldType::String,
            "LiteLLM user the keys belong to.",
        ))
        .field(Field::new(
            "key_request",
            FieldType::Object,
            "Further /key/generate fields as a JSON object, merged under the typed ones; \
             fields the engine owns are refused.",
        ))
        .fields(LIMITS.iter().map(|(name, kind, description)| {
            let ty = match kind {
                Limit::PerModelInt | Limit::StringMap => FieldType::StringMap,
                Limit::NonNegativeFloat => FieldType::Float,
                Limit::PositiveInt => FieldType::Int,
                Limit::List => FieldType::StringList,
                Limit::Text | Limit::OneOf(_) => FieldType::String,
            };
            Field::new(name, ty, description)
        }))
}

pub(super) fn path(engine: &Arc<Engine>) -> Path {
    scope_fields(Path::new("roles/{name}"), DEFAULT_ALIAS_PREFIX)
        .field(Field::new(
            "ttl",
            FieldType::Duration,
            "Lease TTL of a key; 0 = the mount default.",
        ))
        .field(Field::new(
            "max_ttl",
            FieldType::Duration,
            "Maximum lease lifetime of a key; 0 = the mount max.",
        ))
        .field(Field::new(
            "allowed_request_metadata",
            FieldType::StringList,
            "Metadata keys a creds write may set on its key; \"\" unsets.",
        ))
        .field(Field::new(
            "user_id_template",
            FieldType::String,
            "LiteLLM user of each key from the caller's identity, e.g. {{identity.entity.name}}; \
             a fixed user_id wins.",
        ))
        .field(Field::new(
            "team_id_template",
            FieldType::String,
            "LiteLLM team of each key from the caller's identity, e.g. \
             {{identity.groups.names.ml.id}}; a fixed team_id wins.",
        ))
        .on(Operation::Read, callback(engine, read))
        .on_write(callback(engine, write))
        .on(Operation::Patch, callback(engine, patch))
        .on(Operation::Delete, callback(engine, delete))
        .exists(callback(engine, exists))
        .help(
            "Manage the roles keys are minted for.",
            "A role fixes the models, budget, limits and lease TTLs of the keys read from \
             creds/<name>. Writes change only the fields given; a patch does the same to a \
             role that exists, and sets a field given as null back to its default. Deleting a \
             role leaves issued keys in place: their leases can no longer be renewed, but \
             still revoke their keys.",
        )
}

async fn list(_: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let keys = req.storage.list(PREFIX).await?;
    Ok(Some(Response::list(keys)))
}

async fn exists(_: Arc<Engine>, req: Request) -> Result<bool> {
    let name = req.fields.str("name").unwrap_or_default();
    Ok(req.storage.get(&format!("{PREFIX}{name}")).await?.is_some())
}

async fn read(_: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let name = req.fields.str("name").unwrap_or_default();
    let Some(role) = load(req.storage.as_ref(), name).await? else {
        return Ok(None);
    };
    let mut data = role.scope_data();
    data.insert("ttl".into(), json!(role.ttl));
    data.insert("max_ttl".into(), json!(role.max_ttl));
    data.insert(
        "allowed_request_metadata".into(),
        json!(role.allowed_request_metadata),
    );
    data.insert(
        "user_id_template".into(),
        json!(role.user_id_template.clone().unwrap_or_default()),
    );
    data.insert(
        "team_id_template".into(),
        json!(role.team_id_template.clone().unwrap_or_default()),
    );
    let mut response = Response::with_data(data);
    for warning in role.warnings() {
        response = response.warn(warning);
    }
    Ok(Some(response))
}

async fn write(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    change(&engine, &req, false).await
}

/// `vault patch`: a write to a role that must exist already.
async fn patch(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    change(&engine, &req, true).await
}

async fn change(engine: &Engine, req: &Request, must_exist: bool) -> Result<Option<Response>> {
    let name = req.fields.str("name").unwrap_or_default();
    // Read-modify-write: two partial writes at once must not lose a field.
    let writing = engine.writes.lock().await;
    let existing = match load(req.storage.as_ref(), name).await? {
        Some(role) => role,
        None if must_exist => {
            return Err(Error::coded(
                404,
                format!("no role named {name:?} to patch"),
            ))
        }
        None => Role::default(),
    };
    let role = existing.apply(&req.fields)?;
    let stored = put_json(req.storage.as_ref(), &format!("{PREFIX}{name}"), &role).await;
    // Even after a failed write: storage may hold either version now.
    engine.roles.forget();
    stored?;
    // LiteLLM's word on the team is not worth holding other writes for.
    drop(writing);
    let mut warnings = role.warnings();
    warnings.extend(litellm_warnings(engine, req.storage.as_ref(), &role).await);
    Ok(Response::warnings_only(warnings))
}

/// What LiteLLM itself says will fail with this role's keys: a team it does
/// not have (it mints such keys, and every call with them fails), or
/// Enterprise fields on a proxy without a licence (it refuses to mint
/// them). Best effort (no config, no answer within a few seconds: no
/// warning), and only warnings: the team or the licence may come later.
pub(super) async fn litellm_warnings(
    engine: &Engine,
    storage: &dyn Storage,
    role: &Role,
) -> Vec<String> {
    let team = role.team_id.as_deref().filter(|t| !t.is_empty());
    let enterprise = role.enterprise_fields();
    if team.is_none() && enterprise.is_empty() {
        return Vec::new();
    }
    let Ok(current) = engine.clients.current(storage).await else {
        return Vec::new();
    };
    let (client, url) = (&current.client, &current.home.base_url);
    let (team_exists, licensed) = tokio::join!(
        async {
            match team {
                Some(team) => litellm_says(client.team_exists(team)).await,
                None => None,
            }
        },
        async {
            match enterprise.is_empty() {
                true => None,
                false => litellm_says(client.licensed()).await,
            }
        },
    );
    let mut out = Vec::new();
    if let (Some(team), Some(false)) = (team, team_exists) {
        out.push(format!(
            "team_id {team:?}: LiteLLM at {url} has no such team, so every call with this role's \
             keys fails (404 \"Team doesn't exist\") until it is created there (/team/new)"
        ));
    }
    if licensed == Some(false) {
        out.push(format!(
            "{} need LiteLLM Enterprise, and LiteLLM at {url} has no licence (/health/license): \
             it refuses to mint this role's keys (creds answers 400) until it has one",
            enterprise.join(", ")
        ));
    }
    out
}

/// LiteLLM's yes or no, if it answers within a few seconds.
pub(super) async fn litellm_says<E>(
    check: impl std::future::Future<Output = Result<bool, E>>,
) -> Option<bool> {
    tokio::time::timeout(LITELLM_CHECK_TIMEOUT, check)
        .await
        .ok()?
        .ok()
}

/// How long a best-effort check waits for LiteLLM's word (a role's team or
/// licence, a static key's existence).
const LITELLM_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn delete(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let name = req.fields.str("name").unwrap_or_default();
    let _writing = engine.writes.lock().await;
    let deleted = req.storage.delete(&format!("{PREFIX}{name}")).await;
    engine.roles.forget();
    deleted?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::framework::Field;

    fn apply(role: Role, body: Value) -> Result<Role> {
        let schema: Vec<Field> = path(&Arc::new(Engine::new())).fields;
        let fields = FieldData::parse(
            &schema,
            &[("name", "dev".into())],
            body.as_object().unwrap(),
        )?;
        role.apply(&fields)
    }

    #[test]
    fn defaults() {
        let r = apply(Role::default(), json!({"models": "m"})).unwrap();
        assert_eq!(r.key_alias_prefix, "vault");
        assert_eq!(r.models, ["m"]);
        assert_eq!(r.max_budget, 0.0);
        assert_eq!(r.key_type, Some(KeyType::LlmApi));
        assert!(!r.may_manage_keys());
        assert!(r.warnings().is_empty());
        assert_eq!(r.litellm_scope(), (Some("llm_api"), None));
    }

    #[test]
    fn models_fail_closed() {
        for body in [
            json!({}),
            json!({"models": ""}),
            json!({"models": " , "}),
            json!({"models": [""]}),
            json!({"models": []}),
            json!({"allow_all_models": false}),
            // LiteLLM's own words for every model.
            json!({"models": "*"}),
            json!({"models": ["gpt-4o", "all-proxy-models"]}),
        ] {
            let err = apply(Role::default(), body.clone()).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
            assert!(err.to_string().contains("\"models\""), "{body}: {err}");
        }
        let err = apply(
            Role::default(),
            json!({"models": "a", "allow_all_models": true}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("allow_all_models"), "{err}");

        let all = apply(Role::default(), json!({"allow_all_models": true})).unwrap();
        assert!(all.all_models() && all.models.is_empty());
        // Naming models later narrows the role again.
        let narrowed = apply(all, json!({"models": "a"})).unwrap();
        assert!(!narrowed.all_models());
        // Turning "all" off without naming models is refused.
        let err = apply(narrowed.clone(), json!({"models": ""})).unwrap_err();
        assert!(err.to_string().contains("models"), "{err}");
        let widened = apply(narrowed.clone(), json!({"allow_all_models": true})).unwrap();
        assert!(widened.models.is_empty());
        // As a patch sends it: the list set back to empty with it.
        let patched = apply(narrowed, json!({"allow_all_models": true, "models": []})).unwrap();
        assert!(patched.all_models() && patched.models.is_empty());
    }

    #[test]
    fn key_types_and_routes() {
        let base = apply(Role::default(), json!({"models": "m"})).unwrap();
        for (body, manages) in [
            (json!({"key_type": "llm_api"}), false),
            (json!({"key_type": "read_only"}), false),
            (json!({"key_type": "default"}), true),
            (json!({"key_type": "management"}), true),
            (
                json!({"allowed_routes": "llm_api_routes,/v1/chat/completions"}),
                false,
            ),
            (
                json!({"allowed_routes": ["llm_api_routes", "/key/generate"]}),
                true,
            ),
            (json!({"allowed_routes": "management_routes"}), true),
            // A wildcard may reach management routes under its prefix.
            (json!({"allowed_routes": "/v1/*"}), true),
            (json!({"allowed_routes": "/v1/chat/completions"}), false),
        ] {
            let r = apply(base.clone(), body.clone()).unwrap();
            assert_eq!(r.may_manage_keys(), manages, "{body}");
            assert_eq!(!r.warnings().is_empty(), manages, "{body}");
        }
        let routed = apply(base.clone(), json!({"allowed_routes": "llm_api_routes"})).unwrap();
        assert_eq!(
            routed.litellm_scope(),
            (None, Some(vec!["llm_api_routes".to_string()]))
        );
        let unset = apply(routed, json!({"allowed_routes": ""})).unwrap();
        assert_eq!(unset.litellm_scope(), (Some("llm_api"), None));
        for body in [
            json!({"key_type": "admin"}),
            json!({"allowed_routes": ["has space"]}),
        ] {
            let err = apply(base.clone(), body.clone()).unwrap_err();
            let field = body.as_object().unwrap().keys().next().unwrap().clone();
            assert!(err.to_string().contains(&field), "{body}: {err}");
        }
    }

    #[test]
    fn typed_limits_and_the_key_request_escape_hatch() {
        let r = apply(
            Role::default(),
            json!({"models": "m", "model_rpm_limit": "gpt-4o=10,claude=5", "soft_budget": "2.5",
                   "aliases": "fast=gpt-4o-mini", "tags": "a,b", "rpm_limit_type": "dynamic",
                   "key_request": "{\"budget_id\": \"b1\", \"tpd_limit\": 1}"}),
        );
        // tpd_limit has a typed field of its own: not through key_request.
        let err = r.unwrap_err();
        assert!(err.to_string().contains("key_request"), "{err}");
        assert!(err.to_string().contains("tpd_limit"), "{err}");

        let r = apply(
            Role::default(),
            json!({"models": "m", "model_rpm_limit": "gpt-4o=10,claude=5", "soft_budget": "2.5",
                   "aliases": "fast=gpt-4o-mini", "tags": "a,b", "rpm_limit_type": "dynamic",
                   "key_request": {"budget_id": "b1", "config": {"x": 1}}}),
        )
        .unwrap();
        let extra = r.extra_key_fields();
        assert_eq!(extra["model_rpm_limit"], json!({"gpt-4o": 10, "claude": 5}));
        assert_eq!(extra["soft_budget"], json!(2.5));
        assert_eq!(extra["aliases"], json!({"fast": "gpt-4o-mini"}));
        assert_eq!(extra["tags"], json!(["a", "b"]));
        assert_eq!(extra["budget_id"], json!("b1"));
        // 0 / "" unset a typed limit.
        let r = apply(r, json!({"soft_budget": 0, "tags": ""})).unwrap();
        assert!(!r.extra_key_fields().contains_key("soft_budget"));
        assert!(!r.extra_key_fields().contains_key("tags"));

        for (body, field) in [
            (json!({"model_rpm_limit": "gpt-4o=lots"}), "model_rpm_limit"),
            (json!({"soft_budget": -1}), "soft_budget"),
            (json!({"rpm_limit_type": "fastest"}), "rpm_limit_type"),
            (json!({"key_request": "not json"}), "key_request"),
            (json!({"key_request": {"duration": "1h"}}), "key_request"),
            (json!({"key_request": {"metadata": {}}}), "key_request"),
            (
                json!({"key_request": {"key_type": "management"}}),
                "key_request",
            ),
            (json!({"key_request": {"user_id": "x"}}), "key_request"),
        ] {
            let mut body = body;
            body["models"] = json!("m");
            let err = apply(Role::default(), body.clone()).unwrap_err();
            assert!(err.to_string().contains(field), "{body}: {err}");
        }
    }

    #[test]
    fn roles_stored_before_key_type_keep_working_with_warnings() {
        let legacy: Role = serde_json::from_value(json!({
            "models": [], "max_budget": 0.0, "key_alias_prefix": "vault", "metadata": {},
            "ttl": 0, "max_ttl": 0, "budget_duration": null, "tpm_limit": null, "rpm_limit": null,
            "max_parallel_requests": null, "team_id": null, "user_id": "u"
        }))
        .unwrap();
        assert_eq!(legacy.key_type, None);
        assert!(legacy.all_models());
        assert!(legacy.may_manage_keys());
        assert_eq!(legacy.litellm_scope(), (None, None));
        let warnings = legacy.warnings().join(" ");
        assert!(warnings.contains("key_type=llm_api"), "{warnings}");
        assert!(warnings.contains("allow_all_models"), "{warnings}");
        // An unrelated write keeps its behaviour; tightening is explicit.
        let touched = apply(legacy, json!({"max_budget": 1})).unwrap();
        assert_eq!(touched.key_type, None);
        assert!(touched.all_models());
        let tightened = apply(touched, json!({"key_type": "llm_api", "models": "m"})).unwrap();
        assert!(tightened.warnings().is_empty());
    }

    #[test]
    fn full_write_from_cli_strings() {
        let r = apply(
            Role::default(),
            json!({"models":"gpt-4o, claude","max_budget":"2.5","ttl":"1h","max_ttl":"24h","metadata":"team=ml,env=dev",
                   "budget_duration":"30d","tpm_limit":"1000","rpm_limit":"60","max_parallel_requests":"4",
                   "team_id":"t1","user_id":"u1","key_alias_prefix":"ci"}),
        )
        .unwrap();
        assert_eq!(r.models, ["gpt-4o", "claude"]);
        assert_eq!(r.max_budget, 2.5);
        assert_eq!((r.ttl, r.max_ttl), (3600, 86400));
        assert_eq!(r.metadata["env"], "dev");
        assert_eq!(r.budget_duration.as_deref(), Some("30d"));
        assert_eq!(
            (r.tpm_limit, r.rpm_limit, r.max_parallel_requests),
            (Some(1000), Some(60), Some(4))
        );
        assert_eq!(r.limits().len(), 6);
    }

    #[test]
    fn partial_update_keeps_other_fields() {
        let r = apply(
            Role::default(),
            json!({"models":["a"],"max_budget":3,"ttl":60}),
        )
        .unwrap();
        assert!(!r.all_models());
        let r = apply(r, json!({"max_budget":5})).unwrap();
        assert_eq!(r.models, ["a"]);
        assert_eq!(r.ttl, 60);
        assert_eq!(r.max_budget, 5.0);
        // 0 unsets a limit, "" unsets a string
        let r = apply(r, json!({"rpm_limit":10,"team_id":"x"})).unwrap();
        let r = apply(r, json!({"rpm_limit":0,"team_id":""})).unwrap();
        assert_eq!((r.rpm_limit, r.team_id), (None, None));
    }

    #[test]
    fn rules_name_the_field() {
        for (body, field) in [
            (json!({"max_budget": -1}), "max_budget"),
            (json!({"max_budget": "lots"}), "max_budget"),
            (json!({"ttl": "2h", "max_ttl": "1h"}), "ttl"),
            (json!({"ttl": "soon"}), "ttl"),
            (json!({"max_ttl": -3}), "max_ttl"),
            (json!({"tpm_limit": -5}), "tpm_limit"),
            (json!({"rpm_limit": 1.5}), "rpm_limit"),
            (
                json!({"max_parallel_requests": -1}),
                "max_parallel_requests",
            ),
            (json!({"budget_duration": "monthly"}), "budget_duration"),
            (json!({"key_alias_prefix": "has space"}), "key_alias_prefix"),
            (json!({"key_alias_prefix": ""}), "key_alias_prefix"),
            (json!({"metadata": {"vault_role": "x"}}), "metadata"),
            (json!({"metadata": "novalue"}), "metadata"),
            (json!({"models": [1]}), "models"),
            (json!({"modles": ["a"]}), "modles"),
        ] {
            let mut body = body;
            if body.get("models").is_none() {
                body["models"] = json!("m");
            }
            let err = apply(Role::default(), body.clone()).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
            assert!(err.to_string().contains(field), "{body}: {err}");
        }
    }

    #[test]
    fn ttl_above_an_existing_max_ttl_is_refused() {
        let r = apply(Role::default(), json!({"max_ttl":"1h","models":"m"})).unwrap();
        assert!(apply(r, json!({"ttl":"2h"})).is_err());
    }

    #[test]
    fn litellm_durations() {
        for ok in ["30s", "10m", "24h", "30d", "1mo", "2w"] {
            assert!(is_litellm_duration(ok), "{ok}");
        }
        for bad in ["", "d", "1y", "1.5h", "1h30m", "0d", "00h"] {
            assert!(!is_litellm_duration(bad), "{bad}");
        }
    }
}
