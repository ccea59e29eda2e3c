//! The server's identity store as an engine sees it: the entity behind a
//! request and the groups it belongs to (SystemView `EntityInfo` and
//! `GroupsForEntity`).

use std::collections::BTreeMap;

/// An identity entity: one person or service, with its logins (aliases).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entity {
    /// The entity's id (a UUID), what `Request::entity_id` holds.
    pub id: String,
    /// Its name, unique in the namespace; chosen by an operator or generated.
    pub name: String,
    /// Its logins, one per auth mount it has used.
    pub aliases: Vec<EntityAlias>,
    /// Key/value pairs an operator set on the entity.
    pub metadata: BTreeMap<String, String>,
    /// A disabled entity's tokens are refused by the server.
    pub disabled: bool,
    /// The namespace the entity lives in (`root` outside Vault Enterprise
    /// and OpenBao namespaces).
    pub namespace_id: String,
}

/// One login of an entity at one auth mount.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityAlias {
    /// The auth mount's accessor (`auth_userpass_1a2b3c4d`).
    pub mount_accessor: String,
    /// The auth method (`userpass`, `oidc`, `kubernetes`, ...).
    pub mount_type: String,
    /// The login's name at that mount (a user name, a service account).
    pub name: String,
    /// Key/value pairs the auth method or an operator set on the alias.
    pub metadata: BTreeMap<String, String>,
}

/// An identity group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// The group's id (a UUID).
    pub id: String,
    /// Its name, unique in the namespace.
    pub name: String,
    /// Key/value pairs an operator set on the group.
    pub metadata: BTreeMap<String, String>,
    /// The namespace the group lives in.
    pub namespace_id: String,
}

/// A string with identity placeholders, in the syntax Vault and OpenBao
/// use for identity templating:
///
/// * `{{identity.entity.id}}`, `{{identity.entity.name}}`
/// * `{{identity.entity.metadata.<key>}}`
/// * `{{identity.entity.aliases.<mount accessor>.name}}` and
///   `{{identity.entity.aliases.<mount accessor>.metadata.<key>}}`
/// * `{{identity.groups.names.<group name>.id}}`,
///   `{{identity.groups.ids.<group id>.name}}`, and `.metadata.<key>` of
///   either
///
/// Parsed (and so validated) when a role is written; rendered per request.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Entity(EntityField),
    AliasName(String),
    AliasMetadata(String, String),
    Group(GroupKey, GroupField),
}

#[derive(Debug, Clone, PartialEq)]
enum EntityField {
    Id,
    Name,
    Metadata(String),
}

#[derive(Debug, Clone, PartialEq)]
enum GroupKey {
    Name(String),
    Id(String),
}

#[derive(Debug, Clone, PartialEq)]
enum GroupField {
    Id,
    Name,
    Metadata(String),
}

impl Template {
    /// Parses `text`; the error says which placeholder is wrong.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed placeholder in {text:?}"))?;
            parts.push(parse_placeholder(after[..end].trim())?);
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return Err(format!("stray \"}}}}\" in {text:?}"));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// True when rendering needs the entity's groups (one more look-up).
    pub fn needs_groups(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Group(..)))
    }

    /// Renders for `entity`; an unresolved placeholder is an error naming it.
    pub fn render(&self, entity: &Entity, groups: &[Group]) -> std::result::Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            let value = match part {
                Part::Text(t) => Some(t.clone()),
                Part::Entity(EntityField::Id) => Some(entity.id.clone()),
                Part::Entity(EntityField::Name) => Some(entity.name.clone()),
                Part::Entity(EntityField::Metadata(k)) => entity.metadata.get(k).cloned(),
                Part::AliasName(accessor) => alias(entity, accessor).map(|a| a.name.clone()),
                Part::AliasMetadata(accessor, k) => {
                    alias(entity, accessor).and_then(|a| a.metadata.get(k).cloned())
                }
                Part::Group(key, field) => groups
                    .iter()
                    .find(|g| match key {
                        GroupKey::Name(n) => &g.name == n,
                        GroupKey::Id(id) => &g.id == id,
                    })
                    .and_then(|g| match field {
                        GroupField::Id => Some(g.id.clone()),
                        GroupField::Name => Some(g.name.clone()),
                        GroupField::Metadata(k) => g.metadata.get(k).cloned(),
                    }),
            };
            match value {
                Some(v) => out.push_str(&v),
                None => {
                    return Err(format!(
                        "{} does not resolve for this entity",
                        describe(part)
                    ))
                }
            }
        }
        Ok(out)
    }
}

fn alias<'a>(entity: &'a Entity, accessor: &str) -> Option<&'a EntityAlias> {
    entity.aliases.iter().find(|a| a.mount_accessor == accessor)
}

fn describe(part: &Part) -> String {
    let inner = match part {
        Part::Text(t) => return format!("{t:?}"),
        Part::Entity(EntityField::Id) => "identity.entity.id".to_string(),
        Part::Entity(EntityField::Name) => "identity.entity.name".to_string(),
        Part::Entity(EntityField::Metadata(k)) => format!("identity.entity.metadata.{k}"),
        Part::AliasName(a) => format!("identity.entity.aliases.{a}.name"),
        Part::AliasMetadata(a, k) => format!("identity.entity.aliases.{a}.metadata.{k}"),
        Part::Group(key, field) => {
            let key = match key {
                GroupKey::Name(n) => format!("names.{n}"),
                GroupKey::Id(i) => format!("ids.{i}"),
            };
            let field = match field {
                GroupField::Id => "id".to_string(),
                GroupField::Name => "name".to_string(),
                GroupField::Metadata(k) => format!("metadata.{k}"),
            };
            format!("identity.groups.{key}.{field}")
        }
    };
    format!("{{{{{inner}}}}}")
}

fn parse_placeholder(p: &str) -> std::result::Result<Part, String> {
    let bad = || format!("unsupported placeholder {{{{{p}}}}}");
    let segments: Vec<&str> = p.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(bad());
    }
    let owned = |s: &str| s.to_string();
    Ok(match segments.as_slice() {
        ["identity", "entity", "id"] => Part::Entity(EntityField::Id),
        ["identity", "entity", "name"] => Part::Entity(EntityField::Name),
        ["identity", "entity", "metadata", k] => Part::Entity(EntityField::Metadata(owned(k))),
        ["identity", "entity", "aliases", a, "name"] => Part::AliasName(owned(a)),
        ["identity", "entity", "aliases", a, "metadata", k] => {
            Part::AliasMetadata(owned(a), owned(k))
        }
        ["identity", "groups", kind @ ("names" | "ids"), key, rest @ ..] => {
            let key = if *kind == "names" {
                GroupKey::Name(owned(key))
            } else {
                GroupKey::Id(owned(key))
            };
            let field = match rest {
                ["id"] => GroupField::Id,
                ["name"] => GroupField::Name,
                ["metadata", k] => GroupField::Metadata(owned(k)),
                _ => return Err(bad()),
            };
            Part::Group(key, field)
        }
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity() -> Entity {
        Entity {
            id: "e-1".into(),
            name: "alice".into(),
            aliases: vec![EntityAlias {
                mount_accessor: "auth_userpass_1".into(),
                mount_type: "userpass".into(),
                name: "alice-login".into(),
                metadata: [("dept".to_string(), "ml".to_string())].into(),
            }],
            metadata: [("team".to_string(), "search".to_string())].into(),
            ..Entity::default()
        }
    }

    fn groups() -> Vec<Group> {
        vec![Group {
            id: "g-7".into(),
            name: "engineers".into(),
            metadata: [("cost_center".to_string(), "cc42".to_string())].into(),
            ..Group::default()
        }]
    }

    #[test]
    fn renders_every_placeholder_kind() {
        for (text, want) in [
            ("{{identity.entity.id}}", "e-1"),
            ("user-{{identity.entity.name}}", "user-alice"),
            ("{{ identity.entity.metadata.team }}", "search"),
            (
                "{{identity.entity.aliases.auth_userpass_1.name}}",
                "alice-login",
            ),
            (
                "{{identity.entity.aliases.auth_userpass_1.metadata.dept}}",
                "ml",
            ),
            ("{{identity.groups.names.engineers.id}}", "g-7"),
            ("{{identity.groups.ids.g-7.name}}", "engineers"),
            (
                "{{identity.groups.names.engineers.metadata.cost_center}}",
                "cc42",
            ),
            ("fixed", "fixed"),
        ] {
            let t = Template::parse(text).unwrap();
            assert_eq!(t.render(&entity(), &groups()).unwrap(), want, "{text}");
        }
        assert!(Template::parse("{{identity.groups.names.x.id}}")
            .unwrap()
            .needs_groups());
        assert!(!Template::parse("{{identity.entity.id}}")
            .unwrap()
            .needs_groups());
    }

    #[test]
    fn bad_templates_are_refused_when_parsed() {
        for bad in [
            "{{identity.entity.email}}",
            "{{identity.entity.id",
            "x}}",
            "{{identity.groups.names.g}}",
            "{{identity.groups.names..id}}",
            "{{token.policies}}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unresolved_placeholders_are_errors() {
        for text in [
            "{{identity.entity.metadata.nope}}",
            "{{identity.entity.aliases.auth_other.name}}",
            "{{identity.groups.names.admins.id}}",
        ] {
            let err = Template::parse(text)
                .unwrap()
                .render(&entity(), &groups())
                .unwrap_err();
            assert!(err.contains("does not resolve"), "{text}: {err}");
        }
    }
}
