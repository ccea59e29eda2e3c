//! Fault tests: every one ends by comparing the keys alive in LiteLLM with
//! the leases alive in the server; they must match exactly.
#![allow(unsafe_code)] // kill(2) on processes the tests started; SAFETY notes at each call

mod support;

#[cfg(feature = "fault-injection")]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};
use support::{
    error_text, eventually, live_leases, per_server, plugin_binary, plugin_version, unique_prefix,
    Cable, DevServer, Engine, LiteLlm, Steps, MOUNT,
};

fn assert_keys_match_leases(
    server: &DevServer,
    litellm: &LiteLlm,
    prefix: &str,
    roles: &[&str],
) -> usize {
    let leases: usize = roles.iter().map(|r| live_leases(server, r)).sum();
    let keys = litellm.count_live_keys_with_alias_prefix(prefix);
    assert_eq!(
        keys, leases,
        "live LiteLLM keys ({keys}) != live leases ({leases})"
    );
    keys
}

fn mount(server: &DevServer, options: Value) {
    server.register_this_plugin("litellm");
    server.enable_with_options(MOUNT, "litellm", options);
}

fn configure(server: &DevServer, base_url: &str, master_key: &str) {
    configure_at(server, MOUNT, base_url, master_key);
}

fn configure_at(server: &DevServer, mount: &str, base_url: &str, master_key: &str) {
    let (status, body) = server.put(
        &format!("{mount}/config"),
        &json!({"base_url": base_url, "master_key": master_key}),
    );
    assert_eq!(status, 204, "{mount} config: {body}");
}

fn role(server: &DevServer, name: &str, body: Value) {
    role_at(server, MOUNT, name, body);
}

fn role_at(server: &DevServer, mount: &str, name: &str, body: Value) {
    let (status, out) = server.put(&format!("{mount}/roles/{name}"), &body);
    assert_eq!(status, 204, "{mount} role {name}: {out}");
}

fn litellm_down_during_revoke_is_retried_until_the_key_is_gone(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let prefix = unique_prefix("d");
    let cable = Cable::to(&litellm.url);
    let server = DevServer::start(engine, &plugin_binary());
    mount(&server, json!({}));
    let role_body = json!({"models": ["gpt-3.5-turbo"], "key_alias_prefix": prefix, "ttl": "1h"});
    configure(&server, &cable.url(), &litellm.master_key);
    role(&server, "r", role_body.clone());
    let issue = |mount: &str| {
        let (status, creds) = server.get(&format!("{mount}/creds/r"));
        assert_eq!(status, 200, "{creds}");
        let key = creds["data"]["key"].as_str().unwrap().to_string();
        (key, creds["lease_id"].as_str().unwrap().to_string())
    };
    let alive = |key: &str, why: &str| assert_eq!(litellm.chat(key, "gpt-3.5-turbo"), 200, "{why}");
    let (key, lease) = issue(MOUNT);
    let (forced_key, forced_lease) = issue(MOUNT);
    // A second mount, whose disable will fail while LiteLLM is cut.
    let doomed = format!("{MOUNT}-doomed");
    server.enable_with_options(&doomed, "litellm", json!({}));
    configure_at(&server, &doomed, &cable.url(), &litellm.master_key);
    role_at(&server, &doomed, "r", role_body);
    let (doomed_key, _) = issue(&doomed);

    steps.step("LiteLLM cut: a revoke with -force drops the lease, the key is noted");
    cable.cut();
    let (status, body) = server.put(
        &format!("sys/leases/revoke-force/{forced_lease}"),
        &json!({}),
    );
    assert!((200..300).contains(&status), "{status} {body}");
    assert_eq!(live_leases(&server, "r"), 1);
    alive(
        &forced_key,
        "the key outlives its forced lease while LiteLLM is unreachable",
    );

    steps.step("disabling the second mount fails (its revoke cannot reach LiteLLM)");
    let (status, body) = server.delete(&format!("sys/mounts/{doomed}"));
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("LiteLLM"), "{body}");
    alive(
        &doomed_key,
        "its key outlives the failed disable while LiteLLM is unreachable",
    );

    steps.step("a synchronous revoke fails and the lease stays");
    let (status, body) = server.put(
        "sys/leases/revoke",
        &json!({"lease_id": lease, "sync": true}),
    );
    assert!(status >= 400, "{status} {body}");
    assert!(error_text(&body).contains("LiteLLM"), "{body}");
    assert_eq!(live_leases(&server, "r"), 1);
    alive(&key, "the key must still exist");

    steps.step("an asynchronous revoke is queued and retried by the server");
    let (status, body) = server.put(
        "sys/leases/revoke",
        &json!({"lease_id": lease, "sync": false}),
    );
    assert!((200..300).contains(&status), "{status} {body}");
    thread::sleep(Duration::from_secs(2));
    alive(&key, "still there while LiteLLM is unreachable");

    steps.step("LiteLLM back: the retry deletes the key and the lease");
    cable.mend();
    eventually("the retried revoke", Duration::from_secs(120), || {
        (litellm.chat(&key, "gpt-3.5-turbo") == 401 && live_leases(&server, "r") == 0).then_some(())
    });
    steps.step(
        "and the engine's next tick deletes the keys of the forced lease and the failed disable",
    );
    eventually(
        "the forced lease's key deleted",
        Duration::from_secs(150),
        || (litellm.chat(&forced_key, "gpt-3.5-turbo") == 401).then_some(()),
    );
    // The tainted mount ticks too: nobody has retried its disable yet.
    eventually(
        "the key of the failed disable deleted",
        Duration::from_secs(90),
        || (litellm.chat(&doomed_key, "gpt-3.5-turbo") == 401).then_some(()),
    );
    let (status, body) = server.delete(&format!("sys/mounts/{doomed}"));
    assert!(
        (200..300).contains(&status),
        "retried disable: {status} {body}"
    );
    assert_eq!(
        assert_keys_match_leases(&server, litellm, &prefix, &["r"]),
        0
    );
}
per_server!(
    litellm_down_during_revoke_is_retried_until_the_key_is_gone,
    with_steps
);

fn many_concurrent_creds_across_roles_then_revoke_prefix(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let prefix = unique_prefix("m");
    let server = Arc::new(DevServer::start(engine, &plugin_binary()));
    mount(&server, json!({}));
    configure(&server, &litellm.url, &litellm.master_key);
    let roles = ["a", "b", "c"];
    for r in roles {
        role(
            &server,
            r,
            json!({"models": ["gpt-3.5-turbo"], "key_alias_prefix": prefix, "ttl": "30m"}),
        );
    }

    steps.step("200 creds reads, 16 at a time, across 3 roles");
    let next = Arc::new(Mutex::new(0usize));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (server, next, errors) =
                (Arc::clone(&server), Arc::clone(&next), Arc::clone(&errors));
            thread::spawn(move || loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    if *n == 200 {
                        break;
                    }
                    *n += 1;
                    *n
                };
                let (status, body) = server.get(&format!("{MOUNT}/creds/{}", roles[i % 3]));
                if status != 200 {
                    errors.lock().unwrap().push(format!("{status} {body}"));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let errors = errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} errors, first: {}",
        errors.len(),
        errors[0]
    );
    assert_eq!(
        assert_keys_match_leases(&server, litellm, &prefix, &roles),
        200
    );

    steps.step("revoke-prefix on the whole creds path");
    let (status, body) = server.revoke_prefix(&format!("{MOUNT}/creds"));
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        assert_keys_match_leases(&server, litellm, &prefix, &roles),
        0
    );
}
per_server!(
    many_concurrent_creds_across_roles_then_revoke_prefix,
    with_steps
);

#[cfg(feature = "fault-injection")]
fn sigkill_while_issuing_leaves_no_orphan_after_rollback(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let prefix = unique_prefix("k");
    let server = Arc::new(DevServer::start(engine, &plugin_binary()));
    mount(&server, json!({"rollback_min_age": "1s"}));
    configure(&server, &litellm.url, &litellm.master_key);
    // Entries are held for twice the request timeout plus a margin:
    // keep that well inside the wait for the rollback below.
    let (status, body) = server.put(
        &format!("{MOUNT}/config"),
        &json!({"request_timeout": "10s"}),
    );
    assert_eq!(status, 204, "{body}");
    role(
        &server,
        "r",
        json!({"models": ["gpt-3.5-turbo"], "key_alias_prefix": prefix, "ttl": "30m"}),
    );

    const READERS: usize = 8;
    steps.step(format!(
        "{READERS} readers issuing keys while the plugin is SIGKILLed three times"
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
            thread::spawn(move || {
                let mut outcomes = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let (status, body) = server.get(&format!("{MOUNT}/creds/r"));
                    let alias = body["data"]["key_alias"].as_str().map(str::to_string);
                    outcomes.push((status, alias));
                }
                outcomes
            })
        })
        .collect();
    let mut kills = Vec::new();
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(700));
        kills.push(support::unix_now());
        for pid in server.plugin_pids() {
            // SAFETY: kill(2) on the server's own plugin child.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
    thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::SeqCst);
    let outcomes: Vec<(u16, Option<String>)> = readers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    let handed_out: Vec<String> = outcomes.iter().filter_map(|(_, a)| a.clone()).collect();
    steps.step(format!(
        "{} reads: {} ok, {} failed by the kills",
        outcomes.len(),
        handed_out.len(),
        outcomes.len() - handed_out.len()
    ));

    steps.step("after respawn and rollback: no WAL entry left, every live key accounted for");
    let (_, mounts) = server.get("sys/mounts");
    let uuid = mounts["data"][format!("{MOUNT}/")]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    // Held entries (2 x 10 s + 15 s) wait for the next minute tick; a
    // loaded LiteLLM may need a second tick.
    eventually(
        "the rollback to empty the WAL",
        Duration::from_secs(200),
        || {
            let (status, body) = server.list(&format!("sys/raw/logical/{uuid}/wal/"));
            assert!(status == 200 || status == 404, "sys/raw: {status} {body}");
            (status == 404 || body["data"]["keys"].as_array().is_none_or(Vec::is_empty))
                .then_some(())
        },
    );
    // Keys live 30 minutes: an orphan cannot hide by expiring. A key the
    // client never got is allowed only in the one window no plugin can
    // see (README): the plugin killed after it finished the issue and
    // before the server had its answer. Such a key was minted just
    // before a kill and is in the inventory, so tidy deletes it once
    // its lease would have ended; anything else is an orphan.
    let live = litellm.live_keys_with_alias_prefix(&prefix);
    let mut unclaimed = 0;
    for key in &live {
        let alias = key["key_alias"].as_str().unwrap_or_default();
        if handed_out.iter().any(|a| a == alias) {
            continue;
        }
        let created = key["created_at"]
            .as_str()
            .and_then(support::parse_utc_timestamp)
            .unwrap_or(0.0);
        let at_a_kill = kills.iter().any(|k| (k - 2.0..k + 0.5).contains(&created));
        let (status, record) = server.get(&format!("{MOUNT}/keys/{alias}"));
        assert!(
            at_a_kill && status == 200,
            "orphan {alias} (created {created}, kills at {kills:?}, inventory {status} {record})"
        );
        steps.step(format!(
            "{alias}: minted as the plugin was killed, in the inventory"
        ));
        litellm.delete_key(key["token"].as_str().unwrap_or_default());
        unclaimed += 1;
    }
    // At most the issues in flight at each kill: LiteLLM answers several
    // at once, so one kill can catch more than one in that window.
    assert!(
        unclaimed <= READERS * kills.len(),
        "{unclaimed} unclaimed keys for {} kills of {READERS} readers",
        kills.len()
    );
    assert_keys_match_leases(&server, litellm, &prefix, &["r"]);
    let (status, _) = server.revoke_prefix(&format!("{MOUNT}/creds"));
    assert_eq!(status, 204);
    assert_eq!(
        assert_keys_match_leases(&server, litellm, &prefix, &["r"]),
        0
    );
}
#[cfg(feature = "fault-injection")]
per_server!(
    sigkill_while_issuing_leaves_no_orphan_after_rollback,
    with_steps
);

fn bad_input_is_4xx_naming_the_problem_and_never_crashes(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let server = DevServer::start(engine, &plugin_binary());
    mount(&server, json!({}));

    steps.step("before config exists");
    let (status, body) = server.get(&format!("{MOUNT}/creds/any"));
    assert_eq!(status, 400, "{body}");
    role(&server, "pre", json!({"models": ["gpt-3.5-turbo"]}));
    let (status, body) = server.get(&format!("{MOUNT}/creds/pre"));
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("config"), "{body}");

    configure(&server, &litellm.url, &litellm.master_key);
    role(
        &server,
        "ok",
        json!({"models": ["gpt-3.5-turbo"], "max_ttl": "1h"}),
    );
    let pids = server.plugin_pids();
    let huge = "x".repeat(2 * 1024 * 1024);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "config",
            json!({"base_url": "ftp://x", "master_key": "k"}),
            "base_url",
        ),
        ("config", json!({"base_url": "not a url"}), "base_url"),
        (
            "config",
            json!({"base_url": "http://user:pw@host"}),
            "base_url",
        ),
        ("config", json!({"base_url": "http://h/?q=1"}), "base_url"),
        ("config", json!({"base_url": 42}), "base_url"),
        ("config", json!({"master_key": ""}), "master_key"),
        ("config", json!({"master_key": "has space"}), "master_key"),
        (
            "config",
            json!({"request_timeout": "0s"}),
            "request_timeout",
        ),
        (
            "config",
            json!({"request_timeout": "1h"}),
            "request_timeout",
        ),
        (
            "config",
            json!({"tls_skip_verify": "perhaps"}),
            "tls_skip_verify",
        ),
        ("config", json!({"ca_cert": "not pem"}), "ca_cert"),
        (
            "config",
            json!({"master_key": "sk-wrong-key"}),
            "master key",
        ),
        (
            "config",
            json!({"base_url": "http://127.0.0.1:9"}),
            "cannot reach",
        ),
        ("config", json!({"colour": "blue"}), "colour"),
        ("roles/r", json!({"max_budget": -1}), "max_budget"),
        ("roles/r", json!({"max_budget": "much"}), "max_budget"),
        ("roles/r", json!({"max_budget": [1]}), "max_budget"),
        ("roles/r", json!({"ttl": "2h", "max_ttl": "1h"}), "ttl"),
        ("roles/r", json!({"ttl": "tomorrow"}), "ttl"),
        ("roles/r", json!({"ttl": -5}), "ttl"),
        ("roles/r", json!({"max_ttl": "1.5h"}), "max_ttl"),
        ("roles/r", json!({"tpm_limit": -1}), "tpm_limit"),
        ("roles/r", json!({"rpm_limit": "fast"}), "rpm_limit"),
        (
            "roles/r",
            json!({"max_parallel_requests": 2.5}),
            "max_parallel_requests",
        ),
        (
            "roles/r",
            json!({"budget_duration": "monthly"}),
            "budget_duration",
        ),
        (
            "roles/r",
            json!({"key_alias_prefix": "bad prefix"}),
            "key_alias_prefix",
        ),
        (
            "roles/r",
            json!({"key_alias_prefix": "x".repeat(33)}),
            "key_alias_prefix",
        ),
        ("roles/r", json!({"metadata": "nokey"}), "metadata"),
        (
            "roles/r",
            json!({"metadata": {"vault_role": "spoof"}}),
            "metadata",
        ),
        (
            "roles/r",
            json!({"metadata": {"k": {"nested": 1}}}),
            "metadata",
        ),
        ("roles/r", json!({"models": {"a": 1}}), "models"),
        ("roles/r", json!({"modles": ["gpt-4o"]}), "modles"),
        ("roles/r", json!({"name": "other"}), "name"),
        ("roles/r", json!({"team_id": ["a"]}), "team_id"),
        (
            "roles/r",
            json!({"models": ["ünïcödé-模型"], "max_budget": "NaN"}),
            "max_budget",
        ),
        ("roles/r", json!({"user_id": huge}), "user_id"),
        (
            "roles/r",
            json!({"metadata": {"k": "v"}, "ttl": "99999999999999999999h"}),
            "ttl",
        ),
    ];
    for (path, body, names) in &cases {
        let (status, out) = server.put(&format!("{MOUNT}/{path}"), body);
        let text = error_text(&out);
        assert!(
            (400..500).contains(&status),
            "{path} {}: {status} {text}",
            truncate(body)
        );
        assert!(
            text.to_lowercase().contains(&names.to_lowercase()),
            "{path} {}: {status} message {text:?} does not name {names:?}",
            truncate(body)
        );
    }
    steps.step(format!(
        "{} bad writes: all 4xx, all naming the problem",
        cases.len()
    ));

    for (path, want) in [
        ("creds/nobody", 400),
        ("creds/bad%20name", 404),
        ("roles/ok/extra", 404),
        ("nothing", 404),
    ] {
        let (status, out) = server.get(&format!("{MOUNT}/{path}"));
        assert_eq!(status, want, "GET {path}: {out}");
    }
    let (status, _) = server.delete(&format!("{MOUNT}/creds/ok"));
    assert_eq!(status, 405);
    steps.step("bad reads: 4xx");

    assert_eq!(
        server.plugin_pids(),
        pids,
        "the plugin must not have crashed or restarted"
    );
    let (status, body) = server.get(&format!("{MOUNT}/creds/ok"));
    assert_eq!(status, 200, "still serving: {body}");
    server.disable(MOUNT);
}
per_server!(
    bad_input_is_4xx_naming_the_problem_and_never_crashes,
    with_steps
);

fn truncate(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(80).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

fn secrets_never_leak_into_reads_logs_or_plugin_storage(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    let prefix = unique_prefix("h");
    let server = DevServer::start(engine, &plugin_binary());
    // Most verbose plugin logging, to prove nothing secret is logged at any level.
    let (status, body) = server.put(
        "sys/plugins/catalog/secret/litellm",
        &json!({"sha256": support::sha256_file(server.plugin_path()), "command": support::PLUGIN_FILE_NAME,
                "version": plugin_version(), "env": ["PLUGIN_LOG_LEVEL=trace"]}),
    );
    assert!((200..300).contains(&status), "{body}");
    server.enable(MOUNT, "litellm", &plugin_version());
    configure(&server, &litellm.url, &litellm.master_key);
    role(
        &server,
        "r",
        json!({"models": ["gpt-3.5-turbo"], "key_alias_prefix": prefix}),
    );
    let (_, creds) = server.get(&format!("{MOUNT}/creds/r"));
    let key = creds["data"]["key"].as_str().unwrap().to_string();
    let lease = creds["lease_id"].as_str().unwrap().to_string();
    let (status, renewed) = server.lease_renew(&lease, 600);
    assert_eq!(status, 200, "{renewed}");
    let (_, config) = server.get(&format!("{MOUNT}/config"));
    let (_, lookup) = server.put("sys/leases/lookup", &json!({"lease_id": lease}));

    steps.step("reads never show the master key; renew never shows the key");
    for (what, body) in [
        ("config read", &config),
        ("lease lookup", &lookup),
        ("renew", &renewed),
    ] {
        assert!(
            !body.to_string().contains(&litellm.master_key),
            "{what} shows the master key"
        );
    }
    assert!(!renewed.to_string().contains(&key), "renew shows the key");

    steps.step("the plugin's own storage holds no plaintext key and no master key outside config");
    let (status, mounts) = server.get("sys/mounts");
    assert_eq!(status, 200);
    let uuid = mounts["data"][format!("{MOUNT}/")]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, raw) = server.list(&format!("sys/raw/logical/{uuid}/roles/"));
    if status == 200 {
        let mut keys: Vec<String> = vec!["config".into()];
        keys.extend(
            raw["data"]["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| format!("roles/{}", k.as_str().unwrap())),
        );
        for k in keys {
            let (_, entry) = server.get(&format!("sys/raw/logical/{uuid}/{k}"));
            let value = entry["data"]["value"].as_str().unwrap_or_default();
            assert!(!value.contains(&key), "{k} holds the key");
            if k != "config" {
                assert!(
                    !value.contains(&litellm.master_key),
                    "{k} holds the master key"
                );
            }
        }
    } else {
        eprintln!(
            "\n**********\nSKIPPED: {engine}: sys/raw answered {status}; the plugin's raw storage \
             was not checked for plaintext secrets (API checks only)\n**********\n"
        );
    }

    steps.step("the server log (plugin at trace level) holds neither secret");
    server.lease_revoke(&lease);
    let log = server.log_text();
    assert!(
        log.contains("issued LiteLLM key"),
        "plugin logs reached the server"
    );
    assert!(!log.contains(&key), "the key is in the log");
    assert!(
        !log.contains(&litellm.master_key),
        "the master key is in the log"
    );
}
per_server!(
    secrets_never_leak_into_reads_logs_or_plugin_storage,
    with_steps
);
