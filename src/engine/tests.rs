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

const GENERATED: &str = r#"{"key":"sk-generated-secret","token":"abc123hash","key_alias":"x","expires":"2030-01-01T00:00:00Z"}"#;
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

#[tokio::test]
async fn creds_issue_a_lease_and_clean_the_wal() {
    let (stub, m) = mount_against(
        vec![route("POST /key/generate", 200, GENERATED)],
        StaticSystemView::default(),
    )
    .await;
    let resp = m.ok(Operation::Read, "creds/dev", json!(null)).await;
    assert_eq!(resp.data["key"], "sk-generated-secret");
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

#[tokio::test]
async fn creds_on_a_standby_are_forwarded_before_any_side_effect() {
    let stub = Stub::start(vec![route("POST /key/generate", 200, GENERATED)]).await;
    let standby = StaticSystemView {
        replication_state: PERFORMANCE_STANDBY,
        ..StaticSystemView::default()
    };
    let m = Mount::new(standby).configured(&stub.url).await;
    let err = m.creds().await.unwrap_err();
    assert!(
        err.to_string().contains("cannot write to readonly storage"),
        "{err}"
    );
    assert_eq!(stub.count("POST /key/generate"), 0);
    assert_eq!(m.wal_entries(), 0);
}

#[tokio::test]
async fn creds_with_read_only_storage_call_nothing() {
    let stub = Stub::start(vec![route("POST /key/generate", 200, GENERATED)]).await;
    // Seed config and role, then freeze storage the way a standby's is.
    let writable = Mount::new(StaticSystemView::default())
        .configured(&stub.url)
        .await;
    let frozen = MemoryStorage::read_only();
    for key in writable.storage.keys() {
        frozen.seed(&key, writable.storage.get(&key).await.unwrap().unwrap());
    }
    let m = Mount::with_storage(StaticSystemView::default(), frozen, &HashMap::new());
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
async fn a_refused_generate_leaves_nothing_behind() {
    let stub = Stub::start(vec![
        route(
            "POST /key/generate",
            400,
            r#"{"error":{"message":"Key with alias exists","code":"400"}}"#,
        ),
        route("POST /key/delete", 404, NO_KEYS),
    ])
    .await;
    let m = Mount::new(StaticSystemView::default())
        .configured(&stub.url)
        .await;
    let err = m.creds().await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("Key with alias exists"), "{err}");
    assert_eq!(m.wal_entries(), 0);
}

#[tokio::test]
async fn a_timed_out_generate_keeps_the_wal_until_rollback() {
    let (_stub, m) = mount_against(
        vec![
            Route {
                route: "POST /key/generate",
                status: 200,
                body: GENERATED,
                delay: Duration::from_secs(4),
            },
            route("POST /key/delete", 503, "down"),
        ],
        StaticSystemView::default(),
    )
    .await;
    let err = m.creds().await.unwrap_err();
    assert_eq!(err.status(), 504, "{err}");
    assert_eq!(
        m.wal_entries(),
        1,
        "the key may exist: the WAL must survive"
    );
    // LiteLLM still failing: the rollback keeps the entry.
    m.call(Operation::Rollback, "", json!(null)).await.unwrap();
    assert_eq!(m.wal_entries(), 1);
}

#[tokio::test]
async fn rollback_deletes_by_alias_and_clears_the_wal() {
    let stub = Stub::start(vec![route(
        "POST /key/delete",
        200,
        r#"{"deleted_keys":["vault-dev-x"]}"#,
    )])
    .await;
    let m = Mount::new(StaticSystemView::default())
        .configured(&stub.url)
        .await;
    wal::put(
        m.storage.as_ref(),
        rollback::KIND,
        json!({"key_alias": "vault-dev-x"}),
        wal::Schedule::default(),
    )
    .await
    .unwrap();
    m.call(Operation::Rollback, "", json!(null)).await.unwrap();
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

#[tokio::test]
async fn revoke_of_a_gone_key_succeeds_and_failures_are_retried() {
    let (_stub, m) = mount_against(
        vec![route("POST /key/delete", 404, NO_KEYS)],
        StaticSystemView::default(),
    )
    .await;
    let mut req = m.request(Operation::Revoke, "creds/dev", json!(null));
    req.secret = Some(lease("abc", &m.home().await));
    assert!(m.backend.handle(req).await.unwrap().is_none());

    let (_down, m) = mount_against(
        vec![route("POST /key/delete", 500, "boom")],
        StaticSystemView::default(),
    )
    .await;
    let mut req = m.request(Operation::Revoke, "creds/dev", json!(null));
    req.secret = Some(lease("abc", &m.home().await));
    let err = m.backend.handle(req).await.unwrap_err();
    assert_eq!(err.status(), 502, "an error makes the server retry: {err}");
}

#[tokio::test]
async fn renew_extends_by_the_granted_ttl_and_drops_the_key_from_data() {
    let stub = Stub::start(vec![route(
        "POST /key/update",
        200,
        r#"{"expires":"2030-01-01T00:00:00Z"}"#,
    )])
    .await;
    let m = Mount::new(StaticSystemView::default())
        .configured(&stub.url)
        .await;
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
    assert!(resp.data.get("key").is_none());
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
    assert!(err.to_string().contains("rejected the master key"), "{err}");
    assert!(m.storage.keys().is_empty(), "nothing stored");
    let err = m
        .call(
            Operation::Create,
            "config",
            json!({"base_url": stub.url.as_str()}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("master_key"), "{err}");
}

#[tokio::test]
async fn config_read_never_shows_the_master_key() {
    let (_stub, m) = mount_against(vec![], StaticSystemView::default()).await;
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
        let mapped = upstream(e);
        assert_eq!(mapped.status(), status, "{text}");
        assert!(mapped.to_string().contains(&text));
    }
}

#[test]
fn bad_mount_options_fail_the_mount() {
    let mut options = HashMap::new();
    options.insert(ROLLBACK_MIN_AGE_OPTION.to_string(), "soon".to_string());
    let Err(e) = factory(&options) else {
        panic!("a bad option must fail the mount")
    };
    assert!(e.contains(ROLLBACK_MIN_AGE_OPTION), "{e}");
}
