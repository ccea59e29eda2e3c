//! Rotation of the engine's own admin key (`rotate-root`, scheduled
//! rotation, and an interrupted rotation), against real OpenBao and real
//! LiteLLM. Each test makes its own `proxy_admin` user in LiteLLM with the
//! master key and deletes it (and so its keys) at the end.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::{
    configured_server, error_text, eventually, per_server, plugin_binary, plugin_version,
    unique_prefix, unix_now, DevServer, Engine, LiteLlm, Steps, MOUNT,
};

const MODEL: &str = "gpt-3.5-turbo";

/// A LiteLLM `proxy_admin` user and its first key (alias `<prefix>-admin`);
/// deleted with all its keys when dropped.
struct AdminUser {
    user_id: String,
    key: String,
    alias_prefix: String,
    litellm: LiteLlm,
}

impl AdminUser {
    fn create(prefix: &str) -> AdminUser {
        let litellm = LiteLlm::from_env();
        let user_id = format!("{prefix}-user");
        let alias_prefix = format!("{prefix}-admin");
        let (status, body) = litellm.admin(
            Method::POST,
            "/user/new",
            &json!({"user_id": user_id, "user_role": "proxy_admin", "key_alias": alias_prefix}),
        );
        assert_eq!(status, 200, "/user/new: {body}");
        AdminUser {
            user_id,
            key: body["key"].as_str().unwrap().to_string(),
            alias_prefix,
            litellm,
        }
    }

    /// Admin keys of this user alive in LiteLLM.
    fn live_keys(&self) -> Vec<Value> {
        self.litellm.live_keys_with_alias_prefix(&self.alias_prefix)
    }

    /// What `key` gets on a key management route (200 while it is alive).
    fn manages(&self, key: &str) -> u16 {
        self.litellm
            .call_as(key, Method::GET, "/key/list?page=1&size=1", &json!(null))
            .0
    }
}

impl Drop for AdminUser {
    fn drop(&mut self) {
        let _ = self.litellm.admin(
            Method::POST,
            "/user/delete",
            &json!({"user_ids": [self.user_id]}),
        );
        let _ = self
            .litellm
            .delete_keys_with_alias_prefix(&self.alias_prefix);
    }
}

/// Issues a key on `mount`'s role `r`, checks it works, revokes its lease
/// and checks it is gone: the engine manages keys with its admin key.
fn engine_issues_and_revokes(server: &DevServer, mount: &str, litellm: &LiteLlm) {
    let (status, body) = server.get(&format!("{mount}/creds/r"));
    assert_eq!(status, 200, "creds: {body}");
    let key = body["data"]["key"].as_str().unwrap().to_string();
    assert_eq!(litellm.chat(&key, MODEL), 200);
    let (status, body) = server.lease_revoke(body["lease_id"].as_str().unwrap());
    assert!((200..300).contains(&status), "revoke: {body}");
    assert_eq!(litellm.chat(&key, MODEL), 401, "revoked key still works");
}

fn put_role(server: &DevServer, mount: &str, prefix: &str) {
    let (status, body) = server.put(
        &format!("{mount}/roles/r"),
        &json!({"models": [MODEL], "key_alias_prefix": format!("{prefix}-c")}),
    );
    assert!((200..300).contains(&status), "role: {body}");
}

fn rotate_root_replaces_a_virtual_admin_key(engine: Engine, steps: &Steps, litellm: &LiteLlm) {
    let prefix = unique_prefix("r");
    let admin = AdminUser::create(&prefix);
    let server = DevServer::start(engine, &plugin_binary());
    server.register_this_plugin("litellm");
    server.enable(MOUNT, "litellm", &plugin_version());
    let (status, body) = server.put(
        &format!("{MOUNT}/config"),
        &json!({"base_url": litellm.url, "admin_key": admin.key}),
    );
    assert_eq!(status, 204, "config: {body}");
    put_role(&server, MOUNT, &prefix);
    let (status, before) = server.get(&format!("{MOUNT}/creds/r"));
    assert_eq!(status, 200, "{before}");

    steps.step("rotate-root");
    let (status, body) = server.post(&format!("{MOUNT}/rotate-root"), &json!({}));
    assert_eq!(status, 200, "rotate-root: {body}");
    assert!(body["data"]["rotated_at"].is_string(), "{body}");
    assert!(
        !body.to_string().contains("sk-"),
        "a key in the answer: {body}"
    );
    assert_eq!(
        admin.manages(&admin.key),
        401,
        "the old admin key still works"
    );
    let live = admin.live_keys();
    assert_eq!(live.len(), 1, "admin keys alive: {live:?}");
    assert_eq!(live[0]["user_id"], admin.user_id.as_str());

    let (_, config) = server.get(&format!("{MOUNT}/config"));
    assert_eq!(config["data"]["admin_key_set"], true, "{config}");
    assert!(config["data"]["last_rotated"].is_string(), "{config}");
    assert!(!config.to_string().contains("sk-"), "{config}");

    steps.step("a key minted before revokes with the new admin key; new ones work");
    let old_key = before["data"]["key"].as_str().unwrap();
    let (status, body) = server.lease_revoke(before["lease_id"].as_str().unwrap());
    assert!((200..300).contains(&status), "{body}");
    assert_eq!(litellm.chat(old_key, MODEL), 401);
    engine_issues_and_revokes(&server, MOUNT, litellm);

    steps.step("and again");
    let (status, body) = server.post(&format!("{MOUNT}/rotate-root"), &json!({}));
    assert_eq!(status, 200, "second rotate-root: {body}");
    assert_eq!(admin.live_keys().len(), 1);
    engine_issues_and_revokes(&server, MOUNT, litellm);

    // The admin user's key number `n`, made by hand; and the check that it
    // is the user's only live key.
    let hand_made_key = |n: u32| {
        let alias = format!("{}-{n}", admin.alias_prefix);
        let (status, made) = litellm.admin(
            Method::POST,
            "/key/generate",
            &json!({"user_id": admin.user_id, "key_alias": alias}),
        );
        assert_eq!(status, 200, "{made}");
        made["key"].clone()
    };
    let only_key_alive = |n: u32| {
        let live = admin.live_keys();
        assert_eq!(live.len(), 1, "admin keys alive: {live:?}");
        assert_eq!(live[0]["key_alias"], format!("{}-{n}", admin.alias_prefix));
    };

    steps.step("another admin key written in its place: the minted one is deleted");
    let second = hand_made_key(2);
    let (status, body) = server.put(&format!("{MOUNT}/config"), &json!({"admin_key": second}));
    assert_eq!(status, 204, "config: {body}");
    only_key_alive(2);
    engine_issues_and_revokes(&server, MOUNT, litellm);

    steps.step("config deleted after a rotation, then written again with another key: the minted one is deleted too");
    let (status, body) = server.post(&format!("{MOUNT}/rotate-root"), &json!({}));
    assert_eq!(status, 200, "third rotate-root: {body}");
    let (status, body) = server.delete(&format!("{MOUNT}/config"));
    assert!((200..300).contains(&status), "delete config: {body}");
    let third = hand_made_key(3);
    let (status, body) = server.put(
        &format!("{MOUNT}/config"),
        &json!({"base_url": litellm.url, "admin_key": third}),
    );
    assert_eq!(status, 204, "config: {body}");
    only_key_alive(3);
    engine_issues_and_revokes(&server, MOUNT, litellm);
}
per_server!(rotate_root_replaces_a_virtual_admin_key, with_steps);

fn the_master_key_is_refused_and_bad_input_names_the_field(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let server = configured_server(engine, litellm);

    steps.step("rotate-root with the master key");
    let (status, body) = server.post(&format!("{MOUNT}/rotate-root"), &json!({}));
    assert_eq!(status, 400, "{body}");
    let text = error_text(&body);
    assert!(
        text.contains("master key") && text.contains("admin_key"),
        "{text}"
    );

    steps.step("scheduled rotation with the master key");
    let (status, body) = server.put(
        &format!("{MOUNT}/config"),
        &json!({"rotation_period": "24h"}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("master key"), "{body}");

    steps.step("bad rotation settings");
    for (input, field) in [
        (json!({"rotation_period": "30m"}), "rotation_period"),
        (
            json!({"rotation_schedule": "61 * * * *"}),
            "rotation_schedule",
        ),
        (json!({"rotation_schedule": "daily"}), "rotation_schedule"),
        (
            json!({"rotation_period": "2h", "rotation_schedule": "0 3 * * *"}),
            "rotation_period",
        ),
        (json!({"rotation_window": "1h"}), "rotation_window"),
    ] {
        let (status, body) = server.put(&format!("{MOUNT}/config"), &input);
        assert_eq!(status, 400, "{input}: {body}");
        assert!(error_text(&body).contains(field), "{input}: {body}");
    }
    let (_, config) = server.get(&format!("{MOUNT}/config"));
    assert_eq!(config["data"]["rotation_period"], 0, "{config}");
    assert!(config["data"]["next_rotation"].is_null(), "{config}");

    steps.step("a key of a user who is not a proxy admin: saved, with a warning");
    let user_id = format!("{}-internal", unique_prefix("u"));
    let (status, user) = litellm.admin(
        Method::POST,
        "/user/new",
        &json!({"user_id": user_id, "user_role": "internal_user", "key_alias": user_id}),
    );
    assert_eq!(status, 200, "/user/new: {user}");
    let (status, body) = server.put(
        &format!("{MOUNT}/config"),
        &json!({"base_url": litellm.url, "admin_key": user["key"]}),
    );
    let _ = litellm.admin(
        Method::POST,
        "/user/delete",
        &json!({"user_ids": [user_id]}),
    );
    let _ = litellm.delete_keys_with_alias_prefix(&user_id);
    assert_eq!(status, 200, "{body}");
    let warnings = body["warnings"].to_string();
    assert!(
        warnings.contains("internal_user") && warnings.contains("proxy_admin"),
        "{body}"
    );
}
per_server!(
    the_master_key_is_refused_and_bad_input_names_the_field,
    with_steps
);

fn scheduled_rotation_happens_on_its_own(engine: Engine, steps: &Steps, litellm: &LiteLlm) {
    let prefix = unique_prefix("p");
    let admin = AdminUser::create(&prefix);
    let server = DevServer::start(engine, &plugin_binary());
    server.register_this_plugin("litellm");
    // The test-only minimum: the default is 1h.
    server.enable_with_options(MOUNT, "litellm", json!({"min_rotation_period": "10s"}));
    let (status, body) = server.put(
        &format!("{MOUNT}/config"),
        &json!({"base_url": litellm.url, "admin_key": admin.key, "rotation_period": "10s"}),
    );
    assert_eq!(status, 204, "config: {body}");
    put_role(&server, MOUNT, &prefix);
    let (_, config) = server.get(&format!("{MOUNT}/config"));
    assert_eq!(config["data"]["rotation_period"], 10, "{config}");
    assert!(config["data"]["next_rotation"].is_string(), "{config}");
    assert!(config["data"]["last_rotated"].is_null(), "{config}");

    steps.step("waiting for the periodic tick to rotate");
    eventually("a scheduled rotation", Duration::from_secs(180), || {
        let (_, config) = server.get(&format!("{MOUNT}/config"));
        config["data"]["last_rotated"].is_string().then_some(())
    });
    eventually(
        "the old admin key to be deleted",
        Duration::from_secs(30),
        || (admin.manages(&admin.key) == 401).then_some(()),
    );
    assert_eq!(admin.live_keys().len(), 1);
    engine_issues_and_revokes(&server, MOUNT, litellm);

    steps.step("disable_automated_rotation pauses it");
    let (status, body) = server.put(
        &format!("{MOUNT}/config"),
        &json!({"disable_automated_rotation": true}),
    );
    assert_eq!(status, 204, "{body}");
    let (_, config) = server.get(&format!("{MOUNT}/config"));
    assert!(config["data"]["next_rotation"].is_null(), "{config}");
    assert_eq!(config["data"]["rotation_period"], 10, "{config}");

    steps.step("a cron schedule (every minute) replaces the period");
    let first = config["data"]["last_rotated"].clone();
    let (status, body) = server.put(
        &format!("{MOUNT}/config"),
        &json!({"rotation_schedule": "* * * * *", "rotation_window": "1m",
                "disable_automated_rotation": false}),
    );
    assert_eq!(status, 204, "{body}");
    let (_, config) = server.get(&format!("{MOUNT}/config"));
    assert_eq!(config["data"]["rotation_period"], 0, "{config}");
    assert_eq!(config["data"]["rotation_schedule"], "* * * * *", "{config}");
    assert!(config["data"]["next_rotation"].is_string(), "{config}");
    eventually("a rotation on schedule", Duration::from_secs(180), || {
        let (_, config) = server.get(&format!("{MOUNT}/config"));
        (config["data"]["last_rotated"] != first).then_some(())
    });
    eventually("one admin key alive", Duration::from_secs(30), || {
        (admin.live_keys().len() == 1).then_some(())
    });
    engine_issues_and_revokes(&server, MOUNT, litellm);
}
per_server!(scheduled_rotation_happens_on_its_own, with_steps);

/// Crashes the plugin in the middle of a rotation (a test build with the
/// `fault-injection` feature): after the successor exists but before it is
/// stored, and after it is stored but before the old key is deleted. The
/// rollback must leave exactly one admin key alive, the stored one.
#[cfg(feature = "fault-injection")]
fn an_interrupted_rotation_leaves_exactly_one_admin_key(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let server = DevServer::start(engine, &plugin_binary());
    let mut cases = Vec::new();
    for step in ["after_generate", "after_store"] {
        let plugin = format!("crash-{}", step.replace('_', "-"));
        let path = format!("rot-{}", step.replace('_', "-"));
        server.mount_crashing_plugin(
            &plugin,
            &path,
            &format!("LITELLM_PLUGIN_CRASH_IN_ROTATION={step}"),
        );
        let prefix = unique_prefix("x");
        let admin = AdminUser::create(&prefix);
        // A short timeout keeps the entry's hold (three times the
        // timeout plus a margin) well inside the wait below.
        let (status, body) = server.put(
            &format!("{path}/config"),
            &json!({"base_url": litellm.url, "admin_key": admin.key, "request_timeout": "5s"}),
        );
        assert_eq!(status, 204, "config: {body}");
        put_role(&server, &path, &prefix);

        steps.step(format!("rotate-root on {path}: the plugin dies {step}"));
        let (status, body) = server.post(&format!("{path}/rotate-root"), &json!({}));
        assert!(status >= 500, "{status} {body}");
        // Two or more: the server may resend the request to the
        // respawned plugin, which mints another successor and dies again.
        let alive = admin.live_keys().len();
        assert!(
            alive >= 2,
            "the crash should leave both keys, found {alive}"
        );
        cases.push((step, path, admin));
    }

    steps.step("waiting for the rollback tick");
    for (step, path, admin) in &cases {
        eventually(
            &format!("{path}: one admin key left"),
            Duration::from_secs(200),
            || (admin.live_keys().len() == 1).then_some(()),
        );
        let old_key_status = admin.manages(&admin.key);
        if *step == "after_generate" {
            assert_eq!(old_key_status, 200, "{path}: the stored old key must stay");
        } else {
            assert_eq!(old_key_status, 401, "{path}: the old key must go");
        }
        engine_issues_and_revokes(&server, path, litellm);
        // The engine can still rotate: the rotation fault fires again,
        // so check only that its key is the one that works.
        steps.step(format!("{path}: exactly one admin key, the engine works"));
    }
    assert!(server
        .log_text()
        .contains("interrupted admin key rotation settled"));
}
#[cfg(feature = "fault-injection")]
per_server!(
    an_interrupted_rotation_leaves_exactly_one_admin_key,
    with_steps
);

/// Crashes the plugin in the middle of a static role's rotation (a test
/// build with the `fault-injection` feature). Whatever the step, the
/// rollback leaves the generations the role holds and nothing else: after
/// the successor is minted, the old key alone; after it is stored, the new
/// key and the old one in its grace.
#[cfg(feature = "fault-injection")]
fn an_interrupted_static_rotation_leaves_the_stored_generations(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let server = DevServer::start(engine, &plugin_binary());
    let mut cases = Vec::new();
    for (step, alive_after) in [("static_after_generate", 1), ("static_after_store", 2)] {
        let plugin = format!("crash-{}", step.replace('_', "-"));
        let path = format!("srot-{}", step.replace('_', "-"));
        server.mount_crashing_plugin(
            &plugin,
            &path,
            &format!("LITELLM_PLUGIN_CRASH_IN_ROTATION={step}"),
        );
        let (status, body) = server.put(
            &format!("{path}/config"),
            &json!({"base_url": litellm.url, "admin_key": litellm.master_key,
                    "request_timeout": "5s"}),
        );
        assert_eq!(status, 204, "config: {body}");
        let name = unique_prefix("c");
        let alias_prefix = format!("vault-static-{name}-");
        let (status, body) = server.put(
            &format!("{path}/static-roles/{name}"),
            &json!({"models": [MODEL], "rotation_period": "2h", "grace_period": "1h"}),
        );
        assert_eq!(status, 204, "{body}");

        steps.step(format!("rotate-role on {path}: the plugin dies {step}"));
        let (status, body) = server.post(&format!("{path}/rotate-role/{name}"), &json!({}));
        assert!(status >= 500, "{status} {body}");
        let alive = litellm.count_live_keys_with_alias_prefix(&alias_prefix);
        assert!(
            alive >= 2,
            "the crash should leave both keys, found {alive}"
        );
        cases.push((path, name, alias_prefix, alive_after));
    }

    steps.step("waiting for the rollback tick");
    for (path, name, alias_prefix, alive_after) in &cases {
        eventually(
            &format!("{path}: {alive_after} static key(s) left"),
            Duration::from_secs(200),
            || {
                (litellm.count_live_keys_with_alias_prefix(alias_prefix) == *alive_after)
                    .then_some(())
            },
        );
        let (status, body) = server.get(&format!("{path}/static-creds/{name}"));
        assert_eq!(status, 200, "{body}");
        let key = body["data"]["key"].as_str().unwrap();
        assert_eq!(
            litellm.chat(key, MODEL),
            200,
            "{path}: the stored key works"
        );
        let (status, body) = server.delete(&format!("{path}/static-roles/{name}"));
        assert_eq!(status, 204, "{body}");
        assert_eq!(litellm.count_live_keys_with_alias_prefix(alias_prefix), 0);
        steps.step(format!("{path}: the stored generations only, then none"));
    }
    assert!(server
        .log_text()
        .contains("rollback: interrupted static key rotation settled"));
}
#[cfg(feature = "fault-injection")]
per_server!(
    an_interrupted_static_rotation_leaves_the_stored_generations,
    with_steps
);

fn static_roles_mint_rotate_and_delete_their_key(engine: Engine, steps: &Steps, litellm: &LiteLlm) {
    let name = unique_prefix("s");
    let alias_prefix = format!("vault-static-{name}-");
    let server = DevServer::start(engine, &plugin_binary());
    server.register_this_plugin("litellm");
    server.enable_with_options(MOUNT, "litellm", json!({"min_rotation_period": "10s"}));
    let (status, body) = server.put(
        &format!("{MOUNT}/config"),
        &json!({"base_url": litellm.url, "admin_key": litellm.master_key}),
    );
    assert_eq!(status, 204, "config: {body}");
    let role = format!("{MOUNT}/static-roles/{name}");
    let creds = format!("{MOUNT}/static-creds/{name}");
    let current_key = || {
        let (status, body) = server.get(&creds);
        assert_eq!(status, 200, "static-creds: {body}");
        body["data"]["key"].as_str().unwrap().to_string()
    };

    steps.step("bad input names the field");
    for (input, field) in [
        (
            json!({"models": [MODEL], "rotation_period": "5s"}),
            "rotation_period",
        ),
        (json!({"rotation_period": "1h"}), "models"),
        (
            json!({"models": [MODEL], "rotation_period": "1h", "grace_period": "1h"}),
            "grace_period",
        ),
    ] {
        let (status, body) = server.put(&role, &input);
        assert_eq!(status, 400, "{input}: {body}");
        assert!(error_text(&body).contains(field), "{input}: {body}");
    }

    steps.step("creating the role mints its key");
    let (status, body) = server.put(&role, &json!({"models": [MODEL], "rotation_period": "1h"}));
    assert_eq!(status, 204, "{body}");
    let k1 = current_key();
    assert_eq!(litellm.chat(&k1, MODEL), 200);
    let (_, body) = server.get(&creds);
    assert!(
        body["data"]["key_alias"]
            .as_str()
            .is_some_and(|a| a.starts_with(&format!("{alias_prefix}1-"))),
        "{body}"
    );
    let token_hash = body["data"]["token_hash"].as_str().unwrap_or_default();
    let (status, by_hash) = litellm.key_info(token_hash);
    assert_eq!(status, 200, "key/info by token_hash: {by_hash}");
    assert_eq!(
        by_hash["info"]["key_alias"], body["data"]["key_alias"],
        "{by_hash}"
    );

    steps.step("rotate-role: a new key, the old one is dead");
    let (status, body) = server.post(&format!("{MOUNT}/rotate-role/{name}"), &json!({}));
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains("sk-"), "{body}");
    let k2 = current_key();
    assert_ne!(k1, k2);
    assert_eq!(litellm.chat(&k1, MODEL), 401);
    assert_eq!(litellm.chat(&k2, MODEL), 200);
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&alias_prefix), 1);

    steps.step("a key deleted in LiteLLM by hand: the next read hands out its successor");
    assert_eq!(litellm.delete_key(&k2), 200);
    let (status, body) = server.get(&creds);
    assert_eq!(status, 200, "{body}");
    assert!(body["warnings"].to_string().contains("was gone"), "{body}");
    let replacement = body["data"]["key"].as_str().unwrap().to_string();
    assert_ne!(replacement, k2);
    assert_eq!(litellm.chat(&replacement, MODEL), 200);
    assert_eq!(current_key(), replacement, "the successor is stored");
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&alias_prefix), 1);
    let k2 = replacement;

    steps.step("a short period: rotated by the periodic tick, the old key in its grace");
    let (status, body) = server.put(
        &role,
        &json!({"rotation_period": "10s", "grace_period": "9s"}),
    );
    assert_eq!(status, 204, "{body}");
    let k3 = eventually(
        "a scheduled static rotation",
        Duration::from_secs(180),
        || {
            let k = current_key();
            (k != k2).then_some(k)
        },
    );
    assert_eq!(litellm.chat(&k3, MODEL), 200);
    assert_eq!(
        litellm.chat(&k2, MODEL),
        200,
        "the previous key works during its grace"
    );
    let (_, body) = server.get(&role);
    assert!(
        body["data"]["previous_key_alias"]
            .as_str()
            .is_some_and(|a| a.starts_with(&alias_prefix)),
        "{body}"
    );
    eventually(
        "the previous key deleted after its grace",
        Duration::from_secs(180),
        || (litellm.chat(&k2, MODEL) == 401).then_some(()),
    );
    assert!(litellm.count_live_keys_with_alias_prefix(&alias_prefix) <= 2);

    steps.step("a patch changes a static role that exists (null: the default), never makes one");
    let (status, body) = server.patch(&role, &json!({"grace_period": null}));
    assert_eq!(status, 204, "{body}");
    let (_, body) = server.get(&role);
    assert_eq!(body["data"]["grace_period"], 0, "{body}");
    assert_eq!(body["data"]["rotation_period"], 10, "{body}");
    let (status, body) = server.patch(
        &format!("{MOUNT}/static-roles/{name}-nope"),
        &json!({"models": [MODEL]}),
    );
    assert_eq!(status, 404, "{body}");

    steps.step("deleting the role deletes its keys");
    let (status, body) = server.put(&role, &json!({"rotation_period": "1h"}));
    assert_eq!(status, 204, "{body}");
    let k4 = current_key();
    let (status, body) = server.delete(&role);
    assert_eq!(status, 204, "{body}");
    assert_eq!(litellm.chat(&k4, MODEL), 401);
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&alias_prefix), 0);
    let (status, _) = server.get(&creds);
    assert_eq!(status, 400);

    steps.step("a static key expires in LiteLLM by itself unless the engine moves it forward");
    let (status, body) = server.put(
        &role,
        &json!({"models": [MODEL], "rotation_period": "1h", "grace_period": "30m"}),
    );
    assert_eq!(status, 204, "{body}");
    let k5 = current_key();
    let expires = litellm.key_expires(&k5).expect("the static key expires");
    assert!(
        (expires - unix_now() - 9300.0).abs() < 60.0,
        "expiry {expires} is not now + 2 periods + the grace + 5 min"
    );
    let (_, body) = server.get(&creds);
    assert!(body["data"]["key_expires"].is_string(), "{body}");
    let (status, body) = server.delete(&role);
    assert_eq!(status, 204, "{body}");
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&alias_prefix), 0);
}
per_server!(static_roles_mint_rotate_and_delete_their_key, with_steps);
