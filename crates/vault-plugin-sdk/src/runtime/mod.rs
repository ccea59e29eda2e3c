//! The plugin runtime: everything needed to be *any* Vault/OpenBao secrets
//! engine in Rust, and nothing about a particular engine.
//!
//! Start-up order matters: environment checks first (a person running the
//! binary by hand gets an explanation, database probes exit 1), then the
//! parent-death signal, then TLS, the socket and the handshake line.

mod backend_service;
mod broker;
pub mod handshake;
mod host;
pub mod log;
mod server;
mod services;
mod sys;
pub mod tls;
mod translate;

use std::process::ExitCode;
use std::sync::OnceLock;

pub use backend_service::Factory;

/// What a plugin says about itself; given to [`serve`] by the engine's
/// `main`, so the runtime carries no engine's name.
#[derive(Debug, Clone, Copy)]
pub struct PluginInfo {
    /// The binary's name, e.g. `vault-plugin-secrets-example`.
    pub name: &'static str,
    /// What the plugin reports to the server (`PluginVersion`), which the
    /// server compares with the registered `-version`: `v` + semver.
    pub version: &'static str,
    /// Printed when a person runs the binary by hand (or with `--help`);
    /// `{VERSION}` is replaced by `version`.
    pub usage: &'static str,
}

static PLUGIN: OnceLock<PluginInfo> = OnceLock::new();

/// The running plugin's info (unnamed before [`serve`] set it, in tests).
pub(crate) fn plugin() -> PluginInfo {
    PLUGIN.get().copied().unwrap_or(PluginInfo {
        name: "plugin",
        version: "v0.0.0",
        usage: "",
    })
}

/// Everything that can stop the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Started without the host's magic cookie: by hand, most likely.
    #[error("not started by Vault or OpenBao")]
    NotLaunchedByHost,
    /// The host's environment is not one this plugin can serve.
    #[error("{0}")]
    Start(String),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("broker: {0}")]
    Broker(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Runs the plugin: call this from `main` with the plugin's info and the
/// engine's factory.
pub fn serve(info: PluginInfo, factory: Factory) -> ExitCode {
    let _ = PLUGIN.set(info);
    let name = info.name;
    let usage = info.usage.replace("{VERSION}", info.version);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args
        .iter()
        .any(|a| a == "--version" || a == "-version" || a == "-v")
    {
        println!("{name} {}", info.version);
        return ExitCode::SUCCESS;
    }
    if args
        .iter()
        .any(|a| a == "--help" || a == "-h" || a == "-help")
    {
        println!("{usage}");
        return ExitCode::SUCCESS;
    }
    let host = match handshake::HostEnv::from_env() {
        Ok(host) => host,
        Err(RuntimeError::NotLaunchedByHost) => {
            eprintln!("{usage}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::init(info.name);
    guard_against_orphaning();
    if host.mlock {
        if let Err(e) = sys::lock_memory() {
            tracing::error!(error = %e, "mlock requested by the server failed");
            return ExitCode::FAILURE;
        }
    }
    tls::install_default_provider();
    tls::warm_up_rng();
    server::install_panic_hook();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(host, factory)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "plugin failed");
            ExitCode::FAILURE
        }
    }
}

/// Dies with the server: the kernel sends SIGTERM when the parent exits (and
/// SIGTERM stops the plugin cleanly). SIGINT is ignored, like go-plugin does,
/// so a Ctrl-C at the server's terminal lets the server shut us down in order.
fn guard_against_orphaning() {
    sys::die_with_parent();
    // A parent that died before prctl took effect cannot be detected by
    // getppid() == 1 (in a container the server itself may be PID 1); the
    // first-connection deadline covers that case.
}
