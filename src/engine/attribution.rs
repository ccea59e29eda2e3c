//! Who a key is for in LiteLLM: the role's fixed `user_id`/`team_id`, or
//! its identity templates rendered for the entity that read `creds`, so that
//! LiteLLM's spend records say who spent. Resolved before any WAL entry or
//! LiteLLM call: a request that cannot be attributed changes nothing.

use super::roles::Role;
use crate::framework::{Error, Request, Result, Template};

/// `(user_id, team_id)` for a key minted for `req` under `role`.
pub(super) async fn resolve(
    role: &Role,
    req: &Request,
) -> Result<(Option<String>, Option<String>)> {
    let user = role
        .user_id
        .is_none()
        .then_some(role.user_id_template.as_deref())
        .flatten()
        .map(|t| ("user_id_template", t));
    let team = role
        .team_id
        .is_none()
        .then_some(role.team_id_template.as_deref())
        .flatten()
        .map(|t| ("team_id_template", t));
    if user.is_none() && team.is_none() {
        return Ok((role.user_id.clone(), role.team_id.clone()));
    }
    if req.entity_id.is_empty() {
        return Err(Error::invalid(
            "this role attributes keys to the caller's identity (user_id_template / \
             team_id_template), but the token has no identity entity (root tokens have none): \
             log in through an auth method",
        ));
    }
    let entity = req
        .system
        .entity_info(&req.entity_id)
        .await?
        .ok_or_else(|| {
            Error::invalid(format!(
                "identity entity {:?} of the token was not found",
                req.entity_id
            ))
        })?;
    let templates: Vec<(&str, Template)> = [user, team]
        .into_iter()
        .flatten()
        .map(|(field, text)| {
            Template::parse(text)
                .map(|t| (field, t))
                .map_err(|e| Error::Internal(format!("stored {field} is invalid: {e}")))
        })
        .collect::<Result<_>>()?;
    let groups = if templates.iter().any(|(_, t)| t.needs_groups()) {
        req.system.groups_for_entity(&entity.id).await?
    } else {
        Vec::new()
    };
    let (mut user_id, mut team_id) = (role.user_id.clone(), role.team_id.clone());
    for (field, template) in templates {
        let value = template
            .render(&entity, &groups)
            .map_err(|e| Error::invalid(format!("field {field:?}: {e}")))?;
        if value.trim().is_empty() {
            return Err(Error::invalid(format!(
                "field {field:?} renders to an empty value for this entity"
            )));
        }
        if field == "user_id_template" {
            user_id = Some(value);
        } else {
            team_id = Some(value);
        }
    }
    Ok((user_id, team_id))
}
