//! What a platform team needs before handing keys out: keys attributed to
//! the identity that asked, LiteLLM's per-key settings, and requests that
//! narrow their role. Real OpenBao (userpass, entities, groups), real LiteLLM.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{
    configured_with_prefix, error_text, per_server, unix_now, DevServer, Engine, LiteLlm, Steps,
    MOUNT,
};

const MODEL: &str = "gpt-3.5-turbo";

fn ok(server: &DevServer, path: &str, body: Value) -> Value {
    let (status, out) = server.put(path, &body);
    assert!((200..300).contains(&status), "{path}: {status} {out}");
    out
}

fn keys_are_attributed_to_the_identity_that_read_them(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let (server, prefix) = configured_with_prefix(engine, litellm, "i");
    let user = format!("{prefix}u");

    steps.step("a userpass user with an entity in a group");
    ok(&server, "sys/auth/userpass", json!({"type": "userpass"}));
    ok(
        &server,
        "sys/policies/acl/creds",
        json!({"policy": format!("path \"{MOUNT}/creds/*\" {{ capabilities = [\"read\", \"update\"] }}")}),
    );
    ok(
        &server,
        &format!("auth/userpass/users/{user}"),
        json!({"password": "pw-1234", "token_policies": "creds"}),
    );
    let (status, login) = server.post(
        &format!("auth/userpass/login/{user}"),
        &json!({"password": "pw-1234"}),
    );
    assert_eq!(status, 200, "{login}");
    let token = login["auth"]["client_token"].as_str().unwrap().to_string();
    let entity_id = login["auth"]["entity_id"].as_str().unwrap().to_string();
    assert!(!entity_id.is_empty(), "{login}");
    let group = ok(
        &server,
        "identity/group",
        json!({"name": format!("{prefix}-ml"), "member_entity_ids": [entity_id]}),
    );
    let group_id = group["data"]["id"].as_str().unwrap().to_string();
    let (_, auths) = server.get("sys/auth");
    let accessor = auths["data"]["userpass/"]["accessor"]
        .as_str()
        .unwrap()
        .to_string();

    ok(
        &server,
        &format!("{MOUNT}/roles/mine"),
        json!({"models": [MODEL], "key_alias_prefix": prefix,
               "user_id_template": format!("{{{{identity.entity.aliases.{accessor}.name}}}}"),
               "team_id_template": format!("{{{{identity.groups.names.{prefix}-ml.id}}}}")}),
    );
    steps.step("a role naming a team LiteLLM does not have says so in a warning");
    let fixed_team = json!({"models": [MODEL], "key_alias_prefix": prefix, "team_id": group_id});
    let (status, body) = server.put(&format!("{MOUNT}/roles/fixed-team"), &fixed_team);
    assert_eq!(status, 200, "a warning comes with a body: {body}");
    assert!(
        body["warnings"].to_string().contains("has no such team"),
        "{body}"
    );

    // The LiteLLM user is an internal user, who may manage keys; the
    // team must exist in LiteLLM (a key of an unknown team gets 404s).
    let (status, body) = litellm.admin(
        Method::POST,
        "/user/new",
        &json!({"user_id": user, "user_role": "internal_user"}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = litellm.admin(
        Method::POST,
        "/team/new",
        &json!({"team_id": group_id, "models": [MODEL]}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.put(&format!("{MOUNT}/roles/fixed-team"), &fixed_team);
    assert_eq!(status, 204, "the team exists now: no warning ({body})");

    steps.step("the user reads creds: LiteLLM has the rendered user and team");
    let (status, creds) = server.request_as(
        &token,
        None,
        Method::GET,
        &format!("{MOUNT}/creds/mine"),
        None,
    );
    assert_eq!(status, 200, "{creds}");
    let key = creds["data"]["key"].as_str().unwrap().to_string();
    assert_eq!(creds["data"]["user_id"], user.as_str());
    assert_eq!(creds["data"]["team_id"], group_id.as_str());
    let (status, info) = litellm.key_info(&key);
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["info"]["user_id"], user.as_str());
    assert_eq!(info["info"]["team_id"], group_id.as_str());
    assert_eq!(
        info["info"]["metadata"]["vault_entity_id"],
        entity_id.as_str()
    );

    steps.step("an attributed key is still only a model key");
    assert_eq!(litellm.chat(&key, MODEL), 200);
    let (status, body) = litellm.call_as(
        &key,
        Method::POST,
        "/key/generate",
        &json!({"models": [MODEL]}),
    );
    assert!(status == 401 || status == 403, "{status} {body}");

    steps.step("a root token has no entity: 400 before anything is minted");
    let before = litellm.count_live_keys_with_alias_prefix(&prefix);
    let (status, body) = server.get(&format!("{MOUNT}/creds/mine"));
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("entity"), "{body}");
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&prefix), before);

    server.revoke_prefix(&format!("{MOUNT}/creds"));
    litellm.admin(Method::POST, "/user/delete", &json!({"user_ids": [user]}));
    litellm.admin(
        Method::POST,
        "/team/delete",
        &json!({"team_ids": [group_id]}),
    );
}
per_server!(
    keys_are_attributed_to_the_identity_that_read_them,
    with_steps
);

fn typed_settings_reach_litellm_and_enterprise_ones_say_so(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let (server, prefix) = configured_with_prefix(engine, litellm, "l");
    steps.step("per-model rpm limit and a model alias, enforced by LiteLLM");
    ok(
        &server,
        &format!("{MOUNT}/roles/limited"),
        json!({"models": [MODEL], "key_alias_prefix": prefix,
               "model_rpm_limit": format!("{MODEL}=1"), "aliases": format!("fast={MODEL}"),
               "soft_budget": 2, "key_request": {"budget_id": null}}),
    );
    let (status, creds) = server.get(&format!("{MOUNT}/creds/limited"));
    assert_eq!(status, 200, "{creds}");
    let key = creds["data"]["key"].as_str().unwrap();
    assert_eq!(litellm.chat(key, MODEL), 200);
    assert_eq!(litellm.chat(key, MODEL), 429, "the per-model limit holds");
    let (_, info) = litellm.key_info(key);
    assert_eq!(info["info"]["aliases"]["fast"], MODEL, "{info}");

    steps.step(
        "an Enterprise-only field: a warning on the role, LiteLLM's licence message as a 400",
    );
    let written = ok(
        &server,
        &format!("{MOUNT}/roles/tagged"),
        json!({"models": [MODEL], "key_alias_prefix": prefix, "tags": "team-a"}),
    );
    assert!(
        written["warnings"].to_string().contains("no licence"),
        "{written}"
    );
    let (status, body) = server.get(&format!("{MOUNT}/creds/tagged"));
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("Enterprise"), "{body}");

    steps.step("key_request cannot set what the engine owns");
    let (status, body) = server.put(
        &format!("{MOUNT}/roles/limited"),
        &json!({"key_request": {"duration": "1000d"}}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("key_request"), "{body}");

    server.revoke_prefix(&format!("{MOUNT}/creds"));
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&prefix), 0);
}
per_server!(
    typed_settings_reach_litellm_and_enterprise_ones_say_so,
    with_steps
);

fn a_creds_write_narrows_the_role_and_never_widens_it(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let (server, prefix) = configured_with_prefix(engine, litellm, "w");
    ok(
        &server,
        &format!("{MOUNT}/roles/r"),
        json!({"models": [MODEL, "gpt-4o"], "key_alias_prefix": prefix, "ttl": "1h",
               "max_budget": 5, "allowed_request_metadata": "ticket"}),
    );
    steps.step("wider than the role: 400 naming the field, nothing minted");
    for (body, field) in [
        (json!({"ttl": "2h"}), "ttl"),
        (json!({"models": ["claude-mock"]}), "models"),
        (json!({"max_budget": 50}), "max_budget"),
        (json!({"metadata": {"owner": "me"}}), "metadata"),
    ] {
        let (status, out) = server.put(&format!("{MOUNT}/creds/r"), &body);
        assert_eq!(status, 400, "{body}: {out}");
        assert!(error_text(&out).contains(field), "{body}: {out}");
    }
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&prefix), 0);

    steps.step("narrower: a 10-minute key for one model with a smaller budget");
    let (status, creds) = server.put(
        &format!("{MOUNT}/creds/r"),
        &json!({"ttl": "10m", "models": [MODEL], "max_budget": 1, "metadata": {"ticket": "T-9"}}),
    );
    assert_eq!(status, 200, "{creds}");
    assert_eq!(creds["lease_duration"], 600);
    let key = creds["data"]["key"].as_str().unwrap();
    assert_eq!(litellm.chat(key, MODEL), 200);
    assert_eq!(litellm.chat(key, "gpt-4o"), 403);
    let (_, info) = litellm.key_info(key);
    assert_eq!(info["info"]["max_budget"], 1.0, "{info}");
    assert_eq!(info["info"]["metadata"]["ticket"], "T-9", "{info}");

    steps.step("a renewal asking for more keeps the narrowed 10 minutes, lease and key alike");
    let lease = creds["lease_id"].as_str().unwrap();
    let (status, renewed) = server.lease_renew(lease, 3000);
    assert_eq!(status, 200, "{renewed}");
    let granted = renewed["lease_duration"].as_u64().unwrap();
    assert!((590..=600).contains(&granted), "{renewed}");
    let expires = litellm.key_expires(key).expect("the key expires");
    assert!(
        (expires - unix_now() - granted as f64 - 30.0).abs() < 20.0,
        "the key's expiry {expires} is not the lease's end plus the 30 s grace"
    );

    steps.step("the plain read still gets the whole role");
    let (status, creds) = server.get(&format!("{MOUNT}/creds/r"));
    assert_eq!(status, 200, "{creds}");
    assert_eq!(creds["lease_duration"], 3600);
    assert_eq!(
        litellm.chat(creds["data"]["key"].as_str().unwrap(), "gpt-4o"),
        200
    );

    server.revoke_prefix(&format!("{MOUNT}/creds"));
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&prefix), 0);
}
per_server!(
    a_creds_write_narrows_the_role_and_never_widens_it,
    with_steps
);

fn a_role_can_be_patched(engine: Engine, steps: &Steps, litellm: &LiteLlm) {
    let (server, prefix) = configured_with_prefix(engine, litellm, "p");
    let role = format!("{MOUNT}/roles/r");
    ok(
        &server,
        &role,
        json!({"models": [MODEL], "key_alias_prefix": prefix, "ttl": "1h", "max_ttl": "2h",
               "max_budget": 5, "user_id": "alice"}),
    );

    steps.step("a patch changes the fields it gives; null sets one back to its default");
    let (status, body) = server.patch(
        &role,
        &json!({"ttl": "30m", "max_budget": null, "user_id": null}),
    );
    assert_eq!(status, 204, "{body}");
    let (_, read) = server.get(&role);
    let data = &read["data"];
    assert_eq!(data["ttl"], 1800, "{read}");
    assert_eq!(data["max_budget"], 0.0, "{read}");
    assert!(data["user_id"].as_str().is_none_or(str::is_empty), "{read}");
    // Untouched fields stay.
    assert_eq!(data["models"], json!([MODEL]), "{read}");
    assert_eq!(data["max_ttl"], 7200, "{read}");

    steps.step("a patch is checked like a write: 400 naming the field, the role unchanged");
    let (status, body) = server.patch(&role, &json!({"ttl": "3h"}));
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("\"ttl\""), "{body}");
    let (status, body) = server.patch(&role, &json!({"models": null}));
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("\"models\""), "{body}");
    let (_, read) = server.get(&role);
    assert_eq!(read["data"]["ttl"], 1800, "{read}");
    assert_eq!(read["data"]["models"], json!([MODEL]), "{read}");

    steps.step("a patch never creates a role: 404, nothing stored");
    let (status, body) = server.patch(&format!("{MOUNT}/roles/nope"), &json!({"models": [MODEL]}));
    assert_eq!(status, 404, "{body}");
    assert!(error_text(&body).contains("nope"), "{body}");
    let (status, _) = server.get(&format!("{MOUNT}/roles/nope"));
    assert_eq!(status, 404);

    steps.step("the patched role is what creds issues");
    let (status, creds) = server.get(&format!("{MOUNT}/creds/r"));
    assert_eq!(status, 200, "{creds}");
    assert_eq!(creds["lease_duration"], 1800, "{creds}");
    let (status, _) = server.put("sys/leases/revoke", &json!({"lease_id": creds["lease_id"]}));
    assert_eq!(status, 204);
}

per_server!(a_role_can_be_patched, with_steps);
