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
pub mod tls;
mod translate;

use std::process::ExitCode;

pub use backend_service::Factory;
pub use services::VERSION;

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

/// Runs the plugin: call this from `main` with the engine's factory.
pub fn serve(name: &str, factory: Factory) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args
        .iter()
        .any(|a| a == "--version" || a == "-version" || a == "-v")
    {
        println!("{name} {VERSION}");
        return ExitCode::SUCCESS;
    }
    if args
        .iter()
        .any(|a| a == "--help" || a == "-h" || a == "-help")
    {
        println!(
            "{}",
            handshake::MANUAL_START_HELP.replace("{VERSION}", env!("CARGO_PKG_VERSION"))
        );
        return ExitCode::SUCCESS;
    }
    let host = match handshake::HostEnv::from_env() {
        Ok(host) => host,
        Err(RuntimeError::NotLaunchedByHost) => {
            eprintln!(
                "{}",
                handshake::MANUAL_START_HELP.replace("{VERSION}", env!("CARGO_PKG_VERSION"))
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::init();
    guard_against_orphaning();
    if host.mlock {
        // SAFETY: mlockall has no memory-safety preconditions.
        if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
            tracing::error!(error = %std::io::Error::last_os_error(), "mlock requested by the server failed");
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
    // SAFETY: plain syscalls with constant arguments.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    // A parent that died before prctl took effect cannot be detected by
    // getppid() == 1 (in a container the server itself may be PID 1); the
    // first-connection deadline covers that case.
}
