//! "No key outlives its lease, and a key does only what its role says", in
//! the everyday situations where that is easy to get wrong: keys that could
//! mint keys, a 404 that is not LiteLLM's, a config that moved or was
//! deleted, expiry order, concurrent partial writes, blank model lists and
//! secrets in error messages. Real OpenBao, real LiteLLM.

mod support;

use std::sync::Arc;
use std::thread;

use reqwest::Method;
use serde_json::{json, Value};
use support::{
    configured_server, configured_with_prefix, error_text, live_leases, parse_utc_timestamp,
    per_server, put_role, Cable, DevServer, Engine, LiteLlm, Steps, TlsFront, MOUNT,
};

const MODEL: &str = "gpt-3.5-turbo";

/// A key for `role`: `(key, lease_id)`.
fn issue(server: &DevServer, role: &str) -> (String, String) {
    let (status, body) = server.get(&format!("{MOUNT}/creds/{role}"));
    assert_eq!(status, 200, "creds/{role}: {body}");
    (
        body["data"]["key"].as_str().unwrap().to_string(),
        body["lease_id"].as_str().unwrap().to_string(),
    )
}

/// A configured server with role `r` on [`MODEL`] with an alias prefix of its own (tagged
/// `tag`) and the fields of `extra`: `(server, prefix)`.
fn server_with_role_r(
    engine: Engine,
    litellm: &LiteLlm,
    tag: &str,
    extra: Value,
) -> (DevServer, String) {
    let (server, prefix) = configured_with_prefix(engine, litellm, tag);
    let mut role = json!({"models": [MODEL], "key_alias_prefix": prefix});
    if let (Some(role), Value::Object(extra)) = (role.as_object_mut(), extra) {
        role.extend(extra);
    }
    put_role(&server, "r", role);
    (server, prefix)
}

fn write_config(server: &DevServer, body: Value) -> (u16, Value) {
    server.put(&format!("{MOUNT}/config"), &body)
}

fn leased_keys_cannot_manage_keys_even_for_an_internal_user(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let (server, prefix) = configured_with_prefix(engine, litellm, "s");
    let (status, user) = litellm.admin(
        Method::POST,
        "/user/new",
        &json!({"user_role": "internal_user", "user_id": format!("{prefix}-user")}),
    );
    assert_eq!(status, 200, "/user/new: {user}");
    let user_id = user["user_id"].as_str().unwrap().to_string();

    steps.step("a new role with the defaults: model calls only");
    put_role(
        &server,
        "scoped",
        json!({"models": [MODEL], "user_id": user_id, "key_alias_prefix": prefix}),
    );
    let (_, role) = server.get(&format!("{MOUNT}/roles/scoped"));
    assert_eq!(role["data"]["key_type"], "llm_api", "{role}");
    assert_eq!(role["data"]["may_manage_keys"], false, "{role}");
    assert!(role["warnings"].is_null(), "{role}");
    let (key, _) = issue(&server, "scoped");
    assert_eq!(litellm.chat(&key, MODEL), 200);
    for (method, path, body) in [
        (Method::POST, "/key/generate", json!({"models": [MODEL]})),
        (Method::GET, "/key/list", json!(null)),
        (Method::POST, "/key/delete", json!({"keys": [key.clone()]})),
        (
            Method::POST,
            "/user/new",
            json!({"user_id": format!("{prefix}-x")}),
        ),
    ] {
        let (status, body) = litellm.call_as(&key, method, path, &body);
        assert!(
            status == 401 || status == 403,
            "{path} with a leased key: {status} {body}"
        );
    }
    assert_eq!(litellm.chat(&key, MODEL), 200, "the key survived");

    steps.step("key_type=default is flagged, and really can mint keys");
    let out = put_role(
        &server,
        "wide",
        json!({"models": [MODEL], "user_id": user_id, "key_alias_prefix": prefix, "key_type": "default"}),
    );
    assert!(
        out["warnings"].to_string().contains("may manage keys"),
        "{out}"
    );
    let (_, role) = server.get(&format!("{MOUNT}/roles/wide"));
    assert_eq!(role["data"]["may_manage_keys"], true, "{role}");
    let (wide_key, _) = issue(&server, "wide");
    let (status, child) = litellm.call_as(
        &wide_key,
        Method::POST,
        "/key/generate",
        &json!({"key_alias": format!("{prefix}-child"), "duration": "60s"}),
    );
    assert_eq!(status, 200, "the check above can fail: {child}");

    let (status, _) = server.revoke_prefix(&format!("{MOUNT}/creds"));
    assert_eq!(status, 204);
    assert_eq!(litellm.delete_keys_with_alias_prefix(&prefix), Ok(1));
    litellm.admin(
        Method::POST,
        "/user/delete",
        &json!({"user_ids": [user_id]}),
    );
}
per_server!(
    leased_keys_cannot_manage_keys_even_for_an_internal_user,
    with_steps
);

fn only_litellms_no_keys_found_counts_as_already_gone(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let (server, _) = server_with_role_r(engine, litellm, "n", json!({}));
    let (key, lease) = issue(&server, "r");

    steps.step("base_url under a wrong path prefix: revoke fails, lease and key stay");
    let (status, body) = write_config(
        &server,
        json!({"base_url": format!("{}/no-such-prefix", litellm.url), "proxy_moved": true, "verify_connection": false}),
    );
    assert!((200..300).contains(&status), "{body}");
    let (status, body) = server.lease_revoke(&lease);
    assert!(status >= 400, "revoke must fail on a foreign 404: {body}");
    assert_eq!(live_leases(&server, "r"), 1);
    assert_eq!(litellm.chat(&key, MODEL), 200);

    steps.step("the right URL again: the same lease revokes its key");
    let (status, body) = write_config(
        &server,
        json!({"base_url": litellm.url, "proxy_moved": true}),
    );
    assert!((200..300).contains(&status), "{body}");
    let (status, body) = server.lease_revoke(&lease);
    assert_eq!(status, 204, "{body}");
    assert_eq!(litellm.chat(&key, MODEL), 401);

    steps.step("a key deleted behind the engine's back: LiteLLM's own 404 revokes the lease");
    let (key, lease) = issue(&server, "r");
    assert_eq!(litellm.delete_key(&key), 200);
    let (status, body) = server.lease_revoke(&lease);
    assert_eq!(status, 204, "{body}");
    assert_eq!(live_leases(&server, "r"), 0);
}
per_server!(
    only_litellms_no_keys_found_counts_as_already_gone,
    with_steps
);

fn keys_renew_and_revoke_on_the_proxy_they_were_minted_on(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let (server, prefix) = configured_with_prefix(engine, litellm, "h");
    let cable = Cable::to(&litellm.url);
    let (status, body) = write_config(&server, json!({"base_url": cable.url()}));
    assert!((200..300).contains(&status), "{body}");
    put_role(
        &server,
        "r",
        json!({"models": [MODEL], "key_alias_prefix": prefix, "ttl": "10m"}),
    );
    let (key, lease) = issue(&server, "r");

    steps.step("config now names another proxy: the write warns");
    let (status, body) = write_config(&server, json!({"base_url": litellm.url}));
    assert_eq!(status, 200, "{body}");
    // The recipe that works: the old URL back first, then the move.
    let warnings = body["warnings"].to_string();
    assert!(
        warnings.contains("proxy_moved=true") && warnings.contains("takes its keys back"),
        "{body}"
    );
    let (_, config) = server.get(&format!("{MOUNT}/config"));
    assert_eq!(
        config["data"]["retired_proxies"]
            .as_object()
            .map(|m| m.len()),
        Some(1),
        "{config}"
    );

    steps.step("the key's own proxy is unreachable: renew and revoke fail, nothing is lost");
    cable.cut();
    let (status, body) = server.lease_renew(&lease, 300);
    assert!(status >= 400, "renew on the wrong proxy: {body}");
    let (status, body) = server.lease_revoke(&lease);
    assert!(status >= 400, "revoke on the wrong proxy: {body}");
    assert_eq!(live_leases(&server, "r"), 1);
    assert_eq!(litellm.chat(&key, MODEL), 200);

    steps.step("its proxy answers again: the revoke goes there");
    cable.mend();
    let (status, body) = server.lease_revoke(&lease);
    assert_eq!(status, 204, "{body}");
    assert_eq!(litellm.chat(&key, MODEL), 401);

    steps.step("a proxy that moved (proxy_moved=true): its keys follow it");
    let (status, body) = write_config(&server, json!({"base_url": cable.url()}));
    assert!((200..300).contains(&status), "{body}");
    let (key, lease) = issue(&server, "r");
    let (status, body) = write_config(
        &server,
        json!({"base_url": litellm.url, "proxy_moved": true}),
    );
    assert_eq!(status, 204, "no warning for a move: {body}");
    cable.cut();
    let (status, body) = server.lease_renew(&lease, 300);
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.lease_revoke(&lease);
    assert_eq!(status, 204, "{body}");
    assert_eq!(litellm.chat(&key, MODEL), 401);
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&prefix), 0);
}
per_server!(
    keys_renew_and_revoke_on_the_proxy_they_were_minted_on,
    with_steps
);

fn deleting_config_keeps_live_leases_revocable(engine: Engine, steps: &Steps, litellm: &LiteLlm) {
    let (server, prefix) = server_with_role_r(engine, litellm, "d", json!({}));
    let (key, lease) = issue(&server, "r");
    let (key2, _) = issue(&server, "r");

    steps.step("delete config: no new keys, the old ones still revoke");
    let (status, body) = server.delete(&format!("{MOUNT}/config"));
    assert_eq!(status, 204, "{body}");
    let (status, _) = server.get(&format!("{MOUNT}/config"));
    assert_eq!(status, 404);
    let (status, body) = server.get(&format!("{MOUNT}/creds/r"));
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("write config first"), "{body}");
    let (status, body) = server.lease_revoke(&lease);
    assert_eq!(status, 204, "{body}");
    assert_eq!(litellm.chat(&key, MODEL), 401);

    steps.step("unmount with config deleted: every key goes");
    server.disable(MOUNT);
    assert_eq!(litellm.chat(&key2, MODEL), 401);
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&prefix), 0);
}
per_server!(deleting_config_keeps_live_leases_revocable, with_steps);

fn a_key_never_expires_before_its_lease(engine: Engine, steps: &Steps, litellm: &LiteLlm) {
    let (server, _) =
        server_with_role_r(engine, litellm, "e", json!({"ttl": "10m", "max_ttl": "1h"}));
    let (key, lease) = issue(&server, "r");
    let check = |when: &str| {
        let (status, body) = server.put("sys/leases/lookup", &json!({"lease_id": lease}));
        assert_eq!(status, 200, "{body}");
        let lease_expires = parse_utc_timestamp(body["data"]["expire_time"].as_str().unwrap())
            .expect("expire_time");
        let key_expires = litellm.key_expires(&key).expect("the key expires");
        let margin = key_expires - lease_expires;
        steps.step(format!(
            "{when}: the key outlives its lease by {margin:.1}s"
        ));
        assert!(
            (0.0..=40.0).contains(&margin),
            "{when}: key expires {key_expires}, lease {lease_expires}"
        );
    };
    check("issued");
    let (status, body) = server.lease_renew(&lease, 1200);
    assert_eq!(status, 200, "{body}");
    check("renewed");
    server.lease_revoke(&lease);
}
per_server!(a_key_never_expires_before_its_lease, with_steps);

fn concurrent_partial_writes_lose_no_field(engine: Engine, steps: &Steps, litellm: &LiteLlm) {
    let server = Arc::new(configured_server(engine, litellm));
    put_role(&server, "r", json!({"models": [MODEL]}));
    steps.step("ten rounds of two concurrent partial writes to one role, and to config");
    for round in 1..=10u64 {
        let writers: Vec<_> = [
            ("roles/r", json!({"max_budget": round})),
            ("roles/r", json!({"rpm_limit": round})),
            (
                "config",
                json!({"request_timeout": 10 + round, "verify_connection": false}),
            ),
            (
                "config",
                json!({"tls_skip_verify": round % 2 == 0, "verify_connection": false}),
            ),
        ]
        .into_iter()
        .map(|(path, body)| {
            let server = Arc::clone(&server);
            thread::spawn(move || server.put(&format!("{MOUNT}/{path}"), &body))
        })
        .collect();
        for w in writers {
            let (status, body) = w.join().unwrap();
            assert!((200..300).contains(&status), "{body}");
        }
        let (_, role) = server.get(&format!("{MOUNT}/roles/r"));
        assert_eq!(
            role["data"]["max_budget"].as_f64(),
            Some(round as f64),
            "round {round}: {role}"
        );
        assert_eq!(role["data"]["rpm_limit"], round, "round {round}: {role}");
        let (_, config) = server.get(&format!("{MOUNT}/config"));
        assert_eq!(
            config["data"]["request_timeout"],
            10 + round,
            "round {round}: {config}"
        );
        assert_eq!(
            config["data"]["tls_skip_verify"],
            round % 2 == 0,
            "round {round}: {config}"
        );
    }
}
per_server!(concurrent_partial_writes_lose_no_field, with_steps);

fn an_empty_model_list_never_means_every_model(engine: Engine, steps: &Steps, litellm: &LiteLlm) {
    let (server, prefix) = configured_with_prefix(engine, litellm, "m");
    steps.step("no models, or blank ones: 400 naming the field");
    for body in [
        json!({}),
        json!({"models": ""}),
        json!({"models": " , "}),
        json!({"models": [""]}),
    ] {
        let (status, out) = server.put(&format!("{MOUNT}/roles/blank"), &body);
        assert_eq!(status, 400, "{body}: {out}");
        assert!(error_text(&out).contains("models"), "{body}: {out}");
    }
    let (status, _) = server.get(&format!("{MOUNT}/roles/blank"));
    assert_eq!(status, 404, "nothing was stored");

    steps.step("allow_all_models=true, explicitly: every model");
    put_role(
        &server,
        "all",
        json!({"allow_all_models": true, "key_alias_prefix": prefix}),
    );
    let (key, lease) = issue(&server, "all");
    assert_eq!(litellm.chat(&key, MODEL), 200);
    assert_eq!(litellm.chat(&key, "gpt-4o"), 200);
    server.lease_revoke(&lease);
}
per_server!(an_empty_model_list_never_means_every_model, with_steps);

fn errors_never_echo_secrets(engine: Engine, steps: &Steps, litellm: &LiteLlm) {
    let server = configured_server(engine, litellm);
    steps.step("bad master_key and base_url values: 400, the field named, no value echoed");
    for body in [
        json!({"master_key": ["sk-leak-aaaa1111"]}),
        json!({"master_key": {"k": "sk-leak-aaaa1111"}}),
        json!({"master_key": "sk-leak aaaa1111"}),
        json!({"base_url": "http://admin:sk-leak-aaaa1111@127.0.0.1:1"}),
        json!({"base_url": "ht!tp://admin:sk-leak-aaaa1111@x"}),
        json!({"base_url": "sk-leak-aaaa1111"}),
    ] {
        let (status, out) = write_config(&server, body.clone());
        assert_eq!(status, 400, "{body}: {out}");
        let text = error_text(&out);
        let field = body.as_object().unwrap().keys().next().unwrap().clone();
        assert!(text.contains(&field), "{body}: {text}");
        assert!(!text.contains("sk-leak"), "{body}: {text}");
    }
    assert!(
        !server.log_text().contains("sk-leak"),
        "a secret reached the server log"
    );
}
per_server!(errors_never_echo_secrets, with_steps);

/// LiteLLM behind a TLS front whose certificate a private CA signed, as a
/// load balancer often serves it: refused without the CA, working with
/// `ca_cert` (by address and by host name) and with `tls_skip_verify`.
fn a_proxy_behind_tls_with_a_private_ca(engine: Engine, steps: &Steps, litellm: &LiteLlm) {
    let front = TlsFront::to(&litellm.url);
    let (server, prefix) = server_with_role_r(engine, litellm, "tls", json!({}));
    // The same proxy (the same key store) under a new URL: proxy_moved.
    let moved = |extra: Value| {
        let mut body = json!({"base_url": front.url(), "proxy_moved": true});
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        write_config(&server, body)
    };
    let issue_use_revoke = |what: &str| {
        let (key, lease) = issue(&server, "r");
        assert_eq!(litellm.chat(&key, MODEL), 200, "{what}");
        let (status, body) = server.lease_renew(&lease, 600);
        assert_eq!(status, 200, "{what}: renew {body}");
        let (status, body) = server.lease_revoke(&lease);
        assert!(
            (200..300).contains(&status),
            "{what}: revoke {status} {body}"
        );
        assert_eq!(litellm.chat(&key, MODEL), 401, "{what}: the revoked key");
    };

    steps.step("https without the CA: 400 naming the certificate, nothing saved");
    let (status, body) = moved(json!({}));
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("certificate"), "{body}");
    let (_, config) = server.get(&format!("{MOUNT}/config"));
    assert_eq!(config["data"]["base_url"], format!("{}/", litellm.url));

    steps.step("with ca_cert: keys issued, used, renewed and revoked through TLS");
    let (status, body) = moved(json!({"ca_cert": front.ca_pem}));
    assert!((200..300).contains(&status), "{status} {body}");
    issue_use_revoke("ca_cert, by address");

    steps.step("by host name (the certificate names localhost too)");
    let (status, body) = moved(json!({"base_url": front.url_by_name()}));
    assert!((200..300).contains(&status), "{status} {body}");
    issue_use_revoke("ca_cert, by host name");

    steps.step("another CA's certificate is refused");
    let other = TlsFront::to(&litellm.url);
    let (status, body) = write_config(&server, json!({"ca_cert": other.ca_pem}));
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("certificate"), "{body}");

    steps.step("tls_skip_verify, no CA: works (for tests only)");
    let (status, body) = write_config(&server, json!({"ca_cert": "", "tls_skip_verify": true}));
    assert!((200..300).contains(&status), "{status} {body}");
    issue_use_revoke("tls_skip_verify");
    assert!(litellm.live_keys_with_alias_prefix(&prefix).is_empty());
}
per_server!(a_proxy_behind_tls_with_a_private_ca, with_steps);
