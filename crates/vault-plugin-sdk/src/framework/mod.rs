//! What an engine is written against: typed requests and responses, paths
//! with field schemas, leased secrets, storage (and values cached from it)
//! and the WAL. Nothing here knows about the wire protocol or about any
//! particular engine.

pub mod backend;
pub mod cache;
pub mod error;
pub mod field;
pub mod identity;
pub mod lease;
pub mod openapi;
pub mod path;
pub mod request;
pub mod response;
pub mod storage;
pub mod wal;

pub use backend::{Backend, PeriodicTask, SecretType, SpecialPaths, WalRollback};
pub use cache::StorageCache;
pub use error::{BoxError, Error, Result};
pub use field::{Field, FieldData, FieldType};
pub use identity::{Entity, EntityAlias, Group, Template};
pub use lease::{calculate_ttl, Secret, TtlGrant, TtlRequest};
pub use path::{callback, Callback, Handler, OperationProperties, Path};
pub use request::{Operation, Request};
pub use response::Response;
pub use storage::{Storage, SystemView};
