//! The plugin runtime: everything needed to be *any* Vault/OpenBao secrets
//! engine in Rust, and nothing about a particular engine.
//!
//! Start-up order matters: environment checks first (a person running the
//! binary by hand gets an explanation, database probes exit 1), then the
//! parent-death signal, mlock when Vault asks for it, then TLS, the socket
//! and the handshake line.
//!
//! Refusals to start are written as hclog JSON at error level when a server
//! launched us (it shows plain stderr lines only at debug level), and as
//! plain text when stderr is a terminal or no plugin variable is set at all.

mod backend_service;
mod broker;
pub(crate) mod codec;
pub mod handshake;
mod host;
pub mod log;
mod server;
mod services;
mod sys;
pub mod tls;
mod translate;
mod unix_conn;

use std::process::ExitCode;
use std::sync::OnceLock;

pub use backend_service::Factory;

/// What a plugin says about itself; given to [`serve`] by the engine's
/// `main`, so the runtime carries no engine's name.
#[derive(Debug, Clone, Copy)]
pub struct PluginInfo {
    /// The binary's name, e.g. `vault-plugin-secrets-example`. Also names
    /// the engine's crate for logging (Cargo's rule, `-` becomes `_`): that
    /// crate's events are logged at `PLUGIN_LOG_LEVEL` with their module
    /// path as hclog `@module` (see [`log`]), so use the package name.
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

/// Everything that can stop the runtime. New variants may come: match with
/// a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// Started without the host's magic cookie: by hand, most likely.
    #[error("not started by Vault or OpenBao: the magic cookie VAULT_BACKEND_PLUGIN is missing or wrong")]
    NotLaunchedByHost,
    /// The host probed whether this is a database plugin (type detection).
    #[error("this is a secrets engine plugin, not a database plugin")]
    DatabaseProbe,
    /// The host's environment is not one this plugin can serve.
    #[error("{0}")]
    Start(String),
    /// The plugin's certificate or the host's could not be set up.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The host's Storage/SystemView services could not be reached.
    #[error("broker: {0}")]
    Broker(String),
    /// The socket (creating, binding, permissions) or stdio failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The gRPC server stopped with an error.
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
        Err(e) => return refuse_start(name, &e),
    };
    log::init(info.name);
    guard_against_orphaning();
    if host.mlock {
        if let Err(e) = sys::lock_memory() {
            let message = format!(
                "the server asked this plugin to lock its memory ({}=true) and mlockall failed: {e}. {MLOCK_HINT}",
                handshake::MLOCK_ENV
            );
            report(name, &tracing::Level::ERROR, &message);
            return ExitCode::FAILURE;
        }
        tracing::debug!("memory locked (mlockall) as the server asked");
    }
    tls::install_default_provider();
    server::install_panic_hook();
    let runtime = match runtime_builder().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            report(
                name,
                &tracing::Level::ERROR,
                &format!("cannot start the async runtime: {e}"),
            );
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

/// What to do when mlock fails, for the operator reading the server log.
pub const MLOCK_HINT: &str = "Either set `disable_mlock = true` in the Vault server configuration \
(the usual choice with integrated storage), or let the plugin lock memory: \
`setcap cap_ipc_lock=+ep <plugin binary>` (the file's sha256 does not change), \
or run Vault under systemd with AmbientCapabilities=CAP_IPC_LOCK and CAP_IPC_LOCK in \
CapabilityBoundingSet (or LimitMEMLOCK=infinity) so that plugins inherit it.";

/// True when a person is likely reading stderr: it is a terminal, or the
/// environment has none of the variables a launching server sets. The
/// server shows plain stderr lines only at debug level, so anything else
/// gets hclog JSON.
fn human_reader() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
        || !handshake::has_plugin_env(|k| std::env::var_os(k).map(|_| String::new()))
}

/// A start-up problem: plain text for a person, an hclog record for the
/// server (which otherwise hides it at debug level).
///
/// An error is also printed as the only stdout line: a server that launched
/// us to register the plugin reads no stderr (Vault probes with a null
/// logger), but go-plugin quotes a non-handshake first stdout line in the
/// error it returns ("Unrecognized remote plugin message: ..."), so the
/// operator sees the reason in the API answer too.
fn report(name: &str, level: &tracing::Level, message: &str) {
    if human_reader() {
        eprintln!("{name}: {message}");
        return;
    }
    log::emit(
        level,
        message,
        &[("plugin", name), ("version", plugin().version)],
    );
    if *level == tracing::Level::ERROR {
        // No '|': four or more fields would be read as a handshake.
        println!("{name}: {}", message.replace('|', "/"));
        // go-plugin races reading that line against noticing our exit
        // ("plugin exited before we could connect"); give the line a head start.
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Explains why the plugin will not start and returns the exit status (1).
fn refuse_start(name: &str, e: &RuntimeError) -> ExitCode {
    let help = || plugin().usage.replace("{VERSION}", plugin().version);
    match e {
        RuntimeError::NotLaunchedByHost if human_reader() => eprintln!("{}", help()),
        RuntimeError::NotLaunchedByHost => report(
            name,
            &tracing::Level::ERROR,
            &format!("{e}; register and mount the plugin through the server's plugin catalog"),
        ),
        // The server's plugin-type detection tries every binary as a database
        // plugin first: an expected refusal, not worth an error in its log.
        RuntimeError::DatabaseProbe => report(name, &tracing::Level::DEBUG, &e.to_string()),
        _ => report(name, &tracing::Level::ERROR, &e.to_string()),
    }
    ExitCode::FAILURE
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

/// The async runtime. A plugin spends its time waiting on the server and
/// the network, so one thread serves it: with worker threads, most of the
/// plugin's CPU went to waking them (context switches), not to requests.
/// `PLUGIN_WORKER_THREADS=n` asks for a multi-threaded runtime instead.
fn runtime_builder() -> tokio::runtime::Builder {
    match std::env::var("PLUGIN_WORKER_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) if n > 0 => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    }
}
