//! The engine's flows on in-memory storage against a stub LiteLLM: the
//! order of WAL, LiteLLM and lease steps, and what each failure leaves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::framework::storage::{MemoryStorage, StaticSystemView, PERFORMANCE_STANDBY};
use crate::framework::{wal, Operation, Request, Secret, Storage, SystemView};
use crate::litellm::stub::{route, Route, Stub};

/// As LiteLLM answers a key limited to model calls (`key_type=llm_api`).
const GENERATED: &str = r#"{"key":"sk-generated-secret","token":"abc123hash","key_alias":"x","expires":"2030-01-01T00:00:00Z","allowed_routes":["llm_api_routes"]}"#;
/// As a LiteLLM that does not know `key_type` answers: limited to nothing.
const GENERATED_UNSCOPED: &str = r#"{"key":"sk-generated-secret","token":"abc123hash","key_alias":"x","expires":"2030-01-01T00:00:00Z","allowed_routes":[]}"#;
const NO_KEYS: &str = r#"{"error":{"message":"{'error': 'No keys found'}","code":"404"}}"#;

struct Mount {
    backend: Backend,
    storage: Arc<MemoryStorage>,
    system: Arc<StaticSystemView>,
}

impl Mount {
    fn new(system: StaticSystemView) -> Self {
        let mut options = HashMap::new();
        options.insert(ROLLBACK_MIN_AGE_OPTION.to_string(), "0s".to_string());
        Self::with_storage(system, MemoryStorage::default(), &options)
    }

    fn with_storage(
        system: StaticSystemView,
        storage: MemoryStorage,
        options: &HashMap<String, String>,
    ) -> Self {
        Self {
            backend: factory(options).unwrap(),
            storage: Arc::new(storage),
            system: Arc::new(system),
        }
    }

    fn request(&self, op: Operation, path: &str, body: Value) -> Request {
        let storage: Arc<dyn Storage> = self.storage.clone();
        let system: Arc<dyn SystemView> = self.system.clone();
        Request::new(op, path, storage, system).with_data(body)
    }

    /// A call that must succeed with a response.
    async fn ok(&self, op: Operation, path: &str, body: Value) -> crate::framework::Response {
        self.call(op, path, body)
            .await
            .unwrap()
            .expect("a response")
    }

    async fn call(
        &self,
        op: Operation,
        path: &str,
        body: Value,
    ) -> Result<Option<crate::framework::Response>> {
        self.backend.handle(self.request(op, path, body)).await
    }

    /// Writes config (unverified) and a role straight through the paths.
    async fn configured(self, url: &url::Url) -> Self {
        self.call(
            Operation::Update,
            "config",
            json!({"base_url": url.as_str(), "master_key": "sk-master", "verify_connection": false, "request_timeout": 2}),
        )
        .await
        .unwrap();
        self.call(
            Operation::Update,
            "roles/dev",
            json!({"models": ["m"], "ttl": "1h"}),
        )
        .await
        .unwrap();
        self
    }

    /// Reads `creds/dev`.
    async fn creds(&self) -> Result<Option<crate::framework::Response>> {
        self.call(Operation::Read, "creds/dev", json!(null)).await
    }

    /// Where keys minted now live.
    async fn home(&self) -> proxy::Home {
        let c = config::load(self.storage.as_ref()).await.unwrap().unwrap();
        proxy::Home {
            proxy_id: c.proxy_id,
            base_url: c.base_url,
        }
    }

    fn wal_entries(&self) -> usize {
        self.storage
            .keys()
            .iter()
            .filter(|k| k.starts_with(wal::WAL_PREFIX))
            .count()
    }
}

/// A stub LiteLLM with `routes`, and a mount configured against it.
async fn mount_against(routes: Vec<Route>, system: StaticSystemView) -> (Stub, Mount) {
    let stub = Stub::start(routes).await;
    let mount = Mount::new(system).configured(&stub.url).await;
    (stub, mount)
}

/// [`mount_against`] on an active node.
async fn stubbed(routes: Vec<Route>) -> (Stub, Mount) {
    mount_against(routes, StaticSystemView::default()).await
}

/// A delete that removed the key aliased `vault-dev-x`.
const DELETED_DEV_X: &str = r#"{"deleted_keys":["vault-dev-x"]}"#;

/// A delete that found nothing to delete.
const NOTHING_DELETED: &str = r#"{"deleted_keys":[]}"#;

/// A stub that lets `rotate-root` succeed: the admin key's info, its
/// successor and the old key's delete.
fn rotating_routes() -> Vec<Route> {
    vec![
        route("GET /key/info", 200, OWN_KEY_INFO),
        route("POST /key/generate", 200, GENERATED),
        route("POST /key/delete", 200, NOTHING_DELETED),
    ]
}

/// A stub on which the successor's generate is refused.
fn refused_successor_routes() -> Vec<Route> {
    vec![
        route("GET /key/info", 200, OWN_KEY_INFO),
        route("POST /key/generate", 400, r#"{"error":{"message":"no"}}"#),
    ]
}

/// `rotate-root`, which must fail.
async fn rotate_root_error(m: &Mount) -> crate::framework::Error {
    m.call(Operation::Update, "rotate-root", json!({}))
        .await
        .unwrap_err()
}

/// A rollback WAL entry for the key aliased `vault-dev-x`, as a crashed issue leaves it.
async fn put_rollback_entry(m: &Mount) {
    wal::put(
        m.storage.as_ref(),
        rollback::KIND,
        json!({"key_alias": "vault-dev-x"}),
        wal::Schedule::default(),
    )
    .await
    .unwrap();
}

/// The last delete request the stub saw.
fn last_delete(stub: &Stub) -> String {
    stub.requests()
        .into_iter()
        .rev()
        .find(|r| r.starts_with("POST /key/delete"))
        .unwrap()
}

#[tokio::test]
async fn creds_issue_a_lease_and_clean_the_wal() {
    let (stub, m) = stubbed(vec![route("POST /key/generate", 200, GENERATED)]).await;
    let resp = m.ok(Operation::Read, "creds/dev", json!(null)).await;
    assert_eq!(resp.data["key"], "sk-generated-secret");
    assert_eq!(resp.data["token_hash"], "abc123hash");
    let secret = resp.secret.unwrap();
    assert_eq!(secret.ttl, Duration::from_secs(3600));
    assert_eq!(secret.internal["token"], "abc123hash");
    assert!(
        !Value::Object(secret.internal.clone())
            .to_string()
            .contains("sk-generated-secret"),
        "no key in the lease"
    );
    assert_eq!(m.wal_entries(), 0);
    let sent = stub.requests().concat();
    // The lease's TTL plus the grace: the key never dies before its lease.
    assert!(sent.contains(r#""duration":"3630s""#), "{sent}");
    assert!(sent.contains(r#""key_type":"llm_api""#), "{sent}");
    assert!(sent.contains(r#""vault_role":"dev""#), "{sent}");
    for key in m.storage.keys() {
        let stored = String::from_utf8(m.storage.get(&key).await.unwrap().unwrap()).unwrap();
        assert!(
            !stored.contains("sk-generated-secret"),
            "{key} holds the key"
        );
    }
}

/// The data of a `creds/dev` read for `role`, LiteLLM answering `generated`.
async fn creds_data(generated: &'static str, role: Value) -> serde_json::Map<String, Value> {
    let (_stub, m) = stubbed(vec![route("POST /key/generate", 200, generated)]).await;
    m.call(Operation::Update, "roles/dev", role).await.unwrap();
    m.ok(Operation::Read, "creds/dev", json!(null)).await.data
}

#[tokio::test]
async fn creds_show_the_limits_litellm_stored() {
    // A proxy with upper-bound key settings fills in a budget and a rate
    // limit the role leaves open: the answer says what the key got.
    let filled = r#"{"key":"sk-generated-secret","token":"abc123hash","key_alias":"x","expires":"2030-01-01T00:00:00Z","allowed_routes":["llm_api_routes"],"models":["m"],"max_budget":10.0,"rpm_limit":100,"tpm_limit":null}"#;
    let data = creds_data(filled, json!({"models": ["m"], "tpm_limit": 500})).await;
    assert_eq!(data["max_budget"], 10.0);
    assert_eq!(data["rpm_limit"], 100);
    assert_eq!(data["models"], json!(["m"]));
    assert!(data.get("tpm_limit").is_none(), "{data:?}");
    // An answer that leaves the limits out: the role's, as asked.
    let role = json!({"models": ["m"], "tpm_limit": 500, "max_budget": 2.5});
    let data = creds_data(GENERATED, role).await;
    assert_eq!(data["max_budget"], 2.5);
    assert_eq!(data["tpm_limit"], 500);
    assert_eq!(data["models"], json!(["m"]));
}

#[tokio::test]
async fn creds_on_a_standby_are_forwarded_before_any_side_effect() {
    // Seed config and role, then freeze storage the way a standby's is: the
    // first write fails with the error the server forwards on, before
    // LiteLLM is called.
    let (stub, writable) = stubbed(vec![route("POST /key/generate", 200, GENERATED)]).await;
    let frozen = MemoryStorage::read_only();
    for key in writable.storage.keys() {
        frozen.seed(&key, writable.storage.get(&key).await.unwrap().unwrap());
    }
    let standby = StaticSystemView {
        replication_state: PERFORMANCE_STANDBY,
        ..StaticSystemView::default()
    };
    let m = Mount::with_storage(standby, frozen, &HashMap::new());
    let err = m.creds().await.unwrap_err();
    assert!(
        err.to_string().contains("cannot write to readonly storage"),
        "{err}"
    );
    assert_eq!(
        stub.count("POST /key/generate"),
        0,
        "LiteLLM called on a standby"
    );
}

#[tokio::test]
async fn issues_follow_every_change_to_their_role() {
    let (stub, m) = stubbed(vec![route("POST /key/generate", 200, GENERATED)]).await;
    let alias = |r: crate::framework::Response| r.data["key_alias"].as_str().unwrap().to_string();
    assert!(alias(m.creds().await.unwrap().unwrap()).starts_with("vault-dev-"));

    // A write through the mount.
    m.call(
        Operation::Update,
        "roles/dev",
        json!({"key_alias_prefix": "team"}),
    )
    .await
    .unwrap();
    assert!(alias(m.creds().await.unwrap().unwrap()).starts_with("team-dev-"));

    // A change the server announces (replicated storage): the role as stored now.
    let mut stored: Value =
        serde_json::from_slice(&m.storage.get("roles/dev").await.unwrap().unwrap()).unwrap();
    stored["key_alias_prefix"] = json!("ops");
    m.storage
        .put("roles/dev", serde_json::to_vec(&stored).unwrap())
        .await
        .unwrap();
    (m.backend.invalidate.as_ref().unwrap())("roles/dev");
    assert!(alias(m.creds().await.unwrap().unwrap()).starts_with("ops-dev-"));

    // A delete.
    m.call(Operation::Delete, "roles/dev", json!(null))
        .await
        .unwrap();
    let err = m.creds().await.unwrap_err();
    assert!(err.to_string().contains("unknown role"), "{err}");
    assert_eq!(stub.count("POST /key/generate"), 3);
    assert_eq!(m.wal_entries(), 0);
}

#[tokio::test]
async fn a_refused_narrowing_leaves_no_wal_entry() {
    let (stub, m) = stubbed(vec![route("POST /key/generate", 200, GENERATED)]).await;
    let err = m
        .call(Operation::Update, "creds/dev", json!({"ttl": "5h"}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400, "{err}");
    assert_eq!(stub.count("POST /key/generate"), 0);
    assert_eq!(m.wal_entries(), 0);
}

#[tokio::test]
async fn a_refused_generate_leaves_nothing_behind() {
    let (_stub, m) = stubbed(vec![
        route(
            "POST /key/generate",
            400,
            r#"{"error":{"message":"Key with alias exists","code":"400"}}"#,
        ),
        route("POST /key/delete", 404, NO_KEYS),
    ])
    .await;
    let err = m.creds().await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("Key with alias exists"), "{err}");
    assert_eq!(m.wal_entries(), 0);
    let records = inventory::aliases(m.storage.as_ref()).await.unwrap();
    assert!(records.is_empty(), "{records:?}");
}

#[tokio::test]
async fn a_timed_out_generate_keeps_the_wal_until_rollback() {
    let (_stub, m) = stubbed(vec![
        route("POST /key/generate", 200, GENERATED).delayed(Duration::from_secs(4)),
        route("POST /key/delete", 503, "down"),
    ])
    .await;
    let err = m.creds().await.unwrap_err();
    assert_eq!(err.status(), 504, "{err}");
    assert_eq!(
        m.wal_entries(),
        1,
        "the key may exist: the WAL must survive"
    );
    // LiteLLM still failing: the rollback keeps the entry.
    tick(&m).await;
    assert_eq!(m.wal_entries(), 1);
}

#[tokio::test]
async fn rollback_deletes_by_alias_and_clears_the_wal() {
    let (stub, m) = stubbed(vec![route("POST /key/delete", 200, DELETED_DEV_X)]).await;
    put_rollback_entry(&m).await;
    tick(&m).await;
    assert_eq!(m.wal_entries(), 0);
    let sent = stub.requests().concat();
    assert!(sent.contains(r#""key_aliases":["vault-dev-x"]"#), "{sent}");
}

fn lease(token: &str, home: &proxy::Home) -> Secret {
    let mut s = Secret::new(
        key_secret::SECRET_TYPE,
        key_secret::internal_data("vault-dev-x", token, "dev", home),
        Duration::from_secs(60),
        Duration::ZERO,
    );
    s.issue_time = Some(std::time::SystemTime::now());
    s
}

/// Storage keys of the failed revokes the engine still has to finish.
fn unfinished(m: &Mount) -> Vec<String> {
    m.storage
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("inventory/unfinished_revokes/"))
        .collect()
}

#[tokio::test]
async fn a_failed_revoke_is_finished_on_the_tick_unless_the_lease_is_renewed() {
    // LiteLLM refuses: the revoke fails, the key is noted, and ticks keep
    // trying while it still refuses.
    let (down, m) = stubbed(vec![
        route("POST /key/delete", 500, "boom"),
        route(
            "POST /key/update",
            200,
            r#"{"expires":"2030-01-01T00:00:00Z"}"#,
        ),
    ])
    .await;
    let home = m.home().await;
    revoke(&m, &home).await.unwrap_err();
    assert_eq!(unfinished(&m), ["inventory/unfinished_revokes/vault-dev-x"]);
    tick(&m).await;
    assert_eq!(unfinished(&m).len(), 1, "still refused: still noted");
    assert_eq!(down.count("POST /key/delete"), 2);

    // A renewal says the lease lives on: the note goes, the key stays.
    let mut renewal = m.request(Operation::Renew, "creds/dev", json!({}));
    renewal.secret = Some(lease("abc", &home));
    m.backend.handle(renewal).await.unwrap();
    assert!(unfinished(&m).is_empty());
    tick(&m).await;
    assert_eq!(
        down.count("POST /key/delete"),
        2,
        "no delete after a renewal"
    );

    // LiteLLM answers again: the tick deletes the noted key on its proxy,
    // whatever the server did with the lease meanwhile.
    let (up, m) = stubbed(vec![route("POST /key/delete", 200, DELETED_DEV_X)]).await;
    unfinished_revokes::note(
        m.storage.as_ref(),
        "vault-dev-x",
        "abc",
        Some(&m.home().await),
    )
    .await;
    tick(&m).await;
    assert!(unfinished(&m).is_empty());
    assert!(last_delete(&up).contains("abc"), "{}", last_delete(&up));
    tick(&m).await;
    assert_eq!(
        up.count("POST /key/delete"),
        1,
        "once gone, the note is gone"
    );
}

#[tokio::test]
async fn notes_that_keep_failing_do_not_hold_up_the_others() {
    let (up, m) = stubbed(vec![route("POST /key/delete", 200, DELETED_DEV_X)]).await;
    let home = m.home().await;
    // Sorted first: a key on a proxy the mount does not know fails every tick.
    let lost = proxy::Home {
        proxy_id: "0000000000000000".into(),
        base_url: "http://127.0.0.1:9/".into(),
    };
    let storage = m.storage.as_ref();
    unfinished_revokes::note(storage, "a-lost", "t-lost", Some(&lost)).await;
    // More than a page of listing behind it.
    for i in 0..1000 {
        unfinished_revokes::note(
            storage,
            &format!("b-{i:04}"),
            &format!("t-{i}"),
            Some(&home),
        )
        .await;
    }
    tick(&m).await;
    assert_eq!(unfinished(&m), ["inventory/unfinished_revokes/a-lost"]);
    let deleted: usize = up
        .requests()
        .iter()
        .map(|r| r.matches("\"t-").count())
        .sum();
    assert_eq!(deleted, 1000, "every key behind the failing one is deleted");
}

/// The record of a key of role `dev` on `home` whose lease ends at
/// `lease_expires` (unix seconds).
fn record_ending(alias: &str, home: &proxy::Home, lease_expires: u64) -> inventory::KeyRecord {
    inventory::KeyRecord {
        alias: alias.into(),
        token: "t".into(),
        role: "dev".into(),
        issued_at: 1,
        lease_expires,
        proxy_id: home.proxy_id.clone(),
        proxy_url: home.base_url.clone(),
        display_name: String::new(),
        entity_id: String::new(),
        revoke_failed_at: None,
        revoke_error: None,
    }
}

#[tokio::test]
async fn a_note_ends_once_its_key_has_expired_by_itself() {
    // A proxy that never answers again (retired for good).
    let (_stub, m) = stubbed(vec![]).await;
    let lost = proxy::Home {
        proxy_id: "0000000000000000".into(),
        base_url: "http://127.0.0.1:9/".into(),
    };
    let storage = m.storage.as_ref();
    let now = clock::unix_now();
    for (alias, lease_ended) in [
        ("expired", Some(now - 2 * 3600)),
        ("recent", Some(now - 60)),
        ("unrecorded", None),
    ] {
        unfinished_revokes::note(storage, alias, "t", Some(&lost)).await;
        if let Some(at) = lease_ended {
            inventory::put(storage, &record_ending(alias, &lost, at))
                .await
                .unwrap();
        }
    }
    tick(&m).await;
    assert_eq!(
        unfinished(&m),
        [
            "inventory/unfinished_revokes/recent",
            "inventory/unfinished_revokes/unrecorded"
        ],
        "a key that may still be valid stays noted, and so does one without a known end"
    );
    assert!(
        record(&m, "expired").await.is_some(),
        "the record stays for keys/ and tidy"
    );
}

#[tokio::test]
async fn revoke_of_a_gone_key_succeeds_and_failures_are_retried() {
    let (_stub, m) = stubbed(vec![route("POST /key/delete", 404, NO_KEYS)]).await;
    assert!(revoke(&m, &m.home().await).await.unwrap().is_none());

    let (_down, m) = stubbed(vec![route("POST /key/delete", 500, "boom")]).await;
    let err = revoke(&m, &m.home().await).await.unwrap_err();
    assert_eq!(err.status(), 502, "an error makes the server retry: {err}");
}

/// A `/key/update` that extends the key.
fn extends() -> Route {
    route(
        "POST /key/update",
        200,
        r#"{"expires":"2030-01-01T00:00:00Z"}"#,
    )
}

/// A `/key/update` of a key LiteLLM no longer has.
fn key_gone_on_update() -> Route {
    route(
        "POST /key/update",
        404,
        r#"{"detail":{"error":"Key not found."}}"#,
    )
}

/// A mount against a stub that extends keys.
/// A server that fails every question about the mount's default TTL.
struct NoDefaultTtl(StaticSystemView);

#[async_trait::async_trait]
impl SystemView for NoDefaultTtl {
    async fn default_lease_ttl(&self) -> Result<Duration> {
        Err(crate::framework::Error::Internal(
            "asked for the default TTL".into(),
        ))
    }
    async fn max_lease_ttl(&self) -> Result<Duration> {
        self.0.max_lease_ttl().await
    }
    async fn tainted(&self) -> Result<bool> {
        self.0.tainted().await
    }
    async fn replication_state(&self) -> Result<u32> {
        self.0.replication_state().await
    }
    async fn entity_info(&self, id: &str) -> Result<Option<crate::framework::Entity>> {
        self.0.entity_info(id).await
    }
    async fn groups_for_entity(&self, id: &str) -> Result<Vec<crate::framework::Group>> {
        self.0.groups_for_entity(id).await
    }
}

#[tokio::test]
async fn the_mounts_default_ttl_is_asked_only_for_a_role_without_one() {
    let (_stub, m) = stubbed(vec![route("POST /key/generate", 200, GENERATED), extends()]).await;
    let no_default: Arc<dyn SystemView> = Arc::new(NoDefaultTtl(StaticSystemView::default()));
    let ask = |op, path: &str| {
        let storage: Arc<dyn Storage> = m.storage.clone();
        Request::new(op, path, storage, no_default.clone())
    };
    // roles/dev has a TTL: neither an issue nor a renewal needs the mount's.
    let issued = m.backend.handle(ask(Operation::Read, "creds/dev")).await;
    assert_eq!(
        issued.unwrap().unwrap().secret.unwrap().ttl,
        Duration::from_secs(3600)
    );
    let mut renewal = ask(Operation::Renew, "creds/dev");
    renewal.secret = Some(lease("abc", &m.home().await));
    let renewed = m.backend.handle(renewal).await.unwrap().unwrap();
    assert_eq!(renewed.secret.unwrap().ttl, Duration::from_secs(3600));

    // A role without one takes the mount's, so the server is asked.
    m.call(Operation::Update, "roles/dev", json!({"ttl": 0}))
        .await
        .unwrap();
    let err = m
        .backend
        .handle(ask(Operation::Read, "creds/dev"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("asked for the default TTL"),
        "{err}"
    );
    let resp = m.ok(Operation::Read, "creds/dev", json!(null)).await;
    assert_eq!(
        resp.secret.unwrap().ttl,
        StaticSystemView::default().default_ttl
    );
}

async fn extending() -> (Stub, Mount) {
    stubbed(vec![extends()]).await
}

#[tokio::test]
async fn renew_extends_by_the_granted_ttl_and_returns_no_data() {
    let (stub, m) = extending().await;
    let mut req = m.request(
        Operation::Renew,
        "creds/dev",
        json!({"key": "sk-plain", "key_alias": "vault-dev-x"}),
    );
    let mut secret = lease("abc", &m.home().await);
    secret.increment = Duration::from_secs(600);
    req.secret = Some(secret);
    let resp = m.backend.handle(req).await.unwrap().unwrap();
    assert_eq!(resp.secret.unwrap().ttl, Duration::from_secs(600));
    assert!(
        resp.data.is_empty(),
        "a renewal brings no data: {:?}",
        resp.data
    );
    let sent = stub.requests().concat();
    assert!(
        sent.contains(r#""duration":"630s""#) && sent.contains(r#""key":"abc""#),
        "{sent}"
    );
}

#[tokio::test]
async fn config_is_verified_before_it_is_stored() {
    let stub = Stub::start(vec![route(
        "GET /key/list",
        401,
        r#"{"error":{"message":"Authentication Error","code":"401"}}"#,
    )])
    .await;
    let m = Mount::new(StaticSystemView::default());
    let err = m
        .call(
            Operation::Create,
            "config",
            json!({"base_url": stub.url.as_str(), "master_key": "sk-bad"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("rejected the admin key"), "{err}");
    assert!(m.storage.keys().is_empty(), "nothing stored");
    let err = m
        .call(
            Operation::Create,
            "config",
            json!({"base_url": stub.url.as_str()}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("admin_key"), "{err}");
}

#[tokio::test]
async fn config_read_never_shows_the_master_key() {
    let (_stub, m) = stubbed(vec![]).await;
    let resp = m.ok(Operation::Read, "config", json!(null)).await;
    assert_eq!(resp.data["master_key_set"], true);
    assert!(!Value::Object(resp.data).to_string().contains("sk-master"));
}

#[tokio::test]
async fn unconfigured_and_unknown_roles_are_400() {
    let m = Mount::new(StaticSystemView::default());
    m.call(Operation::Update, "roles/dev", json!({"models": ["m"]}))
        .await
        .unwrap();
    let err = m.creds().await.unwrap_err();
    assert!(err.to_string().contains("write config first"), "{err}");
    let err = m
        .call(Operation::Read, "creds/nope", json!(null))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown role"), "{err}");
}

#[test]
fn upstream_errors_map_to_http_codes() {
    use crate::litellm::Error as L;
    let cases = [
        (L::Config("x".into()), 400),
        (
            L::Rejected {
                status: 422,
                message: "x".into(),
            },
            400,
        ),
        (
            L::Unreachable {
                url: "u".into(),
                reason: "refused".into(),
            },
            503,
        ),
        (L::Timeout(Duration::from_secs(1)), 504),
        (
            L::Unauthorized {
                status: 401,
                message: "x".into(),
            },
            502,
        ),
        (
            L::Server {
                status: 500,
                message: "x".into(),
            },
            502,
        ),
        (
            L::NotFound {
                url: "u".into(),
                message: "x".into(),
            },
            502,
        ),
        (
            L::Interrupted {
                url: "u".into(),
                reason: "reset".into(),
            },
            502,
        ),
        (L::InvalidResponse("x".into()), 502),
    ];
    for (e, status) in cases {
        let text = e.to_string();
        let mapped = crate::framework::Error::from(e);
        assert_eq!(mapped.status(), status, "{text}");
        assert!(mapped.to_string().contains(&text));
    }
}

#[tokio::test]
async fn unusable_mount_options_are_named_and_the_defaults_apply() {
    let mut options = HashMap::new();
    options.insert(ROLLBACK_MIN_AGE_OPTION.to_string(), "soon".to_string());
    options.insert(MIN_ROTATION_PERIOD_OPTION.to_string(), "1h".to_string());
    let m = Mount::with_storage(
        StaticSystemView::default(),
        MemoryStorage::default(),
        &options,
    );
    // The runtime refuses a new mount with this text (see
    // `Backend::unusable_options`); a mount with data runs on, saying so.
    let problem = m.backend.unusable_options.clone().expect("named");
    assert!(problem.contains(ROLLBACK_MIN_AGE_OPTION), "{problem}");
    assert!(!problem.contains(MIN_ROTATION_PERIOD_OPTION), "{problem}");
    let written = m
        .call(Operation::Update, "roles/dev", json!({"models": ["m"]}))
        .await
        .unwrap()
        .expect("the warning makes an answer");
    assert!(written
        .warnings
        .iter()
        .any(|w| w.contains(ROLLBACK_MIN_AGE_OPTION)));
    let listed = m.ok(Operation::List, "roles/", json!(null)).await;
    assert_eq!(listed.data["keys"], json!(["dev"]));
    assert!(listed.warnings.iter().any(|w| w.contains("defaults")));
    assert!(Mount::new(StaticSystemView::default())
        .backend
        .unusable_options
        .is_none());
}

/// `creds/dev` against a stub whose generate fails with `generate`, and
/// whose clean-up delete answers `delete`: returns the WAL entries left and
/// how many deletes were tried.
async fn failed_generate(generate: Route, delete: Route) -> (usize, usize) {
    let (stub, m) = stubbed(vec![generate, delete]).await;
    assert!(m.creds().await.is_err());
    // The record written alongside the generate never outlives a failure.
    let records = inventory::aliases(m.storage.as_ref()).await.unwrap();
    assert!(records.is_empty(), "{records:?}");
    (m.wal_entries(), stub.count("POST /key/delete"))
}

#[tokio::test]
async fn ambiguous_generate_failures_keep_the_wal_unless_a_key_was_deleted() {
    let deleted = route("POST /key/delete", 200, r#"{"deleted_keys":["a"]}"#);
    let no_keys = route("POST /key/delete", 404, NO_KEYS);
    let slow = route("POST /key/generate", 200, GENERATED).delayed(Duration::from_secs(3));
    let broken = route("POST /key/generate", 500, "boom");
    let reset = route("POST /key/generate", 0, "");
    let garbled = route("POST /key/generate", 200, "<html>");
    for generate in [slow, broken, reset, garbled] {
        let what = format!("{} {}", generate.status, generate.body);
        // LiteLLM may commit the key after the clean-up ran: keep the entry.
        assert_eq!(
            failed_generate(generate.clone(), no_keys.clone()).await,
            (1, 1),
            "{what}"
        );
        // The clean-up removed the key: nothing is left to roll back.
        assert_eq!(
            failed_generate(generate, deleted.clone()).await,
            (0, 1),
            "{what}"
        );
    }
    // A clear refusal created nothing: no clean-up call, no entry.
    let refused = route("POST /key/generate", 400, r#"{"error":{"message":"bad"}}"#);
    assert_eq!(failed_generate(refused, no_keys).await, (0, 0));
}

#[tokio::test]
async fn an_unreachable_proxy_leaves_no_wal_entry() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        url::Url::parse(&format!("http://{}/", l.local_addr().unwrap())).unwrap()
    };
    let m = Mount::new(StaticSystemView::default())
        .configured(&closed)
        .await;
    let err = m.creds().await.unwrap_err();
    assert_eq!(err.status(), 503, "{err}");
    assert_eq!(m.wal_entries(), 0);
}

#[tokio::test]
async fn only_litellms_own_no_keys_found_means_already_gone() {
    // A 404 from anything else (a wrong path prefix, a gateway) keeps the lease.
    for (status, body) in [
        (404, r#"{"detail":"Not Found"}"#),
        (404, "<html>404 Not Found</html>"),
        (
            404,
            r#"{"error":{"message":"Key not found.","code":"404"}}"#,
        ),
    ] {
        let (_stub, m) = stubbed(vec![
            route("POST /key/delete", status, body).delayed(Duration::ZERO)
        ])
        .await;
        let err = revoke(&m, &m.home().await).await.unwrap_err();
        assert_eq!(err.status(), 502, "{body}: {err}");
    }
    // The rollback treats it the same way: the entry stays.
    let (_stub, m) = stubbed(vec![]).await;
    put_rollback_entry(&m).await;
    tick(&m).await;
    assert_eq!(m.wal_entries(), 1);
}

#[tokio::test]
async fn renew_without_an_issue_time_is_refused() {
    let (stub, m) = stubbed(vec![route("POST /key/update", 200, "{}")]).await;
    let mut req = m.request(Operation::Renew, "creds/dev", json!({}));
    let mut secret = lease("abc", &m.home().await);
    secret.issue_time = None;
    req.secret = Some(secret);
    let err = m.backend.handle(req).await.unwrap_err();
    assert!(err.to_string().contains("issue time"), "{err}");
    assert_eq!(stub.count("POST /key/update"), 0);
}

/// Revokes a lease minted at `home` and returns its outcome.
async fn revoke(m: &Mount, home: &proxy::Home) -> Result<Option<crate::framework::Response>> {
    let mut req = m.request(Operation::Revoke, "creds/dev", json!(null));
    req.secret = Some(lease("abc", home));
    m.backend.handle(req).await
}

async fn write_config(m: &Mount, body: Value) -> Result<Option<crate::framework::Response>> {
    let mut body = body;
    body["verify_connection"] = json!(false);
    m.call(Operation::Update, "config", body).await
}

#[tokio::test]
async fn keys_revoke_on_the_proxy_they_were_minted_on() {
    let gone = route("POST /key/delete", 200, r#"{"deleted_keys":["abc"]}"#);
    let first = Stub::start(vec![gone.clone()]).await;
    let second = Stub::start(vec![gone.clone()]).await;
    let m = Mount::new(StaticSystemView::default())
        .configured(&first.url)
        .await;
    let home = m.home().await;

    // Another proxy: the old key still revokes on the first one.
    let resp = write_config(&m, json!({"base_url": second.url.as_str()}))
        .await
        .unwrap()
        .expect("a warning");
    assert!(
        resp.warnings[0].contains("proxy_moved=true"),
        "{:?}",
        resp.warnings
    );
    assert_ne!(m.home().await.proxy_id, home.proxy_id);
    revoke(&m, &home).await.unwrap();
    assert_eq!((first.count("POST"), second.count("POST")), (1, 0));
    let read = m.ok(Operation::Read, "config", json!(null)).await;
    assert_eq!(
        read.data["retired_proxies"][&home.proxy_id],
        first.url.as_str()
    );
    assert!(!Value::Object(read.data).to_string().contains("sk-master"));

    // Deleting the config keeps what revoke needs.
    m.call(Operation::Delete, "config", json!(null))
        .await
        .unwrap();
    revoke(&m, &home).await.unwrap();
    assert_eq!(first.count("POST"), 2);
    let err = m.creds().await.unwrap_err();
    assert!(err.to_string().contains("write config first"), "{err}");

    // Back at the first URL: the first proxy's keys are its keys again.
    write_config(
        &m,
        json!({"base_url": first.url.as_str(), "master_key": "sk-master"}),
    )
    .await
    .unwrap();
    assert_eq!(m.home().await.proxy_id, home.proxy_id);

    // The same proxy moved: its keys follow it to the new URL.
    write_config(
        &m,
        json!({"base_url": second.url.as_str(), "proxy_moved": true}),
    )
    .await
    .unwrap();
    assert_eq!(m.home().await.proxy_id, home.proxy_id);
    revoke(&m, &home).await.unwrap();
    assert_eq!((first.count("POST"), second.count("POST")), (2, 1));

    // A proxy the mount never knew: loud, and nothing is called.
    let stranger = proxy::Home {
        proxy_id: "feedface".into(),
        base_url: "http://elsewhere:4000/".into(),
    };
    let err = revoke(&m, &stranger).await.unwrap_err();
    assert!(err.to_string().contains("http://elsewhere:4000/"), "{err}");
    assert_eq!((first.count("POST"), second.count("POST")), (2, 1));
}

#[tokio::test]
async fn rollback_gives_up_only_after_the_keys_own_expiry() {
    let (_stub, m) = stubbed(vec![route("POST /key/delete", 503, "down")]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Older than any fixed limit, but its key lives on: kept.
    let alive = wal::WalEntry {
        kind: rollback::KIND.into(),
        data: json!({"key_alias": "a"}),
        created_at: now - 60 * 24 * 3600,
        hold_until: None,
        give_up_after: Some(now + 3600),
    };
    // Its key has expired in LiteLLM by itself: dropped.
    let expired = wal::WalEntry {
        give_up_after: Some(now - 10),
        ..alive.clone()
    };
    for (id, entry) in [("alive", &alive), ("expired", &expired)] {
        let bytes = serde_json::to_vec(entry).unwrap();
        m.storage
            .put(&format!("{}{id}", wal::WAL_PREFIX), bytes)
            .await
            .unwrap();
    }
    tick(&m).await;
    assert_eq!(wal::list(m.storage.as_ref()).await.unwrap(), vec!["alive"]);
}

#[tokio::test]
async fn wal_entries_record_their_hold_expiry_and_proxy() {
    let (_stub, m) = stubbed(vec![
        route("POST /key/generate", 500, "boom"),
        route("POST /key/delete", 404, NO_KEYS),
    ])
    .await;
    // Without max_ttl the entry cannot say when the key expires at the
    // latest (it is written before the mount's TTLs are read).
    assert!(m.creds().await.is_err());
    let id = wal::list(m.storage.as_ref()).await.unwrap().remove(0);
    let entry = wal::get(m.storage.as_ref(), &id).await.unwrap().unwrap();
    assert_eq!(entry.give_up_after, None);
    wal::delete(m.storage.as_ref(), &id).await.unwrap();

    m.call(Operation::Update, "roles/dev", json!({"max_ttl": "2h"}))
        .await
        .unwrap();
    assert!(m.creds().await.is_err());
    let id = wal::list(m.storage.as_ref()).await.unwrap().remove(0);
    let entry = wal::get(m.storage.as_ref(), &id).await.unwrap().unwrap();
    // request_timeout is 2s: generate + clean-up + the margin.
    let hold = entry.hold_until.unwrap() - entry.created_at;
    assert_eq!(hold, 2 * 2 + ISSUE_MARGIN.as_secs() + 1);
    let lifetime = entry.give_up_after.unwrap() - entry.created_at;
    assert_eq!(lifetime, 7200 + EXPIRY_GRACE.as_secs() + 1);
    assert_eq!(entry.data["proxy_id"], json!(m.home().await.proxy_id));
    // Within its hold, even a zero minimum age leaves it alone.
    tick(&m).await;
    assert_eq!(m.wal_entries(), 1);
}

#[tokio::test]
async fn identity_templates_attribute_keys_before_any_side_effect() {
    use crate::framework::{Entity, Group};
    let system = StaticSystemView {
        entities: vec![Entity {
            id: "ent-1".into(),
            name: "alice".into(),
            ..Entity::default()
        }],
        groups: vec![(
            "ent-1".into(),
            vec![Group {
                id: "grp-9".into(),
                name: "ml".into(),
                ..Group::default()
            }],
        )],
        ..StaticSystemView::default()
    };
    let (stub, m) = mount_against(vec![route("POST /key/generate", 200, GENERATED)], system).await;
    m.call(
        Operation::Update,
        "roles/dev",
        json!({"user_id_template": "u-{{identity.entity.name}}", "team_id_template": "{{identity.groups.names.ml.id}}"}),
    )
    .await
    .unwrap();
    let as_entity = |entity: &str| {
        let mut req = m.request(Operation::Read, "creds/dev", json!(null));
        req.entity_id = entity.into();
        req
    };
    let resp = m.backend.handle(as_entity("ent-1")).await.unwrap().unwrap();
    assert_eq!(resp.data["user_id"], "u-alice");
    assert_eq!(resp.data["team_id"], "grp-9");
    let sent = stub.requests().concat();
    assert!(sent.contains(r#""user_id":"u-alice""#), "{sent}");
    assert!(sent.contains(r#""team_id":"grp-9""#), "{sent}");
    assert!(sent.contains(r#""vault_entity_id":"ent-1""#), "{sent}");

    // No entity (a root token), or one the server does not know: 400, and
    // nothing written or called.
    for entity in ["", "ent-unknown"] {
        let err = m.backend.handle(as_entity(entity)).await.unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
    }
    // A template that does not resolve for this entity names its field.
    m.call(
        Operation::Update,
        "roles/dev",
        json!({"team_id_template": "{{identity.groups.names.admins.id}}"}),
    )
    .await
    .unwrap();
    let err = m.backend.handle(as_entity("ent-1")).await.unwrap_err();
    assert!(err.to_string().contains("team_id_template"), "{err}");
    assert_eq!(stub.count("POST /key/generate"), 1);
    assert_eq!(m.wal_entries(), 0);

    // A fixed team_id wins over the template.
    m.call(Operation::Update, "roles/dev", json!({"team_id": "fixed"}))
        .await
        .unwrap();
    let resp = m.backend.handle(as_entity("ent-1")).await.unwrap().unwrap();
    assert_eq!(resp.data["team_id"], "fixed");

    // Bad templates are refused when the role is written.
    let err = m
        .call(
            Operation::Update,
            "roles/dev",
            json!({"user_id_template": "{{identity.entity.email}}"}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("user_id_template"), "{err}");
}

#[tokio::test]
async fn a_creds_write_narrows_its_role_and_never_widens_it() {
    let (stub, m) = stubbed(vec![route("POST /key/generate", 200, GENERATED)]).await;
    m.call(
        Operation::Update,
        "roles/dev",
        json!({"models": ["a", "b", "openai/*"], "max_budget": 5, "allowed_request_metadata": "ticket"}),
    )
    .await
    .unwrap();
    for (body, field) in [
        (json!({"ttl": "2h"}), "ttl"),
        (json!({"models": ["c"]}), "models"),
        (json!({"models": ["*"]}), "models"),
        (json!({"models": ["openai*"]}), "models"),
        (json!({"models": ""}), "models"),
        (json!({"max_budget": 6}), "max_budget"),
        (json!({"max_budget": 0}), "max_budget"),
        (json!({"metadata": {"owner": "x"}}), "metadata"),
        (json!({"metadata": {"vault_role": "x"}}), "metadata"),
        (json!({"key_type": "management"}), "key_type"),
    ] {
        let err = m
            .call(Operation::Update, "creds/dev", body.clone())
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400, "{body}");
        assert!(err.to_string().contains(field), "{body}: {err}");
    }
    assert_eq!(stub.count("POST /key/generate"), 0, "nothing was minted");
    assert_eq!(m.wal_entries(), 0);

    let resp = m
        .ok(
            Operation::Update,
            "creds/dev",
            json!({"ttl": "10m", "models": "b", "max_budget": 1.5, "metadata": "ticket=T-1"}),
        )
        .await;
    let secret = resp.secret.unwrap();
    assert_eq!(secret.ttl, Duration::from_secs(600));
    assert_eq!(secret.internal[key_secret::REQUESTED_TTL], 600);
    assert_eq!(resp.data["models"], json!(["b"]));
    let sent = stub.requests().concat();
    for part in [
        r#""models":["b"]"#,
        r#""max_budget":1.5"#,
        r#""ticket":"T-1""#,
        r#""duration":"630s""#,
    ] {
        assert!(sent.contains(part), "{part} not in {sent}");
    }
    // The role's wildcard covers a model, or a narrower pattern, under it.
    for models in [json!(["openai/gpt-4o"]), json!(["a", "openai/gpt-*"])] {
        let resp = m
            .ok(Operation::Update, "creds/dev", json!({"models": models}))
            .await;
        assert_eq!(resp.data["models"], models);
    }
}

/// The inventory record of `alias`, if any.
async fn record(m: &Mount, alias: &str) -> Option<inventory::KeyRecord> {
    inventory::get(m.storage.as_ref(), alias).await.unwrap()
}

#[tokio::test]
async fn an_issue_records_the_key_and_marks_it_with_the_mount_id() {
    let (stub, m) = stubbed(vec![route("POST /key/generate", 200, GENERATED)]).await;
    let resp = m.ok(Operation::Read, "creds/dev", json!(null)).await;
    let alias = resp.data["key_alias"].as_str().unwrap().to_string();
    let r = record(&m, &alias).await.expect("a record");
    // The engine sent key material of its own; this stub answers with
    // another key, and the record follows what LiteLLM returned.
    let sent = stub.requests().concat();
    assert!(sent.contains(r#""key":"sk-"#), "{sent}");
    assert_eq!(r.token, "abc123hash");
    assert_eq!(r.role, "dev");
    assert_eq!(r.lease_expires - r.issued_at, 3600);
    assert_eq!(r.entity_id, "");
    let id = inventory::mount_id(&Engine::new(), m.storage.as_ref())
        .await
        .unwrap()
        .expect("created on first issue");
    let sent = stub.requests().concat();
    assert!(
        sent.contains(&format!(r#""vault_mount_id":"{id}""#)),
        "{sent}"
    );
    // The second issue keeps the id.
    m.ok(Operation::Read, "creds/dev", json!(null)).await;
    assert_eq!(stub.requests().concat().matches(&id).count(), 2);
}

#[tokio::test]
async fn the_mark_is_reserved_in_role_metadata() {
    let (_stub, m) = stubbed(vec![]).await;
    let err = m
        .call(
            Operation::Update,
            "roles/dev",
            json!({"metadata": {"vault_mount_id": "x"}}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("metadata"), "{err}");
}

#[tokio::test]
async fn revoke_removes_the_record_and_a_failed_one_marks_it() {
    let (_stub, m) = stubbed(vec![
        route("POST /key/generate", 200, GENERATED),
        route("POST /key/delete", 500, "boom"),
    ])
    .await;
    let resp = m.ok(Operation::Read, "creds/dev", json!(null)).await;
    let alias = resp.data["key_alias"].as_str().unwrap().to_string();
    let mut req = m.request(Operation::Revoke, "creds/dev", json!(null));
    req.secret = resp.secret.clone();
    assert_eq!(m.backend.handle(req).await.unwrap_err().status(), 502);
    let marked = record(&m, &alias).await.expect("kept for tidy");
    assert!(marked.revoke_failed_at.is_some());
    assert!(marked.revoke_error.unwrap().contains("boom"));

    // A renewal proves the lease alive again: the mark goes, expiry moves.
    let (_ok, m2) = stubbed(vec![
        route("POST /key/update", 200, r#"{"expires":null}"#),
        route("POST /key/delete", 200, r#"{"deleted_keys":["x"]}"#),
    ])
    .await;
    let mut secret = resp.secret.unwrap();
    secret
        .internal
        .insert("proxy_id".into(), json!(m2.home().await.proxy_id));
    secret.issue_time = Some(std::time::SystemTime::now());
    inventory::put(m2.storage.as_ref(), &record(&m, &alias).await.unwrap())
        .await
        .unwrap();
    let mut req = m2.request(Operation::Renew, "creds/dev", json!({}));
    req.secret = Some(secret.clone());
    m2.backend.handle(req).await.unwrap();
    let renewed = record(&m2, &alias).await.unwrap();
    assert_eq!(renewed.revoke_failed_at, None);
    assert!(renewed.lease_expires >= clock::unix_now() + 3599);
    let mut req = m2.request(Operation::Revoke, "creds/dev", json!(null));
    req.secret = Some(secret);
    assert!(m2.backend.handle(req).await.unwrap().is_none());
    assert_eq!(record(&m2, &alias).await, None);
}

#[tokio::test]
async fn the_rollback_removes_a_record_written_before_a_crash() {
    let (_stub, m) = stubbed(vec![route("POST /key/delete", 200, DELETED_DEV_X)]).await;
    let home = m.home().await;
    put_rollback_entry(&m).await;
    inventory::put(m.storage.as_ref(), &record_ending("vault-dev-x", &home, 2))
        .await
        .unwrap();
    tick(&m).await;
    assert_eq!(m.wal_entries(), 0);
    assert_eq!(record(&m, "vault-dev-x").await, None);
}

#[tokio::test]
async fn tidy_is_refused_on_a_standby_and_never_runs_twice() {
    let standby = StaticSystemView {
        replication_state: PERFORMANCE_STANDBY,
        ..StaticSystemView::default()
    };
    let m = Mount::new(standby);
    let err = m
        .call(Operation::Update, "tidy", json!({}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("readonly"), "{err}");

    let engine = Arc::new(Engine::new());
    let _running = engine.tidying.lock().await;
    let options = tidy::TidyOptions {
        dry_run: true,
        safety_buffer: Duration::ZERO,
        tidy_orphans: true,
        tidy_expired: true,
    };
    let req = m.request(Operation::Update, "tidy", json!({}));
    let Err(err) = tidy::start(Arc::clone(&engine), &req, options, "manual") else {
        panic!("a second tidy started");
    };
    assert_eq!(err.status(), 409);
}

const OWN_KEY_INFO: &str = r#"{"key":"h","info":{"user_id":"u1","key_alias":"eng-admin","key_type":null,"allowed_routes":[],"models":[],"metadata":{},"expires":null}}"#;
const NOT_IN_DATABASE: &str =
    r#"{"error":{"message":"Key not found in database","type":"not_found_error","code":"404"}}"#;

async fn stored_admin_key(m: &Mount) -> String {
    config::load(m.storage.as_ref())
        .await
        .unwrap()
        .unwrap()
        .master_key
}

#[tokio::test]
async fn rotate_root_refuses_the_master_key_before_any_side_effect() {
    let (stub, m) = stubbed(vec![route("GET /key/info", 404, NOT_IN_DATABASE)]).await;
    let err = rotate_root_error(&m).await;
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("master key"), "{err}");
    assert!(err.to_string().contains("admin_key"), "{err}");
    assert_eq!(stub.count("POST"), 0);
    assert_eq!(m.wal_entries(), 0);
}

#[tokio::test]
async fn a_refused_successor_leaves_the_old_key_and_no_wal_entry() {
    let (_stub, m) = stubbed(refused_successor_routes()).await;
    let err = rotate_root_error(&m).await;
    assert_eq!(err.status(), 400);
    assert_eq!(stored_admin_key(&m).await, "sk-master");
    assert_eq!(m.wal_entries(), 0);
}

#[tokio::test]
async fn a_failed_delete_of_the_old_key_keeps_the_new_key_and_the_wal_entry() {
    let (stub, m) = stubbed(vec![
        route("GET /key/info", 200, OWN_KEY_INFO),
        route("POST /key/generate", 200, GENERATED),
        route(
            "POST /key/delete",
            500,
            r#"{"error":{"message":"db down"}}"#,
        ),
    ])
    .await;
    let resp = m.ok(Operation::Update, "rotate-root", json!({})).await;
    assert!(resp.data["rotated_at"].is_string());
    assert!(
        !resp.warnings.is_empty(),
        "a warning says the rollback retries"
    );
    let new_key = stored_admin_key(&m).await;
    assert_ne!(new_key, "sk-master");
    assert!(!serde_json::to_string(&resp.data)
        .unwrap()
        .contains(&new_key));
    assert_eq!(m.wal_entries(), 1, "the rollback deletes the old key later");
    // The successor copies the owner and is authorised as the old key.
    let generate = stub
        .requests()
        .into_iter()
        .find(|r| r.starts_with("POST /key/generate"))
        .unwrap();
    assert!(generate.contains(r#""user_id":"u1""#), "{generate}");
    assert!(
        generate.contains(r#""key_alias":"eng-admin-rot-"#),
        "{generate}"
    );
    assert!(!generate.contains("duration"), "{generate}");
}

#[tokio::test]
async fn the_rotation_rollback_keeps_the_stored_key_and_deletes_the_other() {
    let (stub, m) = stubbed(vec![route("POST /key/delete", 200, NOTHING_DELETED)]).await;
    let stored = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"sk-master"));
    let home = m.home().await;
    let engine = Engine::new();
    for (old, new, deleted) in [
        // crashed before the successor was stored
        (stored.as_str(), "successor", "successor"),
        // crashed after it was stored
        ("predecessor", stored.as_str(), "predecessor"),
    ] {
        let entry = wal_entry(
            rotation::KIND,
            &home,
            [
                ("old_token", json!(old)),
                ("new_token", json!(new)),
                ("successor_alias", json!("a-rot-1")),
            ],
        );
        let before = stub.count("POST /key/delete");
        rotation::roll_back(&engine, m.storage.as_ref(), &entry)
            .await
            .unwrap();
        let delete = last_delete(&stub);
        assert_eq!(stub.count("POST /key/delete"), before + 1);
        assert!(delete.contains(&format!(r#"["{deleted}"]"#)), "{delete}");
    }
    assert_eq!(stored_admin_key(&m).await, "sk-master");
}

/// Writes a rotation policy (unverified: the stub has no `/key/list`) and
/// makes it due `overdue_secs` ago.
async fn due_rotation(m: &Mount, policy: Value, overdue_secs: u64) {
    let mut body = policy;
    body["verify_connection"] = json!(false);
    write_config(m, body).await.unwrap();
    let mut c = config::load(m.storage.as_ref()).await.unwrap().unwrap();
    c.rotation.next_rotation = Some(clock::unix_now() - overdue_secs);
    crate::framework::storage::put_json(m.storage.as_ref(), config::STORAGE_KEY, &c)
        .await
        .unwrap();
}

/// One periodic tick (the server's rollback call).
async fn tick(m: &Mount) {
    m.call(Operation::Rollback, "", json!(null)).await.unwrap();
}

#[tokio::test]
async fn a_due_rotation_runs_on_the_tick_and_a_failed_one_stays_due() {
    let (_stub, m) = stubbed(rotating_routes()).await;
    due_rotation(&m, json!({"rotation_period": "2h"}), 5).await;
    tick(&m).await;
    let c = config::load(m.storage.as_ref()).await.unwrap().unwrap();
    assert_ne!(c.master_key, "sk-master");
    assert!(c.rotation.last_rotated.is_some());
    assert!(c.rotation.next_rotation.unwrap() > clock::unix_now() + 7000);
    assert_eq!(m.wal_entries(), 0);

    let (_stub, m) = stubbed(refused_successor_routes()).await;
    due_rotation(&m, json!({"rotation_period": "2h"}), 5).await;
    tick(&m).await;
    let c = config::load(m.storage.as_ref()).await.unwrap().unwrap();
    assert_eq!(c.master_key, "sk-master", "the old key stays");
    assert!(c.rotation.last_rotated.is_none());
    assert!(
        c.rotation.next_rotation.unwrap() <= clock::unix_now(),
        "still due: the next tick retries"
    );
}

#[tokio::test]
async fn a_missed_window_waits_for_the_next_scheduled_time() {
    let (stub, m) = stubbed(vec![]).await;
    due_rotation(
        &m,
        json!({"rotation_schedule": "0 3 * * *", "rotation_window": "1h"}),
        7200,
    )
    .await;
    tick(&m).await;
    assert!(stub.requests().is_empty(), "nothing rotated");
    let c = config::load(m.storage.as_ref()).await.unwrap().unwrap();
    assert!(c.rotation.next_rotation.unwrap() > clock::unix_now());
    assert_eq!(c.master_key, "sk-master");
}

#[tokio::test]
async fn retired_settings_holding_the_same_key_follow_a_rotation() {
    let (_stub, m) = stubbed(rotating_routes()).await;
    let current = config::load(m.storage.as_ref()).await.unwrap().unwrap();
    let same_key = config::Config {
        proxy_id: "older-url".into(),
        ..current.clone()
    };
    let other_key = config::Config {
        proxy_id: "elsewhere".into(),
        master_key: "sk-other".into(),
        ..current
    };
    proxy::retire(m.storage.as_ref(), &same_key).await.unwrap();
    proxy::retire(m.storage.as_ref(), &other_key).await.unwrap();
    m.ok(Operation::Update, "rotate-root", json!({})).await;
    let new_key = stored_admin_key(&m).await;
    for (id, want) in [("older-url", new_key.as_str()), ("elsewhere", "sk-other")] {
        let r = proxy::load_retired(m.storage.as_ref(), id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.master_key, want, "{id}");
    }
}

/// A mount against a stub that generates and deletes, with static role
/// `name` written from `body`.
async fn with_static_role(name: &str, body: Value) -> (Stub, Mount) {
    let (stub, m) = stubbed(vec![
        route("POST /key/generate", 200, GENERATED),
        route("POST /key/delete", 200, NOTHING_DELETED),
    ])
    .await;
    m.call(Operation::Update, &format!("static-roles/{name}"), body)
        .await
        .unwrap();
    (stub, m)
}

/// The stored key of static role `name`.
async fn static_key(m: &Mount, name: &str) -> static_roles::StaticKey {
    crate::framework::storage::get_json(m.storage.as_ref(), &format!("static-keys/{name}"))
        .await
        .unwrap()
        .unwrap()
}

/// The WAL entry of a static role's rotation from `old` to `new`.
fn static_rotation_entry(
    home: &proxy::Home,
    role: &str,
    old: Option<&str>,
    new: &str,
) -> wal::WalEntry {
    wal_entry(
        static_roles::KIND,
        home,
        [
            ("role", json!(role)),
            ("old_token", json!(old)),
            ("new_token", json!(new)),
        ],
    )
}

/// A WAL entry of `kind` holding `fields` and the proxy of `home`, as a
/// rotation writes it before it calls LiteLLM.
fn wal_entry<const N: usize>(
    kind: &str,
    home: &proxy::Home,
    fields: [(&str, Value); N],
) -> wal::WalEntry {
    let mut data = serde_json::Map::new();
    for (name, value) in fields {
        data.insert(name.into(), value);
    }
    home.record(&mut data);
    wal::WalEntry {
        kind: kind.into(),
        data: Value::Object(data),
        created_at: 0,
        hold_until: None,
        give_up_after: None,
    }
}

#[tokio::test]
async fn the_static_rollback_keeps_the_stored_key_and_deletes_the_other() {
    let (stub, m) = with_static_role("s", json!({"models": ["m"]})).await;
    let home = m.home().await;
    let engine = Engine::new();
    let key = static_key(&m, "s").await;
    let stored = crate::litellm::key_token(&key.key);
    for (old, new, deleted) in [
        (Some(stored.as_str()), "successor", "successor"),
        (Some("predecessor"), stored.as_str(), "predecessor"),
    ] {
        let entry = static_rotation_entry(&home, "s", old, new);
        static_roles::roll_back(&engine, m.storage.as_ref(), &entry)
            .await
            .unwrap();
        let delete = last_delete(&stub);
        assert!(delete.contains(&format!(r#"["{deleted}"]"#)), "{delete}");
    }
}

#[tokio::test]
async fn a_rotation_superseded_before_its_rollback_leaves_neither_key() {
    let (stub, m) = stubbed(vec![route("POST /key/delete", 200, NOTHING_DELETED)]).await;
    let home = m.home().await;
    let entry = wal_entry(
        rotation::KIND,
        &home,
        [
            ("old_token", json!("first")),
            ("new_token", json!("second")),
        ],
    );
    rotation::roll_back(&Engine::new(), m.storage.as_ref(), &entry)
        .await
        .unwrap();
    let requests = stub.requests();
    assert!(
        requests[0].contains(r#"["first","second"]"#),
        "{requests:?}"
    );
}

#[tokio::test]
async fn the_static_rollback_keeps_the_previous_generation_in_its_grace() {
    let (stub, m) = with_static_role("g", json!({"models": ["m"], "grace_period": "10m"})).await;
    let rotated = m.ok(Operation::Update, "rotate-role/g", json!({})).await;
    assert_eq!(rotated.data["generation"], 2, "{:?}", rotated.data);
    assert!(rotated.data["key_alias"]
        .as_str()
        .unwrap()
        .contains("-g-2-"));
    let key = static_key(&m, "g").await;
    let previous = key.previous.clone().expect("a previous generation");
    assert!(previous.key_alias.contains("-g-1-"));
    let current = crate::litellm::key_token(&key.key);
    let deletes = || {
        stub.requests()
            .into_iter()
            .filter(|r| r.starts_with("POST /key/delete"))
            .collect::<Vec<_>>()
    };
    assert!(deletes().is_empty(), "the grace keeps generation 1");
    let home = m.home().await;
    for (old, new, deleted) in [
        (previous.token.as_str(), current.as_str(), None),
        (previous.token.as_str(), "unstored", Some("unstored")),
    ] {
        let entry = static_rotation_entry(&home, "g", Some(old), new);
        let before = deletes().len();
        static_roles::roll_back(&Engine::new(), m.storage.as_ref(), &entry)
            .await
            .unwrap();
        let after = deletes();
        match deleted {
            None => assert_eq!(after.len(), before, "{after:?}"),
            Some(token) => {
                assert_eq!(after.len(), before + 1, "{after:?}");
                assert!(after[before].contains(&format!(r#"["{token}"]"#)));
            }
        }
    }
    // A second rotation inside the grace: generation 1 goes first.
    m.ok(Operation::Update, "rotate-role/g", json!({})).await;
    let last = deletes().pop().unwrap();
    assert!(last.contains(&previous.token), "{last}");
}

#[tokio::test]
async fn a_refused_static_role_write_stores_no_role() {
    let (_stub, m) = stubbed(vec![route(
        "POST /key/generate",
        403,
        r#"{"error":{"message":"tags are an enterprise feature"}}"#,
    )])
    .await;
    let err = refused_static_role(&m).await;
    assert_eq!(err.status(), 400, "{err}");
    let listed = m.ok(Operation::List, "static-roles/", json!(null)).await;
    assert_eq!(listed.data["keys"], json!([]), "{:?}", listed.data);
}

#[tokio::test]
async fn static_aliases_differ_between_mounts() {
    let (_a, first) = with_static_role("s", json!({"models": ["m"]})).await;
    let (_b, second) = with_static_role("s", json!({"models": ["m"]})).await;
    let (a, b) = (
        static_key(&first, "s").await.key_alias,
        static_key(&second, "s").await.key_alias,
    );
    assert!(a.starts_with("vault-static-s-1-"), "{a}");
    assert_ne!(a, b);
}

/// Renews a lease issued with `creds` narrowed to `requested` seconds, asking
/// for `increment` seconds; the TTL granted.
async fn renew_narrowed(m: &Mount, requested: u64, increment: u64) -> Duration {
    let mut secret = lease("abc", &m.home().await);
    secret
        .internal
        .insert(key_secret::REQUESTED_TTL.into(), json!(requested));
    secret.increment = Duration::from_secs(increment);
    let mut req = m.request(Operation::Renew, "creds/dev", json!({}));
    req.secret = Some(secret);
    m.backend
        .handle(req)
        .await
        .unwrap()
        .unwrap()
        .secret
        .unwrap()
        .ttl
}

#[tokio::test]
async fn a_narrowed_ttl_stays_the_ceiling_of_every_renewal() {
    let (_stub, m) = extending().await;
    // Role TTL 1h, narrowed to 2m: an increment of 1h gets 2m, a smaller one
    // what it asks.
    assert_eq!(
        renew_narrowed(&m, 120, 3600).await,
        Duration::from_secs(120)
    );
    assert_eq!(renew_narrowed(&m, 120, 60).await, Duration::from_secs(60));
    assert_eq!(renew_narrowed(&m, 120, 0).await, Duration::from_secs(120));
    // The role tightened below the narrowed TTL: the role wins.
    m.call(Operation::Update, "roles/dev", json!({"ttl": "1m"}))
        .await
        .unwrap();
    assert_eq!(renew_narrowed(&m, 120, 0).await, Duration::from_secs(60));
}

#[tokio::test]
async fn renewing_a_key_deleted_in_litellm_says_so() {
    let (_stub, m) = stubbed(vec![key_gone_on_update()]).await;
    let home = m.home().await;
    inventory::put(m.storage.as_ref(), &record_ending("vault-dev-x", &home, 2))
        .await
        .unwrap();
    let mut req = m.request(Operation::Renew, "creds/dev", json!({}));
    req.secret = Some(lease("abc", &home));
    let err = m.backend.handle(req).await.unwrap_err();
    assert_eq!(err.status(), 400, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("no longer exists in LiteLLM") && !text.contains("base_url"),
        "{text}"
    );
    // The record moved before LiteLLM was asked: a failed extension leaves
    // it ahead of the lease, never behind the key's life in LiteLLM.
    let r = record(&m, "vault-dev-x").await.unwrap();
    assert!(r.lease_expires > clock::unix_now(), "{r:?}");
}

/// Moves the stored static key of `name` so it expires `in_secs` from now.
async fn expire_static_key_in(m: &Mount, name: &str, in_secs: u64) {
    let mut key = static_key(m, name).await;
    key.expires_at = Some(super::clock::unix_now() + in_secs);
    store_static_key(m, name, &key).await;
}

async fn store_static_key(m: &Mount, name: &str, key: &static_roles::StaticKey) {
    crate::framework::storage::put_json(m.storage.as_ref(), &format!("static-keys/{name}"), key)
        .await
        .unwrap();
}

/// A mount against a stub that mints and extends keys, with static role
/// `s` written from `body`.
async fn static_role_s(body: Value) -> (Stub, Mount) {
    let routes = vec![route("POST /key/generate", 200, GENERATED), extends()];
    static_role_s_on(routes, body).await
}

/// [`static_role_s`] against a stub with `routes`.
async fn static_role_s_on(routes: Vec<Route>, body: Value) -> (Stub, Mount) {
    let (stub, m) = stubbed(routes).await;
    m.call(Operation::Update, "static-roles/s", body)
        .await
        .unwrap();
    (stub, m)
}

#[tokio::test]
async fn static_keys_expire_unless_the_tick_moves_them_forward() {
    let (stub, m) =
        static_role_s(json!({"models": ["m"], "rotation_period": "2h", "grace_period": "1h"}))
            .await;
    // Minted with two periods, the grace and 5 minutes to live.
    let minted = stub.requests().concat();
    assert!(minted.contains(r#""duration":"18300s""#), "{minted}");
    let now = super::clock::unix_now();
    let key = static_key(&m, "s").await;
    assert!(key.expires_at.unwrap().abs_diff(now + 18300) < 5);
    let updates = || {
        stub.requests()
            .into_iter()
            .filter(|r| r.starts_with("POST /key/update"))
            .count()
    };
    tick(&m).await;
    assert_eq!(updates(), 0, "more than half its life left");
    expire_static_key_in(&m, "s", 3600).await;
    tick(&m).await;
    assert_eq!(updates(), 1, "less than half left: pushed forward");
    let moved = static_key(&m, "s").await;
    assert!(moved.expires_at.unwrap() >= now + 18300);
    assert_eq!(moved.generation, 1, "no rotation");
}

#[tokio::test]
async fn a_static_key_deleted_in_litellm_is_replaced_on_the_tick() {
    let routes = vec![
        route("POST /key/generate", 200, GENERATED),
        key_gone_on_update(),
        route("POST /key/delete", 404, NO_KEYS),
    ];
    let (_stub, m) = static_role_s_on(routes, json!({"models": ["m"]})).await;
    expire_static_key_in(&m, "s", 60).await;
    tick(&m).await;
    assert_eq!(static_key(&m, "s").await.generation, 2);
}

#[tokio::test]
async fn a_static_key_deleted_in_litellm_is_replaced_when_read() {
    let not_found = r#"{"error":{"message":"Key not found in database","type":"not_found_error","param":"key","code":"404"}}"#;
    for (status, info, replaced) in [
        (404, not_found, true),
        (200, r#"{"key":"x","info":{"status":"deleted"}}"#, true),
        (200, r#"{"key":"x","info":{"status":"active"}}"#, false),
        // A key the admin key may not see is not taken for gone.
        (
            403,
            r#"{"error":{"message":"You are not allowed to access this key's info"}}"#,
            false,
        ),
        // No word from LiteLLM: the stored key, as before.
        (500, r#"{"error":"down"}"#, false),
    ] {
        let routes = vec![
            route("POST /key/generate", 200, GENERATED),
            route("GET /key/info?key=", status, info),
            route("POST /key/delete", 404, NO_KEYS),
        ];
        let (stub, m) = static_role_s_on(routes, json!({"models": ["m"]})).await;
        let read = m.ok(Operation::Read, "static-creds/s", json!(null)).await;
        let warned = read.warnings.iter().any(|w| w.contains("was gone"));
        assert_eq!(warned, replaced, "{info}: {:?}", read.warnings);
        let generation = static_key(&m, "s").await.generation;
        assert_eq!(generation, if replaced { 2 } else { 1 }, "{info}");
        assert_eq!(read.data["generation"], generation, "{info}");
        assert_eq!(stub.count("POST /key/generate"), generation as usize);
    }
}

#[tokio::test]
async fn a_failing_rotation_still_keeps_the_current_static_key_alive() {
    let (first, m) = static_role_s(json!({"models": ["m"]})).await;
    // Keys are now minted on a proxy that refuses them; the current key
    // stays on the first one.
    let refusing = Stub::start(vec![route(
        "POST /key/generate",
        403,
        r#"{"error":{"message":"no"}}"#,
    )])
    .await;
    write_config(&m, json!({"base_url": refusing.url.as_str()}))
        .await
        .unwrap();
    let mut key = static_key(&m, "s").await;
    key.last_rotated = 0;
    key.expires_at = Some(super::clock::unix_now() + 60);
    store_static_key(&m, "s", &key).await;
    tick(&m).await;
    let key = static_key(&m, "s").await;
    assert_eq!(key.generation, 1, "the rotation failed");
    assert!(
        first
            .requests()
            .iter()
            .any(|r| r.starts_with("POST /key/update")),
        "the current key's expiry was not moved: {:?}",
        first.requests()
    );
    assert!(key.expires_at.unwrap() > super::clock::unix_now() + 3600);
}

/// Static role `s` (2h period, 1h grace) on a proxy that mints and
/// extends keys but fails every delete.
async fn static_role_on_a_failing_delete() -> (Stub, Mount) {
    let (stub, m) = stubbed(vec![
        route("POST /key/generate", 200, GENERATED),
        extends(),
        route("POST /key/delete", 500, r#"{"error":"down"}"#),
    ])
    .await;
    m.call(
        Operation::Update,
        "static-roles/s",
        json!({"models": ["m"], "rotation_period": "2h", "grace_period": "1h"}),
    )
    .await
    .unwrap();
    (stub, m)
}

#[tokio::test]
async fn a_failing_static_tick_keeps_the_key_alive_and_shows_until_a_good_one() {
    let (_stub, m) = static_role_on_a_failing_delete().await;
    // A previous generation whose grace is over, on a proxy that fails.
    let mut key = static_key(&m, "s").await;
    key.previous = Some(static_roles::PreviousKey {
        token: "old-token".into(),
        key_alias: "vault-static-s-0-old".into(),
        home: key.home.clone(),
        delete_after: 1,
        expires_at: None,
    });
    // And the current key near its expiry: it must be kept alive anyway.
    key.expires_at = Some(super::clock::unix_now() + 60);
    store_static_key(&m, "s", &key).await;
    tick(&m).await;
    let kept = static_key(&m, "s").await.expires_at.unwrap();
    assert!(kept > super::clock::unix_now() + 3600, "not moved: {kept}");
    let role = m.ok(Operation::Read, "static-roles/s", json!({})).await;
    assert!(
        role.data["rotation_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{:?}",
        role.data
    );
    assert!(role.data["rotation_failing_since"].is_string());
    assert!(
        role.warnings.iter().any(|w| w.contains("has failed since")),
        "{:?}",
        role.warnings
    );
    let creds = m.ok(Operation::Read, "static-creds/s", json!({})).await;
    assert!(creds
        .warnings
        .iter()
        .any(|w| w.contains("has failed since")));
    // The key itself stays: the previous one is still recorded for a retry.
    assert_eq!(static_key(&m, "s").await.generation, 1);
    assert!(static_key(&m, "s").await.previous.is_some());

    // The previous key is gone for good (by hand, say): the next tick is good.
    let mut key = static_key(&m, "s").await;
    key.previous = None;
    store_static_key(&m, "s", &key).await;
    tick(&m).await;
    let role = m.ok(Operation::Read, "static-roles/s", json!({})).await;
    assert!(role.data.get("rotation_error").is_none(), "{:?}", role.data);
    assert!(role.warnings.is_empty(), "{:?}", role.warnings);
}

#[tokio::test]
async fn a_static_key_litellm_cannot_delete_is_let_go_an_hour_after_it_expired() {
    let (_stub, m) = static_role_on_a_failing_delete().await;
    // A rotation records when the previous generation expires at the
    // latest: no earlier than the end of its grace.
    m.ok(Operation::Update, "rotate-role/s", json!({})).await;
    let now = super::clock::unix_now();
    let key = static_key(&m, "s").await;
    let previous = key.previous.clone().unwrap();
    assert!(
        previous.expires_at.unwrap() >= now + 3600,
        "{:?}",
        previous.expires_at
    );

    // Its grace is over and its proxy fails (retired, say); it expired in
    // LiteLLM ten minutes ago, so by LiteLLM's clock it may still work:
    // the tick keeps trying and the role cannot be deleted.
    let with_previous_expired = |ago: u64| {
        let mut key = key.clone();
        let mut p = previous.clone();
        p.delete_after = 1;
        p.expires_at = Some(now - ago);
        key.previous = Some(p);
        key
    };
    store_static_key(&m, "s", &with_previous_expired(600)).await;
    tick(&m).await;
    assert!(static_key(&m, "s").await.previous.is_some());
    let err = m
        .call(Operation::Delete, "static-roles/s", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 502, "{err}");

    // Over an hour past its expiry it no longer works anywhere: let go.
    store_static_key(&m, "s", &with_previous_expired(3700)).await;
    tick(&m).await;
    assert!(static_key(&m, "s").await.previous.is_none());
    let role = m.ok(Operation::Read, "static-roles/s", json!({})).await;
    assert!(role.data.get("rotation_error").is_none(), "{:?}", role.data);

    // The current key is alive: the role's delete is refused while
    // LiteLLM cannot delete it, and goes through once it has long expired.
    let err = m
        .call(Operation::Delete, "static-roles/s", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 502, "{err}");
    let mut key = static_key(&m, "s").await;
    key.expires_at = Some(now - 3700);
    key.expires_at_latest = None;
    store_static_key(&m, "s", &key).await;
    m.call(Operation::Delete, "static-roles/s", json!({}))
        .await
        .unwrap();
    let read = m.call(Operation::Read, "static-roles/s", json!(null)).await;
    assert!(read.unwrap().is_none());
}

#[tokio::test]
async fn a_static_key_whose_extension_may_have_happened_is_not_let_go_early() {
    let (_stub, m) = stubbed(vec![
        route("POST /key/generate", 200, GENERATED),
        route("POST /key/update", 500, r#"{"error":"timeout upstream"}"#),
        route("POST /key/delete", 500, r#"{"error":"down"}"#),
    ])
    .await;
    m.call(
        Operation::Update,
        "static-roles/s",
        json!({"models": ["m"], "rotation_period": "2h"}),
    )
    .await
    .unwrap();
    // Near its expiry: the tick asks LiteLLM to move it, and LiteLLM fails
    // in a way that may still have moved it.
    let now = super::clock::unix_now();
    expire_static_key_in(&m, "s", 60).await;
    tick(&m).await;
    let key = static_key(&m, "s").await;
    assert!(
        key.expires_at.unwrap() <= now + 61,
        "not moved: the extension failed"
    );
    assert!(
        key.expires_at_latest.unwrap() >= now + 3600,
        "{:?}",
        key.expires_at_latest
    );
    // Recorded as expired long ago, but possibly extended since: its delete
    // is refused while LiteLLM cannot delete it.
    let mut key = key;
    key.expires_at = Some(now - 3700);
    store_static_key(&m, "s", &key).await;
    let err = m
        .call(Operation::Delete, "static-roles/s", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 502, "{err}");
}

#[tokio::test]
async fn a_key_litellm_did_not_scope_is_deleted_not_handed_out() {
    let (stub, m) = stubbed(vec![
        route("POST /key/generate", 200, GENERATED_UNSCOPED),
        route("POST /key/delete", 200, DELETED_DEV_X),
    ])
    .await;
    let err = m
        .call(Operation::Read, "creds/dev", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 502, "{err}");
    assert!(err.to_string().contains("key_type"), "{err}");
    assert!(!err.to_string().contains("sk-generated"), "{err}");
    assert_eq!(stub.count("POST /key/delete"), 1);
    assert_eq!(m.wal_entries(), 0);
    assert!(inventory::aliases(m.storage.as_ref())
        .await
        .unwrap()
        .is_empty());

    // A role that means its user's powers asks for no limit: nothing to check.
    m.call(
        Operation::Update,
        "roles/dev",
        json!({"key_type": "default"}),
    )
    .await
    .unwrap();
    let issued = m.ok(Operation::Read, "creds/dev", json!({})).await;
    assert!(issued.secret.is_some());

    // A static role's key is held to the same.
    let err = refused_static_role(&m).await;
    assert_eq!(err.status(), 502, "{err}");
    assert_eq!(stub.count("POST /key/delete"), 2);
    assert_eq!(m.wal_entries(), 0);
}

/// Writes static role `s` (models `m`), which must be refused, and checks
/// that nothing of it stays.
async fn refused_static_role(m: &Mount) -> crate::framework::Error {
    let err = m
        .call(
            Operation::Update,
            "static-roles/s",
            json!({"models": ["m"]}),
        )
        .await
        .unwrap_err();
    let read = m.call(Operation::Read, "static-roles/s", json!(null)).await;
    assert!(read.unwrap().is_none(), "a refused static role was stored");
    err
}

#[tokio::test]
async fn a_role_naming_a_team_litellm_does_not_have_carries_a_warning() {
    let (_stub, m) = stubbed(vec![
        route(
            "GET /team/info?team_id=ghost",
            404,
            r#"{"error":{"message":"{'message': 'Team not found, passed team id: ghost.'}","code":"404"}}"#,
        ),
        route("GET /team/info?team_id=ml", 200, r#"{"team_id":"ml"}"#),
        route("POST /key/generate", 200, GENERATED),
    ])
    .await;
    let warnings = |path: &'static str, body: Value| {
        let m = &m;
        async move {
            let resp = m.call(Operation::Update, path, body).await.unwrap();
            resp.map(|r| r.warnings).unwrap_or_default()
        }
    };
    let no_team = |w: &Vec<String>| w.iter().any(|w| w.contains("has no such team"));
    let w = warnings("roles/dev", json!({"team_id": "ghost"})).await;
    assert!(no_team(&w), "{w:?}");
    let w = warnings("roles/dev", json!({"team_id": "ml"})).await;
    assert!(!no_team(&w), "{w:?}");
    let w = warnings(
        "static-roles/s",
        json!({"models": ["m"], "team_id": "ghost"}),
    )
    .await;
    assert!(no_team(&w), "{w:?}");
}

#[tokio::test]
async fn a_role_with_enterprise_fields_on_a_proxy_without_a_licence_carries_a_warning() {
    let community = r#"{"has_license":false,"license_type":"community"}"#;
    let enterprise = r#"{"has_license":true,"license_type":"enterprise"}"#;
    let no_licence = |w: &[String]| w.iter().any(|w| w.contains("no licence"));
    // (the licence answer, the role, whether LiteLLM is asked, whether it warns)
    for (answer, body, asks, warns) in [
        (Some(community), json!({"tags": "a,b"}), true, true),
        (Some(community), json!({"guardrails": "pii"}), true, true),
        (
            Some(community),
            json!({"key_request": {"policies": ["p"]}}),
            true,
            true,
        ),
        // Values LiteLLM takes as unset need no licence.
        (
            Some(community),
            json!({"key_request": {"disable_global_guardrails": false}}),
            false,
            false,
        ),
        (Some(community), json!({"tags": ""}), false, false),
        (Some(enterprise), json!({"tags": "a"}), true, false),
        // A proxy older than /health/license: no word, no warning.
        (None, json!({"tags": "a"}), true, false),
    ] {
        let routes = answer
            .map(|a| vec![route("GET /health/license", 200, a)])
            .unwrap_or_default();
        let (stub, m) = stubbed(routes).await;
        let resp = m
            .call(Operation::Update, "roles/dev", body.clone())
            .await
            .unwrap();
        let warnings = resp.map(|r| r.warnings).unwrap_or_default();
        assert_eq!(no_licence(&warnings), warns, "{body}: {warnings:?}");
        assert_eq!(stub.count("GET /health/license") > 0, asks, "{body}");
    }
}
