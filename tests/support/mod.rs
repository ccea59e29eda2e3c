//! Harness shared by the integration tests (`mod support;` in `tests/*.rs`).
//!
//! The tests are black-box: they start a real OpenBao and/or Vault dev server with the plugin
//! binary in its plugin directory, drive it over its HTTP API, and check the effect on a real
//! LiteLLM proxy. The environment comes from `e2e/stack.sh` (run through `make test` or
//! `e2e/run-with-stack.sh`):
//!
//! * `ENGINES` (default `"vault openbao"`): which servers to test against;
//! * `REQUIRE_ENGINES`: engines that must be present (a missing one fails the test instead of
//!   being skipped); `make test` sets it to `openbao` unless given;
//! * `BAO_BIN` / `VAULT_BIN`: the server binaries (else `bao` / `vault` on `PATH`);
//! * `LITELLM_URL` / `LITELLM_MASTER_KEY`: the LiteLLM proxy.
//!
//! Everything started here is stopped on drop, also when the test panics; the server's log is
//! then kept and its tail printed.
#![allow(unsafe_code)] // kill(2) on processes the tests started; SAFETY notes at each call
#![allow(dead_code)] // each test crate uses a different part of this module

use std::fmt;
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

mod fixtures;
mod net;
#[allow(unused_imports)] // each test crate uses a different part
pub(crate) use fixtures::{
    configured_server, configured_with_prefix, live_leases, put_role, unique_prefix, Janitor,
    PluginServer, MOUNT,
};
#[allow(unused_imports)]
pub(crate) use net::{Cable, TlsFront};

/// The file name of the plugin binary inside the server's plugin directory, and the `command`
/// it is registered with.
pub(crate) const PLUGIN_FILE_NAME: &str = "vault-plugin-secrets-litellm";

/// The root token of every dev server started here.
pub(crate) const ROOT_TOKEN: &str = "root";

/// How long to wait for a dev server to answer `sys/health`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a dev server and its plugins get between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Timeout of one HTTP request to a server or to LiteLLM.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------------------------ helpers

/// The plugin binary cargo built for this test run (the harness is shared
/// with the SDK's tests, which have no such binary).
pub(crate) fn plugin_binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_vault-plugin-secrets-litellm") {
        Some(path) => PathBuf::from(path),
        None => panic!("only the plugin crate's tests have the plugin binary"),
    }
}

/// The version the plugin reports and is registered with (`v` + the crate version).
pub(crate) fn plugin_version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

/// Lower-case hex sha256 of a file, as the plugin catalog wants it.
///
/// A debug plugin binary is over 100 MB and the sha2 crate is unoptimised in test builds
/// (~4 s), so this uses coreutils' `sha256sum` when it is there and remembers each result
/// (keyed by path, size and modification time).
pub(crate) fn sha256_file(path: &Path) -> String {
    static CACHE: Mutex<Vec<(PathBuf, u64, SystemTime, String)>> = Mutex::new(Vec::new());
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()));
    let (len, mtime) = (meta.len(), meta.modified().expect("file modification time"));
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((.., hash)) = cache
        .iter()
        .find(|(p, l, m, _)| p == path && *l == len && *m == mtime)
    {
        return hash.clone();
    }
    let hash = sha256sum_command(path).unwrap_or_else(|| sha256_in_process(path));
    cache.push((path.to_path_buf(), len, mtime, hash.clone()));
    hash
}

fn sha256sum_command(path: &Path) -> Option<String> {
    let output = Command::new("sha256sum").arg(path).output().ok()?;
    let hash = String::from_utf8(output.stdout).ok()?;
    let hash = hash.split_whitespace().next()?;
    (output.status.success() && hash.len() == 64).then(|| hash.to_owned())
}

fn sha256_in_process(path: &Path) -> String {
    let mut file =
        fs::File::open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A blocking HTTP client. reqwest is built without a default rustls crypto provider, so the
/// aws-lc-rs one is installed first (once per process).
pub(crate) fn http_client() -> Client {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Err only means another provider was installed first, which is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
    Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .expect("building the HTTP client")
}

/// Sends a request and returns the status and the body as JSON (`Null` for an empty body, a JSON
/// string for a body that is not JSON).
fn send(request: RequestBuilder) -> (u16, Value) {
    try_send(request).unwrap_or_else(|e| panic!("{e}"))
}

/// Like `send`, but returns transport errors instead of panicking (for clean-up code that may
/// run while a test is already panicking).
fn try_send(request: RequestBuilder) -> Result<(u16, Value), String> {
    let response = request
        .send()
        .map_err(|e| format!("HTTP request failed: {e}"))?;
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok((status, body))
}

/// The error text of a Vault/OpenBao error response (`{"errors": [...]}` joined with "; "), or
/// the whole body when it has no such list.
pub(crate) fn error_text(body: &Value) -> String {
    match body.get("errors").and_then(Value::as_array) {
        Some(errors) => errors
            .iter()
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join("; "),
        None => body.to_string(),
    }
}

/// Asserts a 2xx answer; else panics with `what`, the status and the error text.
pub(crate) fn assert_ok(status: u16, body: &Value, what: &str) {
    assert!(
        (200..300).contains(&status),
        "{what}: HTTP {status}: {}",
        error_text(body)
    );
}

/// Calls `probe` until it returns `Some`, or panics with `what` after `timeout`.
pub(crate) fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        sleep(Duration::from_millis(200));
    }
}

/// Seconds since the Unix epoch of an RFC 3339 UTC timestamp as LiteLLM writes them
/// (`2026-11-27T16:10:29.505000+00:00`, `...Z`, with or without a fraction).
/// `None` for anything else (other offsets included).
pub(crate) fn parse_utc_timestamp(s: &str) -> Option<f64> {
    let s = s.trim();
    let rest = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = rest.split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from 1970-01-01 to year-month-day (proleptic Gregorian; Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3_600 + minute * 60) as f64 + second)
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs_f64()
}

/// Prints test steps with the time elapsed since the start (`[openbao +1.234s] step`).
pub(crate) struct Steps {
    label: String,
    start: Instant,
}

impl Steps {
    pub(crate) fn new(label: impl Into<String>) -> Self {
        let steps = Steps {
            label: label.into(),
            start: Instant::now(),
        };
        steps.step("start");
        steps
    }

    pub(crate) fn step(&self, what: impl fmt::Display) {
        eprintln!(
            "[{} +{:.3}s] {what}",
            self.label,
            self.start.elapsed().as_secs_f64()
        );
    }
}

// ------------------------------------------------------------------------------------ engines

/// A server flavour the plugin is tested against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    OpenBao,
    Vault,
}

impl Engine {
    /// The name used in `ENGINES` / `REQUIRE_ENGINES`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Engine::OpenBao => "openbao",
            Engine::Vault => "vault",
        }
    }

    /// The variable that names the binary.
    pub(crate) fn bin_var(self) -> &'static str {
        match self {
            Engine::OpenBao => "BAO_BIN",
            Engine::Vault => "VAULT_BIN",
        }
    }

    /// The command looked up on `PATH` when the variable is unset.
    pub(crate) fn command(self) -> &'static str {
        match self {
            Engine::OpenBao => "bao",
            Engine::Vault => "vault",
        }
    }

    /// Parses an engine name (`openbao`/`bao`, `vault`).
    pub(crate) fn parse(name: &str) -> Option<Engine> {
        match name.trim().to_ascii_lowercase().as_str() {
            "openbao" | "bao" => Some(Engine::OpenBao),
            "vault" => Some(Engine::Vault),
            _ => None,
        }
    }

    /// The server binary: `$BAO_BIN` / `$VAULT_BIN` when set (and non-empty), else `bao` /
    /// `vault` on `PATH`. `None` when neither gives an executable file.
    pub(crate) fn binary(self) -> Option<PathBuf> {
        self.locate().ok()
    }

    /// Like [`Engine::binary`], with the reason when there is none.
    fn locate(self) -> Result<PathBuf, String> {
        match std::env::var_os(self.bin_var()).filter(|v| !v.is_empty()) {
            Some(path) if is_executable(Path::new(&path)) => Ok(PathBuf::from(path)),
            Some(path) => Err(format!(
                "{}={} is not an executable file",
                self.bin_var(),
                Path::new(&path).display()
            )),
            None => find_on_path(self.command()).ok_or_else(|| {
                format!("{} binary not found (set {})", self.name(), self.bin_var())
            }),
        }
    }

    /// This engine's binary for a test written per engine (one #[test] each, so each engine
    /// fails on its own): `None` after a loud `SKIPPED:` line when the engine is not in
    /// `ENGINES`, or is missing and not in `REQUIRE_ENGINES`; panics when it is required and
    /// missing.
    ///
    /// Tests use it through [`per_server!`], which writes those two tests.
    pub(crate) fn binary_for_test(self, test: &str) -> Option<PathBuf> {
        let wanted = engine_list("ENGINES", "vault openbao");
        let required = engine_list("REQUIRE_ENGINES", "").contains(&self);
        let why = if wanted.contains(&self) {
            match self.locate() {
                Ok(bin) => return Some(bin),
                Err(why) => why,
            }
        } else {
            format!("{self} is not in ENGINES")
        };
        if required {
            panic!("{test}: {why}, and REQUIRE_ENGINES lists {self}");
        }
        eprintln!("\n**********\nSKIPPED: {test} on {self}: {why}\n**********\n");
        None
    }
}

/// One test per server: `per_server!(name)` after `fn name(engine: Engine)` adds a module `name`
/// with `#[test] fn openbao()` and `#[test] fn vault()`, so a failure on one server is reported
/// on its own (`cargo test --test rotation -- scheduled_rotation_happens_on_its_own::openbao`
/// runs one). Each runs `name` with its engine after [`Engine::binary_for_test`]: an engine that
/// is not in `ENGINES`, or is missing and not in `REQUIRE_ENGINES`, skips its test with a loud
/// `SKIPPED:` line; a required one that is missing fails it. The test itself stays a plain
/// function (a function and a module may share a name), so rustfmt and clippy see it as any other.
///
/// `per_server!(name, with_steps)` is for `fn name(engine: Engine, steps: &Steps, litellm:
/// &LiteLlm)`: the test is also handed the LiteLLM proxy from the environment and a step log
/// labelled `name/engine`, which logs `done` when the test returns.
///
/// A `#[cfg(...)]` on the function goes on the `per_server!` line too.
///
/// ```ignore
/// /// What the test shows.
/// fn keys_expire(engine: Engine, steps: &Steps, litellm: &LiteLlm) {
///     let server = configured_server(engine, litellm);
///     steps.step("...");
/// }
/// per_server!(keys_expire, with_steps);
/// ```
#[allow(unused_macros)] // each test crate uses a different part of this module
macro_rules! per_server {
    ($name:ident, with_steps) => {
        $crate::support::per_server!(@tests $name, |engine: $crate::support::Engine| {
            let litellm = $crate::support::LiteLlm::from_env();
            let steps = $crate::support::Steps::new(format!("{}/{}", stringify!($name), engine));
            super::$name(engine, &steps, &litellm);
            steps.step("done");
        });
    };
    ($name:ident) => {
        $crate::support::per_server!(@tests $name, super::$name);
    };
    (@tests $name:ident, $run:expr) => {
        mod $name {
            #[test]
            fn openbao() {
                $crate::support::run_per_server(
                    $crate::support::Engine::OpenBao,
                    module_path!(),
                    $run,
                );
            }

            #[test]
            fn vault() {
                $crate::support::run_per_server(
                    $crate::support::Engine::Vault,
                    module_path!(),
                    $run,
                );
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use per_server;

/// What a [`per_server!`] test runs: `body(engine)`, unless [`Engine::binary_for_test`] skips
/// `engine` for `test`.
pub(crate) fn run_per_server(engine: Engine, test: &str, body: impl FnOnce(Engine)) {
    if engine.binary_for_test(test).is_some() {
        body(engine);
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a space- or comma-separated engine list from the environment, without duplicates.
fn engine_list(var: &str, default: &str) -> Vec<Engine> {
    let raw = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    let mut engines = Vec::new();
    for name in raw.split([' ', ',', '\t']).filter(|n| !n.is_empty()) {
        let engine = Engine::parse(name)
            .unwrap_or_else(|| panic!("{var}: unknown engine {name:?} (use vault, openbao)"));
        if !engines.contains(&engine) {
            engines.push(engine);
        }
    }
    engines
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn find_on_path(command: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(command))
        .find(|candidate| is_executable(candidate))
}

// ------------------------------------------------------------------------------------ dev server

/// A dev-mode OpenBao or Vault server on a free loopback port, with root token `root` and a
/// private plugin directory holding a copy of the plugin binary.
///
/// The server runs in its own process group; dropping the `DevServer` stops the whole group
/// (server and plugin processes). If the test is panicking, the temporary directory (config,
/// log, plugin copy) is kept and the log's tail printed.
pub(crate) struct DevServer {
    pub engine: Engine,
    /// `http://127.0.0.1:PORT`
    pub addr: String,
    child: Child,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    plugin_path: PathBuf,
    /// The binary `plugin_path` was copied from.
    source_binary: PathBuf,
    log_path: PathBuf,
    http: Client,
}

impl DevServer {
    /// Starts a dev server and waits until `GET /v1/sys/health` answers 200.
    pub(crate) fn start(engine: Engine, plugin_binary: &Path) -> DevServer {
        let bin = engine
            .binary()
            .unwrap_or_else(|| panic!("{engine} binary not found (set {})", engine.bin_var()));
        let dir = tempfile::Builder::new()
            .prefix(&format!("e2e-{engine}-"))
            .tempdir()
            .expect("creating a temporary directory");
        let dir_path = dir.path().to_path_buf();
        let plugin_dir = dir_path.join("plugins");
        let tmp_dir = dir_path.join("tmp");
        fs::create_dir_all(&plugin_dir).expect("creating plugins/");
        fs::create_dir_all(&tmp_dir).expect("creating tmp/");
        let plugin_path = plugin_dir.join(PLUGIN_FILE_NAME);
        fs::copy(plugin_binary, &plugin_path).unwrap_or_else(|e| {
            panic!(
                "copying {} into {}: {e}",
                plugin_binary.display(),
                plugin_dir.display()
            )
        });

        // Dev mode plus a config file only for the plugin directory: -dev-plugin-dir would
        // auto-register every file in it, unversioned. OpenBao has no mlock (it warns about
        // the setting); Vault gets it disabled explicitly, as in its dev mode.
        let config_path = dir_path.join("config.hcl");
        // sys/raw lets tests inspect the plugin's stored entries directly.
        let mut config = format!(
            "plugin_directory = \"{}\"\nraw_storage_endpoint = true\n",
            plugin_dir.display()
        );
        if engine == Engine::Vault {
            config.push_str("disable_mlock = true\n");
        }
        fs::write(&config_path, config).expect("writing config.hcl");

        let port = free_port_pair();
        let addr = format!("http://127.0.0.1:{port}");
        let log_path = dir_path.join("server.log");
        let log = fs::File::create(&log_path).expect("creating server.log");
        let child = Command::new(&bin)
            .arg("server")
            .arg("-dev")
            .arg(format!("-dev-root-token-id={ROOT_TOKEN}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-config={}", config_path.display()))
            .arg("-log-level=debug")
            // The dev server writes ~/.vault-token: keep it in the test directory. Plugin
            // processes inherit TMPDIR, so their unix sockets land there too.
            .env("HOME", &dir_path)
            .env("TMPDIR", &tmp_dir)
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log file handle"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));

        let mut server = DevServer {
            engine,
            addr,
            child,
            dir: Some(dir),
            dir_path,
            plugin_path,
            source_binary: plugin_binary.to_path_buf(),
            log_path,
            http: http_client(),
        };
        server.wait_healthy(&bin);
        server
    }

    fn wait_healthy(&mut self, bin: &Path) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} dev server ({}) exited during start-up with {status}; log {}:\n{}",
                    self.engine,
                    bin.display(),
                    self.log_path.display(),
                    self.log_tail(40)
                );
            }
            let health = self
                .http
                .get(self.url("sys/health"))
                .timeout(Duration::from_secs(2))
                .send();
            if health.is_ok_and(|r| r.status().as_u16() == 200) {
                eprintln!(
                    "{} dev server up at {} in {:.2}s (pid {}, dir {})",
                    self.engine,
                    self.addr,
                    started.elapsed().as_secs_f64(),
                    self.child.id(),
                    self.dir_path.display()
                );
                return;
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "{} dev server did not answer sys/health within {START_TIMEOUT:?}; log {}:\n{}",
                    self.engine,
                    self.log_path.display(),
                    self.log_tail(40)
                );
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// The server's process id (also its process group id).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory holding the config, log, plugins/ and tmp/.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// The plugin binary copy the server runs.
    pub(crate) fn plugin_path(&self) -> &Path {
        &self.plugin_path
    }

    // -------------------------------------------------------------------------- raw HTTP

    /// The API address of `path` (`/v1/<path>`).
    fn url(&self, path: &str) -> String {
        format!("{}/v1/{}", self.addr, path.trim_start_matches('/'))
    }

    /// A request to `/v1/<path>` with the root token; returns the status and JSON body.
    pub(crate) fn request(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("X-Vault-Token", ROOT_TOKEN);
        if let Some(body) = body {
            request = request.json(body);
        }
        send(request)
    }

    /// Like [`DevServer::request`], with another token and optionally a namespace
    /// (`X-Vault-Namespace`), for tests of ACL policies and namespaces.
    pub(crate) fn request_as(
        &self,
        token: &str,
        namespace: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("X-Vault-Token", token);
        if let Some(namespace) = namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        send(request)
    }

    pub(crate) fn get(&self, path: &str) -> (u16, Value) {
        self.request(Method::GET, path, None)
    }

    pub(crate) fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(Method::PUT, path, Some(body))
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(Method::POST, path, Some(body))
    }

    pub(crate) fn delete(&self, path: &str) -> (u16, Value) {
        self.request(Method::DELETE, path, None)
    }

    /// `PATCH` as `vault patch` sends it: a JSON merge patch.
    pub(crate) fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        send(
            self.http
                .request(Method::PATCH, self.url(path))
                .header("X-Vault-Token", ROOT_TOKEN)
                .header("Content-Type", "application/merge-patch+json")
                .body(body.to_string()),
        )
    }

    /// `LIST` as the HTTP API spells it: `GET <path>?list=true`.
    pub(crate) fn list(&self, path: &str) -> (u16, Value) {
        self.get(&format!("{}?list=true", path.trim_end_matches('/')))
    }

    // -------------------------------------------------------------------------- sys helpers

    /// Registers the plugin copy as secrets plugin `name` at `version`; panics unless 2xx.
    pub(crate) fn register_plugin(&self, name: &str, sha256_hex: &str, version: &str) {
        let (status, body) = self.put(
            &format!("sys/plugins/catalog/secret/{name}"),
            &json!({"sha256": sha256_hex, "command": PLUGIN_FILE_NAME, "version": version}),
        );
        self.expect_ok(status, &body, &format!("register plugin {name} {version}"));
    }

    /// Registers the plugin copy as `name` at [`plugin_version`] with its real sha256 (that of
    /// the binary it was copied from, which [`sha256_file`] has usually seen already).
    pub(crate) fn register_this_plugin(&self, name: &str) {
        self.register_plugin(name, &sha256_file(&self.source_binary), &plugin_version());
    }

    /// Mounts plugin `plugin_name` at `version` on `path`; panics unless 2xx.
    pub(crate) fn enable(&self, path: &str, plugin_name: &str, version: &str) {
        let (status, body) = self.post(
            &format!("sys/mounts/{}", path.trim_end_matches('/')),
            &json!({"type": plugin_name, "plugin_version": version}),
        );
        self.expect_ok(
            status,
            &body,
            &format!("enable {plugin_name} {version} at {path}"),
        );
    }

    /// Mounts plugin `plugin_name` at [`plugin_version`] on `path` with mount `options`
    /// (`rollback_min_age`, ...); panics unless 2xx.
    pub(crate) fn enable_with_options(&self, path: &str, plugin_name: &str, options: Value) {
        let (status, body) = self.post(
            &format!("sys/mounts/{}", path.trim_end_matches('/')),
            &json!({"type": plugin_name, "plugin_version": plugin_version(), "options": options}),
        );
        self.expect_ok(
            status,
            &body,
            &format!("enable {plugin_name} with options at {path}"),
        );
    }

    /// Registers the plugin copy as `name` with `env` (`LITELLM_PLUGIN_CRASH_...=<point>`: where
    /// a `fault-injection` build kills itself) and mounts it at `path` with a 1 s
    /// `rollback_min_age`, so the rollback soon sees what a crash left; panics unless 2xx.
    pub(crate) fn mount_crashing_plugin(&self, name: &str, path: &str, env: &str) {
        let (status, body) = self.put(
            &format!("sys/plugins/catalog/secret/{name}"),
            &json!({"sha256": sha256_file(&self.source_binary), "command": PLUGIN_FILE_NAME,
                    "version": plugin_version(), "env": [env]}),
        );
        self.expect_ok(
            status,
            &body,
            &format!("register crashing plugin {name} ({env})"),
        );
        self.enable_with_options(path, name, json!({"rollback_min_age": "1s"}));
    }

    /// Unmounts `path` (revoking its leases first); panics unless 2xx.
    pub(crate) fn disable(&self, path: &str) {
        let (status, body) = self.delete(&format!("sys/mounts/{}", path.trim_end_matches('/')));
        self.expect_ok(status, &body, &format!("disable {path}"));
    }

    /// `PUT sys/leases/renew`.
    pub(crate) fn lease_renew(&self, lease_id: &str, increment_secs: u64) -> (u16, Value) {
        self.put(
            "sys/leases/renew",
            &json!({"lease_id": lease_id, "increment": increment_secs}),
        )
    }

    /// `PUT sys/leases/revoke` (synchronous).
    pub(crate) fn lease_revoke(&self, lease_id: &str) -> (u16, Value) {
        self.put("sys/leases/revoke", &json!({"lease_id": lease_id}))
    }

    /// `PUT sys/leases/revoke-prefix/<prefix>` (synchronous).
    pub(crate) fn revoke_prefix(&self, prefix: &str) -> (u16, Value) {
        self.put(
            &format!("sys/leases/revoke-prefix/{}", prefix.trim_matches('/')),
            &json!({}),
        )
    }

    /// `PUT sys/plugins/reload/backend {"plugin": name}`: restarts the plugin's processes.
    pub(crate) fn reload_plugin(&self, name: &str) -> (u16, Value) {
        self.put("sys/plugins/reload/backend", &json!({"plugin": name}))
    }

    fn expect_ok(&self, status: u16, body: &Value, what: &str) {
        assert!(
            (200..300).contains(&status),
            "{}: {what} failed with HTTP {status}: {} (server log: {})",
            self.engine,
            error_text(body),
            self.log_path.display(),
        );
    }

    // -------------------------------------------------------------------------- processes, logs

    /// Live (non-zombie) processes running this server's copy of the plugin binary.
    pub(crate) fn plugin_pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        let Ok(entries) = fs::read_dir("/proc") else {
            return pids;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if self.runs_plugin(pid) && !is_zombie(pid) {
                pids.push(pid);
            }
        }
        pids.sort_unstable();
        pids
    }

    fn runs_plugin(&self, pid: u32) -> bool {
        if let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) {
            let exe = exe.to_string_lossy();
            if exe.trim_end_matches(" (deleted)") == self.plugin_path.to_string_lossy() {
                return true;
            }
        }
        fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
            cmdline.split(|b| *b == 0).next()
                == Some(self.plugin_path.as_os_str().as_encoded_bytes())
        })
    }

    /// The server log so far (server and forwarded plugin output).
    pub(crate) fn log_text(&self) -> String {
        fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the server log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops the process group: SIGTERM, then SIGKILL after [`STOP_GRACE`].
    fn stop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on the process group this struct created.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            let server_gone = matches!(self.child.try_wait(), Ok(Some(_)));
            if server_gone && self.plugin_pids().is_empty() {
                break;
            }
            sleep(Duration::from_millis(50));
        }
        // Whatever is left of the group (a plugin that ignored SIGTERM), and any plugin that
        // left the group.
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        for pid in self.plugin_pids() {
            // SAFETY: kill(2) on a process running this server's private plugin copy.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!(
                    "\n--- {} dev server log kept: {} (dir {})\n{}\n--- end of log tail",
                    self.engine,
                    self.log_path.display(),
                    kept.display(),
                    self.log_tail(60)
                );
            }
        }
    }
}

fn is_zombie(pid: u32) -> bool {
    // /proc/<pid>/stat: "pid (comm) S ...": the state follows the last ')'.
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
    })
}

/// A loopback port whose successor is free too (dev servers also listen on PORT+1 for cluster
/// traffic). The ports are released before use, so a race with another process is possible but
/// unlikely.
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let port = listener.local_addr().expect("local address").port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free pair of loopback ports found");
}

// ------------------------------------------------------------------------------------ LiteLLM

/// The LiteLLM proxy the tests run against (`LITELLM_URL`, `LITELLM_MASTER_KEY`).
pub(crate) struct LiteLlm {
    pub url: String,
    pub master_key: String,
    http: Client,
}

impl LiteLlm {
    pub(crate) fn from_env() -> LiteLlm {
        let var = |name: &str| {
            std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
                panic!("{name} is not set: run the integration tests via `make test` / e2e/stack.sh up")
            })
        };
        LiteLlm {
            url: var("LITELLM_URL").trim_end_matches('/').to_owned(),
            master_key: var("LITELLM_MASTER_KEY"),
            http: http_client(),
        }
    }

    /// A one-message chat completion with `key` on `model`; returns the HTTP status
    /// (200 ok, 401 unknown/deleted/expired key, 403 model not allowed, 429 rate limit, ...).
    pub(crate) fn chat(&self, key: &str, model: &str) -> u16 {
        self.chat_full(key, model).0
    }

    /// Like [`LiteLlm::chat`], with the response body.
    pub(crate) fn chat_full(&self, key: &str, model: &str) -> (u16, Value) {
        send(
            self.http
                .post(format!("{}/chat/completions", self.url))
                .bearer_auth(key)
                .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})),
        )
    }

    /// `GET /key/info?key=...` (plaintext key or its sha256 token) with the master key.
    pub(crate) fn key_info(&self, key_or_hash: &str) -> (u16, Value) {
        send(
            self.http
                .get(format!("{}/key/info", self.url))
                .query(&[("key", key_or_hash)])
                .bearer_auth(&self.master_key),
        )
    }

    /// `info.expires` of a key as Unix seconds (`None` for a key that never expires).
    pub(crate) fn key_expires(&self, key_or_hash: &str) -> Option<f64> {
        let (status, body) = self.key_info(key_or_hash);
        assert_eq!(status, 200, "GET /key/info: {body}");
        body["info"]["expires"]
            .as_str()
            .map(|s| parse_utc_timestamp(s).unwrap_or_else(|| panic!("unparsable expires {s:?}")))
    }

    /// Live, non-expired keys whose alias starts with `prefix`.
    ///
    /// LiteLLM 1.106.12's `/key/list` filters `key_alias` exactly by default, or as a
    /// case-insensitive *substring* with `substring_matching=true`; `expires=active` drops
    /// expired keys; deleted keys are never listed. The prefix test is done here.
    pub(crate) fn live_keys_with_alias_prefix(&self, prefix: &str) -> Vec<Value> {
        self.try_live_keys_with_alias_prefix(prefix)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`LiteLlm::live_keys_with_alias_prefix`], returning errors instead of panicking.
    pub(crate) fn try_live_keys_with_alias_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<Value>, String> {
        let mut keys = Vec::new();
        let mut page = 1u64;
        loop {
            let (status, body) = try_send(
                self.http
                    .get(format!("{}/key/list", self.url))
                    .query(&[
                        ("key_alias", prefix),
                        ("substring_matching", "true"),
                        ("expires", "active"),
                        ("return_full_object", "true"),
                        ("size", "100"),
                        ("page", &page.to_string()),
                    ])
                    .bearer_auth(&self.master_key),
            )?;
            if status != 200 {
                return Err(format!("GET /key/list: HTTP {status}: {body}"));
            }
            let now = unix_now();
            for key in body["keys"].as_array().into_iter().flatten() {
                let alias_matches = key["key_alias"]
                    .as_str()
                    .is_some_and(|alias| alias.starts_with(prefix));
                let not_expired = key["expires"]
                    .as_str()
                    .and_then(parse_utc_timestamp)
                    .is_none_or(|expires| expires > now);
                if alias_matches && not_expired {
                    keys.push(key.clone());
                }
            }
            let total_pages = body["total_pages"].as_u64().unwrap_or(1);
            if page >= total_pages {
                return Ok(keys);
            }
            page += 1;
        }
    }

    /// How many live, non-expired keys have an alias starting with `prefix`.
    pub(crate) fn count_live_keys_with_alias_prefix(&self, prefix: &str) -> usize {
        self.live_keys_with_alias_prefix(prefix).len()
    }

    /// `POST /key/delete {"keys": [key]}`; returns the status (404 when already gone).
    pub(crate) fn delete_key(&self, key_or_hash: &str) -> u16 {
        send(
            self.http
                .post(format!("{}/key/delete", self.url))
                .bearer_auth(&self.master_key)
                .json(&json!({"keys": [key_or_hash]})),
        )
        .0
    }

    /// Deletes every live key whose alias starts with `prefix` (test clean-up); returns how
    /// many. Never panics, so it can run in `Drop` while a test is failing.
    pub(crate) fn delete_keys_with_alias_prefix(&self, prefix: &str) -> Result<usize, String> {
        let aliases: Vec<String> = self
            .try_live_keys_with_alias_prefix(prefix)?
            .iter()
            .filter_map(|k| k["key_alias"].as_str().map(str::to_owned))
            .collect();
        if aliases.is_empty() {
            return Ok(0);
        }
        let (status, body) = try_send(
            self.http
                .post(format!("{}/key/delete", self.url))
                .bearer_auth(&self.master_key)
                .json(&json!({"key_aliases": aliases})),
        )?;
        if status != 200 {
            return Err(format!("POST /key/delete by alias: HTTP {status}: {body}"));
        }
        Ok(aliases.len())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_utc_timestamp;

    #[test]
    fn sha256_command_and_in_process_agree() {
        let path = std::env::temp_dir().join(format!("sha-test-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(super::sha256_in_process(&path), want);
        assert_eq!(super::sha256_file(&path), want);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn parses_litellm_timestamps() {
        let close = |s: &str, want: f64| {
            let got = parse_utc_timestamp(s).unwrap_or_else(|| panic!("{s} did not parse"));
            assert!((got - want).abs() < 1e-3, "{s}: {got} != {want}");
        };
        close("1970-01-01T00:00:00Z", 0.0);
        close("2026-11-27T16:10:29.505000+00:00", 1_795_795_829.505);
        close("2026-11-27T16:10:29.505000Z", 1_795_795_829.505);
        close("2000-03-01T00:00:00Z", 951_868_800.0);
        assert_eq!(parse_utc_timestamp("2026-11-27T16:10:29+02:00"), None);
        assert_eq!(parse_utc_timestamp("yesterday"), None);
    }
}
