//! End-to-end tests: the plugin in a real OpenBao / Vault dev server, issuing real LiteLLM keys.
//!
//! Each test runs once per server (`<test>::openbao`, `<test>::vault`; see `support::per_server!`
//! and `ENGINES`): it starts a dev server, registers and mounts the plugin at `litellm/`, and
//! checks the effect of every operation on the LiteLLM proxy from `LITELLM_URL`. Run with
//! `make e2e` (or `make test`), which brings the stack up:
//!
//! ```text
//! e2e/run-with-stack.sh cargo test --test e2e -- --nocapture --test-threads=1
//! ```
//!
//! Every key a test issues gets an alias prefix unique to that test run, so the tests can count
//! the keys alive in LiteLLM, and a janitor deletes whatever is left when the test ends.

mod support;

use std::ops::Deref;
use std::time::Duration;

use serde_json::{json, Value};
use support::{assert_ok, error_text, eventually, per_server, unix_now, Engine, PluginServer};

/// Mount path and plugin catalog name.
const MOUNT: &str = "litellm";
const PLUGIN: &str = "litellm";

/// How long LiteLLM may take to refuse a key after it was revoked.
const REVOKE_SETTLE: Duration = Duration::from_secs(15);

const ALLOWED_MODEL: &str = "gpt-3.5-turbo";
const OTHER_MODEL: &str = "gpt-4o";

// ------------------------------------------------------------------------------------ fixture

/// A dev server with the plugin mounted at `litellm/`, plus the LiteLLM proxy.
struct Fixture(PluginServer);

impl Deref for Fixture {
    type Target = PluginServer;

    fn deref(&self) -> &PluginServer {
        &self.0
    }
}

/// A set of credentials read from `litellm/creds/<role>`.
struct Creds {
    key: String,
    alias: String,
    lease_id: String,
    lease_duration: u64,
    data: Value,
}

impl Fixture {
    /// Starts `engine`, registers and mounts the plugin; with `configure`, also writes a valid
    /// `litellm/config`.
    fn new(engine: Engine, test: &str, tag: &str, configure: bool) -> Fixture {
        // The engine accepts a key_alias_prefix of 1-32 characters of [A-Za-z0-9_-]: keep it
        // short, unique per run (milliseconds) and per engine and test (the tag).
        let prefix = format!(
            "e2e-{}{}-{:08x}",
            &engine.name()[..1],
            tag,
            (unix_now() * 1000.0) as u64 & 0xffff_ffff
        );
        let fixture = Fixture(PluginServer::start(
            engine,
            format!("{engine} {test}"),
            prefix,
            true,
        ));
        if configure {
            let (status, body) = fixture.write_config(json!({}));
            assert_ok(status, &body, "write litellm/config");
            fixture
                .steps
                .step("litellm/config written (connection verified)");
        }
        fixture
    }

    fn step(&self, what: impl std::fmt::Display) {
        self.steps.step(what);
    }

    /// Writes `litellm/config` with the real URL and master key, overridden by `extra`.
    fn write_config(&self, extra: Value) -> (u16, Value) {
        let mut body = json!({
            "base_url": self.litellm.url,
            "master_key": self.litellm.master_key,
        });
        merge(&mut body, extra);
        self.server.post(&format!("{MOUNT}/config"), &body)
    }

    /// Creates role `name` from `body` (the alias prefix is added); panics unless 2xx.
    fn create_role(&self, name: &str, mut body: Value) {
        merge(&mut body, json!({"key_alias_prefix": self.prefix}));
        let (status, response) = self.server.post(&format!("{MOUNT}/roles/{name}"), &body);
        assert_ok(status, &response, &format!("create role {name}"));
    }

    /// Reads `litellm/creds/<role>` and checks the shape of the answer.
    fn issue(&self, role: &str) -> Creds {
        let (status, body) = self.server.get(&format!("{MOUNT}/creds/{role}"));
        assert_eq!(
            status,
            200,
            "read {MOUNT}/creds/{role}: {}",
            error_text(&body)
        );
        let lease_id = body["lease_id"].as_str().unwrap_or_default().to_owned();
        assert!(
            lease_id.starts_with(&format!("{MOUNT}/creds/{role}/")),
            "lease_id {lease_id:?} is not under {MOUNT}/creds/{role}/: {body}"
        );
        assert_eq!(
            body["renewable"],
            json!(true),
            "lease not renewable: {body}"
        );
        let lease_duration = body["lease_duration"].as_u64().unwrap_or(0);
        assert!(lease_duration > 0, "lease_duration missing: {body}");
        let data = body["data"].clone();
        let key = data["key"].as_str().unwrap_or_default().to_owned();
        assert!(key.starts_with("sk-"), "no LiteLLM key in creds: {body}");
        let alias = data["key_alias"].as_str().unwrap_or_default().to_owned();
        assert!(
            alias.starts_with(&self.prefix),
            "key_alias {alias:?} does not start with the role's key_alias_prefix {:?}",
            self.prefix
        );
        Creds {
            key,
            alias,
            lease_id,
            lease_duration,
            data,
        }
    }

    /// Waits until LiteLLM refuses `key` with 401.
    fn wait_key_refused(&self, key: &str, why: &str) {
        eventually(
            &format!("LiteLLM refusing a key ({why})"),
            REVOKE_SETTLE,
            || (self.litellm.chat(key, ALLOWED_MODEL) == 401).then_some(()),
        );
    }
}

/// Shallow-merges the fields of `extra` into the object `base`.
fn merge(base: &mut Value, extra: Value) {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
}

/// Asserts that a JSON value is the number `want`, whether written as an integer or a float.
fn assert_num(value: &Value, want: f64, context: impl std::fmt::Display) {
    assert_eq!(
        value.as_f64(),
        Some(want),
        "expected {want}, got {value}: {context}"
    );
}

/// Asserts a 4xx answer whose error text names `needle` (case-insensitive).
fn assert_rejected(status: u16, body: &Value, what: &str, needle: &str) {
    let text = error_text(body);
    assert!(
        (400..500).contains(&status),
        "{what}: expected 4xx, got HTTP {status}: {text}"
    );
    assert!(
        text.to_lowercase().contains(&needle.to_lowercase()),
        "{what}: HTTP {status}, but the error does not name {needle:?}: {text}"
    );
}

// ------------------------------------------------------------------------------------ tests

/// configure -> role -> creds -> chat (allowed 200, other model 403) -> renew moves LiteLLM's
/// expiry -> revoke -> 401 -> revoking again is not an error.
fn lifecycle_issue_use_renew_revoke(engine: Engine) {
    let f = Fixture::new(engine, "lifecycle", "lc", true);
    let (s, litellm) = (&f.server, &f.litellm);

    let (status, config) = s.get(&format!("{MOUNT}/config"));
    assert_eq!(status, 200, "read config: {config}");
    let base_url = config["data"]["base_url"].as_str().unwrap_or_default();
    assert_eq!(base_url.trim_end_matches('/'), litellm.url, "{config}");
    assert_eq!(config["data"]["master_key_set"], json!(true), "{config}");
    assert!(
        config["data"].get("master_key").is_none(),
        "config read must never return master_key: {config}"
    );
    f.step("config read: base_url ok, master_key_set, no master_key");

    let metadata = json!({"suite": "e2e", "engine": engine.name()});
    f.create_role(
        "app",
        json!({
            "models": [ALLOWED_MODEL],
            "max_budget": 1.0,
            "metadata": metadata,
            "ttl": 300,
            "max_ttl": 3600,
            "budget_duration": "30d",
            "tpm_limit": 100000,
            "rpm_limit": 1000,
            "max_parallel_requests": 10,
        }),
    );
    let (status, roles) = s.list(&format!("{MOUNT}/roles"));
    assert_eq!(status, 200, "list roles: {roles}");
    assert_eq!(roles["data"]["keys"], json!(["app"]), "{roles}");
    let (status, role) = s.get(&format!("{MOUNT}/roles/app"));
    assert_eq!(status, 200, "read role: {role}");
    assert_eq!(role["data"]["models"], json!([ALLOWED_MODEL]), "{role}");
    assert_num(&role["data"]["max_budget"], 1.0, &role);
    f.step("role app created, listed and read back");

    let creds = f.issue("app");
    assert!(
        creds.lease_duration <= 300,
        "lease_duration above ttl: {}",
        creds.lease_duration
    );
    assert_eq!(
        creds.data["models"],
        json!([ALLOWED_MODEL]),
        "{}",
        creds.data
    );
    assert_num(&creds.data["max_budget"], 1.0, &creds.data);
    assert!(
        creds.data["expires"].is_string(),
        "creds without expires: {}",
        creds.data
    );
    assert_num(&creds.data["tpm_limit"], 100000.0, &creds.data);
    assert_num(&creds.data["rpm_limit"], 1000.0, &creds.data);
    f.step(format!(
        "creds issued: alias {} lease {} ({} s)",
        creds.alias, creds.lease_id, creds.lease_duration
    ));

    let (status, info) = litellm.key_info(&creds.key);
    assert_eq!(status, 200, "key/info: {info}");
    let info = &info["info"];
    assert_eq!(info["key_alias"], json!(creds.alias), "{info}");
    assert_eq!(info["models"], json!([ALLOWED_MODEL]), "{info}");
    assert_num(&info["max_budget"], 1.0, info);
    assert_num(&info["tpm_limit"], 100000.0, info);
    assert_num(&info["rpm_limit"], 1000.0, info);
    assert_num(&info["max_parallel_requests"], 10.0, info);
    assert_eq!(info["budget_duration"], json!("30d"), "{info}");
    assert_eq!(
        info["metadata"]["suite"],
        json!("e2e"),
        "metadata not passed on: {info}"
    );
    // The token hash the engine returns is LiteLLM's own id for this key.
    let token_hash = creds.data["token_hash"].as_str().unwrap_or_default();
    assert_eq!(
        token_hash.len(),
        64,
        "creds without token_hash: {}",
        creds.data
    );
    let (status, by_hash) = litellm.key_info(token_hash);
    assert_eq!(status, 200, "key/info by token_hash: {by_hash}");
    assert_eq!(
        by_hash["info"]["key_alias"],
        json!(creds.alias),
        "{by_hash}"
    );
    let expires_before = litellm.key_expires(&creds.key).expect("key without expiry");
    let ttl_left = expires_before - unix_now();
    // The key must outlive the lease a little at most (an engine may add a grace period),
    // and must be well short of the 600 s the renewal below asks for.
    assert!(
        ttl_left > creds.lease_duration as f64 - 10.0 && ttl_left <= 420.0,
        "LiteLLM expiry {ttl_left:.0} s away, expected about the {} s lease",
        creds.lease_duration
    );
    f.step(format!(
        "LiteLLM has the key with the role's settings, expires in {ttl_left:.0} s"
    ));

    assert_eq!(
        litellm.chat(&creds.key, ALLOWED_MODEL),
        200,
        "chat with the allowed model"
    );
    f.step(format!("chat {ALLOWED_MODEL}: 200"));
    assert_eq!(
        litellm.chat(&creds.key, OTHER_MODEL),
        403,
        "chat with a model not in the role"
    );
    f.step(format!("chat {OTHER_MODEL}: 403"));

    let (status, renewed) = s.lease_renew(&creds.lease_id, 600);
    assert_eq!(status, 200, "renew: {}", error_text(&renewed));
    let renewed_duration = renewed["lease_duration"].as_u64().unwrap_or(0);
    assert!(
        renewed_duration > creds.lease_duration,
        "renew with increment 600 gave lease_duration {renewed_duration}: {renewed}"
    );
    let expires_after = eventually(
        "LiteLLM expiry to move after renew",
        Duration::from_secs(10),
        || {
            let expires = litellm.key_expires(&creds.key)?;
            (expires > expires_before + 100.0).then_some(expires)
        },
    );
    f.step(format!(
        "lease renewed to {renewed_duration} s; LiteLLM expiry moved {:.0} s later",
        expires_after - expires_before
    ));
    assert_eq!(
        litellm.chat(&creds.key, ALLOWED_MODEL),
        200,
        "chat after renew"
    );

    let (status, body) = s.lease_revoke(&creds.lease_id);
    assert_eq!(status, 204, "revoke: {}", error_text(&body));
    f.wait_key_refused(&creds.key, "lease revoked");
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&creds.alias), 0);
    f.step("lease revoked: chat 401, key gone from LiteLLM");

    let (status, body) = s.lease_revoke(&creds.lease_id);
    assert_eq!(
        status,
        204,
        "revoking a lease that is already gone: {}",
        error_text(&body)
    );
    f.step("revoking again: 204");
}
per_server!(lifecycle_issue_use_renew_revoke);

/// Ten leases, one `revoke-prefix`: every key stops working.
fn revoke_prefix_revokes_every_key(engine: Engine) {
    let f = Fixture::new(engine, "revoke_prefix", "rp", true);
    f.create_role("batch", json!({"models": [ALLOWED_MODEL], "ttl": 300}));
    let issued: Vec<Creds> = (0..10).map(|_| f.issue("batch")).collect();
    assert_eq!(f.litellm.count_live_keys_with_alias_prefix(&f.prefix), 10);
    for creds in &issued {
        assert_eq!(
            f.litellm.chat(&creds.key, ALLOWED_MODEL),
            200,
            "fresh key {}",
            creds.alias
        );
    }
    f.step("10 keys issued, all live and working");

    let (status, body) = f.server.revoke_prefix(&format!("{MOUNT}/creds/batch"));
    assert_eq!(status, 204, "revoke-prefix: {}", error_text(&body));
    f.step("revoke-prefix litellm/creds/batch: 204");
    for creds in &issued {
        f.wait_key_refused(&creds.key, "revoke-prefix");
    }
    assert_eq!(f.litellm.count_live_keys_with_alias_prefix(&f.prefix), 0);
    f.step("all 10 keys refused (401) and gone from LiteLLM");
}
per_server!(revoke_prefix_revokes_every_key);

/// Reloading the plugin (new process) keeps issued leases renewable and revocable: the engine
/// keeps what it needs in storage, not in memory.
fn plugin_reload_keeps_leases_working(engine: Engine) {
    let f = Fixture::new(engine, "reload", "rl", true);
    f.create_role("app", json!({"models": [ALLOWED_MODEL], "ttl": 300}));
    let creds = f.issue("app");
    let before = f.server.plugin_pids();
    assert!(!before.is_empty(), "no plugin process found");
    f.step(format!("creds issued; plugin pids {before:?}"));

    let (status, body) = f.server.reload_plugin(PLUGIN);
    assert_ok(status, &body, "reload plugin");
    let after = eventually("a new plugin process", Duration::from_secs(15), || {
        let pids = f.server.plugin_pids();
        (!pids.is_empty() && pids.iter().all(|p| !before.contains(p))).then_some(pids)
    });
    f.step(format!("plugin reloaded: pids {before:?} -> {after:?}"));

    let (status, body) = f.server.lease_renew(&creds.lease_id, 600);
    assert_eq!(status, 200, "renew after reload: {}", error_text(&body));
    let (status, body) = f.server.lease_revoke(&creds.lease_id);
    assert_eq!(status, 204, "revoke after reload: {}", error_text(&body));
    f.wait_key_refused(&creds.key, "revoked after reload");
    f.step("renew and revoke work after the reload");
}
per_server!(plugin_reload_keeps_leases_working);

/// Unmounting the engine with live leases revokes them.
fn disabling_the_mount_revokes_live_keys(engine: Engine) {
    let f = Fixture::new(engine, "disable", "dm", true);
    f.create_role("short", json!({"models": [ALLOWED_MODEL], "ttl": 300}));
    let issued: Vec<Creds> = (0..3).map(|_| f.issue("short")).collect();
    assert_eq!(f.litellm.count_live_keys_with_alias_prefix(&f.prefix), 3);
    f.step(format!(
        "3 keys issued (plugin pids {:?})",
        f.server.plugin_pids()
    ));

    f.server.disable(MOUNT);
    f.step(format!(
        "mount disabled (plugin pids now {:?})",
        f.server.plugin_pids()
    ));
    for creds in &issued {
        f.wait_key_refused(&creds.key, "mount disabled");
    }
    assert_eq!(f.litellm.count_live_keys_with_alias_prefix(&f.prefix), 0);
    f.step("all 3 keys refused (401) and gone from LiteLLM");
}
per_server!(disabling_the_mount_revokes_live_keys);

/// `verify_connection` (default true) rejects a wrong master key or an unreachable URL and
/// stores nothing; the master key is required on create and never read back.
fn config_is_verified_and_master_key_write_only(engine: Engine) {
    let f = Fixture::new(engine, "config", "cf", false);
    let s = &f.server;
    let config_path = format!("{MOUNT}/config");
    let stored_base_url = || s.get(&config_path).1["data"]["base_url"].clone();

    let (status, body) = s.post(&config_path, &json!({"base_url": f.litellm.url}));
    assert_rejected(status, &body, "config without master_key", "master_key");
    f.step(format!("config without master_key: {status}"));

    let (status, body) = f.write_config(json!({"master_key": "sk-wrong-master-key"}));
    assert_eq!(status, 400, "wrong master key: {}", error_text(&body));
    assert_eq!(
        stored_base_url(),
        Value::Null,
        "a rejected config was stored"
    );
    f.step(format!(
        "wrong master key: 400 ({}), nothing stored",
        error_text(&body)
    ));

    let (status, body) =
        f.write_config(json!({"base_url": "http://127.0.0.1:9", "request_timeout": 5}));
    assert_eq!(status, 400, "unreachable base_url: {}", error_text(&body));
    assert_eq!(
        stored_base_url(),
        Value::Null,
        "a rejected config was stored"
    );
    f.step(format!(
        "unreachable base_url: 400 ({}), nothing stored",
        error_text(&body)
    ));

    let (status, body) = f.write_config(json!({}));
    assert_ok(status, &body, "valid config");
    let (status, config) = s.get(&config_path);
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["data"]["master_key_set"], json!(true), "{config}");
    assert!(
        config["data"].get("master_key").is_none(),
        "master_key returned: {config}"
    );
    f.step("valid config stored; read shows master_key_set only");

    let (status, body) = f.write_config(json!({"master_key": "sk-wrong-master-key"}));
    assert_eq!(
        status,
        400,
        "wrong master key over a good config: {}",
        error_text(&body)
    );
    f.create_role("after", json!({"models": [ALLOWED_MODEL], "ttl": 60}));
    let creds = f.issue("after");
    assert_eq!(f.litellm.chat(&creds.key, ALLOWED_MODEL), 200);
    let (status, body) = s.lease_revoke(&creds.lease_id);
    assert_eq!(status, 204, "revoke: {}", error_text(&body));
    f.step("a rejected update kept the good config: creds still issued");

    let (status, body) =
        f.write_config(json!({"master_key": "sk-unchecked", "verify_connection": false}));
    assert_ok(status, &body, "config with verify_connection=false");
    f.step("verify_connection=false stores without checking");
}
per_server!(config_is_verified_and_master_key_write_only);

/// Bad input gets a 4xx whose message names the offending field.
fn bad_inputs_are_rejected_with_the_field_named(engine: Engine) {
    let f = Fixture::new(engine, "bad_inputs", "bi", true);
    let s = &f.server;
    let role = |name: &str, body: Value| s.post(&format!("{MOUNT}/roles/{name}"), &body);

    let (status, body) = role("r1", json!({"models": [ALLOWED_MODEL], "bogus_field": 1}));
    assert_rejected(status, &body, "unknown role field", "bogus_field");
    f.step(format!("unknown field: {status} {}", error_text(&body)));

    let (status, body) = role("r2", json!({"models": [ALLOWED_MODEL], "max_budget": -1.0}));
    assert_rejected(status, &body, "negative max_budget", "max_budget");
    f.step(format!(
        "negative max_budget: {status} {}",
        error_text(&body)
    ));

    let (status, body) = role(
        "r3",
        json!({"models": [ALLOWED_MODEL], "ttl": 7200, "max_ttl": 3600}),
    );
    assert_rejected(status, &body, "ttl > max_ttl", "ttl");
    f.step(format!("ttl > max_ttl: {status} {}", error_text(&body)));

    let (status, body) = f.write_config(json!({"base_url": "not a url"}));
    assert_rejected(status, &body, "bad base_url", "base_url");
    f.step(format!("bad base_url: {status} {}", error_text(&body)));

    let (status, body) = s.get(&format!("{MOUNT}/creds/no-such-role"));
    assert_rejected(status, &body, "creds for an unknown role", "no-such-role");
    f.step(format!(
        "creds for an unknown role: {status} {}",
        error_text(&body)
    ));

    let (status, roles) = s.list(&format!("{MOUNT}/roles"));
    let listed = roles["data"]["keys"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        status == 404 || listed.is_empty(),
        "rejected roles were stored: {roles}"
    );
    assert_eq!(f.litellm.count_live_keys_with_alias_prefix(&f.prefix), 0);
    f.step("no role stored, no key issued");
}
per_server!(bad_inputs_are_rejected_with_the_field_named);

/// The whole lifecycle through hvac, a real Vault client library (tests/hvac_client.py), with
/// the interpreter e2e/stack.sh installs it in (`HVAC_PYTHON`).
fn hvac_drives_the_whole_lifecycle(engine: Engine) {
    let f = Fixture::new(engine, "hvac", "hv", false);
    let python = std::env::var("HVAC_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HVAC_PYTHON is not set: run the integration tests via `make test` / e2e/stack.sh up"
        )
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hvac_client.py");
    let output = std::process::Command::new(&python)
        .arg(script)
        .env("VAULT_ADDR", &f.server.addr)
        .env("VAULT_TOKEN", support::ROOT_TOKEN)
        .env("MOUNT", MOUNT)
        .env("LITELLM_URL", &f.litellm.url)
        .env("LITELLM_MASTER_KEY", &f.litellm.master_key)
        .env("MODEL", ALLOWED_MODEL)
        .env("PREFIX", &f.prefix)
        .output()
        .unwrap_or_else(|e| panic!("running {python} {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        f.step(line);
    }
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("[hvac] done"), "{stdout}");
    assert_eq!(f.litellm.count_live_keys_with_alias_prefix(&f.prefix), 0);
}
per_server!(hvac_drives_the_whole_lifecycle);
