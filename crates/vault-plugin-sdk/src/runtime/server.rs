//! The listener and the process lifecycle.
//!
//! The plugin must never outlive its server: it exits on
//! `GRPCController.Shutdown`, on SIGTERM (also sent by the kernel when the
//! parent dies, see `mod.rs`), when no authenticated connection arrives
//! in time (a host whose gRPC setup failed may simply forget us), and soon
//! after its mount's `Setup` failed (OpenBao forgets such a process). The
//! socket file is removed on every exit path.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::transport::Server;

use super::backend_service::{BackendService, Factory};
use super::broker::{Broker, BrokerService};
use super::handshake::{handshake_line, HostEnv};
use super::host::MAX_MESSAGE_SIZE;
use super::services::{Controller, Multiplexing, Stdio, Version};
use super::unix_conn::UnixConn;
use super::{tls, RuntimeError};
use crate::proto::logical::plugin_version_server::PluginVersionServer;
use crate::proto::pb::backend_server::BackendServer;
use crate::proto::plugin::grpc_broker_server::GrpcBrokerServer;
use crate::proto::plugin::grpc_controller_server::GrpcControllerServer;
use crate::proto::plugin::grpc_stdio_server::GrpcStdioServer;
use crate::proto::pluginutil::multiplexing::plugin_multiplexing_server::PluginMultiplexingServer;

/// A host that has not connected by then is not coming (go-plugin's own
/// start timeout is 60 s).
const FIRST_CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The host SIGKILLs 2 s after Shutdown; leave well before that.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// Where the socket lives, for the panic hook.
static SOCKET_PATH: OnceLock<PathBuf> = OnceLock::new();

/// Removes the socket file when dropped.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Says why in an hclog line (the server shows a plain text line only at
/// debug level, so an operator would see nothing but the plugin's exit) and
/// removes the socket when the panic ends the process: where it only ends
/// a task (unwinding builds), the server may still reconnect to it.
pub(super) fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        super::log::emit(
            &tracing::Level::ERROR,
            &format!("plugin panicked: {message}"),
            &[("at", &location)],
        );
        if cfg!(panic = "abort") {
            if let Some(path) = SOCKET_PATH.get() {
                let _ = std::fs::remove_file(path);
            }
        }
        default(info);
    }));
}

/// A TLS connection whose client presented the pinned host certificate.
struct HostConnection(TlsStream<UnixConn>);

impl Connected for HostConnection {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for HostConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for HostConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

fn socket_path(host: &HostEnv) -> PathBuf {
    let dir = host
        .socket_dir
        .clone()
        .or_else(|| std::env::var("TMPDIR").ok().filter(|d| !d.is_empty()))
        .unwrap_or_else(|| "/tmp".into());
    let n: u64 = rand::rng().random_range(0..10_000_000_000);
    Path::new(&dir).join(format!("plugin{n}"))
}

/// For Vault's containerised plugins: let the host's group reach the socket.
fn apply_socket_group(path: &Path, group: &str) -> Result<(), RuntimeError> {
    let gid = match group.parse::<u32>() {
        Ok(gid) => gid,
        Err(_) => {
            let name =
                std::ffi::CString::new(group).map_err(|e| RuntimeError::Start(e.to_string()))?;
            super::sys::group_id(&name).ok_or_else(|| {
                RuntimeError::Start(format!("PLUGIN_UNIX_SOCKET_GROUP: no group {group:?}"))
            })?
        }
    };
    std::os::unix::fs::chown(path, None, Some(gid))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(())
}

/// Serves the plugin until the host lets it go.
pub(super) async fn run(host: HostEnv, factory: Factory) -> Result<(), RuntimeError> {
    let identity = tls::Identity::generate()?;
    let host_cert = tls::parse_host_cert(&host.client_cert_pem)?;
    let acceptor = TlsAcceptor::from(tls::server_config(&identity, &host_cert)?);
    let client_tls = tls::client_config(&identity, &host_cert)?;

    let path = socket_path(&host);
    let listener = UnixListener::bind(&path)?;
    let _socket = SocketFile(path.clone());
    let _ = SOCKET_PATH.set(path.clone());
    if let Some(group) = &host.socket_group {
        apply_socket_group(&path, group)?;
    }

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let authenticated = Arc::new(AtomicBool::new(false));
    let (conn_tx, conn_rx) = mpsc::channel::<Result<HostConnection, std::io::Error>>(4);
    tokio::spawn(accept_loop(
        listener,
        acceptor,
        conn_tx,
        Arc::clone(&authenticated),
    ));
    // Registered before the handshake line: a SIGTERM right after it must
    // already find the handler (the default action would leave the socket).
    let terminate = signal(SignalKind::terminate())?;
    tokio::spawn(watch_signals(terminate, stop_tx.clone()));
    tokio::spawn(first_connection_deadline(
        Arc::clone(&authenticated),
        stop_tx.clone(),
    ));

    let broker = Arc::new(Broker::default());
    let backend = BackendServer::new(BackendService::new(
        factory,
        Arc::clone(&broker),
        client_tls,
        stop_tx.clone(),
    ))
    .max_decoding_message_size(MAX_MESSAGE_SIZE)
    .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;

    let router = Server::builder()
        .add_service(backend)
        .add_service(PluginVersionServer::new(Version))
        .add_service(GrpcBrokerServer::new(BrokerService(broker)))
        .add_service(GrpcControllerServer::new(Controller(stop_tx)))
        .add_service(GrpcStdioServer::new(Stdio))
        .add_service(PluginMultiplexingServer::new(Multiplexing))
        .add_service(health);

    // Only now is the socket ready: tell the host where it is.
    let line = handshake_line(&path, identity.cert.as_ref());
    {
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_bytes())?;
        out.flush()?;
    }
    tracing::debug!(socket = %path.display(), openbao = host.openbao, "plugin serving");

    let mut stopping = stop_rx.clone();
    let stopped = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    let server = router.serve_with_incoming_shutdown(ReceiverStream::new(conn_rx), stopped);
    tokio::select! {
        result = server => result?,
        // Connections the host keeps open must not hold the exit hostage.
        _ = async {
            let _ = stop_rx.wait_for(|s| *s).await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => {}
    }
    tracing::debug!("plugin exiting");
    Ok(())
}

async fn accept_loop(
    listener: UnixListener,
    acceptor: TlsAcceptor,
    connections: mpsc::Sender<Result<HostConnection, std::io::Error>>,
    authenticated: Arc<AtomicBool>,
) {
    loop {
        let socket = match listener
            .accept()
            .await
            .and_then(|(s, _)| UnixConn::from_tokio(s))
        {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let connections = connections.clone();
        let authenticated = Arc::clone(&authenticated);
        tokio::spawn(async move {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                Ok(Ok(tls)) => {
                    authenticated.store(true, Ordering::SeqCst);
                    let _ = connections.send(Ok(HostConnection(tls))).await;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "refused a connection: TLS handshake failed")
                }
                Err(_) => tracing::warn!("refused a connection: TLS handshake timed out"),
            }
        });
    }
}

async fn watch_signals(mut terminate: tokio::signal::unix::Signal, stop: watch::Sender<bool>) {
    terminate.recv().await;
    tracing::debug!("SIGTERM received");
    let _ = stop.send(true);
}

async fn first_connection_deadline(authenticated: Arc<AtomicBool>, stop: watch::Sender<bool>) {
    tokio::time::sleep(FIRST_CONNECTION_TIMEOUT).await;
    if !authenticated.load(Ordering::SeqCst) {
        tracing::warn!("no authenticated connection from the server; exiting");
        let _ = stop.send(true);
    }
}
