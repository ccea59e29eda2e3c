//! A backend: the engine's paths and secret types, and the dispatch from a
//! host request to the right handler.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::error::{Error, Result};
use super::field::FieldData;
use super::path::{Callback, Handler, OperationProperties, Path};
use super::request::{Operation, Request};
use super::response::Response;
use super::storage::{PERFORMANCE_SECONDARY, PERFORMANCE_STANDBY};
use super::{openapi, wal};

/// A hook called with a storage key (see [`Backend::invalidate`]).
pub type KeyHook = Arc<dyn Fn(&str) + Send + Sync>;

/// A kind of leased secret and how to renew and revoke it.
pub struct SecretType {
    /// Stored in each lease's internal data (`secret_type`) so renew and
    /// revoke find their way back here; keep it stable across versions.
    pub name: &'static str,
    /// Called with the lease's [`Secret`](super::Secret) in `req.secret` when
    /// the caller renews; returns the secret with its new TTL.
    pub renew: Handler,
    /// Called when the lease ends (revoked or expired): undo what the
    /// secret grants. An error makes the server retry later.
    pub revoke: Handler,
}

/// How the engine undoes work recorded in the WAL that never reached a lease.
pub struct WalRollback {
    /// Younger entries may belong to a request still in flight: skip them.
    /// An entry's own `hold_until` can only make the wait longer.
    pub min_age: Duration,
    /// Entries that do not say when to give up (`give_up_after`) and whose
    /// rollback still fails at this age are dropped (with a log line).
    pub max_age: Duration,
    /// Undoes one abandoned entry; `Ok` deletes it, an error keeps it for the
    /// next tick.
    pub handler: Callback<(Request, wal::WalEntry), ()>,
}

/// Work an engine wants done now and then (tidying, rotation). The server
/// calls every mount about once a minute (the rollback tick); a task runs on
/// the first tick at least `every` after its previous run, never twice at
/// once, and after the WAL rollback (which a slow task must not hold up:
/// the server gives the whole tick 90 s).
pub struct PeriodicTask {
    /// Names the task in log lines.
    pub name: &'static str,
    /// The least time between two runs (a run needs a tick, so at best
    /// about a minute).
    pub every: Duration,
    /// Skip on nodes whose storage is read-only (standbys): the task writes.
    pub active_node_only: bool,
    /// Also run while the mount is tainted: on the server's last tick
    /// before it disables or moves the mount, and on every tick after a
    /// disable that failed (the mount stays, tainted, until one succeeds).
    /// Only for tasks that finish what the server already asked for, as the
    /// WAL rollback does; new work then would only leave things behind.
    pub on_tainted_mount: bool,
    /// Runs the task with the rollback request (the mount's storage and
    /// system view, no body). Errors are logged; the task runs again later.
    pub handler: Callback<Request, ()>,
}

impl PeriodicTask {
    /// A task that writes (tidying, rotation): offered every tick, run on
    /// the active node only. The task itself decides whether work is due,
    /// from what it keeps in storage, so every node agrees after a failover.
    pub fn on_each_tick(name: &'static str, handler: Callback<Request, ()>) -> Self {
        PeriodicTask {
            name,
            every: Duration::ZERO,
            active_node_only: true,
            on_tainted_mount: false,
            handler,
        }
    }

    /// Also runs while the mount is tainted (see
    /// [`PeriodicTask::on_tainted_mount`]).
    pub fn also_on_tainted_mount(mut self) -> Self {
        self.on_tainted_mount = true;
        self
    }

    /// Runs at most once per `every` (per process: a restart runs it on its
    /// first tick).
    pub fn at_most_every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }
}

/// Paths with special treatment by the host.
#[derive(Debug, Clone, Default)]
pub struct SpecialPaths {
    /// Paths that need a root token or `sudo` capability (`*` suffix: a prefix).
    pub root: Vec<String>,
    /// Paths reachable without a token.
    pub unauthenticated: Vec<String>,
    /// Storage prefixes kept out of replication: each cluster has its own.
    pub local_storage: Vec<String>,
    /// Storage prefixes the server encrypts again with its seal, where the
    /// seal supports it.
    pub seal_wrap_storage: Vec<String>,
}

/// Everything one mount of an engine is.
pub struct Backend {
    /// Overview shown by `path-help <mount>`.
    pub help: &'static str,
    /// Title of the OpenAPI document (see [`Backend::named`]).
    pub title: &'static str,
    /// Version in the OpenAPI document's `info`.
    pub version: &'static str,
    /// What the OpenAPI operation ids start with (see
    /// [`Backend::operation_prefix`]); empty: the server's choice.
    pub operation_prefix: &'static str,
    /// Tried in order: the first matching pattern serves a request.
    pub paths: Vec<Path>,
    /// The secret types whose leases this mount renews and revokes.
    pub secrets: Vec<SecretType>,
    /// Told to the server once, when the mount is set up.
    pub special_paths: SpecialPaths,
    /// Undoes abandoned WAL entries on the rollback tick; `None`: entries
    /// are left alone.
    pub wal_rollback: Option<WalRollback>,
    /// Called when a storage key changed under us (another node wrote it).
    pub invalidate: Option<KeyHook>,
    /// Called before the mount goes away (unmount, reload, seal). The
    /// server does not say which: a mount it disables, moves or seals (a
    /// namespace seal) is tainted alike, and one whose disable failed stays
    /// tainted through later reloads, so nothing here may destroy what the
    /// mount still needs.
    pub cleanup: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Set by a factory that found mount options it cannot use (the text
    /// names them) and fell back to its defaults. A new mount is refused
    /// with it (the `secrets enable` answers 400). A mount that already
    /// holds data starts anyway, logs it and adds it as a warning to every
    /// answer: the server accepts a `secrets tune -options=...` without
    /// asking the plugin, and the next reload or restart must not leave a
    /// working mount unable to renew or revoke its leases.
    pub unusable_options: Option<String>,
    periodic: Vec<(PeriodicTask, Mutex<Option<SystemTime>>)>,
    rollback_running: Mutex<()>,
}

impl Backend {
    /// An empty backend; `help` is the overview shown by `path-help <mount>`.
    pub fn new(help: &'static str) -> Self {
        Self {
            help,
            title: "plugin",
            version: "",
            operation_prefix: "",
            paths: Vec::new(),
            secrets: Vec::new(),
            special_paths: SpecialPaths::default(),
            wal_rollback: None,
            invalidate: None,
            cleanup: None,
            unusable_options: None,
            periodic: Vec::new(),
            rollback_running: Mutex::new(()),
        }
    }

    /// Adds a task to the rollback tick (see [`PeriodicTask`]).
    pub fn periodic(mut self, task: PeriodicTask) -> Self {
        self.periodic.push((task, Mutex::new(None)));
        self
    }

    /// Names the engine in its OpenAPI document.
    pub fn named(mut self, title: &'static str, version: &'static str) -> Self {
        self.title = title;
        self.version = version;
        self
    }

    /// Starts every OpenAPI operation id with `prefix` (`<prefix>-read-config`;
    /// Go's `OperationPrefix`), so generated clients name the engine's calls
    /// apart from other engines'. Without it, ids that name no verb of their
    /// own start with the plugin name the server sends.
    pub fn operation_prefix(mut self, prefix: &'static str) -> Self {
        self.operation_prefix = prefix;
        self
    }

    /// Adds a path, tried after the ones added before it.
    pub fn path(mut self, path: Path) -> Self {
        self.paths.push(path);
        self
    }

    /// Adds a secret type, so its leases can be renewed and revoked.
    pub fn secret(mut self, secret: SecretType) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Answers one request from the host. `Ok(None)` is "no response"
    /// (a 404 for reads, 204 for writes).
    pub async fn handle(&self, req: Request) -> Result<Option<Response>> {
        match req.operation {
            Operation::ResolvePath => Ok(None),
            Operation::Help => self.help_response(&req).map(Some),
            Operation::Renew | Operation::Revoke => self.handle_secret(req).await,
            // Boxed: the tick's future is the largest, and every request's
            // future would otherwise be as large while it waits.
            Operation::Rollback => Box::pin(self.tick(req)).await,
            _ => {
                let answer = self.route(req).await?;
                Ok(match &self.unusable_options {
                    Some(problem) => Some(answer.unwrap_or_default().warn(format!(
                        "{problem}; this mount runs on the defaults until `secrets tune -options` \
                         fixes it and the plugin is reloaded"
                    ))),
                    None => answer,
                })
            }
        }
    }

    /// The server's periodic tick: the WAL rollback, then periodic tasks.
    async fn tick(&self, req: Request) -> Result<Option<Response>> {
        // A standby's storage is read-only and may lag the active node's:
        // undoing a WAL entry from it could delete a key whose issue
        // finished on the active node. Only the active node rolls back (and
        // runs the tasks that write); on a performance secondary (Vault
        // Enterprise) that is the primary's, unless the mount is local.
        let standby = match replica(&req).await {
            Ok(replica) => replica,
            Err(e) => {
                tracing::warn!(error = %e, "rollback tick: cannot read the replication state; skipped");
                return Ok(None);
            }
        };
        // The rollback first: the server gives the whole tick 90 s, and a
        // slow task must not keep abandoned WAL entries from being undone.
        if !standby {
            self.rollback(req.clone()).await;
        }
        self.run_periodic(&req, standby).await;
        Ok(None)
    }

    /// `(check_found, exists)` for a write to `req.path`: whether the path
    /// has an existence check, and its answer. The server asks before every
    /// write to tell create (policy capability `create`) from update.
    pub async fn existence_check(&self, mut req: Request) -> Result<(bool, bool)> {
        let Some((path, captures)) = self.find(&req.path) else {
            return Ok((false, false));
        };
        let Some(check) = &path.existence_check else {
            return Ok((false, false));
        };
        req.fields = FieldData::parse(&path.fields, &captures, &Map::new())?;
        Ok((true, check(req).await?))
    }

    /// Tells the engine (its [`Backend::invalidate`] hook) that another node
    /// changed `key`: drop anything cached from it.
    pub fn invalidate_key(&self, key: &str) {
        if let Some(f) = &self.invalidate {
            f(key);
        }
    }

    /// Runs the [`Backend::cleanup`] hook: the mount is going away.
    pub fn clean_up(&self) {
        if let Some(f) = &self.cleanup {
            f();
        }
    }

    fn find(&self, request_path: &str) -> Option<(&Path, Vec<(&'static str, String)>)> {
        self.paths
            .iter()
            .find_map(|p| p.matches(request_path).map(|c| (p, c)))
    }

    async fn route(&self, mut req: Request) -> Result<Option<Response>> {
        let (path, captures) = self.find(&req.path).ok_or(Error::UnsupportedPath)?;
        // Without an existence check the host sends every write as update;
        // with one, a create may fall back to the update handler (and its
        // properties).
        let mut op = req.operation.clone();
        if op == Operation::Create && path.handler(&op).is_none() {
            op = Operation::Update;
        }
        let handler = path.handler(&op).ok_or(Error::UnsupportedOperation)?;
        let properties = path.operation_properties(&op);
        if properties.forwards() && must_forward(properties, &req).await? {
            // The server forwards on this error's text: see `must_forward`.
            return Err(Error::ReadOnly);
        }
        req.fields = if op == Operation::Patch {
            FieldData::parse_patch(&path.fields, &captures, &req.data)?
        } else {
            FieldData::parse(&path.fields, &captures, &req.data)?
        };
        handler(req).await
    }

    async fn handle_secret(&self, req: Request) -> Result<Option<Response>> {
        let secret = req
            .secret
            .as_ref()
            .ok_or_else(|| Error::invalid(format!("{} request without a secret", req.operation)))?;
        let name = secret
            .secret_type()
            .ok_or_else(|| Error::Internal("lease has no secret_type".into()))?;
        let kind = self
            .secrets
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::Internal(format!("unknown secret type {name:?}")))?;
        if req.operation == Operation::Renew {
            (kind.renew)(req).await
        } else {
            (kind.revoke)(req).await
        }
    }

    /// Runs the periodic tasks that are due. Never fails: problems are
    /// logged and the task runs again on a later tick.
    async fn run_periodic(&self, req: &Request, standby: bool) {
        if self.periodic.is_empty() {
            return;
        }
        // The server's last tick for a mount it disables, moves or seals
        // (a namespace seal) comes with the mount tainted: new work then
        // (a rotation nobody will read) only leaves things behind. The WAL
        // rollback still runs, and so do tasks that finish what was cut
        // short.
        let tainted = match req.system.tainted().await {
            Ok(tainted) => tainted,
            Err(e) => {
                tracing::warn!(error = %e, "periodic: cannot tell whether the mount is tainted; only tasks that may run on a tainted mount run");
                true
            }
        };
        if tainted {
            tracing::debug!(
                "periodic: the mount is tainted (going away or moving); new work skipped"
            );
        }
        for (task, last_run) in &self.periodic {
            if (task.active_node_only && standby) || (tainted && !task.on_tainted_mount) {
                continue;
            }
            // Held for the whole run: a slow task is not started twice.
            let Ok(mut last_run) = last_run.try_lock() else {
                continue;
            };
            let now = SystemTime::now();
            let due =
                last_run.is_none_or(|t| now.duration_since(t).unwrap_or_default() >= task.every);
            if !due {
                continue;
            }
            *last_run = Some(now);
            if let Err(e) = (task.handler)(req.clone()).await {
                tracing::warn!(task = task.name, error = %e, "periodic task failed; it runs again later");
            }
        }
    }

    /// Replays WAL entries old enough to be abandoned. Never fails: problems
    /// are logged and the entry is retried on the next tick (every minute).
    async fn rollback(&self, req: Request) {
        let Some(rollback) = &self.wal_rollback else {
            return;
        };
        // Ticks can overlap when an upstream service is slow; one pass at a time.
        let Ok(_running) = self.rollback_running.try_lock() else {
            return;
        };
        let ids = match wal::list(req.storage.as_ref()).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "rollback: cannot list WAL entries");
                return;
            }
        };
        let now = SystemTime::now();
        for id in ids {
            let entry = match wal::get(req.storage.as_ref(), &id).await {
                Ok(Some(entry)) => entry,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(wal_id = %id, error = %e, "rollback: cannot read WAL entry");
                    continue;
                }
            };
            let age = entry.age(now);
            if age < rollback.min_age || entry.is_held(now) {
                continue;
            }
            let past_give_up = entry
                .is_past_give_up(now)
                .unwrap_or(age >= rollback.max_age);
            let kind = entry.kind.clone();
            match (rollback.handler)((req.clone(), entry)).await {
                Ok(()) => {
                    tracing::info!(wal_id = %id, kind = %kind, age_s = age.as_secs(), "rolled back abandoned operation");
                    if let Err(e) = wal::delete(req.storage.as_ref(), &id).await {
                        tracing::warn!(wal_id = %id, error = %e, "rollback: cannot delete WAL entry");
                    }
                }
                Err(e) if past_give_up => {
                    tracing::error!(wal_id = %id, kind = %kind, error = %e, "rollback keeps failing; giving up on this WAL entry");
                    let _ = wal::delete(req.storage.as_ref(), &id).await;
                }
                Err(e) => {
                    tracing::warn!(wal_id = %id, kind = %kind, error = %e, "rollback failed; will retry");
                }
            }
        }
    }

    fn help_response(&self, req: &Request) -> Result<Response> {
        let prefix = openapi::IdPrefix {
            engine: self.operation_prefix,
            // The server's `sys/internal/specs/openapi` sends the plugin's name.
            server: req
                .data
                .get("requestResponsePrefix")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        };
        let (text, doc) = if req.path.trim_matches('/').is_empty() {
            (
                self.root_help(),
                openapi::document(
                    self.title,
                    self.version,
                    self.help,
                    prefix,
                    self.paths.iter(),
                ),
            )
        } else {
            let (path, _) = self.find(&req.path).ok_or(Error::UnsupportedPath)?;
            (
                path_help(path),
                openapi::document(
                    self.title,
                    self.version,
                    path.synopsis,
                    prefix,
                    std::iter::once(path),
                ),
            )
        };
        let mut data = Map::new();
        data.insert("help".into(), Value::String(text));
        data.insert("see_also".into(), Value::Null);
        data.insert("openapi".into(), doc);
        Ok(Response::with_data(data))
    }

    fn root_help(&self) -> String {
        let mut text = format!("{}\n\n## PATHS\n", self.help.trim());
        for p in &self.paths {
            text.push_str(&format!("\n    {}\n        {}\n", p.pattern, p.synopsis));
        }
        text
    }
}

/// `path-help <path>`: synopsis, description and the fields, laid out as
/// the servers' own engines show them.
fn path_help(path: &Path) -> String {
    let mut text = format!("{}\n\n{}", path.synopsis.trim(), path.description.trim());
    if !path.fields.is_empty() {
        text.push_str("\n\n## PARAMETERS\n");
        for f in &path.fields {
            let (ty, format) = f.ty.openapi();
            let default = f
                .default
                .as_ref()
                .map(|d| format!(" (default: {d})"))
                .unwrap_or_default();
            text.push_str(&format!(
                "\n    {} ({}){}\n\n        {}\n",
                f.name,
                format.unwrap_or(ty),
                default,
                f.description
            ));
        }
    }
    text
}

/// Whether this node's copy of the mount's storage is a read-only replica:
/// a performance standby's, or a performance secondary's for a mount that
/// is not local.
async fn replica(req: &Request) -> Result<bool> {
    let state = req.system.replication_state().await?;
    if state & PERFORMANCE_STANDBY != 0 {
        return Ok(true);
    }
    if state & PERFORMANCE_SECONDARY != 0 {
        return Ok(!req.system.local_mount().await?);
    }
    Ok(false)
}

/// Whether `req` must not run on this node (see
/// [`OperationProperties::forward_performance_standby`]).
///
/// The answer is [`Error::ReadOnly`], before the body is validated and
/// before the handler runs, as the Go SDK answers `logical.ErrReadOnly`.
/// The runtime sends it as a `ProtoError` of type unknown with the text
/// `cannot write to readonly storage` (`runtime::translate::error_to_wire`);
/// the server recognises that text and, on a performance standby, forwards
/// the request to the active node (on a performance secondary, to the
/// primary) instead of answering it. A client never sees it unless
/// forwarding fails.
async fn must_forward(properties: &OperationProperties, req: &Request) -> Result<bool> {
    let state = req.system.replication_state().await?;
    if properties.forward_performance_standby && state & PERFORMANCE_STANDBY != 0 {
        return Ok(true);
    }
    if properties.forward_performance_secondary && state & PERFORMANCE_SECONDARY != 0 {
        // A local mount's data lives on the secondary: run it here.
        return Ok(!req.system.local_mount().await?);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::framework::field::{Field, FieldType};
    use crate::framework::lease::Secret;
    use crate::framework::path::callback;
    use crate::framework::storage::{MemoryStorage, StaticSystemView, Storage, SystemView};

    struct State {
        revoked: AtomicUsize,
        rolled_back: AtomicUsize,
    }

    async fn echo(_: Arc<State>, req: Request) -> Result<Option<Response>> {
        let mut data = Map::new();
        data.insert("name".into(), json!(req.fields.str("name")));
        data.insert("n".into(), json!(req.fields.int("n")));
        data.insert("op".into(), json!(req.operation.as_str()));
        Ok(Some(Response::with_data(data)))
    }

    async fn revoke(state: Arc<State>, _: Request) -> Result<Option<Response>> {
        state.revoked.fetch_add(1, Ordering::SeqCst);
        Ok(None)
    }

    async fn exists(_: Arc<State>, req: Request) -> Result<bool> {
        Ok(req.fields.str("name") == Some("old"))
    }

    async fn undo(state: Arc<State>, (_, entry): (Request, wal::WalEntry)) -> Result<()> {
        if entry.data["fail"] == json!(true) {
            return Err(Error::coded(502, "upstream down"));
        }
        state.rolled_back.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn backend(state: &Arc<State>, min_age: Duration) -> Backend {
        let mut b = Backend::new("Test engine.")
            .path(
                Path::new("things/{name}")
                    .field(Field::new("n", FieldType::Int, "a number"))
                    .on(Operation::Read, callback(state, echo))
                    .on(Operation::Update, callback(state, echo))
                    .exists(callback(state, exists))
                    .help("A thing.", "Things are things."),
            )
            .secret(SecretType {
                name: "thing",
                renew: callback(state, echo),
                revoke: callback(state, revoke),
            });
        b.wal_rollback = Some(WalRollback {
            min_age,
            max_age: Duration::from_secs(3600),
            handler: callback(state, undo),
        });
        b
    }

    fn state() -> Arc<State> {
        Arc::new(State {
            revoked: AtomicUsize::new(0),
            rolled_back: AtomicUsize::new(0),
        })
    }

    /// The state, [`backend`] with `min_age` and an empty storage.
    fn fixture(min_age: Duration) -> (Arc<State>, Backend, Arc<MemoryStorage>) {
        let st = state();
        let b = backend(&st, min_age);
        (st, b, Arc::new(MemoryStorage::default()))
    }

    /// One rollback tick on the active node.
    async fn rollback(b: &Backend, s: &Arc<MemoryStorage>) {
        b.handle(request(Operation::Rollback, "", s)).await.unwrap();
    }

    /// One rollback tick on a node the system view describes.
    async fn tick_on(b: &Backend, s: &Arc<MemoryStorage>, node: StaticSystemView) {
        let storage: Arc<dyn Storage> = s.clone();
        let system: Arc<dyn SystemView> = Arc::new(node);
        b.handle(Request::new(Operation::Rollback, "", storage, system))
            .await
            .unwrap();
    }

    /// A performance standby's system view.
    fn standby() -> StaticSystemView {
        StaticSystemView {
            replication_state: crate::framework::storage::PERFORMANCE_STANDBY,
            ..StaticSystemView::default()
        }
    }

    /// The help of `path`, which must answer.
    async fn help(b: &Backend, s: &Arc<MemoryStorage>, path: &str) -> Response {
        b.handle(request(Operation::Help, path, s))
            .await
            .unwrap()
            .unwrap()
    }

    fn help_text(resp: &Response) -> &str {
        resp.data["help"].as_str().unwrap()
    }

    /// A rollback tick with `min_age` leaves an entry put with `schedule` alone.
    async fn assert_rollback_holds(min_age: Duration, schedule: wal::Schedule) {
        let (st, b, s) = fixture(min_age);
        wal::put(s.as_ref(), "k", json!({}), schedule)
            .await
            .unwrap();
        rollback(&b, &s).await;
        assert_eq!(st.rolled_back.load(Ordering::SeqCst), 0);
        assert_eq!(wal::list(s.as_ref()).await.unwrap().len(), 1);
    }

    fn request(op: Operation, path: &str, storage: &Arc<MemoryStorage>) -> Request {
        let storage: Arc<dyn Storage> = storage.clone();
        let system: Arc<dyn SystemView> = Arc::new(StaticSystemView::default());
        Request::new(op, path, storage, system)
    }

    #[tokio::test]
    async fn routes_and_validates() {
        let (_st, b, s) = fixture(Duration::ZERO);
        let resp = b
            .handle(request(Operation::Read, "things/a", &s))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.data["name"], "a");
        // create falls back to the update handler
        let resp = b
            .handle(request(Operation::Create, "things/a", &s).with_data(json!({"n": "5"})))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.data["n"], 5);
        let err = b
            .handle(request(Operation::Update, "things/a", &s).with_data(json!({"x": 1})))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400);
        let err = b
            .handle(request(Operation::Delete, "things/a", &s))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 405);
        let err = b
            .handle(request(Operation::Read, "nothing/a", &s))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 404);
        let err = b
            .handle(request(Operation::Other("scan".into()), "things/a", &s))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 405);
        assert!(b
            .handle(request(Operation::ResolvePath, "things/a", &s))
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn existence_checks() {
        let (_st, b, s) = fixture(Duration::ZERO);
        assert_eq!(
            b.existence_check(request(Operation::Update, "things/old", &s))
                .await
                .unwrap(),
            (true, true)
        );
        assert_eq!(
            b.existence_check(request(Operation::Update, "things/new", &s))
                .await
                .unwrap(),
            (true, false)
        );
        assert_eq!(
            b.existence_check(request(Operation::Update, "other", &s))
                .await
                .unwrap(),
            (false, false)
        );
    }

    #[tokio::test]
    async fn dispatches_secrets_by_type() {
        let (st, b, s) = fixture(Duration::ZERO);
        let mut req = request(Operation::Revoke, "creds/x", &s);
        req.secret = Some(Secret::new(
            "thing",
            Map::new(),
            Duration::from_secs(1),
            Duration::ZERO,
        ));
        assert!(b.handle(req.clone()).await.unwrap().is_none());
        assert_eq!(st.revoked.load(Ordering::SeqCst), 1);
        req.secret = Some(Secret::new(
            "other",
            Map::new(),
            Duration::from_secs(1),
            Duration::ZERO,
        ));
        assert_eq!(b.handle(req).await.unwrap_err().status(), 500);
    }

    #[tokio::test]
    async fn rollback_replays_old_entries_and_keeps_failures() {
        let (st, b, s) = fixture(Duration::ZERO);
        wal::put(
            s.as_ref(),
            "k",
            json!({"fail": false}),
            wal::Schedule::default(),
        )
        .await
        .unwrap();
        let failing = wal::put(
            s.as_ref(),
            "k",
            json!({"fail": true}),
            wal::Schedule::default(),
        )
        .await
        .unwrap();
        rollback(&b, &s).await;
        assert_eq!(st.rolled_back.load(Ordering::SeqCst), 1);
        assert_eq!(wal::list(s.as_ref()).await.unwrap(), vec![failing]);
    }

    #[tokio::test]
    async fn only_the_active_node_rolls_back() {
        let (st, b, s) = fixture(Duration::ZERO);
        wal::put(s.as_ref(), "k", json!({}), wal::Schedule::default())
            .await
            .unwrap();
        // A standby's storage may lag: its copy of an entry may name a key
        // whose issue finished on the active node.
        tick_on(&b, &s, standby()).await;
        assert_eq!(st.rolled_back.load(Ordering::SeqCst), 0);
        // A performance secondary's copy of a shared mount is the primary's.
        let secondary = StaticSystemView {
            replication_state: crate::framework::storage::PERFORMANCE_SECONDARY,
            ..StaticSystemView::default()
        };
        tick_on(&b, &s, secondary.clone()).await;
        assert_eq!(st.rolled_back.load(Ordering::SeqCst), 0);
        assert_eq!(wal::list(s.as_ref()).await.unwrap().len(), 1);
        // A local mount's storage is the secondary's own.
        let local = StaticSystemView {
            local_mount: true,
            ..secondary
        };
        tick_on(&b, &s, local).await;
        assert_eq!(st.rolled_back.load(Ordering::SeqCst), 1);
        assert!(wal::list(s.as_ref()).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn rollback_skips_young_entries() {
        assert_rollback_holds(Duration::from_secs(600), wal::Schedule::default()).await;
    }

    #[tokio::test]
    async fn periodic_tasks_run_when_due_and_not_on_standbys_or_tainted_mounts() {
        let st = state();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let task = |every: Duration| {
            PeriodicTask::on_each_tick(
                "count",
                callback(
                    &counted,
                    |runs: Arc<AtomicUsize>, _req: Request| async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    },
                ),
            )
            .at_most_every(every)
        };
        let b = backend(&st, Duration::ZERO)
            .periodic(task(Duration::ZERO))
            .periodic(task(Duration::from_secs(3600)));
        let s = Arc::new(MemoryStorage::default());
        for _ in 0..3 {
            rollback(&b, &s).await;
        }
        // The first task on every tick, the hourly one once.
        assert_eq!(runs.load(Ordering::SeqCst), 4);

        tick_on(&b, &s, standby()).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4, "skipped on a standby");
        let tainted = StaticSystemView {
            tainted: true,
            ..StaticSystemView::default()
        };
        tick_on(&b, &s, tainted.clone()).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4, "skipped on a tainted mount");

        // A task that finishes what the server asked for runs there too.
        let b = b.periodic(task(Duration::ZERO).also_on_tainted_mount());
        tick_on(&b, &s, tainted).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            5,
            "finishing work runs on a tainted mount"
        );
        tick_on(&b, &s, standby()).await;
        assert_eq!(runs.load(Ordering::SeqCst), 5, "but not on a standby");
    }

    #[tokio::test]
    async fn rollback_respects_an_entrys_own_hold() {
        let schedule = wal::Schedule {
            hold_for: Duration::from_secs(300),
            give_up_after: None,
        };
        assert_rollback_holds(Duration::ZERO, schedule).await;
    }

    #[tokio::test]
    async fn root_help_has_openapi() {
        let (_st, b, s) = fixture(Duration::ZERO);
        let resp = help(&b, &s, "").await;
        assert!(help_text(&resp).contains("things/{name}"));
        let doc = &resp.data["openapi"];
        assert_eq!(doc["openapi"], "3.0.2");
        assert!(doc["paths"]["/things/{name}"]["get"].is_object());
        assert!(doc["paths"]["/things/{name}"]["post"].is_object());
        let resp = help(&b, &s, "things/x").await;
        assert!(help_text(&resp).contains("Things are things."));
        assert!(
            help_text(&resp).contains("## PARAMETERS\n")
                && help_text(&resp).contains("\n    n (integer)\n\n        a number\n"),
            "{}",
            help_text(&resp)
        );
    }

    /// A backend whose `jobs/{name}` read runs anywhere and whose update
    /// must run on the active node (and the primary), counting handler calls.
    fn forwarding_backend(calls: &Arc<AtomicUsize>) -> Backend {
        async fn count(calls: Arc<AtomicUsize>, _: Request) -> Result<Option<Response>> {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        }
        Backend::new("Jobs.").path(
            Path::new("jobs/{name}")
                .field(Field::new("n", FieldType::Int, "a number"))
                .on(Operation::Read, callback(calls, count))
                .on_with(
                    Operation::Update,
                    callback(calls, count),
                    OperationProperties::new()
                        .forward_performance_standby()
                        .forward_performance_secondary()
                        .summary("Start a job.")
                        .description("Starts the job on the active node.")
                        .operation_verb("start")
                        .operation_suffix("job"),
                )
                .help("A job.", "Jobs run."),
        )
    }

    /// `req` must be refused as read-only (the server then forwards it); returns the error.
    async fn assert_read_only(b: &Backend, req: Request) -> Error {
        let err = b.handle(req).await.unwrap_err();
        assert!(matches!(err, Error::ReadOnly), "{err:?}");
        err
    }

    fn on_node(op: Operation, system: StaticSystemView) -> Request {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
        Request::new(op, "jobs/a", storage, Arc::new(system))
    }

    #[tokio::test]
    async fn forwarded_operations_answer_read_only_on_a_performance_standby() {
        let calls = Arc::new(AtomicUsize::new(0));
        let b = forwarding_backend(&calls);
        let standby = StaticSystemView {
            replication_state: crate::framework::storage::PERFORMANCE_STANDBY,
            ..StaticSystemView::default()
        };
        // An invalid body too: forwarding comes before validation, so the
        // active node is the one that refuses it.
        let err = assert_read_only(
            &b,
            on_node(Operation::Update, standby.clone()).with_data(json!({"n": "x"})),
        )
        .await;
        assert!(err.to_string().contains("cannot write to readonly storage"));
        // A create without its own handler falls back to update's, and to
        // update's properties.
        assert_read_only(&b, on_node(Operation::Create, standby.clone())).await;
        assert_eq!(calls.load(Ordering::SeqCst), 0, "handler not called");

        // Not forwarded: the read runs on the standby.
        assert!(b
            .handle(on_node(Operation::Read, standby))
            .await
            .unwrap()
            .is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The active node runs the update.
        b.handle(on_node(Operation::Update, StaticSystemView::default()))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn forwarded_operations_on_a_performance_secondary_unless_the_mount_is_local() {
        let calls = Arc::new(AtomicUsize::new(0));
        let b = forwarding_backend(&calls);
        let secondary = StaticSystemView {
            replication_state: crate::framework::storage::PERFORMANCE_SECONDARY,
            ..StaticSystemView::default()
        };
        assert_read_only(&b, on_node(Operation::Update, secondary.clone())).await;
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        let local = StaticSystemView {
            local_mount: true,
            ..secondary
        };
        b.handle(on_node(Operation::Update, local)).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn openapi_carries_operation_properties() {
        let calls = Arc::new(AtomicUsize::new(0));
        let b = forwarding_backend(&calls);
        let resp = b
            .handle(on_node(Operation::Help, StaticSystemView::default()))
            .await
            .unwrap()
            .unwrap();
        let item = &resp.data["openapi"]["paths"]["/jobs/{name}"];
        assert_eq!(item["post"]["summary"], "Start a job.");
        assert_eq!(
            item["post"]["description"],
            "Starts the job on the active node."
        );
        assert_eq!(item["post"]["operationId"], "start-job");
        // Without properties: the path's help text and the default id.
        assert_eq!(item["get"]["summary"], "A job.");
        assert_eq!(item["get"]["description"], "Jobs run.");
        assert_eq!(item["get"]["operationId"], "read-jobs-name");
    }
}
