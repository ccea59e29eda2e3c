//! The server's identity store as an engine sees it: the entity behind a
//! request and the groups it belongs to (SystemView `EntityInfo` and
//! `GroupsForEntity`).

use std::collections::BTreeMap;

/// An identity entity: one person or service, with its logins (aliases).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entity {
    pub id: String,
    pub name: String,
    pub aliases: Vec<EntityAlias>,
    pub metadata: BTreeMap<String, String>,
    pub disabled: bool,
    pub namespace_id: String,
}

/// One login of an entity at one auth mount.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityAlias {
    pub mount_accessor: String,
    pub mount_type: String,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
}

/// An identity group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    pub namespace_id: String,
}
