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
                let covered = |m: &String| role.models.iter().any(|p| pattern_covers(p, m));
                if let Some(m) = models.iter().find(|m| !covered(m)) {
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

/// Whether every model name `requested` stands for is one `allowed` stands
/// for, reading `*` as LiteLLM does in a key's models (any run of
/// characters): equal names, or a wildcard such as `openai/*` over a name
/// (`openai/gpt-4o`) or a narrower pattern (`openai/gpt-*`). A `*` in
/// `requested` can only be absorbed by a `*` of `allowed`, so a wider
/// pattern is never taken for a narrower one.
fn pattern_covers(allowed: &str, requested: &str) -> bool {
    let (p, r) = (allowed.as_bytes(), requested.as_bytes());
    // matched[j]: allowed[..i] covers requested[..j], for the current i.
    let mut matched = vec![false; r.len() + 1];
    matched[0] = true;
    for &pc in p {
        if pc == b'*' {
            // A star covers any run that follows a covered prefix.
            for j in 1..=r.len() {
                matched[j] = matched[j] || matched[j - 1];
            }
        } else {
            for j in (1..=r.len()).rev() {
                matched[j] = matched[j - 1] && r[j - 1] == pc;
            }
            matched[0] = false;
        }
    }
    matched[r.len()]
}

#[cfg(test)]
mod tests {
    use super::pattern_covers;

    #[test]
    fn a_wildcard_covers_names_and_narrower_patterns_only() {
        for (allowed, requested) in [
            ("gpt-4o", "gpt-4o"),
            ("openai/*", "openai/gpt-4o"),
            ("openai/*", "openai/gpt-*"),
            ("openai/*", "openai/"),
            ("*", "anything/at-all"),
            ("*", "*"),
            ("bedrock/us.*", "bedrock/us.amazon.nova-micro-v1:0"),
            ("a*b*c", "a-x-b-y-c"),
        ] {
            assert!(
                pattern_covers(allowed, requested),
                "{allowed} covers {requested}"
            );
        }
        for (allowed, requested) in [
            ("gpt-4o", "gpt-4o-mini"),
            ("gpt-4o", "gpt-*"),
            ("openai/*", "openai*"),
            ("openai/*", "anthropic/claude"),
            ("openai/gpt-*", "openai/*"),
            ("openai/*", "*"),
            ("a*c", "a*"),
            ("", "x"),
        ] {
            assert!(
                !pattern_covers(allowed, requested),
                "{allowed} must not cover {requested}"
            );
        }
    }
}
