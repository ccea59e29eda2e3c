//! A scriptable stand-in for LiteLLM, for unit tests of error paths only
//! (timeouts, 5xx, malformed answers). What works is proven against a real
//! proxy in `tests/`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

/// One canned answer: requests whose first line starts with `route`
/// (e.g. `"POST /key/generate"`) get `status` and `body` after `delay`.
/// Status 0 closes the connection without an answer, after the request
/// was read (a crash or reset mid-request). Unmatched requests get a 404
/// like a web server's for an unknown route, which is not LiteLLM's
/// "No keys found".
#[derive(Clone)]
pub(crate) struct Route {
    pub route: &'static str,
    pub status: u16,
    pub body: &'static str,
    pub delay: Duration,
    /// Set for a route that answers one request only (then the next
    /// matching route answers): shared by the clones.
    used: Option<Arc<AtomicBool>>,
}

pub(crate) fn route(route: &'static str, status: u16, body: &'static str) -> Route {
    Route {
        route,
        status,
        body,
        delay: Duration::ZERO,
        used: None,
    }
}

/// Like [`route`], for the first matching request only.
pub(crate) fn route_once(route: &'static str, status: u16, body: &'static str) -> Route {
    Route {
        used: Some(Arc::default()),
        ..self::route(route, status, body)
    }
}

impl Route {
    /// The same answer, after `delay`.
    pub(crate) fn delayed(self, delay: Duration) -> Route {
        Route { delay, ..self }
    }

    /// Whether this route answers `request` (a one-time route is used up
    /// by answering).
    fn answers(&self, request: &str) -> bool {
        request.starts_with(self.route)
            && self
                .used
                .as_ref()
                .is_none_or(|used| !used.swap(true, Ordering::SeqCst))
    }
}

pub(crate) struct Stub {
    pub url: Url,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Stub {
    /// Serves `routes` on a loopback port until the test ends; unmatched
    /// requests get 404.
    pub(crate) async fn start(routes: Vec<Route>) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let routes = routes.clone();
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let request = read_request(&mut socket).await;
                    seen.lock().unwrap().push(request.clone());
                    let answer = routes.iter().find(|r| r.answers(&request));
                    let (status, body, delay) = answer
                        .map_or((404, r#"{"detail":"Not Found"}"#, Duration::ZERO), |r| {
                            (r.status, r.body, r.delay)
                        });
                    tokio::time::sleep(delay).await;
                    if status == 0 {
                        return;
                    }
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        Stub { url, requests }
    }

    /// Raw text of every request received so far.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// How many requests started with `route`.
    pub(crate) fn count(&self, route: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.starts_with(route))
            .count()
    }
}

/// Reads the headers and the body announced by content-length.
async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0usize);
            if buf.len() >= end + 4 + length {
                break;
            }
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}
