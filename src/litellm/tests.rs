//! Error paths against a local stub server. The real behaviour is proven
//! against a real LiteLLM proxy in `tests/`.

use std::time::Duration;

use tokio::net::TcpListener;

use super::stub::{route, route_once, Stub};
use super::*;

/// One route answering `status`/`body` after `delay`.
async fn stub(status: u16, body: &'static str, delay: Duration) -> Stub {
    Stub::start(vec![route("", status, body).delayed(delay)]).await
}

fn client(url: Url, timeout: Duration) -> Client {
    Client::new(&Settings {
        base_url: url,
        master_key: "sk-super-secret-master".into(),
        ca_cert: None,
        tls_skip_verify: false,
        timeout,
    })
    .unwrap()
}

#[tokio::test]
async fn generate_sends_bearer_and_parses_the_answer() {
    let stub = stub(200, r#"{"key":"sk-abc","token":"deadbeef","key_alias":"a","expires":"2030-01-01T00:00:00Z","spend":0}"#, Duration::ZERO).await;
    let c = client(stub.url.clone(), Duration::from_secs(5));
    let k = c
        .generate_key(&GenerateKeyRequest {
            key_alias: "a".into(),
            duration: Some("60s".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(k.key, "sk-abc");
    assert_eq!(k.token, "deadbeef");
    let raw = stub.requests().concat();
    assert!(raw.starts_with("POST /key/generate"), "{raw}");
    assert!(raw
        .to_ascii_lowercase()
        .contains("authorization: bearer sk-super-secret-master"));
    assert!(raw.contains(r#""duration":"60s""#));
    assert!(
        !raw.contains("max_budget"),
        "unset limits are left out: {raw}"
    );
    assert!(
        !format!("{k:?}").contains("sk-abc"),
        "Debug must not print the key"
    );
    assert!(
        !format!("{c:?}").contains("sk-super"),
        "Debug must not print the master key"
    );
}

#[tokio::test]
async fn second_delete_is_already_gone() {
    let stub = stub(404, r#"{"error":{"message":"{'error': 'No keys found'}","type":"internal_server_error","code":"404"}}"#, Duration::ZERO).await;
    let c = client(stub.url.clone(), Duration::from_secs(5));
    assert_eq!(
        c.delete_keys(&["t".into()]).await.unwrap(),
        Deleted::AlreadyGone
    );
}

#[tokio::test]
async fn rejected_master_key() {
    // LiteLLM echoes the hash of the rejected key: sha256("sk-super-secret-master").
    let stub = stub(401, r#"{"error":{"message":"Authentication Error, Invalid proxy server token passed. sk-super-secret-master Key Hash (Token) =7a5b595a142361d352cd659181739bd7d660d8ca128ecb3b521feec76fe698db","code":"401"}}"#, Duration::ZERO).await;
    let err = client(stub.url.clone(), Duration::from_secs(5))
        .check_admin()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("sk-super-secret-master"), "{err}");
    assert!(!err.to_string().contains("7a5b595a142361d352cd"), "{err}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn validation_errors_keep_litellm_text() {
    let stub = stub(
        400,
        r#"{"error":{"message":"Key with alias 'x' already exists.","code":"400"}}"#,
        Duration::ZERO,
    )
    .await;
    let err = client(stub.url.clone(), Duration::from_secs(5))
        .generate_key(&GenerateKeyRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "LiteLLM refused the request (HTTP 400): Key with alias 'x' already exists."
    );
}

#[tokio::test]
async fn fastapi_detail_errors() {
    let stub = stub(
        422,
        r#"{"detail":[{"loc":["body","duration"],"msg":"bad"}]}"#,
        Duration::ZERO,
    )
    .await;
    let err = client(stub.url.clone(), Duration::from_secs(5))
        .delete_keys(&[])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("HTTP 422") && err.to_string().contains("duration"),
        "{err}"
    );
}

#[tokio::test]
async fn server_errors_are_transient() {
    let stub = stub(503, "upstream sad", Duration::ZERO).await;
    let err = client(stub.url.clone(), Duration::from_secs(5))
        .check_admin()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Server { status: 503, .. }));
    assert!(err.is_transient());
    assert!(err.to_string().contains("upstream sad"));
}

#[tokio::test]
async fn throttling_is_busy_and_a_gateway_timeout_may_have_acted() {
    let stub429 = stub(429, r#"{"error":{"message":"slow down"}}"#, Duration::ZERO).await;
    let err = client(stub429.url.clone(), Duration::from_secs(5))
        .check_admin()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err}");
    assert!(err.is_transient() && !err.is_ambiguous());
    assert_eq!(crate::framework::Error::from(err).status(), 503);
    let stub408 = stub(408, "request timeout", Duration::ZERO).await;
    let err = client(stub408.url.clone(), Duration::from_secs(5))
        .check_admin()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Server { status: 408, .. }), "{err}");
    assert!(err.is_transient() && err.is_ambiguous());
}

#[tokio::test]
async fn unexpected_answers_are_reported() {
    for body in ["{not json", r#"{"key_alias":"a"}"#] {
        let stub = stub(200, body, Duration::ZERO).await;
        let err = client(stub.url.clone(), Duration::from_secs(5))
            .generate_key(&GenerateKeyRequest::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidResponse(_)), "{body}: {err}");
    }
}

#[test]
fn an_html_page_is_told_by_its_title() {
    let gateway =
        b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>...</body></html>";
    assert_eq!(
        error_message(gateway),
        "an HTML page titled \"502 Bad Gateway\", not an API answer"
    );
    let untitled = b"  <!DOCTYPE html><html><head><meta charSet=\"utf-8\"/></head></html>";
    assert_eq!(error_message(untitled), "an HTML page, not an API answer");
    assert_eq!(error_message(b"<b>not a page</b>"), "<b>not a page</b>");
}

#[tokio::test]
async fn timeouts() {
    let stub = stub(200, "{}", Duration::from_secs(3)).await;
    let err = client(stub.url.clone(), Duration::from_millis(300))
        .check_admin()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn unreachable() {
    // Bind and drop to get a port with nobody listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let err = client(url, Duration::from_secs(2))
        .check_admin()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn bad_ca_cert_is_a_config_error() {
    let err = Client::new(&Settings {
        base_url: Url::parse("https://localhost/").unwrap(),
        master_key: "k".into(),
        ca_cert: Some("not a pem".into()),
        tls_skip_verify: false,
        timeout: Duration::from_secs(1),
    })
    .unwrap_err();
    assert!(err.to_string().contains("ca_cert"), "{err}");
}

#[tokio::test]
async fn list_keys_asks_for_full_objects_oldest_first_and_pages() {
    let stub = Stub::start(vec![super::stub::route(
        "GET /key/list",
        200,
        r#"{"keys":[{"token":"t1","key_alias":"a","spend":null,"metadata":{"vault_mount_id":"m"},"models":null,"created_at":"2026-11-30T17:32:21.180000Z"}],"total_pages":1}"#,
    )])
    .await;
    let c = client(stub.url.clone(), Duration::from_secs(5));
    let listing = c.list_keys(Some("-dev-")).await.unwrap();
    assert_eq!(listing.calls, 1);
    assert_eq!(listing.keys.len(), 1);
    let k = &listing.keys[0];
    assert_eq!(k.spend, 0.0, "null spend is 0");
    assert!(k.models.is_empty());
    assert_eq!(k.meta("vault_mount_id"), Some("m"));
    let sent = stub.requests().concat();
    for part in [
        "size=100",
        "return_full_object=true",
        "sort_by=created_at",
        "sort_order=asc",
        "key_alias=-dev-",
        "substring_matching=true",
    ] {
        assert!(sent.contains(part), "{part}: {sent}");
    }
}

#[tokio::test]
async fn key_info_reads_the_database_and_tells_a_missing_key_from_an_error() {
    // `/v2/key/info` leaves out keys LiteLLM does not have.
    let missing = Stub::start(vec![super::stub::route(
        "POST /v2/key/info",
        200,
        r#"{"key":["t"],"info":[]}"#,
    )])
    .await;
    let c = client(missing.url.clone(), Duration::from_secs(5));
    assert_eq!(c.key_info("t").await.unwrap(), None);
    assert!(missing.requests()[0].contains(r#""keys":["t"]"#));

    let live = Stub::start(vec![super::stub::route(
        "POST /v2/key/info",
        200,
        r#"{"key":["t"],"info":[{"key_alias":"a","spend":0.5,"max_budget":2.0,"blocked":null}]}"#,
    )])
    .await;
    let c = client(live.url.clone(), Duration::from_secs(5));
    let v = c.key_info("t").await.unwrap().unwrap();
    assert_eq!((v.spend, v.max_budget), (0.5, Some(2.0)));
    assert_eq!(v.token.as_deref(), Some("t"));

    // Not LiteLLM's words: an error, never "no such key".
    let foreign = Stub::start(vec![]).await;
    let c = client(foreign.url.clone(), Duration::from_secs(5));
    assert!(c.key_info("t").await.is_err());
}

#[tokio::test]
async fn keys_info_batches_by_100() {
    let stub = Stub::start(vec![super::stub::route(
        "POST /v2/key/info",
        200,
        r#"{"key":[],"info":[{"key_alias":"a","spend":0.1}]}"#,
    )])
    .await;
    let c = client(stub.url.clone(), Duration::from_secs(5));
    let tokens: Vec<String> = (0..150).map(|i| format!("t{i}")).collect();
    let listing = c.keys_info(&tokens).await.unwrap();
    assert_eq!(listing.calls, 2);
    assert_eq!(listing.keys.len(), 2);
}

/// `n` concurrent `delete_key_batched` calls; their outcomes in order.
async fn delete_concurrently(c: &Client, n: usize) -> Vec<Result<Deleted, Error>> {
    let calls = (0..n).map(|i| {
        let c = c.clone();
        async move { c.delete_key_batched(&format!("{i:064x}")).await }
    });
    futures_util::future::join_all(calls).await
}

#[tokio::test]
async fn concurrent_deletes_leave_in_batches() {
    let stub = stub(200, r#"{"deleted_keys":[]}"#, Duration::from_millis(100)).await;
    let c = client(stub.url.clone(), Duration::from_secs(5));
    let outcomes = delete_concurrently(&c, 40).await;
    assert!(outcomes.iter().all(|o| matches!(o, Ok(Deleted::Now))));
    let calls = stub.count("POST /key/delete");
    assert!(calls < 40 / 2, "{calls} calls for 40 deletes");
    // A list of several hashes in one body.
    let batched = stub.requests().iter().any(|r| r.contains("\",\""));
    assert!(batched, "{:?}", stub.requests());
}

#[tokio::test]
async fn a_batch_of_keys_none_of_which_exists_is_already_gone_for_each() {
    let stub = stub(
        404,
        r#"{"error":{"message":"{'error': 'No keys found'}","code":"404"}}"#,
        Duration::from_millis(50),
    )
    .await;
    let c = client(stub.url.clone(), Duration::from_secs(5));
    let outcomes = delete_concurrently(&c, 20).await;
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, Ok(Deleted::AlreadyGone))));
}

#[tokio::test]
async fn a_refused_batch_falls_back_to_one_delete_per_key() {
    // A plain 404 (not LiteLLM's): neither the batch nor any single delete
    // may count as "already gone".
    let stub = stub(404, r#"{"detail":"Not Found"}"#, Duration::from_millis(50)).await;
    let c = client(stub.url.clone(), Duration::from_secs(5));
    let outcomes = delete_concurrently(&c, 20).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Err(Error::NotFound { .. }))),
        "{outcomes:?}"
    );
    // Every key was tried on its own after its batch failed.
    let singles = stub
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST /key/delete") && r.matches("\",\"").count() == 0)
        .count();
    assert!(
        singles >= 20,
        "{singles} single deletes: {:?}",
        stub.requests()
    );
}

#[tokio::test]
async fn a_busy_proxy_fails_each_key_of_its_batch_without_one_by_one_retries() {
    let stub = stub(
        429,
        r#"{"error":{"message":"slow down"}}"#,
        Duration::from_millis(50),
    )
    .await;
    let c = client(stub.url.clone(), Duration::from_secs(5));
    let outcomes = delete_concurrently(&c, 20).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Err(Error::Busy { .. }))),
        "{outcomes:?}"
    );
    // Fewer calls than keys: the batches' failure is each key's answer.
    let calls = stub.count("POST /key/delete");
    assert!(
        calls < 20,
        "{calls} calls for 20 deletes: {:?}",
        stub.requests()
    );
}

#[test]
fn chosen_key_material_is_sent_but_never_shown() {
    let key = new_key();
    assert!(key.starts_with("sk-") && key.len() == 35, "{key}");
    assert_ne!(key, new_key());
    let request = GenerateKeyRequest {
        key: Some(KeyMaterial(key.clone())),
        ..GenerateKeyRequest::default()
    };
    let body = serde_json::to_value(&request).unwrap();
    assert_eq!(body["key"], key.as_str());
    let shown = format!("{request:?}");
    assert!(!shown.contains(&key), "{shown}");
}

#[test]
fn litellms_masked_echo_of_a_refused_key_is_hidden() {
    for (echo, kept) in [
        (
            "LiteLLM Virtual Key expected. Received=Secr****w0rd, expected to start with 'sk-'.",
            "Received=<redacted>, expected",
        ),
        (
            "Invalid proxy server token passed. Received API Key = sk-...2345, Key Hash",
            "Received API Key = <redacted>, Key Hash",
        ),
    ] {
        let shown = hide_masked_keys(echo);
        assert!(shown.contains(kept), "{shown}");
        assert!(
            !shown.contains("w0rd") && !shown.contains("2345"),
            "{shown}"
        );
    }
    let plain = "Key not found. Try again";
    assert_eq!(hide_masked_keys(plain), plain);
}

#[tokio::test]
async fn a_broken_connection_is_tried_again_for_calls_that_repeat_safely_only() {
    // The proxy closes the connection under the first request of each
    // kind (an idle connection it was closing just then), then answers.
    let stub = Stub::start(vec![
        route_once("POST /key/delete", 0, ""),
        route("POST /key/delete", 200, r#"{"deleted_keys":["t"]}"#),
        route_once("POST /key/update", 0, ""),
        route(
            "POST /key/update",
            200,
            r#"{"expires":"2030-01-01T00:00:00Z"}"#,
        ),
        route_once("POST /key/generate", 0, ""),
        route("POST /key/generate", 200, r#"{"key":"sk-x","token":"t"}"#),
    ])
    .await;
    let c = client(stub.url.clone(), Duration::from_secs(5));
    assert_eq!(c.delete_keys(&["t".into()]).await.unwrap(), Deleted::Now);
    assert_eq!(stub.count("POST /key/delete"), 2);
    c.extend_key("t", Duration::from_secs(60)).await.unwrap();
    assert_eq!(stub.count("POST /key/update"), 2);

    // A generate that broke may have minted a key: never sent twice (the
    // engine cleans up by alias instead).
    let request = GenerateKeyRequest {
        key_alias: "a".into(),
        ..GenerateKeyRequest::default()
    };
    let err = c.generate_key(&request).await.unwrap_err();
    assert!(matches!(err, Error::Interrupted { .. }), "{err:?}");
    assert_eq!(stub.count("POST /key/generate"), 1);
}
