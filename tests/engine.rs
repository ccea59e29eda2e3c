//! Engine semantics against a real LiteLLM proxy and a real server, beyond
//! the user lifecycle of `e2e.rs`: two roles side by side, deleting a role
//! with live leases, what a lease stores, and the crash-safety rollback.

mod support;

use serde_json::{json, Value};
use support::{
    configured_server, per_server, plugin_binary, plugin_version, unique_prefix, unix_now,
    DevServer, Engine, LiteLlm, Steps, MOUNT,
};

fn creds(server: &DevServer, role: &str) -> Value {
    let (status, body) = server.get(&format!("{MOUNT}/creds/{role}"));
    assert_eq!(status, 200, "creds/{role}: {body}");
    body
}

fn two_roles_role_deletion_and_lease_contents(engine: Engine, steps: &Steps, litellm: &LiteLlm) {
    let prefix = unique_prefix("r");
    let server = configured_server(engine, litellm);

    steps.step("two roles with different models and limits");
    for (role, model) in [("chat", "gpt-3.5-turbo"), ("claude", "claude-mock")] {
        let (status, body) = server.put(
            &format!("{MOUNT}/roles/{role}"),
            &json!({"models": [model], "key_alias_prefix": prefix, "max_budget": 1.5, "rpm_limit": 50,
                    "metadata": {"team": "e2e"}, "ttl": "10m", "max_ttl": "1h"}),
        );
        assert_eq!(status, 204, "{body}");
    }
    let chat = creds(&server, "chat");
    let claude = creds(&server, "claude");
    let chat_key = chat["data"]["key"].as_str().unwrap().to_string();
    let claude_key = claude["data"]["key"].as_str().unwrap().to_string();
    assert_eq!(chat["lease_duration"], 600);
    assert_eq!(chat["data"]["rpm_limit"], 50);
    assert!(chat["data"]["key_alias"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{prefix}-chat-")));
    assert_eq!(litellm.chat(&chat_key, "gpt-3.5-turbo"), 200);
    assert_eq!(litellm.chat(&chat_key, "claude-mock"), 403);
    assert_eq!(litellm.chat(&claude_key, "claude-mock"), 200);
    assert_eq!(litellm.chat(&claude_key, "gpt-3.5-turbo"), 403);

    steps.step("LiteLLM holds the role's limits, metadata and an expiry of the TTL plus the grace");
    let (status, info) = litellm.key_info(&chat_key);
    assert_eq!(status, 200, "{info}");
    let info = &info["info"];
    assert_eq!(info["max_budget"], 1.5);
    assert_eq!(info["rpm_limit"], 50);
    assert_eq!(info["metadata"]["team"], "e2e");
    assert_eq!(info["metadata"]["vault_role"], "chat");
    // TTL plus the engine's 30 s grace (the key never dies before its lease).
    let expires = litellm.key_expires(&chat_key).expect("the key expires");
    assert!(
        (expires - unix_now() - 630.0).abs() < 20.0,
        "expiry {expires} is not now+600s+30s"
    );

    steps.step("renew shows no key, and is capped by the role's max_ttl");
    let lease = chat["lease_id"].as_str().unwrap();
    let (status, renewed) = server.lease_renew(lease, 7200);
    assert_eq!(status, 200, "{renewed}");
    assert!(
        renewed["lease_duration"].as_u64().unwrap() <= 3600,
        "{renewed}"
    );
    assert!(
        !renewed.to_string().contains(&chat_key),
        "renew must not reveal the key"
    );
    // The server says the increment was capped; the engine does not repeat it.
    let capped: Vec<&Value> = renewed["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter(|w| w.to_string().contains("capped"))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(capped.len(), 1, "one capping warning: {renewed}");
    // No data at all, as the database engine renews: an agent keeps the data
    // it rendered only when a renewal brings none.
    assert!(
        renewed["data"].as_object().is_none_or(|d| d.is_empty()),
        "renew returns data: {renewed}"
    );
    let expires = litellm.key_expires(&chat_key).unwrap();
    assert!(
        (expires - unix_now() - 3630.0).abs() < 20.0,
        "expiry {expires} is not capped at now+1h (plus the 30 s grace)"
    );

    steps.step(
        "deleting a role: its keys keep working until revoked, renew is refused, revoke works",
    );
    let (status, _) = server.delete(&format!("{MOUNT}/roles/chat"));
    assert_eq!(status, 204);
    assert_eq!(litellm.chat(&chat_key, "gpt-3.5-turbo"), 200);
    let (status, body) = server.lease_renew(lease, 60);
    assert_eq!(status, 400, "{body}");
    let why = support::error_text(&body);
    assert!(why.contains("was deleted"), "{body}");
    // The server quotes a renewal's whole response in its message: the
    // engine's reason must come alone, not inside a dump of Go structs.
    assert!(!why.contains("logical.Response{"), "{body}");
    let (status, body) = server.lease_revoke(lease);
    assert_eq!(status, 204, "{body}");
    assert_eq!(litellm.chat(&chat_key, "gpt-3.5-turbo"), 401);

    steps.step("creds for a deleted or unknown role: 400, no key");
    let (status, body) = server.get(&format!("{MOUNT}/creds/chat"));
    assert_eq!(status, 400, "{body}");
    assert!(
        support::error_text(&body).contains("unknown role"),
        "{body}"
    );

    steps.step("unmount with a live lease deletes its key");
    server.disable(MOUNT);
    assert_eq!(litellm.chat(&claude_key, "claude-mock"), 401);
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&prefix), 0);
}
per_server!(two_roles_role_deletion_and_lease_contents, with_steps);

fn litellm_down_during_creds_leaves_no_lease_and_no_key(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let server = DevServer::start(engine, &plugin_binary());
    server.register_this_plugin("litellm");
    server.enable(MOUNT, "litellm", &plugin_version());
    // A port nobody listens on: the proxy is "down".
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (status, body) = server.put(
        &format!("{MOUNT}/config"),
        &json!({"base_url": format!("http://127.0.0.1:{dead}"), "master_key": litellm.master_key, "verify_connection": false}),
    );
    assert_eq!(status, 204, "{body}");
    server.put(
        &format!("{MOUNT}/roles/r"),
        &json!({"models": ["gpt-3.5-turbo"]}),
    );

    steps.step("creds while LiteLLM is down: a 5xx that says so");
    let (status, body) = server.get(&format!("{MOUNT}/creds/r"));
    assert_eq!(status, 503, "{body}");
    assert!(
        support::error_text(&body).contains("cannot reach LiteLLM"),
        "{body}"
    );
    let (_, leases) = server.list(&format!("sys/leases/lookup/{MOUNT}/creds/r"));
    assert!(
        leases["data"]["keys"].as_array().is_none_or(Vec::is_empty),
        "{leases}"
    );
}
per_server!(
    litellm_down_during_creds_leaves_no_lease_and_no_key,
    with_steps
);

/// Crashes the plugin right after LiteLLM minted a key (a test build with
/// the `fault-injection` feature), then waits for the periodic rollback to
/// delete the orphan.
#[cfg(feature = "fault-injection")]
fn an_interrupted_issue_is_rolled_back(engine: Engine) {
    use std::time::Duration;
    use support::eventually;

    let litellm = LiteLlm::from_env();
    let steps = Steps::new(format!("rollback/{engine}"));
    let prefix = unique_prefix("c");
    let server = DevServer::start(engine, &plugin_binary());
    server.mount_crashing_plugin("crashy", MOUNT, "LITELLM_PLUGIN_CRASH_AFTER_GENERATE=1");
    // A short request timeout keeps the entry's hold (twice the
    // timeout plus a margin) well inside the wait below.
    let (status, body) = server.put(
        &format!("{MOUNT}/config"),
        &json!({"base_url": litellm.url, "master_key": litellm.master_key, "request_timeout": "5s"}),
    );
    assert_eq!(status, 204, "{body}");
    server.put(
        &format!("{MOUNT}/roles/r"),
        &json!({"models": ["gpt-3.5-turbo"], "key_alias_prefix": prefix}),
    );

    steps.step("creds: the plugin dies after /key/generate, before the lease");
    let (status, body) = server.get(&format!("{MOUNT}/creds/r"));
    assert!(status >= 500, "{status} {body}");
    let orphans = litellm.count_live_keys_with_alias_prefix(&prefix);
    assert!(
        orphans >= 1,
        "the crash should have left a live key in LiteLLM"
    );
    steps.step(format!(
        "{orphans} orphaned key(s) live in LiteLLM; waiting for the rollback tick"
    ));

    eventually(
        "the rollback to delete the orphaned keys",
        Duration::from_secs(150),
        || (litellm.count_live_keys_with_alias_prefix(&prefix) == 0).then_some(()),
    );
    let (status, body) = server.list(&format!("sys/leases/lookup/{MOUNT}/creds/r"));
    assert!(
        status == 404 || body["data"]["keys"].as_array().is_none_or(Vec::is_empty),
        "{body}"
    );
    assert!(server
        .log_text()
        .contains("rolled back abandoned operation"));
    steps.step("done: no live key, no lease");
}
#[cfg(feature = "fault-injection")]
per_server!(an_interrupted_issue_is_rolled_back);
