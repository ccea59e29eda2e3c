//! What a handler receives.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::field::FieldData;
use super::lease::Secret;
use super::storage::{Storage, SystemView};

/// The operation the host asks for. Unknown strings are kept so that newer
/// hosts' operations can be refused politely (405) instead of crashing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operation {
    /// A write to an item that does not exist yet (only sent when the path
    /// has an existence check; otherwise writes are updates).
    Create,
    /// `GET`, `vault read`.
    Read,
    /// A write (`POST`/`PUT`, `vault write`) to an existing item, or to any
    /// item on a path without an existence check.
    Update,
    /// `PATCH`, `vault patch`: a partial update of an existing item (a JSON
    /// merge patch: a field set to `null` goes back to its default, see
    /// [`FieldData::parse_patch`]). The server sends it without an
    /// existence check: the handler answers 404 for a missing item.
    ///
    /// [`FieldData::parse_patch`]: super::FieldData::parse_patch
    Patch,
    /// `DELETE`, `vault delete`.
    Delete,
    /// `LIST` (or `GET ?list=true`), `vault list`.
    List,
    /// `path-help`: answered by the framework from the path declarations.
    Help,
    /// A lease renewal: dispatched to [`SecretType::renew`].
    ///
    /// [`SecretType::renew`]: super::SecretType::renew
    Renew,
    /// A lease revocation: dispatched to [`SecretType::revoke`].
    ///
    /// [`SecretType::revoke`]: super::SecretType::revoke
    Revoke,
    /// The server's periodic tick (about once a minute): the WAL rollback,
    /// then periodic tasks.
    Rollback,
    /// OpenBao 2.7 asks this before every request; no answer is a fine answer.
    ResolvePath,
    /// An operation this SDK does not know (answered 405).
    Other(String),
}

impl Operation {
    /// The operation named by the wire string (`read`, `update`, ...).
    pub fn parse(s: &str) -> Self {
        match s {
            "create" => Self::Create,
            "read" => Self::Read,
            "update" => Self::Update,
            "patch" => Self::Patch,
            "delete" => Self::Delete,
            "list" => Self::List,
            "help" => Self::Help,
            "renew" => Self::Renew,
            "revoke" => Self::Revoke,
            "rollback" => Self::Rollback,
            "resolve-path" => Self::ResolvePath,
            other => Self::Other(other.to_string()),
        }
    }

    /// The wire string, the inverse of [`Operation::parse`].
    pub fn as_str(&self) -> &str {
        match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::List => "list",
            Self::Help => "help",
            Self::Renew => "renew",
            Self::Revoke => "revoke",
            Self::Rollback => "rollback",
            Self::ResolvePath => "resolve-path",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request from the host, with the mount's storage and system view.
#[derive(Clone)]
pub struct Request {
    /// What the caller asks for.
    pub operation: Operation,
    /// Path relative to the mount (`roles/dev`).
    pub path: String,
    /// The host's request id (empty for internal requests).
    pub id: String,
    /// Where the engine is mounted (`secrets/`), empty for internal
    /// requests.
    pub mount_point: String,
    /// The caller token's display name (`userpass-alice`), for attribution
    /// and logs; not an identity to authorise on.
    pub display_name: String,
    /// The identity entity of the caller's token; empty for tokens without
    /// one (a root token) and for internal requests.
    pub entity_id: String,
    /// The raw JSON body.
    pub data: Map<String, Value>,
    /// Validated body and path fields (filled by the router).
    pub fields: FieldData,
    /// The lease being renewed or revoked.
    pub secret: Option<Secret>,
    /// The mount's storage (read-only on a standby).
    pub storage: Arc<dyn Storage>,
    /// The server's answers about the mount, the node and the caller's
    /// identity.
    pub system: Arc<dyn SystemView>,
}

impl Request {
    /// A request with no body, caller or lease: what the runtime starts
    /// from, and what tests build.
    pub fn new(
        operation: Operation,
        path: impl Into<String>,
        storage: Arc<dyn Storage>,
        system: Arc<dyn SystemView>,
    ) -> Self {
        Self {
            operation,
            path: path.into(),
            id: String::new(),
            mount_point: String::new(),
            display_name: String::new(),
            entity_id: String::new(),
            data: Map::new(),
            fields: FieldData::default(),
            secret: None,
            storage,
            system,
        }
    }

    /// Sets the raw body; anything but a JSON object is ignored.
    pub fn with_data(mut self, data: Value) -> Self {
        if let Value::Object(map) = data {
            self.data = map;
        }
        self
    }
}

impl fmt::Debug for Request {
    // Bodies may hold credentials: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
