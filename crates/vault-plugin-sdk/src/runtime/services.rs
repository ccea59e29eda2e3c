//! The small services every plugin serves next to the backend.

use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::proto::logical;
use crate::proto::plugin;
use crate::proto::pluginutil::multiplexing;

/// `logical.PluginVersion`: the host checks it against `-version`, which it
/// canonicalises with a leading `v`.
pub(super) struct Version;

#[tonic::async_trait]
impl logical::plugin_version_server::PluginVersion for Version {
    async fn version(
        &self,
        _: Request<logical::Empty>,
    ) -> Result<Response<logical::VersionReply>, Status> {
        Ok(Response::new(logical::VersionReply {
            plugin_version: super::plugin().version.into(),
        }))
    }
}

/// `plugin.GRPCController`: the host's polite way to stop us.
pub(super) struct Controller(pub watch::Sender<bool>);

#[tonic::async_trait]
impl plugin::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _: Request<plugin::Empty>) -> Result<Response<plugin::Empty>, Status> {
        tracing::debug!("shutdown requested by the server");
        let _ = self.0.send(true);
        Ok(Response::new(plugin::Empty {}))
    }
}

/// `plugin.GRPCStdio`: hosts discard this data anyway; an endless empty
/// stream keeps them quiet.
pub(super) struct Stdio;

#[tonic::async_trait]
impl plugin::grpc_stdio_server::GrpcStdio for Stdio {
    async fn stream_stdio(
        &self,
        _: Request<()>,
    ) -> Result<Response<tonic::codegen::BoxStream<plugin::StdioData>>, Status> {
        Ok(Response::new(Box::pin(futures_util::stream::pending())))
    }
}

/// One process per mount: simpler isolation, and what every host supports.
pub(super) struct Multiplexing;

#[tonic::async_trait]
impl multiplexing::plugin_multiplexing_server::PluginMultiplexing for Multiplexing {
    async fn multiplexing_support(
        &self,
        _: Request<multiplexing::MultiplexingSupportRequest>,
    ) -> Result<Response<multiplexing::MultiplexingSupportResponse>, Status> {
        Ok(Response::new(multiplexing::MultiplexingSupportResponse {
            supported: false,
        }))
    }
}
