//! `pb.Backend`: the host's calls into the engine.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status};

use super::broker::{self, Broker, CONN_INFO_TIMEOUT};
use super::host::{self, GrpcStorage, GrpcSystemView};
use super::translate;
use crate::framework::{Backend, Error, Operation, Request, Storage, SystemView};
use crate::proto::pb;
use crate::proto::pb::backend_server::Backend as BackendRpc;

/// Builds a backend for one mount from its Setup config (mount options plus
/// `plugin_name`, `plugin_version`, ...). An error fails the mount, at every
/// reload and restart too: for options it cannot use, a factory sets
/// [`Backend::unusable_options`] instead and falls back to its defaults.
pub type Factory = Arc<dyn Fn(&HashMap<String, String>) -> Result<Backend, String> + Send + Sync>;

/// The mount, as built by `Setup`.
struct Mount {
    backend: Backend,
    storage: Arc<dyn Storage>,
    system: Arc<dyn SystemView>,
}

pub(super) struct BackendService {
    factory: Factory,
    broker: Arc<Broker>,
    tls: Arc<rustls::ClientConfig>,
    mount: Arc<RwLock<Option<Arc<Mount>>>>,
    /// Stops the process (see `server::run`).
    stop: watch::Sender<bool>,
}

/// Backend type reported to the host: 1 = secrets engine.
const TYPE_LOGICAL: u32 = 1;

/// How long a process whose `Setup` failed waits before it exits: time for
/// the host to read the answer. A process serves one mount, so it has
/// nothing left to do; Vault kills it, OpenBao forgets it running.
const FAILED_SETUP_EXIT_AFTER: Duration = Duration::from_secs(2);

impl BackendService {
    pub(super) fn new(
        factory: Factory,
        broker: Arc<Broker>,
        tls: Arc<rustls::ClientConfig>,
        stop: watch::Sender<bool>,
    ) -> Self {
        Self {
            factory,
            broker,
            tls,
            mount: Arc::default(),
            stop,
        }
    }

    fn mount(&self) -> Result<Arc<Mount>, Error> {
        self.mount
            .read()
            .unwrap()
            .clone()
            .ok_or_else(|| Error::Internal("plugin backend is not set up".into()))
    }

    /// The mount and the framework request for a wire request.
    fn prepare(&self, wire: Option<pb::Request>) -> Result<(Arc<Mount>, Request), Error> {
        let mount = self.mount()?;
        let wire = wire.ok_or_else(|| Error::invalid("empty request"))?;
        let mut req = Request::new(
            Operation::parse(&wire.operation),
            wire.path,
            Arc::clone(&mount.storage),
            Arc::clone(&mount.system),
        );
        req.id = wire.id;
        req.mount_point = wire.mount_point;
        req.display_name = wire.display_name;
        req.entity_id = wire.entity_id;
        req.data = translate::json_object(&wire.data, "request body")?;
        req.secret = wire
            .secret
            .as_ref()
            .map(translate::secret_from_wire)
            .transpose()?;
        Ok((mount, req))
    }
}

fn log_outcome(
    op: &str,
    path: &str,
    host_calls: u32,
    started: Instant,
    result: &Result<impl Sized, Error>,
) {
    match result {
        Ok(_) => tracing::debug!(
            operation = op,
            path,
            host_calls,
            elapsed_us = started.elapsed().as_micros() as u64,
            "request handled"
        ),
        // The read-only answer on a standby is how the server forwards a
        // write to the active node: routine, not a failure.
        Err(Error::ReadOnly) => {
            tracing::debug!(
                operation = op,
                path,
                "read-only here: the server forwards it"
            )
        }
        Err(e) if e.status() >= 500 => {
            tracing::error!(operation = op, path, error = %e, "request failed")
        }
        Err(e) => {
            tracing::debug!(operation = op, path, error = %e, status = e.status(), "request refused")
        }
    }
}

/// What a request's log lines name it by.
fn operation_and_path(wire: Option<&pb::Request>) -> (String, String) {
    wire.map(|r| (r.operation.clone(), r.path.clone()))
        .unwrap_or_default()
}

/// Logs a request dropped before it finished.
struct CancelWarning<'a> {
    operation: &'a str,
    path: &'a str,
    started: Instant,
    finished: bool,
}

impl Drop for CancelWarning<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        tracing::warn!(
            operation = self.operation,
            path = self.path,
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "request cancelled before it finished (the server's deadline, or its client went away)"
        );
    }
}

#[tonic::async_trait]
impl BackendRpc for BackendService {
    async fn setup(
        &self,
        request: GrpcRequest<pb::SetupArgs>,
    ) -> Result<GrpcResponse<pb::SetupReply>, Status> {
        let args = request.into_inner();
        let result: Result<(), String> = async {
            let info = self
                .broker
                .wait_for(args.broker_id, CONN_INFO_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            let channel = broker::dial(&info, Arc::clone(&self.tls))
                .await
                .map_err(|e| e.to_string())?;
            // No storage calls here (at registration time the host has
            // none) unless the options are unusable, which they never are
            // then: the registration probe sends none.
            let backend = (self.factory)(&args.config)?;
            let storage = Arc::new(GrpcStorage::new(channel.clone()));
            if let Some(problem) = &backend.unusable_options {
                // A mount with data was working: keep it working (see
                // `Backend::unusable_options`). An empty one is new.
                match storage.list("").await {
                    Ok(keys) if !keys.is_empty() => tracing::error!(
                        problem = %problem,
                        "mount options ignored: the mount runs on the defaults until they are fixed"
                    ),
                    _ => return Err(problem.clone()),
                }
            }
            let mount = Mount {
                backend,
                storage,
                system: Arc::new(GrpcSystemView::new(channel)),
            };
            *self.mount.write().unwrap() = Some(Arc::new(mount));
            Ok(())
        }
        .await;
        match &result {
            Ok(()) => tracing::debug!(broker_id = args.broker_id, "backend set up"),
            Err(e) => {
                tracing::error!(broker_id = args.broker_id, error = %e, "backend setup failed");
                let (mount, stop) = (Arc::clone(&self.mount), self.stop.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(FAILED_SETUP_EXIT_AFTER).await;
                    if mount.read().unwrap().is_none() {
                        tracing::debug!("exiting: this process's mount failed to set up");
                        let _ = stop.send(true);
                    }
                });
            }
        }
        Ok(GrpcResponse::new(pb::SetupReply {
            err: result.err().unwrap_or_default(),
        }))
    }

    async fn r#type(
        &self,
        _: GrpcRequest<pb::Empty>,
    ) -> Result<GrpcResponse<pb::TypeReply>, Status> {
        Ok(GrpcResponse::new(pb::TypeReply {
            r#type: TYPE_LOGICAL,
        }))
    }

    async fn special_paths(
        &self,
        _: GrpcRequest<pb::Empty>,
    ) -> Result<GrpcResponse<pb::SpecialPathsReply>, Status> {
        let paths = self.mount().ok().map(|m| {
            let s = &m.backend.special_paths;
            pb::Paths {
                root: s.root.clone(),
                unauthenticated: s.unauthenticated.clone(),
                local_storage: s.local_storage.clone(),
                seal_wrap_storage: s.seal_wrap_storage.clone(),
                ..Default::default()
            }
        });
        Ok(GrpcResponse::new(pb::SpecialPathsReply { paths }))
    }

    async fn initialize(
        &self,
        _: GrpcRequest<pb::InitializeArgs>,
    ) -> Result<GrpcResponse<pb::InitializeReply>, Status> {
        Ok(GrpcResponse::new(pb::InitializeReply { err: None }))
    }

    async fn handle_request(
        &self,
        request: GrpcRequest<pb::HandleRequestArgs>,
    ) -> Result<GrpcResponse<pb::HandleRequestReply>, Status> {
        let started = Instant::now();
        let wire = request.into_inner().request;
        let (op, path) = operation_and_path(wire.as_ref());
        // The server's deadline (grpc-timeout) drops this future mid-way:
        // say so, or a request cut off after a side effect leaves no trace.
        let mut guard = CancelWarning {
            operation: &op,
            path: &path,
            started,
            finished: false,
        };
        let (result, host_calls) = match self.prepare(wire) {
            Ok((mount, req)) => host::count_host_calls(mount.backend.handle(req)).await,
            Err(e) => (Err(e), 0),
        };
        guard.finished = true;
        log_outcome(&op, &path, host_calls, started, &result);
        let reply = match result {
            Ok(response) => pb::HandleRequestReply {
                response: response.as_ref().map(translate::response_to_wire),
                err: None,
            },
            Err(e) => {
                let (response, err) = translate::error_to_wire(&e, &op);
                pb::HandleRequestReply {
                    response,
                    err: Some(err),
                }
            }
        };
        Ok(GrpcResponse::new(reply))
    }

    async fn handle_existence_check(
        &self,
        request: GrpcRequest<pb::HandleExistenceCheckArgs>,
    ) -> Result<GrpcResponse<pb::HandleExistenceCheckReply>, Status> {
        let wire = request.into_inner().request;
        let (op, path) = operation_and_path(wire.as_ref());
        let result = match self.prepare(wire) {
            Ok((mount, req)) => mount.backend.existence_check(req).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::warn!(operation = op, path, error = %e, "existence check failed");
        }
        let reply = match result {
            Ok((check_found, exists)) => pb::HandleExistenceCheckReply {
                check_found,
                exists,
                err: None,
            },
            Err(e) => pb::HandleExistenceCheckReply {
                check_found: false,
                exists: false,
                err: Some(translate::error_to_wire(&e, &op).1),
            },
        };
        Ok(GrpcResponse::new(reply))
    }

    async fn cleanup(&self, _: GrpcRequest<pb::Empty>) -> Result<GrpcResponse<pb::Empty>, Status> {
        // Dropping the mount closes the brokered connection.
        if let Some(mount) = self.mount.write().unwrap().take() {
            mount.backend.clean_up();
        }
        tracing::debug!("backend cleaned up");
        Ok(GrpcResponse::new(pb::Empty {}))
    }

    async fn invalidate_key(
        &self,
        request: GrpcRequest<pb::InvalidateKeyArgs>,
    ) -> Result<GrpcResponse<pb::Empty>, Status> {
        let key = request.into_inner().key;
        if let Ok(mount) = self.mount() {
            tracing::debug!(key = %key, "storage key invalidated");
            mount.backend.invalidate_key(&key);
        }
        Ok(GrpcResponse::new(pb::Empty {}))
    }
}
