//! The kill switch: `lease revoke -prefix` of many live leases, queued as
//! the CLI does by default, reaches the plugin as concurrent revokes; the
//! plugin sends them to LiteLLM in batched `/key/delete` calls, and every
//! key is gone afterwards. Real OpenBao, real LiteLLM.

mod support;

use std::thread;
use std::time::Duration;

use serde_json::json;
use support::{
    configured_server, eventually, live_leases, per_server, put_role, unique_prefix, Engine,
    LiteLlm, Steps, MOUNT,
};

const MODEL: &str = "gpt-3.5-turbo";
const LEASES: usize = 150;

fn queued_revoke_prefix_deletes_every_key(engine: Engine, steps: &Steps, litellm: &LiteLlm) {
    let server = configured_server(engine, litellm);
    let role = unique_prefix("k");
    put_role(
        &server,
        &role,
        json!({"models": [MODEL], "ttl": "1h", "key_alias_prefix": role}),
    );
    let alias_prefix = format!("{role}-");

    steps.step(format!("issuing {LEASES} keys"));
    thread::scope(|s| {
        for worker in 0..6 {
            let server = &server;
            let role = &role;
            s.spawn(move || {
                for _ in (worker..LEASES).step_by(6) {
                    let (status, body) = server.get(&format!("{MOUNT}/creds/{role}"));
                    assert_eq!(status, 200, "{body}");
                }
            });
        }
    });
    assert_eq!(live_leases(&server, &role), LEASES);
    assert_eq!(
        litellm.count_live_keys_with_alias_prefix(&alias_prefix),
        LEASES
    );

    steps.step("revoke-prefix, queued (sync=false)");
    let (status, body) = server.put(
        &format!("sys/leases/revoke-prefix/{MOUNT}/creds/{role}"),
        &json!({"sync": false}),
    );
    assert!((200..300).contains(&status), "{status} {body}");
    eventually("every lease and key gone", Duration::from_secs(180), || {
        (live_leases(&server, &role) == 0
            && litellm.count_live_keys_with_alias_prefix(&alias_prefix) == 0)
            .then_some(())
    });
    assert!(
        server
            .log_text()
            .contains("deleted LiteLLM keys in one batch"),
        "concurrent revokes should have left in batches"
    );
}
per_server!(queued_revoke_prefix_deletes_every_key, with_steps);
