//! vault-plugin-secrets-litellm: a HashiCorp Vault / OpenBao secrets engine
//! that issues LiteLLM proxy virtual keys as leases.
//!
//! A tour of the layout:
//!
//! * `crates/vault-plugin-sdk`: the plugin protocol ([`runtime`]) and what
//!   an engine is written against ([`framework`]); it knows no engine and is
//!   re-exported here under the same names.
//! * [`litellm`]: a small client for the LiteLLM proxy's key management API.
//! * [`engine`]: the secrets engine itself, one module per path family
//!   (`config`, `roles`, `creds`, `keys`, `usage`, `tidy`, `rotation` for
//!   `rotate-root`, `static_roles`) plus the lease (`key_secret`), the record
//!   of what was issued (`inventory`), where keys live (`proxy`), who they
//!   are for (`attribution`), what a request may narrow (`narrowing`), the
//!   rollback, revokes that failed and are finished on the server's tick
//!   (`unfinished_revokes`), and small helpers (`clock`, `cron` for rotation
//!   schedules).
//!
//! `main.rs` hands [`engine::factory`] and [`PLUGIN`] to [`runtime::serve`],
//! and makes the SDK's `alloc::CachingSystem` the global allocator.

pub use vault_plugin_sdk::{framework, proto, runtime};

pub mod engine;
pub mod litellm;

/// What the plugin says about itself: name, version, and what a person who
/// runs the binary by hand reads.
pub const PLUGIN: runtime::PluginInfo = runtime::PluginInfo {
    name: "vault-plugin-secrets-litellm",
    version: concat!("v", env!("CARGO_PKG_VERSION")),
    usage: "\
This binary is a plugin for HashiCorp Vault and OpenBao; it is started by the
server, not by hand. To use it:

  1. copy it into the server's plugin_directory
  2. register it with its sha256 and version:
       SHA=$(sha256sum vault-plugin-secrets-litellm | cut -d' ' -f1)
       bao plugin register -sha256=$SHA -version={VERSION} \\
           -command=vault-plugin-secrets-litellm secret litellm
     (the same with `vault` instead of `bao`)
  3. enable and configure it:
       bao secrets enable -path=litellm litellm
       bao write litellm/config base_url=http://127.0.0.1:4000 admin_key=sk-...

Run with --version to print the version.",
};
