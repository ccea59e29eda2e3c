//! vault-plugin-secrets-litellm: a HashiCorp Vault / OpenBao secrets engine
//! that issues LiteLLM proxy virtual keys as leases.
//!
//! A tour of the layout, from the wire up:
//!
//! * [`proto`]: the wire protocol, generated at build time from `proto/`.
//! * [`runtime`]: serving that protocol: environment checks and the handshake
//!   line, AutoMTLS with pinned certificates, the connection broker, the gRPC
//!   services, hclog logging and the process lifecycle. Knows no engine.
//! * [`framework`]: what an engine is written against: paths with field
//!   schemas, typed requests and responses, leased secrets and TTL math,
//!   storage and the write-ahead log. Knows no protocol and no engine.
//! * [`litellm`]: a small client for the LiteLLM proxy's key management API.
//! * [`engine`]: the secrets engine itself, one module per path family
//!   (`config`, `roles`, `creds`) plus the lease (`key_secret`) and rollback.
//!
//! `main.rs` hands [`engine::factory`] to [`runtime::serve`].

pub mod engine;
pub mod framework;
pub mod litellm;
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
