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
};

const PREFIX: &str = "roles/";
const DEFAULT_ALIAS_PREFIX: &str = "vault";
/// Metadata keys the engine sets on every key.
pub const RESERVED_METADATA: &[&str] = &[
    "vault_role",
    "vault_request_id",
    "vault_mount",
    "vault_display_name",
    "created_by",
];

/// A stored role. Optional limits are `None` when unset (0 in a write).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Role {
    pub models: Vec<String>,
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
}

impl Default for Role {
    fn default() -> Self {
        Self {
            models: Vec::new(),
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
        }
    }
}

impl Role {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl)
    }

    pub fn max_ttl(&self) -> Duration {
        Duration::from_secs(self.max_ttl)
    }

    /// The role's LiteLLM limits that are set, as response/help data.
    pub fn limits(&self) -> Map<String, Value> {
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
        out
    }

    /// Applies the fields of a write on top of `self`, then checks the whole.
    fn apply(mut self, f: &FieldData) -> Result<Self> {
        if let Some(models) = f.list("models") {
            self.models = models.to_vec();
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
        Ok(self)
    }
}

/// LiteLLM's duration syntax: a count and one unit.
fn is_litellm_duration(s: &str) -> bool {
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && matches!(&s[digits..], "s" | "m" | "h" | "d" | "w" | "mo")
}

pub async fn load(storage: &dyn Storage, name: &str) -> Result<Option<Role>> {
    get_json(storage, &format!("{PREFIX}{name}")).await
}

pub fn list_path(engine: &Arc<Engine>) -> Path {
    Path::new("roles/")
        .on(Operation::List, callback(engine, list))
        .help("List the roles.", "Lists the names of all roles.")
}

pub fn path(engine: &Arc<Engine>) -> Path {
    Path::new("roles/{name}")
        .field(Field::new(
            "models",
            FieldType::StringList,
            "Models the key may call; empty = every model.",
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
                "Prefix of the key aliases: <prefix>-<role>-<random>.",
            )
            .default_value(DEFAULT_ALIAS_PREFIX),
        )
        .field(Field::new(
            "metadata",
            FieldType::StringMap,
            "Metadata stored on each key, besides the engine's own.",
        ))
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
        .on(Operation::Read, callback(engine, read))
        .on_write(callback(engine, write))
        .on(Operation::Delete, callback(engine, delete))
        .exists(callback(engine, exists))
        .help(
            "Manage the roles keys are minted for.",
            "A role fixes the models, budget, limits and lease TTLs of the keys read from \
             creds/<name>. Writes change only the fields given. Deleting a role leaves issued \
             keys in place: their leases can no longer be renewed, but still revoke their keys.",
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
    let mut data = Map::new();
    data.insert("models".into(), json!(role.models));
    data.insert("max_budget".into(), json!(role.max_budget));
    data.insert("key_alias_prefix".into(), json!(role.key_alias_prefix));
    data.insert("metadata".into(), json!(role.metadata));
    data.insert("ttl".into(), json!(role.ttl));
    data.insert("max_ttl".into(), json!(role.max_ttl));
    data.insert(
        "budget_duration".into(),
        json!(role.budget_duration.clone().unwrap_or_default()),
    );
    data.insert("tpm_limit".into(), json!(role.tpm_limit.unwrap_or(0)));
    data.insert("rpm_limit".into(), json!(role.rpm_limit.unwrap_or(0)));
    data.insert(
        "max_parallel_requests".into(),
        json!(role.max_parallel_requests.unwrap_or(0)),
    );
    data.insert(
        "team_id".into(),
        json!(role.team_id.clone().unwrap_or_default()),
    );
    data.insert(
        "user_id".into(),
        json!(role.user_id.clone().unwrap_or_default()),
    );
    Ok(Some(Response::with_data(data)))
}

async fn write(_: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let name = req.fields.str("name").unwrap_or_default();
    let existing = load(req.storage.as_ref(), name).await?.unwrap_or_default();
    let role = existing.apply(&req.fields)?;
    put_json(req.storage.as_ref(), &format!("{PREFIX}{name}"), &role).await?;
    Ok(None)
}

async fn delete(_: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let name = req.fields.str("name").unwrap_or_default();
    req.storage.delete(&format!("{PREFIX}{name}")).await?;
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
        let r = apply(Role::default(), json!({})).unwrap();
        assert_eq!(r.key_alias_prefix, "vault");
        assert!(r.models.is_empty());
        assert_eq!(r.max_budget, 0.0);
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
            let err = apply(Role::default(), body.clone()).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
            assert!(err.to_string().contains(field), "{body}: {err}");
        }
    }

    #[test]
    fn ttl_above_an_existing_max_ttl_is_refused() {
        let r = apply(Role::default(), json!({"max_ttl":"1h"})).unwrap();
        assert!(apply(r, json!({"ttl":"2h"})).is_err());
    }

    #[test]
    fn litellm_durations() {
        for ok in ["30s", "10m", "24h", "30d", "1mo", "2w"] {
            assert!(is_litellm_duration(ok), "{ok}");
        }
        for bad in ["", "d", "1y", "1.5h", "1h30m"] {
            assert!(!is_litellm_duration(bad), "{bad}");
        }
    }
}
