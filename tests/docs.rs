//! The examples of `docs/` checked against a real OpenBao (or Vault) dev server and LiteLLM.
//!
//! Every example is read from `docs/examples/`, the same bytes the pages show (a test also checks
//! that each page embeds its example files verbatim):
//!
//! * the ACL policies are written to the server as they are, and tokens holding them are checked
//!   path by path (what they may do, and the 403s);
//! * `bao lease revoke -prefix ...` is run with the real CLI as the admin policy's holder;
//! * the agent configuration and template are run by the real `bao agent` / `vault agent` (the
//!   server binary); only the documented placeholders are replaced (server address,
//!   `/etc/litellm-agent/`, `/run/litellm/`), and the rendered key is used on LiteLLM;
//! * the Terraform roles are evaluated by `terraform console` (offline), written to the engine
//!   and read back the way the Vault provider compares them; `terraform fmt` checks the syntax;
//! * the Kubernetes manifests and Helm values are parsed as YAML (python3 with PyYAML).
//!
//! Not run here (no Kubernetes, no provider downloads): `terraform apply`, VSO, ESO, the Agent
//! Injector and the Helm charts themselves. A missing `terraform`/`tofu` or PyYAML skips those
//! checks with a loud `SKIPPED` line.
//!
//! ```text
//! e2e/run-with-stack.sh cargo test --test docs -- --nocapture --test-threads=1
//! ```
#![allow(unsafe_code)] // kill(2) on processes the tests started; SAFETY notes at each call

mod support;

use std::fs;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::{
    assert_ok, error_text, eventually, per_server, plugin_version, unique_prefix, unix_now, Engine,
    LiteLlm, PluginServer, MOUNT, ROOT_TOKEN,
};

/// Plugin catalog name, as in the docs (the mount is `support::MOUNT`, `litellm`).
const PLUGIN: &str = "litellm";

/// A model the mock LiteLLM serves.
const MODEL: &str = "gpt-3.5-turbo";

/// How long LiteLLM may take to refuse a key after its lease was revoked (revoke-prefix from
/// the CLI is queued, not synchronous).
const REVOKE_SETTLE: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------------------------ files

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
}

/// The text of `docs/<rel>`.
fn docs_file(rel: &str) -> String {
    let path = docs_dir().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The text of `docs/examples/<rel>`.
fn example(rel: &str) -> String {
    docs_file(&format!("examples/{rel}"))
}

// ------------------------------------------------------------------------------------ fixture

/// The plugin registered on a dev server (root namespace), with the LiteLLM proxy and an alias
/// prefix unique to the test run.
struct Docs(PluginServer);

impl Deref for Docs {
    type Target = PluginServer;

    fn deref(&self) -> &PluginServer {
        &self.0
    }
}

impl Docs {
    /// Starts `engine` and registers the plugin; with `mount`, also enables it at `litellm/`.
    fn new(engine: Engine, test: &str, tag: &str, mount: bool) -> Docs {
        // "td" + engine initial + test tag: no other test file's prefix starts like that.
        let prefix = unique_prefix(&format!("d{}{tag}", &engine.name()[..1]));
        Docs(PluginServer::start(
            engine,
            format!("{engine} docs {test}"),
            prefix,
            mount,
        ))
    }

    /// A request with `token` (and a namespace).
    fn call(
        &self,
        token: &str,
        namespace: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.server
            .request_as(token, namespace, method, path, body.as_ref())
    }

    /// [`Docs::call`], panicking unless it answers 2xx (`what` names the request).
    fn call_ok(
        &self,
        token: &str,
        namespace: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) {
        let (status, body) = self.call(token, namespace, method, path, body);
        assert_ok(status, &body, what);
    }

    /// Writes the mount's config with `token`; panics unless 2xx.
    fn write_config(&self, token: &str, namespace: Option<&str>, what: &str) {
        self.call_ok(
            token,
            namespace,
            Method::POST,
            "litellm/config",
            Some(self.config_body()),
            what,
        );
    }

    /// Writes `docs/examples/policies/<name>.hcl` as ACL policy `name` (root token); panics
    /// unless 2xx.
    fn write_policy(&self, namespace: Option<&str>, name: &str) {
        let file = format!("policies/{name}.hcl");
        let (status, body) = self.call(
            ROOT_TOKEN,
            namespace,
            Method::PUT,
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": example(&file) })),
        );
        assert_ok(status, &body, &format!("write policy {name} from {file}"));
    }

    /// A new token with exactly these policies (plus `default`).
    fn token(&self, namespace: Option<&str>, policies: &[&str]) -> String {
        let (status, body) = self.call(
            ROOT_TOKEN,
            namespace,
            Method::POST,
            "auth/token/create",
            Some(json!({ "policies": policies, "ttl": "1h" })),
        );
        assert_ok(status, &body, &format!("create a token with {policies:?}"));
        body["auth"]["client_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no client_token: {body}"))
            .to_owned()
    }

    /// The body of `litellm/config` for the real proxy.
    fn config_body(&self) -> Value {
        json!({ "base_url": self.litellm.url, "master_key": self.litellm.master_key })
    }

    /// A role body with the explicit model list every docs example uses, this run's alias
    /// prefix, and `extra`.
    fn role_body(&self, extra: Value) -> Value {
        let mut body = json!({ "models": [MODEL], "key_alias_prefix": self.prefix });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        body
    }

    /// Reads `litellm/creds/<role>` with `token`: (lease_id, key), or the failing status.
    fn read_creds(
        &self,
        token: &str,
        namespace: Option<&str>,
        role: &str,
    ) -> Result<(String, String), (u16, Value)> {
        let (status, body) = self.call(
            token,
            namespace,
            Method::GET,
            &format!("{MOUNT}/creds/{role}"),
            None,
        );
        if status != 200 {
            return Err((status, body));
        }
        let lease_id = body["lease_id"].as_str().unwrap_or_default().to_owned();
        let key = body["data"]["key"].as_str().unwrap_or_default().to_owned();
        assert!(
            key.starts_with("sk-") && !lease_id.is_empty(),
            "creds without key or lease: {body}"
        );
        Ok((lease_id, key))
    }

    /// Like [`Docs::read_creds`], panicking unless it succeeds.
    fn issue(&self, token: &str, namespace: Option<&str>, role: &str) -> (String, String) {
        self.read_creds(token, namespace, role)
            .unwrap_or_else(|(status, body)| {
                panic!(
                    "read {MOUNT}/creds/{role}: HTTP {status}: {}",
                    error_text(&body)
                )
            })
    }

    /// Runs the server binary as the CLI (`bao ...` / `vault ...`) with `token`.
    fn cli(&self, token: &str, args: &[&str]) -> Output {
        let bin = self.server.engine.binary().expect("server binary");
        Command::new(&bin)
            .args(args)
            .env("BAO_ADDR", &self.server.addr)
            .env("VAULT_ADDR", &self.server.addr)
            .env("BAO_TOKEN", token)
            .env("VAULT_TOKEN", token)
            .env("HOME", self.server.dir())
            .env_remove("BAO_NAMESPACE")
            .env_remove("VAULT_NAMESPACE")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
    }

    /// PUTs `path` (an empty body, `what`) with `token`, which must revoke `key`: waits until
    /// LiteLLM refuses it (`why`).
    fn revoke_by(
        &self,
        token: &str,
        namespace: Option<&str>,
        path: &str,
        key: &str,
        what: &str,
        why: &str,
    ) {
        self.call_ok(token, namespace, Method::PUT, path, Some(json!({})), what);
        self.wait_refused(key, why);
    }

    /// Waits until LiteLLM refuses `key` (401).
    fn wait_refused(&self, key: &str, why: &str) {
        eventually(
            &format!("LiteLLM refusing a key ({why})"),
            REVOKE_SETTLE,
            || (self.litellm.chat(key, MODEL) == 401).then_some(()),
        );
    }

    /// Asserts that `key` works: a chat on the role's model answers 200.
    fn assert_works(&self, key: &str, what: &str) {
        let (status, body) = self.litellm.chat_full(key, MODEL);
        assert_eq!(status, 200, "{what}: chat with {MODEL}: {body}");
    }
}

fn assert_forbidden(status: u16, body: &Value, what: &str) {
    assert_eq!(
        status,
        403,
        "{what}: expected 403, got HTTP {status}: {}",
        error_text(body)
    );
}

/// Asserts that a command succeeded (`what` names it).
fn assert_succeeded(output: &Output, what: &str) {
    assert!(output.status.success(), "{what}: {}", cli_text(output));
}

/// Asserts that a CLI call failed with "permission denied" (`what` says why it should).
fn assert_denied(output: &Output, what: &str) {
    assert!(
        !output.status.success()
            && String::from_utf8_lossy(&output.stderr).contains("permission denied"),
        "{what}: {}",
        cli_text(output)
    );
}

fn cli_text(output: &Output) -> String {
    format!(
        "exit {}; stdout: {}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

/// A program found on PATH, or `None` with a loud SKIPPED line naming what is not checked.
fn tool(names: &[&str], skipped_check: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if fs::metadata(&candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            {
                return Some(candidate);
            }
        }
    }
    eprintln!("\n**********\nSKIPPED: {skipped_check}: none of {names:?} on PATH\n**********\n");
    None
}

// ------------------------------------------------------------------------------------ policies

/// Listens on a free loopback port and returns it with a thread that answers the first HTTP
/// request like LiteLLM's `/key/list` and returns that request's head (empty after 30 s without
/// one).
fn capture_one_request() -> (u16, std::thread::JoinHandle<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let thread = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(_) if Instant::now() < deadline => sleep(Duration::from_millis(20)),
                Err(_) => return String::new(),
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let body = br#"{"keys":[],"total_count":0,"current_page":1,"total_pages":1}"#;
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(body);
        String::from_utf8_lossy(&head).into_owned()
    });
    (port, thread)
}

/// docs/examples/policies: the consumer may read creds/dev and renew/revoke its lease, and
/// gets 403 on another role, on config, on roles and on the kill switch; the admin manages
/// config, roles and leases; the rotator may only replace the master key.
fn policies_from_docs_grant_exactly_what_the_docs_say(engine: Engine) {
    let d = Docs::new(engine, "policies", "p", true);
    d.write_policy(None, "litellm-consumer-dev");
    d.write_policy(None, "litellm-admin");
    d.write_policy(None, "litellm-master-key-rotator");
    let admin = d.token(None, &["litellm-admin"]);
    let consumer = d.token(None, &["litellm-consumer-dev"]);
    let rotator = d.token(None, &["litellm-master-key-rotator"]);
    d.step("the three policies written from docs/examples/policies; one token each");

    // Admin: config (write-only master key) and roles.
    d.write_config(&admin, None, "admin writes config");
    let (status, config) = d.call(&admin, None, Method::GET, "litellm/config", None);
    assert_ok(status, &config, "admin reads config");
    assert_eq!(config["data"]["master_key_set"], json!(true), "{config}");
    assert!(
        config["data"].get("master_key").is_none(),
        "config read returned master_key: {config}"
    );
    for role in ["dev", "prod"] {
        d.call_ok(
            &admin,
            None,
            Method::POST,
            &format!("litellm/roles/{role}"),
            Some(d.role_body(json!({"ttl": "1h", "max_ttl": "24h"}))),
            &format!("admin writes roles/{role}"),
        );
    }
    let (status, roles) = d.call(&admin, None, Method::GET, "litellm/roles?list=true", None);
    assert_ok(status, &roles, "admin lists roles");
    assert_eq!(roles["data"]["keys"], json!(["dev", "prod"]), "{roles}");
    let (status, body) = d.call(&admin, None, Method::GET, "sys/mounts/litellm/tune", None);
    assert_ok(status, &body, "admin reads the mount's tuning");
    d.step("admin: config written (read shows master_key_set only), roles dev+prod written and listed, tune read");

    // Consumer: its role only.
    let (lease, key) = d.issue(&consumer, None, "dev");
    d.assert_works(&key, "consumer's dev key");
    d.step(format!(
        "consumer: creds/dev 200, key works on LiteLLM (lease {lease})"
    ));
    let denied: [(Method, &str, Option<Value>); 10] = [
        (Method::GET, "litellm/creds/prod", None),
        (Method::GET, "litellm/config", None),
        (Method::POST, "litellm/config", Some(d.config_body())),
        (Method::DELETE, "litellm/config", None),
        (Method::GET, "litellm/roles?list=true", None),
        (Method::GET, "litellm/roles/dev", None),
        (
            Method::POST,
            "litellm/roles/dev",
            Some(d.role_body(json!({}))),
        ),
        (Method::DELETE, "litellm/roles/prod", None),
        (
            Method::PUT,
            "sys/leases/revoke-prefix/litellm/creds/dev",
            Some(json!({})),
        ),
        (
            Method::GET,
            "sys/leases/lookup/litellm/creds/dev/?list=true",
            None,
        ),
    ];
    for (method, path, body) in denied {
        let what = format!("consumer {method} {path}");
        let (status, response) = d.call(&consumer, None, method, path, body);
        assert_forbidden(status, &response, &what);
    }
    d.step("consumer: 403 on creds/prod, config (read, write, delete), roles (list, read, write, delete), revoke-prefix, lease listing");

    let (status, body) = d.call(
        &consumer,
        None,
        Method::PUT,
        "sys/leases/renew",
        Some(json!({"lease_id": lease, "increment": 3600})),
    );
    assert_ok(status, &body, "consumer renews its lease");
    assert_eq!(body["lease_id"], json!(lease), "{body}");
    d.assert_works(&key, "key after the consumer's renewal");
    // The URL form names the lease in the path, which the consumer policy does not grant.
    let (status, body) = d.call(
        &consumer,
        None,
        Method::PUT,
        &format!("sys/leases/renew/{lease}"),
        Some(json!({})),
    );
    assert_forbidden(
        status,
        &body,
        "consumer renews through sys/leases/renew/<lease_id>",
    );
    // The CLI's `lease revoke <lease_id>` names the lease in the URL.
    let (status, body) = d.call(
        &consumer,
        None,
        Method::PUT,
        &format!("sys/leases/revoke/{lease}"),
        Some(json!({})),
    );
    assert_ok(
        status,
        &body,
        "consumer revokes its lease (the CLI's URL form)",
    );
    d.wait_refused(&key, "consumer revoked its lease");
    d.step("consumer: renew 200 (body form; URL form 403), revoke 204 (the CLI's URL form), key refused by LiteLLM");

    // Admin: the mount's leases.
    let (admin_lease, admin_key) = d.issue(&admin, None, "prod");
    // As docs/policies.md warns: the body form is not scoped to a role, so a consumer who
    // knows another lease's id can renew it.
    d.call_ok(
        &consumer,
        None,
        Method::PUT,
        "sys/leases/renew",
        Some(json!({"lease_id": admin_lease})),
        "consumer renews a prod lease whose id it knows (documented)",
    );
    d.step("consumer: renewing a prod lease by its id also succeeds, as documented");
    let (status, leases) = d.call(
        &admin,
        None,
        Method::GET,
        "sys/leases/lookup/litellm/creds/prod/?list=true",
        None,
    );
    assert_ok(status, &leases, "admin lists the leases of creds/prod");
    let id = admin_lease.rsplit('/').next().unwrap_or_default();
    assert!(
        leases["data"]["keys"]
            .as_array()
            .is_some_and(|keys| keys.iter().any(|k| k == id)),
        "lease {admin_lease} not listed: {leases}"
    );
    d.call_ok(
        &admin,
        None,
        Method::PUT,
        "sys/leases/lookup",
        Some(json!({"lease_id": admin_lease})),
        "admin looks a lease up",
    );
    d.call_ok(
        &admin,
        None,
        Method::PUT,
        &format!("sys/leases/revoke/{admin_lease}"),
        Some(json!({})),
        "admin revokes a lease (the CLI's URL form)",
    );
    d.wait_refused(&admin_key, "admin revoked the lease");
    d.step("admin: creds/prod issued, its lease listed, looked up and revoked");
    for (method, path, body) in [
        (Method::POST, "litellm/tidy", Some(json!({"dry_run": true}))),
        (Method::GET, "litellm/tidy-status", None),
        (Method::GET, "litellm/config/auto-tidy", None),
        (Method::GET, "litellm/usage/prod", None),
    ] {
        d.call_ok(&admin, None, method, path, body, path);
    }
    d.step("admin: tidy (dry run), tidy-status, auto-tidy settings, usage");

    // Rotator: master_key only.
    let (status, body) = d.call(
        &rotator,
        None,
        Method::POST,
        "litellm/config",
        Some(json!({"master_key": d.litellm.master_key})),
    );
    assert_ok(status, &body, "rotator replaces the master key");
    for (method, body) in [
        (Method::POST, Some(json!({"base_url": d.litellm.url}))),
        (
            Method::POST,
            Some(json!({"master_key": d.litellm.master_key, "tls_skip_verify": true})),
        ),
        (Method::GET, None),
    ] {
        let what = format!("rotator {method} litellm/config {body:?}");
        let (status, response) = d.call(&rotator, None, method, "litellm/config", body);
        assert_forbidden(status, &response, &what);
    }
    let (status, body) = d.call(&rotator, None, Method::GET, "litellm/creds/dev", None);
    assert_forbidden(status, &body, "rotator reads creds");
    d.step("rotator: master_key write ok; base_url, other fields, read and creds 403");

    // Leases are children of the token that read them: revoking the token revokes them.
    let short_lived = d.token(None, &["litellm-consumer-dev"]);
    let (_, key) = d.issue(&short_lived, None, "dev");
    d.revoke_by(
        &short_lived,
        None,
        "auth/token/revoke-self",
        &key,
        "consumer token revokes itself",
        "the consumer's token revoked itself",
    );
    d.step("consumer: token revoke-self revoked its lease, the key is refused");

    // ... and when the token expires, its leases go with it.
    let (status, body) = d.call(
        ROOT_TOKEN,
        None,
        Method::POST,
        "auth/token/create",
        Some(json!({"policies": ["litellm-consumer-dev"], "ttl": "5s"})),
    );
    assert_ok(status, &body, "a consumer token with a 5 s TTL");
    let expiring = body["auth"]["client_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, key) = d.issue(&expiring, None, "dev");
    d.assert_works(&key, "key of the 5 s token");
    d.wait_refused(&key, "the consumer's token expired");
    d.step("consumer: a key read with a 5 s token is refused once the token expired");

    // docs/policies.md: `update` on config is as good as the master key. A write of
    // base_url alone makes the engine call the new URL with the stored master key.
    let (port, captured) = capture_one_request();
    let (status, body) = d.call(
        &admin,
        None,
        Method::POST,
        "litellm/config",
        Some(json!({ "base_url": format!("http://127.0.0.1:{port}") })),
    );
    let request = captured.join().expect("capture thread");
    let bearer = format!("bearer {}", d.litellm.master_key).to_lowercase();
    assert!(
        request.lines().any(|line| {
            let line = line.to_lowercase();
            line.starts_with("authorization:") && line.ends_with(&bearer)
        }),
        "a base_url-only config write (HTTP {status}: {}) did not send the stored master key \
         to the new URL; request line: {:?}",
        error_text(&body),
        request.lines().next()
    );
    d.step("admin: a base_url-only config write sends the stored master key to that URL, as the docs warn");
}
per_server!(policies_from_docs_grant_exactly_what_the_docs_say);

// ------------------------------------------------------------------------------------ kill switch

/// `bao lease revoke -prefix litellm/creds/<role>` (the admin policy's sudo) revokes one role's
/// leases only, and the keys are gone in LiteLLM; `-prefix litellm/` the whole mount's.
fn revoke_prefix_is_a_per_role_and_per_mount_kill_switch(engine: Engine) {
    let d = Docs::new(engine, "kill-switch", "k", true);
    d.write_policy(None, "litellm-admin");
    d.write_policy(None, "litellm-consumer-dev");
    let admin = d.token(None, &["litellm-admin"]);
    let consumer = d.token(None, &["litellm-consumer-dev"]);
    d.write_config(&admin, None, "admin writes config");
    // "dev-2" shares the string prefix "litellm/creds/dev": it must survive dev's revocation.
    for role in ["dev", "dev-2", "prod"] {
        let (status, body) = d.call(
            &admin,
            None,
            Method::POST,
            &format!("litellm/roles/{role}"),
            Some(d.role_body(json!({"ttl": "1h"}))),
        );
        assert_ok(status, &body, &format!("admin writes roles/{role}"));
    }
    let dev: Vec<String> = (0..2).map(|_| d.issue(&admin, None, "dev").1).collect();
    let dev2 = d.issue(&admin, None, "dev-2").1;
    let prod = d.issue(&admin, None, "prod").1;
    assert_eq!(d.litellm.count_live_keys_with_alias_prefix(&d.prefix), 4);
    d.step("4 keys issued: 2 dev, 1 dev-2, 1 prod");

    let output = d.cli(
        &consumer,
        &["lease", "revoke", "-prefix", "litellm/creds/dev"],
    );
    assert_denied(&output, "the consumer's revoke -prefix must be denied");
    d.step("consumer: `lease revoke -prefix litellm/creds/dev` permission denied");

    let output = d.cli(&admin, &["lease", "revoke", "-prefix", "litellm/creds/dev"]);
    assert_succeeded(&output, "revoke -prefix dev");
    for key in &dev {
        d.wait_refused(key, "revoke -prefix litellm/creds/dev");
    }
    d.assert_works(&dev2, "dev-2 key after revoking dev");
    d.assert_works(&prod, "prod key after revoking dev");
    assert_eq!(d.litellm.count_live_keys_with_alias_prefix(&d.prefix), 2);
    d.step("admin: `lease revoke -prefix litellm/creds/dev`: both dev keys refused and gone; dev-2 and prod work");

    // Without the policy's exact `sys/leases/revoke-prefix/litellm` block the whole-mount
    // form is denied: the CLI sends the prefix without its trailing slash.
    let glob_only = example("policies/litellm-admin.hcl").replace(
        "path \"sys/leases/revoke-prefix/litellm\" {\n  capabilities = [\"update\", \"sudo\"]\n}\n",
        "",
    );
    assert_ne!(
        glob_only,
        example("policies/litellm-admin.hcl"),
        "exact block not found"
    );
    let (status, body) = d.call(
        ROOT_TOKEN,
        None,
        Method::PUT,
        "sys/policies/acl/litellm-admin-glob-only",
        Some(json!({ "policy": glob_only })),
    );
    assert_ok(
        status,
        &body,
        "write the admin policy without the exact block",
    );
    let glob_admin = d.token(None, &["litellm-admin-glob-only"]);
    let output = d.cli(&glob_admin, &["lease", "revoke", "-prefix", "litellm/"]);
    assert_denied(
        &output,
        "revoke -prefix litellm/ with only the glob block should be denied",
    );
    d.step("admin policy without the exact revoke-prefix/litellm block: `-prefix litellm/` denied");

    let output = d.cli(&admin, &["lease", "revoke", "-prefix", "litellm/"]);
    assert_succeeded(&output, "revoke -prefix litellm/");
    d.wait_refused(&dev2, "revoke -prefix litellm/");
    d.wait_refused(&prod, "revoke -prefix litellm/");
    assert_eq!(d.litellm.count_live_keys_with_alias_prefix(&d.prefix), 0);
    d.step("admin: `lease revoke -prefix litellm/`: every key refused and gone");
}
per_server!(revoke_prefix_is_a_per_role_and_per_mount_kill_switch);

// ------------------------------------------------------------------------------------ agent

/// The agent started by a test; stopped (process group) when dropped.
struct AgentProcess {
    child: Child,
    log: PathBuf,
}

impl AgentProcess {
    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the process group this test created for the agent.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- agent log {}:\n{}\n--- end of agent log",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// Parses `NAME=value` lines.
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn env_value(text: &str, name: &str) -> Option<String> {
    env_file(text)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The real agent with docs/examples/agent/agent.hcl and litellm.env.ctmpl, logging in with an
/// AppRole whose token has the consumer policy: the rendered file holds a working key, the
/// agent renews its lease past the role's ttl, and at max_ttl renders a new key while the old
/// one is revoked.
fn agent_renders_a_working_key_with_the_docs_template(engine: Engine) {
    let d = Docs::new(engine, "agent", "a", true);
    let root = ROOT_TOKEN;
    d.write_policy(None, "litellm-consumer-dev");
    d.write_config(ROOT_TOKEN, None, "write config");
    // Short TTLs, so the test sees a renewal and a new key at max_ttl.
    d.call_ok(
        ROOT_TOKEN,
        None,
        Method::POST,
        "litellm/roles/dev",
        Some(d.role_body(json!({"ttl": "20s", "max_ttl": "40s"}))),
        "write roles/dev",
    );
    d.call_ok(
        ROOT_TOKEN,
        None,
        Method::POST,
        "sys/auth/approle",
        Some(json!({"type": "approle"})),
        "enable approle",
    );
    d.call_ok(
        ROOT_TOKEN,
        None,
        Method::POST,
        "auth/approle/role/litellm-dev",
        Some(json!({"token_policies": ["litellm-consumer-dev"], "token_ttl": "1h"})),
        "approle role",
    );
    let (_, role_id) = d.call(
        root,
        None,
        Method::GET,
        "auth/approle/role/litellm-dev/role-id",
        None,
    );
    let (_, secret_id) = d.call(
        root,
        None,
        Method::POST,
        "auth/approle/role/litellm-dev/secret-id",
        Some(json!({})),
    );
    let role_id = role_id["data"]["role_id"]
        .as_str()
        .expect("role_id")
        .to_owned();
    let secret_id = secret_id["data"]["secret_id"]
        .as_str()
        .expect("secret_id")
        .to_owned();

    // The docs' files, with only the placeholders replaced.
    let dir = d.server.dir().join("agent");
    let etc = dir.join("etc");
    let run = dir.join("run");
    fs::create_dir_all(&etc).expect("agent/etc");
    fs::create_dir_all(&run).expect("agent/run");
    let docs_config = example("agent/agent.hcl");
    for placeholder in [
        "https://openbao.example.com:8200",
        "/etc/litellm-agent/",
        "/run/litellm/",
    ] {
        assert!(
            docs_config.contains(placeholder),
            "agent.hcl lacks {placeholder}"
        );
    }
    let config = docs_config
        .replace("https://openbao.example.com:8200", &d.server.addr)
        .replace("/etc/litellm-agent/", &format!("{}/", etc.display()))
        .replace("/run/litellm/", &format!("{}/", run.display()));
    fs::write(etc.join("agent.hcl"), config).expect("agent.hcl");
    fs::write(
        etc.join("litellm.env.ctmpl"),
        example("agent/litellm.env.ctmpl"),
    )
    .expect("litellm.env.ctmpl");
    fs::write(etc.join("role-id"), role_id).expect("role-id");
    fs::write(etc.join("secret-id"), secret_id).expect("secret-id");
    d.step("policy, config, role dev (ttl 20s, max_ttl 40s), approle with the consumer policy; agent files from docs/examples/agent");

    let log = dir.join("agent.log");
    let log_file = fs::File::create(&log).expect("agent.log");
    let bin = engine.binary().expect("server binary");
    let child = Command::new(&bin)
        .arg("agent")
        .arg(format!("-config={}", etc.join("agent.hcl").display()))
        .env("HOME", &dir)
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_TOKEN")
        .env_remove("VAULT_TOKEN")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log handle"))
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {} agent: {e}", bin.display()));
    let agent = AgentProcess { child, log };
    let rendered = run.join("litellm.env");

    let first = eventually(
        "the agent rendering litellm.env",
        Duration::from_secs(30),
        || {
            let text = fs::read_to_string(&rendered).ok()?;
            env_value(&text, "LITELLM_API_KEY").map(|_| text)
        },
    );
    let issued_at = Instant::now();
    let key1 = env_value(&first, "LITELLM_API_KEY").unwrap_or_default();
    assert!(key1.starts_with("sk-"), "rendered file: {first}");
    assert_eq!(
        env_value(&first, "OPENAI_API_KEY"),
        Some(key1.clone()),
        "{first}"
    );
    let alias = env_value(&first, "LITELLM_KEY_ALIAS").unwrap_or_default();
    assert!(alias.starts_with(&d.prefix), "alias {alias:?}: {first}");
    let mode = fs::metadata(&rendered).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "perms of the rendered file");
    d.assert_works(&key1, "the key the agent rendered");
    d.step(format!(
        "agent rendered litellm.env (0600, alias {alias}); the key works on LiteLLM"
    ));

    // Past the role's 20 s ttl the key still works: the agent renewed the lease.
    sleep(Duration::from_secs(26).saturating_sub(issued_at.elapsed()));
    d.assert_works(&key1, "the first key 26 s after issue (ttl 20 s)");
    // A renewal brings no data, so whenever the agent renders again it
    // still has the key (a renewal with data replaces what it rendered).
    let renewed = fs::read_to_string(&rendered).expect("litellm.env");
    assert_eq!(
        env_value(&renewed, "LITELLM_API_KEY"),
        Some(key1.clone()),
        "the file after a renewal: {renewed}"
    );
    d.step("26 s after issue (ttl 20 s) the first key still works: the agent renewed its lease");

    let key2 = eventually(
        "the agent rendering a new key at max_ttl",
        Duration::from_secs(60),
        || {
            let text = fs::read_to_string(&rendered).ok()?;
            env_value(&text, "LITELLM_API_KEY").filter(|k| k.starts_with("sk-") && *k != key1)
        },
    );
    d.assert_works(&key2, "the second key");
    d.step(format!(
        "{:.0} s after issue the agent rendered a new key, which works",
        issued_at.elapsed().as_secs_f64()
    ));
    d.wait_refused(&key1, "the first lease reached max_ttl");
    d.step(format!(
        "{:.0} s after issue the first key is refused (lease expired at max_ttl 40 s)",
        issued_at.elapsed().as_secs_f64()
    ));
    assert!(
        agent.log_text().contains("rendered"),
        "agent log: {}",
        agent.log_text()
    );
    drop(agent);

    let (status, body) = d.server.revoke_prefix("litellm/");
    assert_ok(status, &body, "revoke-prefix litellm/");
    d.wait_refused(&key2, "revoke-prefix after the agent stopped");
    assert_eq!(d.litellm.count_live_keys_with_alias_prefix(&d.prefix), 0);
    d.step("agent stopped; revoke-prefix litellm/: no key left");
}
per_server!(agent_renders_a_working_key_with_the_docs_template);

// ------------------------------------------------------------------------------------ namespaces

/// OpenBao namespaces: the plugin catalog is root-only; the engine is registered in root,
/// enabled in a namespace, and the consumer policy from the docs works there unchanged.
fn namespaces_register_in_root_enable_in_a_namespace(engine: Engine) {
    if engine == Engine::Vault {
        eprintln!("SKIPPED on vault: namespaces are a Vault Enterprise feature");
        return;
    }
    let d = Docs::new(engine, "namespaces", "n", false);
    let ns = Some("team-a");
    d.call_ok(
        ROOT_TOKEN,
        None,
        Method::POST,
        "sys/namespaces/team-a",
        Some(json!({})),
        "create namespace team-a",
    );

    let (status, body) = d.call(
        ROOT_TOKEN,
        ns,
        Method::PUT,
        "sys/plugins/catalog/secret/litellm",
        Some(json!({"sha256": "00", "command": "vault-plugin-secrets-litellm", "version": plugin_version()})),
    );
    assert!(
        (400..500).contains(&status),
        "registering a plugin inside a namespace must fail, got HTTP {status}: {}",
        error_text(&body)
    );
    d.step(format!(
        "sys/plugins/catalog inside team-a: HTTP {status} ({})",
        error_text(&body)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    ));

    d.call_ok(
        ROOT_TOKEN,
        ns,
        Method::POST,
        "sys/mounts/litellm",
        Some(json!({"type": PLUGIN, "plugin_version": plugin_version()})),
        "enable litellm in team-a",
    );
    d.write_config(ROOT_TOKEN, ns, "config in team-a");
    d.call_ok(
        ROOT_TOKEN,
        ns,
        Method::POST,
        "litellm/roles/dev",
        Some(d.role_body(json!({"ttl": "1h"}))),
        "role in team-a",
    );
    d.write_policy(ns, "litellm-consumer-dev");
    let consumer = d.token(ns, &["litellm-consumer-dev"]);
    d.step("enabled in team-a with the root catalog entry; config, role, consumer policy and token in team-a");

    let (lease, key) = d.issue(&consumer, ns, "dev");
    assert!(lease.starts_with("litellm/creds/dev/"), "lease id {lease}");
    d.assert_works(&key, "key issued in team-a");
    let (status, body) = d.call(&consumer, ns, Method::GET, "litellm/config", None);
    assert_forbidden(status, &body, "consumer reads config in team-a");
    d.call_ok(
        &consumer,
        ns,
        Method::PUT,
        "sys/leases/renew",
        Some(json!({"lease_id": lease})),
        "consumer renews in team-a",
    );
    d.step(format!(
        "consumer in team-a: creds/dev 200 (lease {lease}), key works, config 403, renew 200"
    ));

    d.revoke_by(
        ROOT_TOKEN,
        ns,
        "sys/leases/revoke-prefix/litellm/creds/dev",
        &key,
        "revoke-prefix in team-a",
        "revoke-prefix in team-a",
    );
    d.step("revoke-prefix litellm/creds/dev in team-a: key refused");
}
per_server!(namespaces_register_in_root_enable_in_a_namespace);

// ------------------------------------------------------------------------------------ terraform

/// Evaluates `local.litellm_roles` of docs/examples/terraform/main.tf with `terraform console`
/// (its `locals` block alone, so no provider is needed).
fn terraform_roles(terraform: &Path) -> Value {
    let main = example("terraform/main.tf");
    let start = main.find("\nlocals {").expect("main.tf has a locals block") + 1;
    let end = start
        + main[start..]
            .find("\n}\n")
            .expect("end of the locals block")
        + 3;
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("locals.tf"), &main[start..end]).expect("locals.tf");
    let mut child = Command::new(terraform)
        .arg("console")
        .current_dir(dir.path())
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("terraform console");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"jsonencode(local.litellm_roles)\n")
            .expect("write to terraform console");
    }
    let output = child.wait_with_output().expect("terraform console");
    assert_succeeded(&output, "terraform console");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let quoted = stdout.trim();
    let json_text: String = serde_json::from_str(quoted)
        .unwrap_or_else(|e| panic!("terraform console printed {quoted:?}: {e}"));
    serde_json::from_str(&json_text).expect("roles JSON")
}

/// Whether a value read back equals the one written (numbers compared as numbers).
fn same_value(written: &Value, read: &Value) -> bool {
    match (written.as_f64(), read.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => written == read,
    }
}

/// docs/examples/terraform/main.tf: `terraform fmt` accepts it; its roles, written to the engine
/// and read back the way the provider does with ignore_absent_fields, show no drift; and
/// `terraform destroy`'s order (roles, config, then the mount) still revokes every key.
fn terraform_example_roles_apply_without_drift_and_destroy_revokes_keys(engine: Engine) {
    let d = Docs::new(engine, "terraform", "t", true);
    let root = ROOT_TOKEN;
    d.write_config(root, None, "write config");

    if let Some(terraform) = tool(
        &["terraform", "tofu"],
        "terraform fmt and the Terraform roles",
    ) {
        let output = Command::new(&terraform)
            .args(["fmt", "-check", "-diff"])
            .arg(docs_dir().join("examples/terraform"))
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .output()
            .expect("terraform fmt");
        assert_succeeded(&output, "terraform fmt -check");
        let roles = terraform_roles(&terraform);
        let roles = roles.as_object().expect("roles object");
        assert!(!roles.is_empty(), "no roles in main.tf");
        for (name, written) in roles {
            let models = written["models"].as_array().map_or(0, Vec::len);
            assert!(models > 0, "role {name} in main.tf has no explicit models");
            d.call_ok(
                root,
                None,
                Method::POST,
                &format!("litellm/roles/{name}"),
                Some(written.clone()),
                &format!("write role {name} from main.tf"),
            );
            let (status, read) = d.call(
                root,
                None,
                Method::GET,
                &format!("litellm/roles/{name}"),
                None,
            );
            assert_ok(status, &read, &format!("read role {name}"));
            for (field, value) in written.as_object().expect("role object") {
                assert!(
                    same_value(value, &read["data"][field]),
                    "role {name}: {field} written as {value}, read back as {} (terraform plan would show drift)",
                    read["data"][field]
                );
            }
        }
        d.step(format!(
            "terraform fmt ok; roles {:?} from main.tf written and read back without drift",
            roles.keys().collect::<Vec<_>>()
        ));
    }

    // `terraform destroy` order: roles, then config, then the mount. Deleting config only
    // stops new issues; the unmount still revokes the keys already issued.
    d.call_ok(
        ROOT_TOKEN,
        None,
        Method::POST,
        "litellm/roles/probe",
        Some(d.role_body(json!({"ttl": "1h"}))),
        "role probe",
    );
    let (_, key) = d.issue(root, None, "probe");
    for path in ["litellm/roles/probe", "litellm/config"] {
        d.call_ok(
            root,
            None,
            Method::DELETE,
            path,
            None,
            &format!("delete {path}"),
        );
    }
    let (status, body) = d.call(root, None, Method::GET, "litellm/creds/probe", None);
    assert!(
        !(200..300).contains(&status),
        "creds after deleting role and config: HTTP {status}: {body}"
    );
    d.server.disable(MOUNT);
    d.wait_refused(&key, "unmount after the config was deleted");
    assert_eq!(d.litellm.count_live_keys_with_alias_prefix(&d.prefix), 0);
    d.step("destroy order (role, config, then mount): unmount ok, the key is gone from LiteLLM");
}
per_server!(terraform_example_roles_apply_without_drift_and_destroy_revokes_keys);

// ------------------------------------------------------------------------------------ static files

/// Parses YAML files with python3 + PyYAML; `None` (SKIPPED) when that is not available.
fn parse_yaml(files: &[PathBuf]) -> Option<Vec<Value>> {
    // python3 on PATH, else the system one (Debian's python3-yaml, which .ci/run installs).
    let has_yaml = |python: &Path| {
        Command::new(python)
            .args(["-c", "import yaml"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let python = tool(
        &["python3"],
        "YAML parsing of the Kubernetes and Helm examples",
    )
    .into_iter()
    .chain([PathBuf::from("/usr/bin/python3")])
    .find(|python| has_yaml(python));
    let Some(python) = python else {
        eprintln!(
            "\n**********\nSKIPPED: YAML parsing of the examples: no python3 with PyYAML\n**********\n"
        );
        return None;
    };
    let script = "import json, sys, yaml\n\
                  print(json.dumps([list(yaml.safe_load_all(open(f))) for f in sys.argv[1:]]))";
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(files)
        .output()
        .expect("python3");
    assert_succeeded(&output, "YAML parsing failed");
    let parsed: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON from python");
    Some(parsed)
}

/// The document of `kind` in a parsed multi-document file.
fn doc_of_kind<'a>(docs: &'a Value, kind: &str) -> &'a Value {
    docs.as_array()
        .and_then(|docs| docs.iter().find(|d| d["kind"] == kind))
        .unwrap_or_else(|| panic!("no {kind} document"))
}

/// Every example file is shown verbatim by its page, the YAML examples parse and say what the
/// pages say, and the HCL embedded in the Helm values is valid HCL.
#[test]
fn static_examples_parse_and_match_their_pages() {
    // Pages embed their example files verbatim.
    let embedded = [
        ("policies.md", "policies/litellm-consumer-dev.hcl"),
        ("policies.md", "policies/litellm-admin.hcl"),
        ("policies.md", "policies/litellm-master-key-rotator.hcl"),
        ("agent.md", "agent/agent.hcl"),
        ("agent.md", "agent/litellm.env.ctmpl"),
        ("terraform.md", "terraform/main.tf"),
        ("kubernetes.md", "kubernetes/vso-litellm.yaml"),
        ("kubernetes.md", "kubernetes/agent-injector-litellm.yaml"),
        ("kubernetes.md", "kubernetes/eso-litellm.yaml"),
        ("kubernetes.md", "helm/openbao-oci-values.yaml"),
        ("kubernetes.md", "helm/vault-litellm-values.yaml"),
        ("kubernetes.md", "helm/vault-litellm-dev-values.yaml"),
    ];
    for (page, file) in embedded {
        let text = docs_file(page);
        assert!(
            text.contains(example(file).trim_end()),
            "docs/{page} does not show docs/examples/{file} verbatim"
        );
    }
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    for page in [
        "policies.md",
        "revocation.md",
        "agent.md",
        "kubernetes.md",
        "namespaces.md",
        "litellm-enterprise.md",
        "terraform.md",
    ] {
        assert!(
            readme.contains(&format!("docs/{page}")),
            "README.md does not link docs/{page}"
        );
        assert!(docs_dir().join(page).is_file(), "docs/{page} missing");
    }
    eprintln!("every example file is embedded verbatim by its page; README links every page");

    let names = [
        "kubernetes/vso-litellm.yaml",
        "kubernetes/agent-injector-litellm.yaml",
        "kubernetes/eso-litellm.yaml",
        "helm/openbao-oci-values.yaml",
        "helm/vault-litellm-values.yaml",
        "helm/vault-litellm-dev-values.yaml",
    ];
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| docs_dir().join("examples").join(n))
        .collect();
    let Some(parsed) = parse_yaml(&files) else {
        return;
    };
    let [vso, injector, eso, openbao, vault, vault_dev] = &parsed[..] else {
        panic!("expected {} parsed files", names.len());
    };

    let vds = doc_of_kind(vso, "VaultDynamicSecret");
    assert_eq!(vds["spec"]["mount"], json!(MOUNT), "{vds}");
    assert_eq!(vds["spec"]["path"], json!("creds/dev"), "{vds}");
    assert_eq!(vds["spec"]["revoke"], json!(true), "{vds}");
    let auth = doc_of_kind(vso, "VaultAuth");
    assert_eq!(
        vds["spec"]["vaultAuthRef"], auth["metadata"]["name"],
        "{auth}"
    );
    let deployment = doc_of_kind(vso, "Deployment");
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array().is_some_and(|env| env.iter().any(|e| {
            e["valueFrom"]["secretKeyRef"]["name"] == vds["spec"]["destination"]["name"]
                && e["valueFrom"]["secretKeyRef"]["key"] == "key"
        })),
        "the Deployment does not read `key` from the VSO Secret: {env}"
    );

    let annotations =
        &doc_of_kind(injector, "Deployment")["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        annotations["vault.hashicorp.com/agent-inject-template-litellm.env"],
        json!(example("agent/litellm.env.ctmpl")),
        "the injector's template differs from docs/examples/agent/litellm.env.ctmpl"
    );
    assert_eq!(
        annotations["vault.hashicorp.com/agent-inject-secret-litellm.env"],
        json!("litellm/creds/dev")
    );
    assert_eq!(
        doc_of_kind(eso, "VaultDynamicSecret")["spec"]["path"],
        json!("/litellm/creds/dev")
    );

    let openbao = &openbao[0]["server"];
    assert_eq!(
        openbao["image"]["repository"],
        json!("openbao/openbao"),
        "{openbao}"
    );
    let vault = &vault[0]["server"];
    assert!(
        vault["image"]["repository"]
            .as_str()
            .is_some_and(|r| r.ends_with("/vault-litellm")),
        "{vault}"
    );
    let vault_dev = &vault_dev[0]["server"];
    assert_eq!(vault_dev["dev"]["enabled"], json!(true));
    assert_eq!(
        vault_dev["extraArgs"],
        json!("-dev-plugin-dir=/vault/plugins")
    );
    let bao_hcl = openbao["standalone"]["config"]
        .as_str()
        .expect("OpenBao config");
    let vault_hcl = vault["standalone"]["config"]
        .as_str()
        .expect("Vault config");
    for needle in [
        "plugin_auto_download = true",
        "plugin_auto_register = true",
        "plugin \"secret\" \"litellm\"",
        "plugin_directory     = \"/openbao/plugins\"",
    ] {
        assert!(bao_hcl.contains(needle), "OpenBao values lack {needle}");
    }
    assert!(
        openbao["volumeMounts"][0]["mountPath"] == "/openbao/plugins",
        "the plugin directory must be a writable volume: {openbao}"
    );
    assert!(vault_hcl.contains("plugin_directory = \"/vault/plugins\""));
    eprintln!("YAML: VSO, Agent Injector, ESO manifests and the three Helm values files parse and agree with the docs");

    if let Some(terraform) = tool(
        &["terraform", "tofu"],
        "HCL syntax of the server configs in the Helm values",
    ) {
        for (what, hcl) in [("OpenBao", bao_hcl), ("Vault", vault_hcl)] {
            let mut child = Command::new(&terraform)
                .args(["fmt", "-"])
                .env("TF_CLI_CONFIG_FILE", "/dev/null")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("terraform fmt -");
            {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(hcl.as_bytes())
                    .expect("write HCL");
            }
            let output = child.wait_with_output().expect("terraform fmt -");
            assert_succeeded(
                &output,
                &format!("{what} server config in the Helm values is not valid HCL"),
            );
        }
        eprintln!("HCL: the server configs inside the Helm values parse (terraform fmt -)");
    }
}

// ------------------------------------------------------------------------------------ enterprise

/// docs/litellm-enterprise.md: `tags` and `guardrails` on a key are refused by open-source
/// LiteLLM (403 naming the feature), and a role carrying them gets that message as a 400.
fn enterprise_only_litellm_fields_are_refused_with_the_licence_message(engine: Engine) {
    let litellm = LiteLlm::from_env();
    let http = support::http_client();
    let alias = format!(
        "docs-ent-{:08x}",
        (unix_now() * 1000.0) as u64 & 0xffff_ffff
    );
    for field in ["tags", "guardrails"] {
        let response = http
            .post(format!("{}/key/generate", litellm.url))
            .bearer_auth(&litellm.master_key)
            .json(&json!({
                "key_alias": format!("{alias}-{field}"),
                "duration": "60s",
                "models": [MODEL],
                field: ["docs-test"],
            }))
            .send()
            .expect("POST /key/generate");
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        if status == 200 {
            let _ = litellm.delete_keys_with_alias_prefix(&alias);
            eprintln!(
                "\n**********\nSKIPPED: the test proxy accepted `{field}`: it has a LiteLLM Enterprise licence\n**********\n"
            );
            return;
        }
        assert_eq!(status, 403, "{field}: {text}");
        assert!(
            text.contains("Enterprise") && text.contains(field),
            "{field}: 403 without naming the Enterprise feature: {text}"
        );
        eprintln!("LiteLLM /key/generate with `{field}`: 403 (Enterprise only)");
    }
    let d = Docs::new(engine, "enterprise", "e", true);
    d.write_config(ROOT_TOKEN, None, "write config");
    for field in ["tags", "guardrails"] {
        d.call_ok(
            ROOT_TOKEN,
            None,
            Method::POST,
            "litellm/roles/dev",
            Some(d.role_body(json!({ field: ["docs-test"] }))),
            &format!("role with `{field}`"),
        );
        let (status, body) = d.call(ROOT_TOKEN, None, Method::GET, "litellm/creds/dev", None);
        assert_eq!(
            status,
            400,
            "creds with `{field}`: HTTP {status}: {}",
            error_text(&body)
        );
        assert!(
            error_text(&body).contains("Enterprise") && error_text(&body).contains(field),
            "the 400 does not carry LiteLLM's licence message for {field}: {}",
            error_text(&body)
        );
        d.call_ok(
            ROOT_TOKEN,
            None,
            Method::POST,
            "litellm/roles/dev",
            Some(d.role_body(json!({ field: "" }))),
            &format!("unset `{field}`"),
        );
    }
    d.step("roles/dev with `tags` or `guardrails`: creds answers 400 with the licence message");
}
per_server!(enterprise_only_litellm_fields_are_refused_with_the_licence_message);
