//! The plugin runtime against a real server: registration by sha256 and
//! version, mount, help and OpenAPI, storage round trips, reload, unmount,
//! and no process or socket left behind. Needs no LiteLLM (the config is
//! written with verify_connection=false).

mod support;

use std::fs;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::{
    eventually, per_server, plugin_binary, plugin_version, sha256_file, DevServer, Engine, Steps,
};

const MOUNT: &str = "litellm";

fn sockets_in(server: &DevServer) -> Vec<String> {
    fs::read_dir(server.dir().join("tmp"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("plugin"))
                .collect()
        })
        .unwrap_or_default()
}

fn plugin_lifecycle_on_a_real_server(engine: Engine) {
    let steps = Steps::new(format!("runtime/{engine}"));
    let server = DevServer::start(engine, &plugin_binary());

    steps.step("a version that does not match the binary's is refused");
    let sha = sha256_file(server.plugin_path());
    let (status, body) = server.put(
        "sys/plugins/catalog/secret/litellm",
        &json!({"sha256": sha, "command": support::PLUGIN_FILE_NAME, "version": "v9.9.9"}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("did not match"), "{body}");

    steps.step("a wrong sha256 cannot be mounted");
    let (status, _) = server.put(
        "sys/plugins/catalog/secret/badsha",
        &json!({"sha256": "00".repeat(32), "command": support::PLUGIN_FILE_NAME, "version": plugin_version()}),
    );
    assert!((200..300).contains(&status));
    let (status, body) = server.post(
        "sys/mounts/badsha",
        &json!({"type": "badsha", "plugin_version": plugin_version()}),
    );
    assert!(status >= 400, "{body}");

    steps.step("register with sha256 and version, and mount");
    server.register_plugin("litellm", &sha, &plugin_version());
    let (status, body) = server.get(&format!(
        "sys/plugins/catalog/secret/litellm?version={}",
        plugin_version()
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["version"], plugin_version());
    server.enable(MOUNT, "litellm", &plugin_version());
    let (_, mounts) = server.get("sys/mounts");
    assert_eq!(
        mounts["data"]["litellm/"]["running_plugin_version"],
        plugin_version(),
        "{mounts}"
    );
    let pids = server.plugin_pids();
    assert_eq!(pids.len(), 1, "one plugin process per mount: {pids:?}");

    steps.step("path-help of the mount and of a path");
    let (status, body) = server.get(&format!("{MOUNT}?help=1"));
    assert_eq!(status, 200, "{body}");
    let help = body["help"].as_str().unwrap_or_default();
    assert!(
        help.contains("LiteLLM") && help.contains("creds/{name}"),
        "{help}"
    );
    let (status, body) = server.get(&format!("{MOUNT}/roles/dev?help=1"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body["help"].as_str().unwrap_or_default().contains("models"),
        "{body}"
    );

    steps.step("the server's OpenAPI document includes the engine's paths");
    let (status, body) = server.get("sys/internal/specs/openapi");
    assert_eq!(status, 200, "{body}");
    for path in [
        "/litellm/config",
        "/litellm/roles/{name}",
        "/litellm/roles/",
        "/litellm/creds/{name}",
    ] {
        assert!(
            body["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    // The request body's fields survive the server's merge (inline, no $ref),
    // and a path with an existence check says it tells create from update.
    let roles = &body["paths"]["/litellm/roles/{name}"];
    let schema = &roles["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert!(
        schema["properties"]["models"].is_object(),
        "roles/{{name}} body schema: {schema}"
    );
    assert_eq!(roles["x-vault-createSupported"], true, "{roles}");
    // Ids carry the engine's prefix, as Go plugins' do (generated clients
    // name their calls after them).
    assert_eq!(
        roles["post"]["operationId"], "litellm-write-roles-name",
        "{roles}"
    );
    assert!(
        body["components"]["schemas"]["LitellmWriteRolesNameRequest"].is_object(),
        "{}",
        body["components"]["schemas"]
    );

    steps.step("write and read through the server's storage");
    let (status, body) = server.put(
        &format!("{MOUNT}/config"),
        &json!({"base_url": "http://127.0.0.1:9", "master_key": "sk-runtime-test", "verify_connection": false}),
    );
    assert_eq!(status, 204, "{body}");
    let (status, role) = server.put(
        &format!("{MOUNT}/roles/dev"),
        &json!({"models": ["gpt-4o"], "max_budget": 2.5, "ttl": "1h"}),
    );
    assert_eq!(status, 204, "{role}");
    let (status, body) = server.get(&format!("{MOUNT}/roles/dev"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["models"], json!(["gpt-4o"]));
    assert_eq!(body["data"]["ttl"], 3600);
    let (status, body) = server.list(&format!("{MOUNT}/roles"));
    assert_eq!(
        (status, body["data"]["keys"].clone()),
        (200, json!(["dev"])),
        "{body}"
    );

    steps.step("errors map to HTTP codes");
    let (status, body) = server.put(
        &format!("{MOUNT}/roles/dev"),
        &json!({"max_budget": "lots"}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(support::error_text(&body).contains("max_budget"), "{body}");
    let (status, _) = server.get(&format!("{MOUNT}/nothing-here"));
    assert_eq!(status, 404);
    let (status, _) = server.get(&format!("{MOUNT}/roles/missing"));
    assert_eq!(status, 404);
    let (status, _) = server.delete(&format!("{MOUNT}/creds/dev"));
    assert_eq!(status, 405);

    steps.step("the master key is never read back");
    let (status, body) = server.get(&format!("{MOUNT}/config"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["master_key_set"], true);
    assert!(!body.to_string().contains("sk-runtime-test"), "{body}");

    steps.step("reload: a new process, the same data");
    // The host's own broker listeners live there too: count, don't assume.
    let sockets_before = sockets_in(&server).len();
    let (status, body) = server.reload_plugin("litellm");
    assert!((200..300).contains(&status), "{body}");
    let new_pids = eventually("a new plugin process", Duration::from_secs(20), || {
        let now = server.plugin_pids();
        (now.len() == 1 && now != pids).then_some(now)
    });
    let (status, body) = server.get(&format!("{MOUNT}/roles/dev"));
    assert_eq!(status, 200, "after reload: {body}");
    assert_eq!(body["data"]["max_budget"], 2.5);
    eventually(
        "the old process's socket removed",
        Duration::from_secs(10),
        || (sockets_in(&server).len() <= sockets_before).then_some(()),
    );

    steps.step("tuned onto a mount with data, it is ignored with a warning until fixed");
    let tune = |value: &str| {
        let (status, body) = server.post(
            &format!("sys/mounts/{MOUNT}/tune"),
            &json!({"options": {"rollback_min_age": value}}),
        );
        assert_eq!(status, 204, "{body}");
        let (status, body) = server.reload_plugin("litellm");
        assert!((200..300).contains(&status), "reload: {body}");
        eventually(
            "roles/dev after the reload",
            Duration::from_secs(20),
            || {
                let (status, body) = server.get(&format!("{MOUNT}/roles/dev"));
                (status == 200).then_some(body)
            },
        )
    };
    let body = tune("soon");
    assert_eq!(body["data"]["max_budget"], 2.5);
    assert!(
        body["warnings"].to_string().contains("rollback_min_age"),
        "{body}"
    );
    let body = tune("10m");
    assert!(body["warnings"].is_null(), "{body}");

    steps.step("the plugin logs hclog JSON the server understands");
    let log = server.log_text();
    assert!(
        log.contains("LiteLLM connection configured") && log.contains("@module=engine::config"),
        "plugin log lines not parsed as hclog"
    );
    assert!(
        !log.contains("sk-runtime-test"),
        "the master key reached the log"
    );

    steps.step("disable: the process exits and removes its socket");
    server.disable(MOUNT);
    eventually("no plugin process left", Duration::from_secs(10), || {
        server.plugin_pids().is_empty().then_some(())
    });
    eventually("no socket file left", Duration::from_secs(5), || {
        sockets_in(&server).is_empty().then_some(())
    });
    assert!(!new_pids.is_empty());

    steps.step("a mount option the engine cannot use refuses a new mount, and its process exits");
    let (status, body) = server.post(
        "sys/mounts/badopt",
        &json!({"type": "litellm", "plugin_version": plugin_version(), "options": {"rollback_min_age": "soon"}}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        support::error_text(&body).contains("rollback_min_age"),
        "{body}"
    );
    let (_, mounts) = server.get("sys/mounts");
    assert!(mounts["data"]["badopt/"].is_null(), "{mounts}");
    // OpenBao forgets a process whose Setup failed, running: it must go.
    eventually(
        "the refused mount's process gone",
        Duration::from_secs(10),
        || server.plugin_pids().is_empty().then_some(()),
    );
    steps.step("done");
}
per_server!(plugin_lifecycle_on_a_real_server);

#[test]
fn run_by_hand_explains_itself() {
    let out = Command::new(plugin_binary())
        .env_remove("VAULT_BACKEND_PLUGIN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plugin register") && err.contains("sha256"),
        "{err}"
    );

    let out = Command::new(plugin_binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("vault-plugin-secrets-litellm {}", plugin_version())
    );
}

#[test]
fn database_probe_and_legacy_protocols_exit_1() {
    let out = Command::new(plugin_binary())
        .env_clear()
        .env(
            "VAULT_DATABASE_PLUGIN",
            "926a0820-aea2-be28-51d6-83cdf00e8edb",
        )
        .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let out = Command::new(plugin_binary())
        .env_clear()
        .env(
            "VAULT_BACKEND_PLUGIN",
            "6669da05-b1c8-4f49-97d9-c8e5bed98e20",
        )
        .env("PLUGIN_PROTOCOL_VERSIONS", "3,4")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only speaks 5"));
}
