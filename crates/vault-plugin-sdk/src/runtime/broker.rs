//! go-plugin's connection broker, non-multiplexed flavour.
//!
//! The host opens `StartStream` and announces, for each `Setup`, the socket
//! where it serves Storage and SystemView (`ConnInfo{service_id = broker_id}`).
//! Announcements and `Setup` race, so `Setup` waits for its id here. The
//! plugin's half of the stream carries nothing but must stay open: closing it
//! closes the host's broker and every later `Setup` fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::UnixStream;
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use super::unix_conn::UnixConn;
use super::RuntimeError;
use crate::proto::plugin::grpc_broker_server::GrpcBroker;
use crate::proto::plugin::ConnInfo;

/// How long `Setup` waits for its connection info (as the Go SDK does).
pub(super) const CONN_INFO_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection infos announced by the host, by service id.
#[derive(Default)]
pub(super) struct Broker {
    announced: Mutex<HashMap<u32, ConnInfo>>,
    arrived: Notify,
}

impl Broker {
    pub(super) fn announce(&self, info: ConnInfo) {
        tracing::debug!(service_id = info.service_id, network = %info.network, "broker: connection info received");
        self.announced.lock().unwrap().insert(info.service_id, info);
        self.arrived.notify_waiters();
    }

    /// Waits until the host announced `service_id`, at most `timeout`.
    pub(super) async fn wait_for(
        &self,
        service_id: u32,
        timeout: Duration,
    ) -> Result<ConnInfo, RuntimeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before looking, so an announcement in between is not missed.
            let arrived = self.arrived.notified();
            if let Some(info) = self.announced.lock().unwrap().get(&service_id) {
                return Ok(info.clone());
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(RuntimeError::Broker(format!(
                    "timeout waiting for connection info for broker id {service_id}"
                )));
            }
        }
    }
}

/// The gRPC face of the broker, sharing its state.
pub(super) struct BrokerService(pub Arc<Broker>);

#[tonic::async_trait]
impl GrpcBroker for BrokerService {
    async fn start_stream(
        &self,
        request: tonic::Request<tonic::Streaming<crate::proto::plugin::ConnInfo>>,
    ) -> Result<tonic::Response<tonic::codegen::BoxStream<ConnInfo>>, tonic::Status> {
        let mut incoming = request.into_inner();
        let broker = Arc::clone(&self.0);
        tokio::spawn(async move {
            while let Some(Ok(info)) = incoming.next().await {
                broker.announce(info);
            }
        });
        Ok(tonic::Response::new(Box::pin(
            futures_util::stream::pending(),
        )))
    }
}

/// Dials a brokered host service with the plugin's TLS identity.
pub(super) async fn dial(
    info: &ConnInfo,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Channel, RuntimeError> {
    if info.network != "unix" {
        return Err(RuntimeError::Broker(format!(
            "unsupported broker network {:?} (only unix sockets are used on Linux)",
            info.network
        )));
    }
    let address = info.address.clone();
    let connector = TlsConnector::from(tls);
    // The URI is a placeholder: the connector ignores it, and the Go server
    // ignores `:authority`. Scheme http so tonic adds no TLS of its own.
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let address = address.clone();
            let connector = connector.clone();
            async move {
                let socket = UnixConn::from_tokio(UnixStream::connect(&address).await?)?;
                let name = ServerName::try_from("localhost").expect("static name");
                let tls = connector.connect(name, socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| RuntimeError::Broker(format!("dialling {}: {e}", info.address)))?;
    Ok(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: u32) -> ConnInfo {
        ConnInfo {
            service_id: id,
            network: "unix".into(),
            address: format!("/tmp/plugin{id}"),
            knock: None,
        }
    }

    #[tokio::test]
    async fn setup_waits_for_a_late_announcement() {
        let broker = Arc::new(Broker::default());
        let b = Arc::clone(&broker);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            b.announce(info(2));
            b.announce(info(1));
        });
        let got = broker.wait_for(1, Duration::from_secs(2)).await.unwrap();
        assert_eq!(got.address, "/tmp/plugin1");
    }

    #[tokio::test]
    async fn early_announcement_is_kept() {
        let broker = Broker::default();
        broker.announce(info(7));
        assert_eq!(
            broker
                .wait_for(7, Duration::from_millis(10))
                .await
                .unwrap()
                .service_id,
            7
        );
    }

    #[tokio::test]
    async fn times_out_with_a_clear_message() {
        let broker = Broker::default();
        let err = broker
            .wait_for(3, Duration::from_millis(20))
            .await
            .unwrap_err();
        assert!(err
            .to_string()
            .contains("timeout waiting for connection info"));
    }
}
