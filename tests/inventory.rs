//! Every key accounted for: the inventory (`keys/`), live spend (`keys/<id>`,
//! `usage/<role>`), and `tidy` deleting exactly what leases cannot (orphans
//! carrying this mount's mark, a key whose revoke failed until the server
//! gave up, an expired key) while leased keys, hand-made keys without the
//! mark and another mount's keys survive. Real OpenBao, real LiteLLM.

mod support;

use std::collections::BTreeSet;
use std::thread::sleep;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{
    configured_server, error_text, eventually, per_server, plugin_version, unique_prefix, Cable,
    DevServer, Engine, LiteLlm, Steps, MOUNT,
};

const MODEL: &str = "gpt-3.5-turbo";
const OTHER: &str = "litellm2";

fn ok(what: &str, (status, body): (u16, Value)) -> Value {
    assert!((200..300).contains(&status), "{what}: {status} {body}");
    body
}

/// A key for `role` on `mount`: `(key, alias, lease_id)`.
fn issue(server: &DevServer, mount: &str, role: &str) -> (String, String, String) {
    let body = ok("creds", server.get(&format!("{mount}/creds/{role}")));
    let s = |v: &Value| v.as_str().unwrap().to_string();
    (
        s(&body["data"]["key"]),
        s(&body["data"]["key_alias"]),
        s(&body["lease_id"]),
    )
}

/// A key made straight in LiteLLM with the master key; returns its token hash.
fn hand_made(litellm: &LiteLlm, alias: &str, metadata: Value, duration: Option<&str>) -> String {
    let mut body = json!({"key_alias": alias, "models": [MODEL], "metadata": metadata});
    if let Some(d) = duration {
        body["duration"] = json!(d);
    }
    let out = ok(
        "/key/generate",
        litellm.admin(Method::POST, "/key/generate", &body),
    );
    out["token"].as_str().unwrap().to_string()
}

/// Does LiteLLM still hold this key (expired or not)? `/v2/key/info` reads
/// the live key table (`/key/info` also shows deleted keys).
fn exists(litellm: &LiteLlm, token: &str) -> bool {
    let body = ok(
        "/v2/key/info",
        litellm.admin(Method::POST, "/v2/key/info", &json!({"keys": [token]})),
    );
    !body["info"].as_array().unwrap().is_empty()
}

fn aliases(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn inventory_usage_and_tidy(engine: Engine, steps: &Steps, litellm: &LiteLlm) {
    let prefix = unique_prefix("i");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        scenario(steps, engine, litellm, &prefix)
    }));
    // Whatever happened: none of this run's keys stay behind.
    let _ = litellm.delete_keys_with_alias_prefix(&prefix);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
per_server!(inventory_usage_and_tidy, with_steps);

fn scenario(steps: &Steps, engine: Engine, litellm: &LiteLlm, prefix: &str) {
    let server = configured_server(engine, litellm);
    // Through a forwarder the test can cut, to make a revoke fail.
    let cable = Cable::to(&litellm.url);
    ok(
        "config via the cable",
        server.put(
            &format!("{MOUNT}/config"),
            &json!({"base_url": cable.url(), "proxy_moved": true}),
        ),
    );
    ok(
        "role",
        server.put(
            &format!("{MOUNT}/roles/r"),
            &json!({"models": [MODEL], "key_alias_prefix": prefix, "ttl": "10m", "max_budget": 5}),
        ),
    );
    // A second mount on the same LiteLLM, same alias prefix.
    server.enable(OTHER, "litellm", &plugin_version());
    ok(
        "config B",
        server.put(
            &format!("{OTHER}/config"),
            &json!({"base_url": litellm.url, "master_key": litellm.master_key}),
        ),
    );
    ok(
        "role B",
        server.put(
            &format!("{OTHER}/roles/r"),
            &json!({"models": [MODEL], "key_alias_prefix": prefix, "ttl": "10m"}),
        ),
    );

    steps.step("issue: three leased keys on A, two on B");
    let leased: Vec<_> = (0..3).map(|_| issue(&server, MOUNT, "r")).collect();
    let other: Vec<_> = (0..2).map(|_| issue(&server, OTHER, "r")).collect();
    let (_, info) = litellm.key_info(&leased[0].0);
    let mount_id = info["info"]["metadata"]["vault_mount_id"]
        .as_str()
        .expect("the key carries the mount's id")
        .to_string();
    let (_, info_b) = litellm.key_info(&other[0].0);
    let mount_id_b = info_b["info"]["metadata"]["vault_mount_id"]
        .as_str()
        .unwrap();
    assert_ne!(mount_id, mount_id_b, "each mount has its own id");
    let (_, info2) = litellm.key_info(&leased[1].0);
    assert_eq!(info2["info"]["metadata"]["vault_mount_id"], mount_id);

    steps.step("LIST keys/: the three, paged with after/limit, joined with LiteLLM");
    let list = ok("list keys", server.list(&format!("{MOUNT}/keys")));
    let all = aliases(&list["data"]["keys"]);
    let want: BTreeSet<String> = leased.iter().map(|l| l.1.clone()).collect();
    assert_eq!(all, want, "{list}");
    let first = &leased.iter().map(|l| l.1.clone()).min().unwrap();
    let entry = &list["data"]["key_info"][first];
    assert_eq!(entry["role"], "r", "{entry}");
    assert_eq!(entry["status"], "active", "{entry}");
    assert_eq!(entry["max_budget"].as_f64(), Some(5.0), "{entry}");
    assert_eq!(entry["models"], json!([MODEL]), "{entry}");
    assert!(entry["token_hash"].as_str().unwrap().len() == 64, "{entry}");
    assert!(
        !list.to_string().contains(&leased[0].0),
        "no key in a listing"
    );
    let page1 = ok(
        "page 1",
        server.get(&format!("{MOUNT}/keys?list=true&limit=2")),
    );
    let page1 = aliases(&page1["data"]["keys"]);
    assert_eq!(page1.len(), 2, "{page1:?}");
    let last = page1.iter().next_back().unwrap();
    let page2 = ok(
        "page 2",
        server.get(&format!("{MOUNT}/keys?list=true&limit=2&after={last}")),
    );
    let page2 = aliases(&page2["data"]["keys"]);
    assert_eq!(page1.union(&page2).cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(page2.len(), 1);

    steps.step("bad input: 400 naming the field");
    for (path, body, field) in [
        (format!("{MOUNT}/keys/sk-1234"), None, "id"),
        (format!("{MOUNT}/keys?list=true&limit=0"), None, "limit"),
        (format!("{MOUNT}/usage/nope"), None, "role"),
        (
            format!("{MOUNT}/tidy"),
            Some(json!({"safety_buffer": "-5s"})),
            "safety_buffer",
        ),
        (
            format!("{MOUNT}/config/auto-tidy"),
            Some(json!({"interval": "0s"})),
            "interval",
        ),
    ] {
        let (status, out) = match &body {
            Some(b) => server.put(&path, b),
            None => server.get(&path),
        };
        assert_eq!(status, 400, "{path}: {out}");
        assert!(error_text(&out).contains(field), "{path}: {out}");
    }

    steps.step("spend: keys/<id> shows what /key/info shows after a chat call");
    let (key0, alias0, _) = &leased[0];
    assert_eq!(litellm.chat(key0, MODEL), 200);
    let spend = eventually("LiteLLM books the spend", Duration::from_secs(150), || {
        let (_, info) = litellm.key_info(key0);
        let s = info["info"]["spend"].as_f64().unwrap_or(0.0);
        if s > 0.0 {
            Some(s)
        } else {
            sleep(Duration::from_secs(2));
            None
        }
    });
    let by_alias = ok(
        "keys/<alias>",
        server.get(&format!("{MOUNT}/keys/{alias0}")),
    );
    assert_eq!(
        by_alias["data"]["spend"].as_f64(),
        Some(spend),
        "{by_alias}"
    );
    let token0 = by_alias["data"]["token_hash"].as_str().unwrap().to_string();
    // The engine chose the key material and recorded its hash before the
    // key existed: it must be the hash of the key LiteLLM handed out.
    assert_eq!(token0, hex::encode(Sha256::digest(key0.as_bytes())));
    let by_hash = ok("keys/<hash>", server.get(&format!("{MOUNT}/keys/{token0}")));
    assert_eq!(by_hash["data"]["key_alias"], alias0.as_str());
    assert_eq!(by_hash["data"]["spend"].as_f64(), Some(spend));
    let (status, _) = server.get(&format!("{MOUNT}/keys/{prefix}-r-nosuchkey"));
    assert_eq!(status, 404);

    steps.step("usage/r: three live keys, the spender on top");
    let usage = ok("usage", server.get(&format!("{MOUNT}/usage/r")));
    assert_eq!(usage["data"]["live_keys"], 3, "{usage}");
    assert_eq!(
        usage["data"]["total_max_budget"].as_f64(),
        Some(15.0),
        "{usage}"
    );
    assert_eq!(
        usage["data"]["total_spend"].as_f64(),
        Some(spend),
        "{usage}"
    );
    assert_eq!(
        usage["data"]["top_spenders"][0]["key_alias"],
        alias0.as_str()
    );
    steps.step(format!(
        "usage took {} LiteLLM call(s)",
        usage["data"]["litellm_calls"]
    ));
    // One /key/list page per 100 keys whose alias contains "-r-", anyone's.
    assert!(
        usage["data"]["litellm_calls"].as_u64().unwrap() >= 1,
        "{usage}"
    );

    steps.step("orphans: marked hand-made keys (one expired), and a revoke that failed until the server gave up");
    let marked = format!("{prefix}-hand-marked");
    let expired = format!("{prefix}-hand-expired");
    let unmarked = format!("{prefix}-hand-unmarked");
    let marked_t = hand_made(litellm, &marked, json!({"vault_mount_id": mount_id}), None);
    let expired_t = hand_made(
        litellm,
        &expired,
        json!({"vault_mount_id": mount_id}),
        Some("1s"),
    );
    let unmarked_t = hand_made(litellm, &unmarked, json!({"vault_role": "r"}), None);
    let (failed_key, failed_alias, failed_lease) = issue(&server, MOUNT, "r");
    cable.cut();
    let (status, body) = server.lease_revoke(&failed_lease);
    assert!(status >= 400, "the revoke must fail: {body}");
    // The server gives up: the lease goes, the plugin's revoke fails again.
    let (status, body) = server.put(
        &format!("sys/leases/revoke-force/{failed_lease}"),
        &json!({}),
    );
    assert!(
        (200..300).contains(&status),
        "revoke-force: {status} {body}"
    );
    cable.mend();
    assert_eq!(
        litellm.chat(&failed_key, MODEL),
        200,
        "the key outlived its lease"
    );
    let record = ok(
        "failed record",
        server.get(&format!("{MOUNT}/keys/{failed_alias}")),
    );
    assert!(record["data"]["revoke_failed_at"].is_string(), "{record}");
    sleep(Duration::from_secs(3));

    let tidy = |body: Value| ok("tidy", server.put(&format!("{MOUNT}/tidy"), &body));
    let opts = json!({"safety_buffer": "2s", "tidy_orphans": true, "tidy_expired": true});

    steps.step("tidy dry_run: reports exactly those, deletes nothing");
    let mut dry = opts.clone();
    dry["dry_run"] = json!(true);
    let report = tidy(dry);
    assert_eq!(
        aliases(&report["data"]["orphans"]),
        set(&[&marked, &expired]),
        "{report}"
    );
    assert_eq!(
        aliases(&report["data"]["expired"]),
        set(&[&failed_alias]),
        "{report}"
    );
    assert_eq!(report["data"]["orphans_deleted"], 0, "{report}");
    assert_eq!(report["data"]["records_deleted"], 0, "{report}");
    for t in [&marked_t, &expired_t, &unmarked_t] {
        assert!(exists(litellm, t), "dry run deleted {t}");
    }
    assert_eq!(litellm.chat(&failed_key, MODEL), 200);

    steps.step("tidy: deletes exactly those");
    let report = tidy(opts.clone());
    assert_eq!(report["data"]["orphans_found"], 2, "{report}");
    assert_eq!(report["data"]["orphans_deleted"], 2, "{report}");
    assert_eq!(report["data"]["expired_found"], 1, "{report}");
    assert_eq!(report["data"]["records_deleted"], 1, "{report}");
    assert_eq!(report["data"]["errors"], json!([]), "{report}");
    assert!(!exists(litellm, &marked_t));
    assert!(!exists(litellm, &expired_t));
    assert_eq!(
        litellm.chat(&failed_key, MODEL),
        401,
        "the failed revoke is finished"
    );
    assert!(exists(litellm, &unmarked_t), "no mark: never deleted");
    for (key, _, _) in leased.iter().chain(&other) {
        assert_eq!(litellm.chat(key, MODEL), 200, "a leased key survived");
    }
    let status = ok("tidy-status", server.get(&format!("{MOUNT}/tidy-status")));
    assert_eq!(status["data"]["state"], "finished", "{status}");
    assert_eq!(status["data"]["orphans_deleted"], 2, "{status}");
    assert_eq!(status["data"]["dry_run"], false, "{status}");

    steps.step("again: nothing left to do; mount B's tidy finds nothing of A's");
    let report = tidy(opts.clone());
    assert_eq!(report["data"]["orphans_found"], 0, "{report}");
    assert_eq!(report["data"]["expired_found"], 0, "{report}");
    let report_b = ok("tidy B", server.put(&format!("{OTHER}/tidy"), &opts));
    assert_eq!(report_b["data"]["orphans_found"], 0, "{report_b}");
    assert_eq!(report_b["data"]["marked_keys_checked"], 2, "{report_b}");
    for (key, _, _) in leased.iter().chain(&other) {
        assert_eq!(litellm.chat(key, MODEL), 200);
    }

    steps.step("auto-tidy deletes a new orphan by itself (the server ticks every ~60s)");
    let late = format!("{prefix}-hand-late");
    let late_t = hand_made(litellm, &late, json!({"vault_mount_id": mount_id}), None);
    let auto = ok(
        "auto-tidy",
        server.put(
            &format!("{MOUNT}/config/auto-tidy"),
            &json!({"enabled": true, "interval": "1s", "safety_buffer": "1s"}),
        ),
    );
    assert_eq!(auto["data"]["interval"], 1, "{auto}");
    let (_, read_back) = server.get(&format!("{MOUNT}/config/auto-tidy"));
    assert_eq!(read_back["data"]["enabled"], true, "{read_back}");
    eventually(
        "auto-tidy deletes the orphan",
        Duration::from_secs(200),
        || {
            if exists(litellm, &late_t) {
                sleep(Duration::from_secs(2));
                return None;
            }
            Some(())
        },
    );
    let status = ok("tidy-status", server.get(&format!("{MOUNT}/tidy-status")));
    assert_eq!(status["data"]["trigger"], "auto", "{status}");
    ok(
        "auto-tidy off",
        server.put(
            &format!("{MOUNT}/config/auto-tidy"),
            &json!({"enabled": false}),
        ),
    );
    for (key, _, _) in leased.iter().chain(&other) {
        assert_eq!(
            litellm.chat(key, MODEL),
            200,
            "auto-tidy spared leased keys"
        );
    }
    assert!(exists(litellm, &unmarked_t));

    steps.step("a key deleted in LiteLLM by hand reads as gone at once; its revoke still succeeds");
    let (key2, alias2, lease2) = &leased[2];
    let before = ok(
        "keys/<alias>",
        server.get(&format!("{MOUNT}/keys/{alias2}")),
    );
    assert_eq!(before["data"]["status"], "active", "{before}");
    assert_eq!(litellm.delete_key(key2), 200);
    let after = ok(
        "keys/<alias>",
        server.get(&format!("{MOUNT}/keys/{alias2}")),
    );
    assert_eq!(after["data"]["status"], "gone", "{after}");
    ok("revoke of a gone key", server.lease_revoke(lease2));
    let (status, _) = server.get(&format!("{MOUNT}/keys/{alias2}"));
    assert_eq!(status, 404, "the record went with the lease");

    steps.step("revoke: the records go with the leases");
    ok("revoke A", server.revoke_prefix(&format!("{MOUNT}/creds")));
    ok("revoke B", server.revoke_prefix(&format!("{OTHER}/creds")));
    let (status, list) = server.list(&format!("{MOUNT}/keys"));
    assert!(
        status == 404 || aliases(&list["data"]["keys"]).is_empty(),
        "{status} {list}"
    );
    assert_eq!(litellm.delete_key(&unmarked_t), 200);
}

/// The plugin dies after recording a key and before deleting its WAL entry
/// (a `fault-injection` build): the key is accounted for the whole time,
/// and the rollback removes both the key and its record.
#[cfg(feature = "fault-injection")]
fn a_crash_between_record_and_wal_leaves_both_and_the_rollback_clears_both(
    engine: Engine,
    steps: &Steps,
    litellm: &LiteLlm,
) {
    use support::plugin_binary;

    let prefix = unique_prefix("x");
    let server = DevServer::start(engine, &plugin_binary());
    server.mount_crashing_plugin("crashy", MOUNT, "LITELLM_PLUGIN_CRASH_AFTER_RECORD=1");
    // A short timeout keeps the WAL entry's hold inside the wait below.
    ok(
        "config",
        server.put(
            &format!("{MOUNT}/config"),
            &json!({"base_url": litellm.url, "master_key": litellm.master_key, "request_timeout": "5s"}),
        ),
    );
    ok(
        "role",
        server.put(
            &format!("{MOUNT}/roles/r"),
            &json!({"models": [MODEL], "key_alias_prefix": prefix}),
        ),
    );

    steps.step("creds: the plugin dies after the record, before the WAL delete");
    let (status, body) = server.get(&format!("{MOUNT}/creds/r"));
    assert!(status >= 500, "{status} {body}");
    // The server reloads a plugin that died during a request and may send the
    // request once more to the new process, which dies at the same point: one
    // key per attempt, each logged by the plugin as it dies (the log is read
    // until the forwarded lines are in).
    let attempts = eventually(
        "one live key per attempt the plugin logged dying after its record",
        Duration::from_secs(10),
        || {
            let attempts = server
                .log_text()
                .matches("fault injection: dying between the record and the WAL delete")
                .count();
            let live = litellm.live_keys_with_alias_prefix(&prefix).len();
            (attempts >= 1 && live == attempts).then_some(attempts)
        },
    );
    let list = ok("list", server.list(&format!("{MOUNT}/keys")));
    let recorded = aliases(&list["data"]["keys"]);
    assert_eq!(
        recorded.len(),
        attempts,
        "every key is accounted for: {list}"
    );
    assert!(recorded.iter().all(|a| a.starts_with(&prefix)));
    let report = ok(
        "tidy dry run",
        server.put(
            &format!("{MOUNT}/tidy"),
            &json!({"dry_run": true, "safety_buffer": "0s"}),
        ),
    );
    assert_eq!(
        report["data"]["orphans_found"], 0,
        "recorded, so no orphan: {report}"
    );

    steps.step("the rollback deletes the key and its record");
    eventually(
        "the rollback to delete the key",
        Duration::from_secs(150),
        || {
            if litellm.count_live_keys_with_alias_prefix(&prefix) == 0 {
                return Some(());
            }
            sleep(Duration::from_secs(2));
            None
        },
    );
    let (status, list) = server.list(&format!("{MOUNT}/keys"));
    assert!(
        status == 404 || aliases(&list["data"]["keys"]).is_empty(),
        "the record went with the key: {status} {list}"
    );
}
#[cfg(feature = "fault-injection")]
per_server!(
    a_crash_between_record_and_wal_leaves_both_and_the_rollback_clears_both,
    with_steps
);
