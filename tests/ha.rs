//! Servers with persistent storage. A single node restarted keeps its leases
//! working. High availability: a 3-node OpenBao cluster with integrated (Raft)
//! storage on loopback, the plugin registered on every node. `creds` sent to
//! a standby is forwarded; leases survive the loss of the active node and
//! still renew and revoke their keys; writes on the leader reach every node;
//! and no key is orphaned. Each test runs per engine (OpenBao, and Vault when
//! `VAULT_BIN` names one), as its own #[test], so each engine fails on its
//! own. The recipe is OpenBao's (shared/reference/openbao-ha.md); Vault's Raft
//! configuration differs only by `disable_mlock = true`, which a non-root
//! Vault needs to start and which OpenBao (no mlock) warns about.
#![allow(unsafe_code)] // kill(2) on processes the tests started; SAFETY notes at each call

mod support;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};
use support::{
    eventually, per_server, plugin_binary, plugin_version, sha256_file, unix_now, Engine, LiteLlm,
    Steps,
};

const MOUNT: &str = "litellm";

/// One cluster member, in its own process group (its plugins with it).
struct Node {
    name: String,
    addr: String,
    config: PathBuf,
    log: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.bin)
            .arg("server")
            .arg(format!("-config={}", self.config.display()))
            .env("HOME", self.config.parent().unwrap())
            .env("TMPDIR", self.config.parent().unwrap())
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the process group this test created.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

struct Cluster {
    nodes: Vec<Node>,
    http: Client,
    token: String,
    unseal_key: String,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        if thread::panicking() {
            for n in &self.nodes {
                let text = fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(25).collect();
                eprintln!("--- {} log tail ({})", n.name, n.log.display());
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_port() -> u16 {
    loop {
        let p = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

impl Cluster {
    fn call(
        &self,
        node: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", self.nodes[node].addr))
            .header("X-Vault-Token", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().ok()?;
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    fn get(&self, node: usize, path: &str) -> Option<(u16, Value)> {
        self.call(node, reqwest::Method::GET, path, None)
    }

    fn put(&self, node: usize, path: &str, body: Value) -> Option<(u16, Value)> {
        self.call(node, reqwest::Method::PUT, path, Some(body))
    }

    fn ok(&self, node: usize, path: &str, body: Value) -> Value {
        let (status, out) = self
            .put(node, path, body)
            .unwrap_or_else(|| panic!("{path}: node {node} unreachable"));
        assert!(
            (200..300).contains(&status),
            "{path} on node {node}: {status} {out}"
        );
        out
    }

    fn health(&self, node: usize) -> u16 {
        self.get(node, "sys/health").map_or(0, |(s, _)| s)
    }

    /// The node whose health is 200, if any.
    fn active(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| self.nodes[i].child.is_some() && self.health(i) == 200)
    }

    fn standbys(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].child.is_some() && self.health(i) == 429)
            .collect()
    }

    fn unseal(&self, node: usize) {
        self.ok(node, "sys/unseal", json!({"key": self.unseal_key}));
    }

    /// `size` nodes with Raft storage: the first is initialised and unsealed,
    /// the others join it; returns once every node is a voter.
    fn start(engine: Engine, bin: &Path, size: usize) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "ha-{}-{}",
            std::process::id(),
            (unix_now() * 1000.0) as u64
        ));
        let plugins = dir.join("plugins");
        fs::create_dir_all(&plugins).unwrap();
        fs::copy(plugin_binary(), plugins.join(support::PLUGIN_FILE_NAME)).unwrap();
        let mut nodes = Vec::new();
        for i in 1..=size {
            let port = free_port();
            let node_dir = dir.join(format!("node{i}"));
            fs::create_dir_all(node_dir.join("data")).unwrap();
            let config = node_dir.join("node.hcl");
            fs::write(
                &config,
                format!(
                    r#"ui = false
{mlock}api_addr = "http://127.0.0.1:{port}"
cluster_addr = "http://127.0.0.1:{cport}"
plugin_directory = "{plugins}"
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cport}"
  tls_disable = true
}}
storage "raft" {{
  path = "{data}"
  node_id = "node{i}"
  performance_multiplier = 1
  autopilot_update_interval = "500ms"
  autopilot_reconcile_interval = "1s"
}}
"#,
                    // Vault refuses to start when it may not mlock (no
                    // CAP_IPC_LOCK as a non-root CI user); OpenBao has no mlock.
                    mlock = if engine == Engine::Vault {
                        "disable_mlock = true\n"
                    } else {
                        ""
                    },
                    cport = port + 1,
                    plugins = plugins.display(),
                    data = node_dir.join("data").display(),
                ),
            )
            .unwrap();
            nodes.push(Node {
                name: format!("node{i}"),
                addr: format!("http://127.0.0.1:{port}"),
                config,
                log: node_dir.join("server.log"),
                bin: bin.to_path_buf(),
                child: None,
            });
        }
        support::http_client(); // installs the TLS provider reqwest needs
        let http = Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut cluster = Cluster {
            nodes,
            http,
            token: String::new(),
            unseal_key: String::new(),
            dir,
        };
        for n in &mut cluster.nodes {
            n.start();
        }
        eventually("uninitialised nodes", Duration::from_secs(30), || {
            (0..size).all(|i| cluster.health(i) == 501).then_some(())
        });
        let init = cluster.ok(
            0,
            "sys/init",
            json!({"secret_shares": 1, "secret_threshold": 1}),
        );
        cluster.unseal_key = init["keys_base64"][0].as_str().unwrap().to_string();
        cluster.token = init["root_token"].as_str().unwrap().to_string();
        cluster.unseal(0);
        eventually("node1 active", Duration::from_secs(60), || {
            (cluster.health(0) == 200).then_some(())
        });
        cluster.ok(
            0,
            "sys/storage/raft/autopilot/configuration",
            json!({"server_stabilization_time": "1s"}),
        );
        if size == 1 {
            return cluster;
        }
        let leader = cluster.nodes[0].addr.clone();
        for i in 1..size {
            cluster.ok(
                i,
                "sys/storage/raft/join",
                json!({"leader_api_addr": leader}),
            );
            cluster.unseal(i);
        }
        eventually(
            "three voters, failure tolerance 1",
            Duration::from_secs(90),
            || {
                let (_, state) = cluster.get(0, "sys/storage/raft/autopilot/state")?;
                (state["data"]["healthy"] == true && state["data"]["failure_tolerance"] == 1)
                    .then_some(())
            },
        );
        cluster
    }
}

/// Leases alive under the roles used here.
fn live_leases(cluster: &Cluster, node: usize) -> usize {
    ["r", "fo"]
        .iter()
        .map(|role| live_leases_of(cluster, node, role))
        .sum()
}

fn live_leases_of(cluster: &Cluster, node: usize, role: &str) -> usize {
    match cluster.call(
        node,
        reqwest::Method::from_bytes(b"LIST").unwrap(),
        &format!("sys/leases/lookup/{MOUNT}/creds/{role}/"),
        None,
    ) {
        Some((200, body)) => body["data"]["keys"].as_array().map_or(0, Vec::len),
        Some((404, _)) => 0,
        other => panic!("listing leases: {other:?}"),
    }
}

fn three_node_raft_cluster_failover(engine: Engine) {
    let bin = engine.binary().expect("per_server! found it");
    let litellm = LiteLlm::from_env();
    let steps = Steps::new(format!("ha/{engine}"));
    let prefix = format!("ha{:07x}", (unix_now() * 1000.0) as u64 & 0xfff_ffff);
    let mut cluster = Cluster::start(engine, &bin, 3);
    steps.step("3-node Raft cluster up, 3 voters");

    let sha = sha256_file(&cluster.dir.join("plugins").join(support::PLUGIN_FILE_NAME));
    cluster.ok(
        0,
        "sys/plugins/catalog/secret/litellm",
        json!({"sha256": sha, "command": support::PLUGIN_FILE_NAME, "version": plugin_version()}),
    );
    cluster.ok(0, &format!("sys/mounts/{MOUNT}"), json!({"type": "litellm", "plugin_version": plugin_version(), "options": {"rollback_min_age": "1s"}}));
    cluster.ok(
        0,
        &format!("{MOUNT}/config"),
        // A short request timeout keeps the WAL hold (twice it, plus 15 s) short.
        json!({"base_url": litellm.url, "master_key": litellm.master_key, "request_timeout": "5s"}),
    );
    cluster.ok(0, &format!("{MOUNT}/roles/r"), json!({"models": ["gpt-3.5-turbo"], "key_alias_prefix": prefix, "ttl": "10m", "max_ttl": "1h"}));
    steps.step("plugin registered once, mounted, configured");

    steps.step("creds through each standby: forwarded to the active node, 200 with a lease");
    let standbys = cluster.standbys();
    assert_eq!(standbys.len(), 2);
    for &s in &standbys {
        eventually(
            "the mount replicated to the standby",
            Duration::from_secs(30),
            || {
                cluster
                    .get(s, &format!("{MOUNT}/roles/r"))
                    .filter(|(status, _)| *status == 200)
                    .map(|_| ())
            },
        );
    }
    let mut early = Vec::new();
    for &s in &standbys {
        let (status, body) = cluster.get(s, &format!("{MOUNT}/creds/r")).unwrap();
        assert_eq!(status, 200, "creds via standby {s}: {body}");
        assert!(body["lease_id"]
            .as_str()
            .is_some_and(|l| l.starts_with("litellm/creds/r/")));
        early.push(body);
    }
    // One live key per lease: nothing left over by the standbys (the unit
    // test creds_on_a_standby_are_forwarded_before_any_side_effect shows
    // LiteLLM is not even called there).
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&prefix), 2);

    steps.step("a role written on the leader is read back on every node");
    cluster.ok(0, &format!("{MOUNT}/roles/r"), json!({"rpm_limit": 77}));
    for node in 0..3 {
        eventually(
            "the role change on every node",
            Duration::from_secs(10),
            || {
                let (status, body) = cluster.get(node, &format!("{MOUNT}/roles/r"))?;
                (status == 200 && body["data"]["rpm_limit"] == 77).then_some(())
            },
        );
    }

    // Keys issued around the kill live 30 minutes, far beyond this test: an
    // orphan cannot hide by expiring. The client records every key it was
    // handed; every other live key of the role is an orphan.
    cluster.ok(
        0,
        &format!("{MOUNT}/roles/fo"),
        json!({"models": ["gpt-3.5-turbo"], "key_alias_prefix": prefix, "ttl": "30m", "max_ttl": "1h"}),
    );
    steps.step("SIGKILL the active node while keys are being issued");
    let stop = Arc::new(AtomicBool::new(false));
    let handed_out = Arc::new(Mutex::new(Vec::<String>::new()));
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
    let (token, http) = (cluster.token.clone(), cluster.http.clone());
    let issuer = {
        let (stop, handed_out) = (Arc::clone(&stop), Arc::clone(&handed_out));
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let addr = &addrs[i % addrs.len()];
                let alias = http
                    .get(format!("{addr}/v1/{MOUNT}/creds/fo"))
                    .header("X-Vault-Token", &token)
                    .send()
                    .ok()
                    .filter(|r| r.status().as_u16() == 200)
                    .and_then(|r| r.json::<Value>().ok())
                    .and_then(|b| b["data"]["key_alias"].as_str().map(str::to_string));
                match alias {
                    Some(alias) => handed_out.lock().unwrap().push(alias),
                    None => thread::sleep(Duration::from_millis(50)),
                }
            }
        })
    };
    thread::sleep(Duration::from_secs(2));
    let old = cluster.active().expect("an active node");
    let killed_at = Instant::now();
    let killed_wall = unix_now();
    cluster.nodes[old].kill();
    let new = eventually("a new active node", Duration::from_secs(60), || {
        cluster.active()
    });
    steps.step(format!(
        "node{} killed; node{} active after {:.1}s",
        old + 1,
        new + 1,
        killed_at.elapsed().as_secs_f64()
    ));
    eventually("creds on the new leader", Duration::from_secs(30), || {
        cluster
            .get(new, &format!("{MOUNT}/creds/r"))
            .filter(|(s, _)| *s == 200)
            .map(|_| ())
    });
    thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    issuer.join().unwrap();
    let handed_out = handed_out.lock().unwrap().clone();
    steps.step(format!(
        "{} keys handed out around the failover",
        handed_out.len()
    ));

    steps.step("after the rollback: every live key was handed out and has its lease");
    let fo_prefix = format!("{prefix}-fo-");
    let orphans = eventually(
        "the rollback to leave at most the one key no plugin can see",
        Duration::from_secs(200),
        || {
            let orphans: Vec<Value> = litellm
                .live_keys_with_alias_prefix(&fo_prefix)
                .into_iter()
                .filter(|k| {
                    !handed_out
                        .iter()
                        .any(|a| k["key_alias"].as_str() == Some(a.as_str()))
                })
                .collect();
            (orphans.len() <= 1).then_some(orphans)
        },
    );
    let fo_leases = live_leases_of(&cluster, new, "fo");
    // Every key handed out has its lease. One lease more is the request in
    // flight at the kill whose answer was lost after the old leader stored
    // its lease: its key is then the one key no client saw (below).
    assert!(
        fo_leases == handed_out.len() || (fo_leases == handed_out.len() + 1 && orphans.len() == 1),
        "every key handed out has its lease: {fo_leases} leases, {} keys handed out, {} unseen",
        handed_out.len(),
        orphans.len()
    );
    // The one window outside any plugin's sight (README): the old leader
    // died after its plugin answered and before it stored the lease. The
    // single client had one request in flight, so at most one such key, made
    // at the kill, and it expires by itself at its TTL plus the grace. When
    // the lease was stored (one lease more), that key is not an orphan: only
    // its answer was lost, and its lease revokes it like any other.
    let unseen_key_has_lease = fo_leases == handed_out.len() + 1;
    for orphan in &orphans {
        let created = orphan["created_at"]
            .as_str()
            .and_then(support::parse_utc_timestamp)
            .unwrap_or(0.0);
        assert!(
            (created - killed_wall).abs() < 10.0,
            "an orphan not made at the kill: {orphan}"
        );
        let fate = if unseen_key_has_lease {
            "its answer lost, its lease stored"
        } else {
            "never handed out"
        };
        steps.step(format!(
            "one key minted as the leader died, {fate}: {}",
            orphan["key_alias"]
        ));
        if !unseen_key_has_lease {
            litellm.delete_key(orphan["token"].as_str().unwrap_or_default());
        }
    }

    steps.step("leases from before the failover still renew and revoke their keys");
    let renew_me = &early[0];
    let key = renew_me["data"]["key"].as_str().unwrap();
    let before = litellm.key_expires(key).unwrap();
    let (status, body) = cluster
        .put(
            new,
            "sys/leases/renew",
            json!({"lease_id": renew_me["lease_id"], "increment": 1800}),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let after = litellm.key_expires(key).unwrap();
    assert!(
        after > before + 600.0,
        "LiteLLM expiry did not move: {before} -> {after}"
    );
    let revoke_me = &early[1];
    let (status, body) = cluster
        .put(
            new,
            "sys/leases/revoke",
            json!({"lease_id": revoke_me["lease_id"]}),
        )
        .unwrap();
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        litellm.chat(revoke_me["data"]["key"].as_str().unwrap(), "gpt-3.5-turbo"),
        401
    );

    steps.step("zero orphans: live keys == live leases, long before any could expire");
    let leases = live_leases(&cluster, new);
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&prefix), leases);
    cluster.ok(
        new,
        &format!("sys/leases/revoke-prefix/{MOUNT}/creds"),
        json!({}),
    );
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&prefix), 0);
    assert_eq!(live_leases(&cluster, new), 0);
    steps.step("done");
}
per_server!(three_node_raft_cluster_failover);

/// A server with persistent (Raft) storage is stopped and started again:
/// leases survive and still renew and revoke their keys. (OpenBao 2.7 has no
/// `file` storage backend; integrated storage is what it persists with.)
fn restarted_server_keeps_leases_working(engine: Engine) {
    let bin = engine.binary().expect("per_server! found it");
    let litellm = LiteLlm::from_env();
    let steps = Steps::new(format!("restart/{engine}"));
    let prefix = format!("rs{:07x}", (unix_now() * 1000.0) as u64 & 0xfff_ffff);
    let mut server = Cluster::start(engine, &bin, 1);
    let sha = sha256_file(&server.dir.join("plugins").join(support::PLUGIN_FILE_NAME));
    server.ok(
        0,
        "sys/plugins/catalog/secret/litellm",
        json!({"sha256": sha, "command": support::PLUGIN_FILE_NAME, "version": plugin_version()}),
    );
    server.ok(
        0,
        &format!("sys/mounts/{MOUNT}"),
        json!({"type": "litellm", "plugin_version": plugin_version()}),
    );
    server.ok(
        0,
        &format!("{MOUNT}/config"),
        json!({"base_url": litellm.url, "master_key": litellm.master_key}),
    );
    server.ok(0, &format!("{MOUNT}/roles/r"), json!({"models": ["gpt-3.5-turbo"], "key_alias_prefix": prefix, "ttl": "10m", "max_ttl": "2h"}));
    let issued: Vec<Value> = (0..2)
        .map(|_| {
            let (status, body) = server.get(0, &format!("{MOUNT}/creds/r")).unwrap();
            assert_eq!(status, 200, "{body}");
            body
        })
        .collect();
    steps.step("2 leases issued; stopping the server (SIGTERM) and starting it again");
    if let Some(child) = &server.nodes[0].child {
        // SAFETY: kill(2) on the server this test started.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    }
    if let Some(mut child) = server.nodes[0].child.take() {
        let _ = child.wait();
    }
    server.nodes[0].start();
    eventually(
        "the restarted server sealed",
        Duration::from_secs(30),
        || (server.health(0) == 503).then_some(()),
    );
    server.unseal(0);
    eventually(
        "the restarted server active",
        Duration::from_secs(60),
        || (server.health(0) == 200).then_some(()),
    );
    assert_eq!(
        live_leases(&server, 0),
        2,
        "leases must survive the restart"
    );

    steps.step("renew moves the key's expiry in LiteLLM; revoke deletes the other key");
    let key = issued[0]["data"]["key"].as_str().unwrap();
    let before = litellm.key_expires(key).unwrap();
    let (status, body) = eventually("renew after restart", Duration::from_secs(30), || {
        server
            .put(
                0,
                "sys/leases/renew",
                json!({"lease_id": issued[0]["lease_id"], "increment": 3600}),
            )
            .filter(|(s, _)| *s == 200)
    });
    assert_eq!(status, 200, "{body}");
    let after = litellm.key_expires(key).unwrap();
    assert!(
        after > before + 1800.0,
        "LiteLLM expiry did not move: {before} -> {after}"
    );
    let (status, body) = server
        .put(
            0,
            "sys/leases/revoke",
            json!({"lease_id": issued[1]["lease_id"]}),
        )
        .unwrap();
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        litellm.chat(issued[1]["data"]["key"].as_str().unwrap(), "gpt-3.5-turbo"),
        401
    );
    assert_eq!(litellm.chat(key, "gpt-3.5-turbo"), 200);
    assert_eq!(
        litellm.count_live_keys_with_alias_prefix(&prefix),
        live_leases(&server, 0)
    );
    server.ok(
        0,
        &format!("sys/leases/revoke-prefix/{MOUNT}/creds"),
        json!({}),
    );
    assert_eq!(litellm.count_live_keys_with_alias_prefix(&prefix), 0);
    steps.step("done");
}
per_server!(restarted_server_keeps_leases_working);
