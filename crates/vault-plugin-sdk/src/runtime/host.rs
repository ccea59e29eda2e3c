//! The host's Storage and SystemView services, dialled through the broker,
//! behind the framework's traits.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use tonic::transport::Channel;

use crate::framework::{Entity, EntityAlias, Error, Group, Result, Storage, SystemView};
use crate::proto::pb;
use crate::proto::pb::storage_client::StorageClient;
use crate::proto::pb::system_view_client::SystemViewClient;

tokio::task_local! {
    /// Calls to the host made by the request being handled on this task.
    static HOST_CALLS: Cell<u32>;
}

/// Runs one request's handler and counts its calls to the host (storage and
/// system view): what a request costs in round trips, for the debug log.
/// Calls from tasks the handler spawns are not counted.
///
/// A combinator, not an `async fn`: an async fn (or block) that awaits a
/// future it was given keeps it twice in its state, and this state lives as
/// long as the request. With a few hundred revocations queued by a
/// `revoke-prefix`, that was megabytes.
pub(super) fn count_host_calls<F: Future>(handler: F) -> impl Future<Output = (F::Output, u32)> {
    // The closure runs inside the scope: in the poll that finished `handler`.
    HOST_CALLS.scope(
        Cell::new(0),
        handler.map(|output| (output, HOST_CALLS.with(Cell::get))),
    )
}

fn count_call() {
    let _ = HOST_CALLS.try_with(|calls| calls.set(calls.get() + 1));
}

/// The host allows 2 GiB messages; tonic's default is 4 MiB.
pub(super) const MAX_MESSAGE_SIZE: usize = i32::MAX as usize;

pub(super) struct GrpcStorage {
    client: StorageClient<Channel>,
    /// Set once the server answered that it has no `ListPage` (Vault).
    no_list_page: AtomicBool,
}

impl GrpcStorage {
    /// The client for one call, counted (see [`count_host_calls`]).
    fn rpc(&self) -> StorageClient<Channel> {
        count_call();
        self.client.clone()
    }

    pub(super) fn new(channel: Channel) -> Self {
        Self {
            client: StorageClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
            no_list_page: AtomicBool::new(false),
        }
    }
}

fn transport(status: tonic::Status) -> Error {
    Error::Storage(status.message().to_string())
}

/// Application errors come back in the reply's `err` string; a standby's
/// refusal to write is [`Error::ReadOnly`] (the same text, on which the
/// server forwards the request).
fn reply_err(err: String) -> Result<()> {
    if err.is_empty() {
        Ok(())
    } else if err == Error::ReadOnly.to_string() {
        Err(Error::ReadOnly)
    } else {
        Err(Error::Storage(err))
    }
}

#[async_trait]
impl Storage for GrpcStorage {
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let args = pb::StorageListArgs {
            prefix: prefix.into(),
            ..Default::default()
        };
        let reply = self.rpc().list(args).await.map_err(transport)?.into_inner();
        reply_err(reply.err)?;
        Ok(reply.keys)
    }

    async fn list_page(&self, prefix: &str, after: &str, limit: usize) -> Result<Vec<String>> {
        if !self.no_list_page.load(Ordering::Relaxed) {
            let args = pb::StorageListPageArgs {
                prefix: prefix.into(),
                after: after.into(),
                // The server takes 0 or less as "no limit".
                limit: i32::try_from(limit).unwrap_or(i32::MAX).max(1),
                ..Default::default()
            };
            match self.rpc().list_page(args).await {
                Ok(reply) => {
                    let reply = reply.into_inner();
                    reply_err(reply.err)?;
                    return Ok(reply.keys);
                }
                Err(status) if status.code() == tonic::Code::Unimplemented => {
                    self.no_list_page.store(true, Ordering::Relaxed);
                }
                Err(status) => return Err(transport(status)),
            }
        }
        let all = self.list(prefix).await?;
        Ok(crate::framework::storage::page_of(all, after, limit))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let args = pb::StorageGetArgs {
            key: key.into(),
            ..Default::default()
        };
        let reply = self.rpc().get(args).await.map_err(transport)?.into_inner();
        reply_err(reply.err)?;
        Ok(reply.entry.map(|e| e.value))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let args = pb::StoragePutArgs {
            entry: Some(pb::StorageEntry {
                key: key.into(),
                value,
                seal_wrap: false,
            }),
            ..Default::default()
        };
        let reply = self.rpc().put(args).await.map_err(transport)?.into_inner();
        reply_err(reply.err)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let args = pb::StorageDeleteArgs {
            key: key.into(),
            ..Default::default()
        };
        let reply = self
            .rpc()
            .delete(args)
            .await
            .map_err(transport)?
            .into_inner();
        reply_err(reply.err)
    }
}

pub(super) struct GrpcSystemView(SystemViewClient<Channel>);

impl GrpcSystemView {
    /// The client for one call, counted (see [`count_host_calls`]).
    fn rpc(&self) -> SystemViewClient<Channel> {
        count_call();
        self.0.clone()
    }

    pub(super) fn new(channel: Channel) -> Self {
        Self(
            SystemViewClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
    }
}

fn nanos(ns: i64) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

#[async_trait]
impl SystemView for GrpcSystemView {
    async fn default_lease_ttl(&self) -> Result<Duration> {
        let reply = self
            .rpc()
            .default_lease_ttl(pb::Empty {})
            .await
            .map_err(transport)?;
        Ok(nanos(reply.into_inner().ttl))
    }

    async fn max_lease_ttl(&self) -> Result<Duration> {
        let reply = self
            .rpc()
            .max_lease_ttl(pb::Empty {})
            .await
            .map_err(transport)?;
        Ok(nanos(reply.into_inner().ttl))
    }

    async fn tainted(&self) -> Result<bool> {
        let reply = self.rpc().tainted(pb::Empty {}).await.map_err(transport)?;
        Ok(reply.into_inner().tainted)
    }

    async fn replication_state(&self) -> Result<u32> {
        let reply = self
            .rpc()
            .replication_state(pb::Empty {})
            .await
            .map_err(transport)?;
        Ok(u32::try_from(reply.into_inner().state).unwrap_or(0))
    }

    async fn local_mount(&self) -> Result<bool> {
        let reply = self
            .rpc()
            .local_mount(pb::Empty {})
            .await
            .map_err(transport)?;
        Ok(reply.into_inner().local)
    }

    async fn entity_info(&self, entity_id: &str) -> Result<Option<Entity>> {
        let reply = self
            .rpc()
            .entity_info(pb::EntityInfoArgs {
                entity_id: entity_id.into(),
            })
            .await
            .map_err(transport)?
            .into_inner();
        reply_err(reply.err)?;
        Ok(reply.entity.map(|e| Entity {
            id: e.id,
            name: e.name,
            aliases: e
                .aliases
                .into_iter()
                .map(|a| EntityAlias {
                    mount_accessor: a.mount_accessor,
                    mount_type: a.mount_type,
                    name: a.name,
                    metadata: a.metadata.into_iter().collect(),
                })
                .collect(),
            metadata: e.metadata.into_iter().collect(),
            disabled: e.disabled,
            namespace_id: e.namespace_id,
        }))
    }

    async fn groups_for_entity(&self, entity_id: &str) -> Result<Vec<Group>> {
        let reply = self
            .rpc()
            .groups_for_entity(pb::EntityInfoArgs {
                entity_id: entity_id.into(),
            })
            .await
            .map_err(transport)?
            .into_inner();
        reply_err(reply.err)?;
        Ok(reply
            .groups
            .into_iter()
            .map(|g| Group {
                id: g.id,
                name: g.name,
                metadata: g.metadata.into_iter().collect(),
                namespace_id: g.namespace_id,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn host_calls_are_counted_per_request_task() {
        let ((), calls) = count_host_calls(async {
            count_call();
            // Joined futures run on the request's task: counted.
            tokio::join!(async { count_call() }, async { count_call() });
        })
        .await;
        assert_eq!(calls, 3);
        // Outside a request nothing is counted, and nothing fails.
        count_call();
        let ((), calls) = count_host_calls(async {}).await;
        assert_eq!(calls, 0);
    }

    /// Every request open in the plugin holds this future: counting must
    /// not copy the handler's (see `count_host_calls`).
    #[test]
    fn counting_adds_next_to_nothing_to_a_request_future() {
        use std::sync::Arc;

        use crate::framework::storage::{MemoryStorage, StaticSystemView};
        use crate::framework::{Backend, Operation, Request};
        let backend = Backend::new("sizes");
        let request = || {
            let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
            let system: Arc<dyn SystemView> = Arc::new(StaticSystemView::default());
            Request::new(Operation::Revoke, "x", storage, system)
        };
        let bare = std::mem::size_of_val(&backend.handle(request()));
        let counted = std::mem::size_of_val(&count_host_calls(backend.handle(request())));
        assert!(counted <= bare + 64, "{counted} bytes counted, {bare} bare");
    }
}
