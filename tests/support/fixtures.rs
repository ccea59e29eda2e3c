//! Small pieces several test files need: unique alias prefixes, lease
//! counts, a mounted and configured engine, and LiteLLM calls made with a
//! virtual key instead of the master key.

use reqwest::Method;
use serde_json::{json, Value};

use super::{plugin_binary, plugin_version, send, unix_now, DevServer, Engine, LiteLlm, Steps};

/// The mount path every test uses.
pub(crate) const MOUNT: &str = "litellm";

/// A short alias prefix unique to this run: keys made by one test never
/// match another's.
pub(crate) fn unique_prefix(tag: &str) -> String {
    format!("t{tag}{:07x}", (unix_now() * 1000.0) as u64 & 0xfff_ffff)
}

/// Leases alive under `litellm/creds/<role>/`.
pub(crate) fn live_leases(server: &DevServer, role: &str) -> usize {
    let (status, body) = server.list(&format!("sys/leases/lookup/{MOUNT}/creds/{role}/"));
    match status {
        404 => 0,
        200 => body["data"]["keys"].as_array().map_or(0, Vec::len),
        _ => panic!("listing leases: {status} {body}"),
    }
}

/// Writes `roles/<name>`; panics unless 2xx. Returns the answer (warnings).
pub(crate) fn put_role(server: &DevServer, name: &str, body: Value) -> Value {
    let (status, out) = server.put(&format!("{MOUNT}/roles/{name}"), &body);
    assert!((200..300).contains(&status), "role {name}: {status} {out}");
    out
}

/// A [`configured_server`] and an alias prefix of its own (tagged `tag`): `(server, prefix)`.
pub(crate) fn configured_with_prefix(
    engine: Engine,
    litellm: &LiteLlm,
    tag: &str,
) -> (DevServer, String) {
    let prefix = unique_prefix(tag);
    (configured_server(engine, litellm), prefix)
}

/// A dev server with the plugin mounted at `MOUNT` and configured for `litellm`.
pub(crate) fn configured_server(engine: Engine, litellm: &LiteLlm) -> DevServer {
    let server = DevServer::start(engine, &plugin_binary());
    server.register_this_plugin("litellm");
    server.enable(MOUNT, "litellm", &plugin_version());
    let (status, body) = server.put(
        &format!("{MOUNT}/config"),
        &json!({"base_url": litellm.url, "master_key": litellm.master_key}),
    );
    assert!((200..300).contains(&status), "config: {status} {body}");
    server
}

impl LiteLlm {
    /// Any LiteLLM route called with a virtual key: what that key may do.
    pub(crate) fn call_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(key);
        if method != Method::GET {
            request = request.json(body);
        }
        send(request)
    }

    /// A LiteLLM route called with the master key.
    pub(crate) fn admin(&self, method: Method, path: &str, body: &Value) -> (u16, Value) {
        self.call_as(&self.master_key.clone(), method, path, body)
    }
}

/// A dev server with the plugin registered as `litellm` (and mounted at [`MOUNT`] when asked),
/// the LiteLLM proxy, a step log, and an alias prefix for the test's keys: whatever keys with
/// that prefix are left when it drops are deleted.
pub(crate) struct PluginServer {
    pub steps: Steps,
    pub litellm: LiteLlm,
    pub prefix: String,
    // Fields drop in declaration order: the server stops before the janitor cleans up.
    pub server: DevServer,
    _janitor: Janitor,
}

impl PluginServer {
    pub(crate) fn start(
        engine: Engine,
        label: String,
        prefix: String,
        mount: bool,
    ) -> PluginServer {
        let steps = Steps::new(label);
        let server = DevServer::start(engine, &plugin_binary());
        steps.step(format!("dev server up at {}", server.addr));
        server.register_this_plugin("litellm");
        steps.step(format!("plugin registered as litellm {}", plugin_version()));
        if mount {
            server.enable(MOUNT, "litellm", &plugin_version());
            steps.step(format!(
                "plugin mounted at {MOUNT}/ (plugin pids {:?})",
                server.plugin_pids()
            ));
        }
        PluginServer {
            steps,
            _janitor: Janitor {
                litellm: LiteLlm::from_env(),
                prefix: prefix.clone(),
            },
            litellm: LiteLlm::from_env(),
            prefix,
            server,
        }
    }

    pub(crate) fn step(&self, what: impl std::fmt::Display) {
        self.steps.step(what);
    }
}

/// Deletes the LiteLLM keys of one test run when dropped, so a failed test
/// leaves no key behind.
pub(crate) struct Janitor {
    pub litellm: LiteLlm,
    pub prefix: String,
}

impl Drop for Janitor {
    fn drop(&mut self) {
        match self.litellm.delete_keys_with_alias_prefix(&self.prefix) {
            Ok(0) => {}
            Ok(left) => eprintln!(
                "janitor: deleted {left} LiteLLM key(s) with alias prefix {:?} left by the test",
                self.prefix
            ),
            Err(e) => eprintln!("janitor: could not clean up keys {:?}*: {e}", self.prefix),
        }
    }
}
