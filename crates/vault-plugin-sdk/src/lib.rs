//! Write HashiCorp Vault and OpenBao secrets-engine plugins in Rust.
//!
//! Two layers, each usable without knowing the other's insides:
//!
//! * [`runtime`]: serving the servers' external-plugin protocol: the
//!   environment checks and the handshake line, AutoMTLS with pinned
//!   certificates, the connection broker, the gRPC services (Backend,
//!   PluginVersion, Controller, health), hclog logging and the process
//!   lifecycle. [`runtime::serve`] is all a `main` calls.
//! * [`framework`]: what an engine is written against: a [`framework::Backend`]
//!   of [`framework::Path`]s with field schemas, typed requests and
//!   responses, leased secrets and the TTL math the server applies, storage,
//!   the write-ahead log and its rollback, periodic tasks, and the caller's
//!   identity (entity, groups, identity templates).
//! * [`alloc`]: [`alloc::CachingSystem`], a global allocator for the plugin
//!   binary: the system's, with a small bounded cache of freed buffers (musl's
//!   allocator otherwise maps and unmaps pages for a request's buffers).
//! * [`proto`]: the wire protocol, generated at build time from `proto/`
//!   (our own `.proto` files, compiled by protox: no system `protoc`).
//!
//! A whole engine (`examples/notes.rs` is a fuller one):
//!
//! ```no_run
//! use std::sync::Arc;
//! use vault_plugin_sdk::framework::{callback, Backend, Operation, Path, Request, Response, Result};
//! use vault_plugin_sdk::runtime::{serve, PluginInfo};
//!
//! async fn hello(_: Arc<()>, _: Request) -> Result<Option<Response>> {
//!     let mut data = serde_json::Map::new();
//!     data.insert("hello".into(), "world".into());
//!     Ok(Some(Response::with_data(data)))
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let info = PluginInfo { name: "hello", version: "v0.1.0", usage: "a plugin that says hello" };
//!     serve(info, Arc::new(|_options| {
//!         let state = Arc::new(());
//!         Ok(Backend::new("Says hello.").path(
//!             Path::new("hello").on(Operation::Read, callback(&state, hello)).help("Hello.", "Says hello."),
//!         ))
//!     }))
//! }
//! ```

pub mod alloc;
pub mod framework;
pub mod runtime;

/// Code generated from `proto/` by `build.rs`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    pub mod pb {
        tonic::include_proto!("pb");
    }
    pub mod logical {
        tonic::include_proto!("logical");
    }
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
    pub mod pluginutil {
        pub mod multiplexing {
            tonic::include_proto!("pluginutil.multiplexing");
        }
    }
}
