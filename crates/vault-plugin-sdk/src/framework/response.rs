//! What a handler returns.

use serde_json::{Map, Value};

use super::lease::Secret;

/// A successful answer: data for the caller, optionally a leased secret and
/// warnings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    /// The `data` the caller sees.
    pub data: Map<String, Value>,
    /// A secret for the server to lease; its internal data stays in the
    /// lease, the caller gets a lease id.
    pub secret: Option<Secret>,
    /// Shown to the caller next to the data (`vault` prints them).
    pub warnings: Vec<String>,
}

impl Response {
    /// An answer with `data` and nothing else.
    pub fn with_data(data: Map<String, Value>) -> Self {
        Self {
            data,
            ..Self::default()
        }
    }

    /// An answer whose data is the typed output `value` (a struct that
    /// serializes to a JSON object): one struct per path's output.
    pub fn from_output<T: serde::Serialize>(value: &T) -> super::Result<Self> {
        match serde_json::to_value(value) {
            Ok(Value::Object(data)) => Ok(Self::with_data(data)),
            Ok(other) => Err(super::Error::Internal(format!(
                "a response must be a JSON object, not {other}"
            ))),
            Err(e) => Err(super::Error::Internal(format!(
                "cannot serialize the response: {e}"
            ))),
        }
    }

    /// A list answer: `{"keys": [...]}`.
    pub fn list(keys: Vec<String>) -> Self {
        let mut data = Map::new();
        data.insert("keys".into(), Value::from(keys));
        Self::with_data(data)
    }

    /// A write's answer: nothing (204), or only `warnings` (200).
    pub fn warnings_only(warnings: Vec<String>) -> Option<Self> {
        (!warnings.is_empty()).then(|| Self {
            warnings,
            ..Self::default()
        })
    }

    /// Adds a warning.
    pub fn warn(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }
}
