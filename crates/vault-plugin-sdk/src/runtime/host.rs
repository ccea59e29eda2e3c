//! The host's Storage and SystemView services, dialled through the broker,
//! behind the framework's traits.

use std::time::Duration;

use async_trait::async_trait;
use tonic::transport::Channel;

use crate::framework::{Entity, EntityAlias, Error, Group, Result, Storage, SystemView};
use crate::proto::pb;
use crate::proto::pb::storage_client::StorageClient;
use crate::proto::pb::system_view_client::SystemViewClient;

/// The host allows 2 GiB messages; tonic's default is 4 MiB.
pub(super) const MAX_MESSAGE_SIZE: usize = i32::MAX as usize;

pub(super) struct GrpcStorage(StorageClient<Channel>);

impl GrpcStorage {
    pub(super) fn new(channel: Channel) -> Self {
        Self(
            StorageClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
    }
}

fn transport(status: tonic::Status) -> Error {
    Error::Storage(status.message().to_string())
}

/// Application errors come back in the reply's `err` string.
fn reply_err(err: String) -> Result<()> {
    if err.is_empty() {
        Ok(())
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
        let reply = self
            .0
            .clone()
            .list(args)
            .await
            .map_err(transport)?
            .into_inner();
        reply_err(reply.err)?;
        Ok(reply.keys)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let args = pb::StorageGetArgs {
            key: key.into(),
            ..Default::default()
        };
        let reply = self
            .0
            .clone()
            .get(args)
            .await
            .map_err(transport)?
            .into_inner();
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
        let reply = self
            .0
            .clone()
            .put(args)
            .await
            .map_err(transport)?
            .into_inner();
        reply_err(reply.err)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let args = pb::StorageDeleteArgs {
            key: key.into(),
            ..Default::default()
        };
        let reply = self
            .0
            .clone()
            .delete(args)
            .await
            .map_err(transport)?
            .into_inner();
        reply_err(reply.err)
    }
}

pub(super) struct GrpcSystemView(SystemViewClient<Channel>);

impl GrpcSystemView {
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
            .0
            .clone()
            .default_lease_ttl(pb::Empty {})
            .await
            .map_err(transport)?;
        Ok(nanos(reply.into_inner().ttl))
    }

    async fn max_lease_ttl(&self) -> Result<Duration> {
        let reply = self
            .0
            .clone()
            .max_lease_ttl(pb::Empty {})
            .await
            .map_err(transport)?;
        Ok(nanos(reply.into_inner().ttl))
    }

    async fn tainted(&self) -> Result<bool> {
        let reply = self
            .0
            .clone()
            .tainted(pb::Empty {})
            .await
            .map_err(transport)?;
        Ok(reply.into_inner().tainted)
    }

    async fn replication_state(&self) -> Result<u32> {
        let reply = self
            .0
            .clone()
            .replication_state(pb::Empty {})
            .await
            .map_err(transport)?;
        Ok(u32::try_from(reply.into_inner().state).unwrap_or(0))
    }

    async fn local_mount(&self) -> Result<bool> {
        let reply = self
            .0
            .clone()
            .local_mount(pb::Empty {})
            .await
            .map_err(transport)?;
        Ok(reply.into_inner().local)
    }

    async fn entity_info(&self, entity_id: &str) -> Result<Option<Entity>> {
        let reply = self
            .0
            .clone()
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
            .0
            .clone()
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
