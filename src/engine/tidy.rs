//! `tidy`, `tidy-status` and `config/auto-tidy`: deleting what leases
//! cannot, modelled on the PKI engine's tidy.
//!
//! * `tidy_orphans`: keys in LiteLLM carrying this mount's id that have no
//!   inventory record and no WAL entry (nobody is minting them) and were
//!   created more than `safety_buffer` ago: a restored LiteLLM database, a
//!   key made by hand with the mark, a record lost with a crash of the server.
//! * `tidy_expired`: records whose lease ended more than `safety_buffer` ago
//!   (expired, or revoked with a revoke that failed until the server gave
//!   up): the key is deleted if it still exists, then the record.
//!
//! Keys without this mount's id (another mount's, a hand-made key without
//! the mark) are never deleted. One tidy runs at a time per mount.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::clock::{self, parse_time, rfc3339};
use super::inventory::{self, KeyRecord, MOUNT_ID_METADATA};
use super::keys::client_for;
use super::Engine;
use super::{proxy, static_roles};
use crate::framework::storage::{get_json, put_json};
use crate::framework::{
    callback, Error, Field, FieldType, Operation, OperationProperties, Path, PeriodicTask, Request,
    Response, Result, Storage,
};
use crate::litellm::{Client, PAGE_SIZE};

const STATUS_KEY: &str = "inventory/tidy_status";
const AUTO_KEY: &str = "auto_tidy";
const DEFAULT_BUFFER: Duration = Duration::from_secs(72 * 3600);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(12 * 3600);
/// A record's lease end is computed when the engine calls LiteLLM; the
/// server starts (or renews) the lease only once the engine answers, up to
/// a request timeout (at most 300 s) later. Tidy counts the buffer from the
/// recorded expiry plus this, so that even a zero buffer never reaches a
/// lease that is still live (a failed revoke counts from its failure).
const LEASE_START_LAG: u64 = 600;
/// Reports list at most this many aliases per kind (the counts are exact).
const LISTED: usize = 1000;
/// A manual tidy that takes longer goes on in the background (the server
/// and clients time requests out); its report lands at `tidy-status`.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// What one tidy does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct TidyOptions {
    pub dry_run: bool,
    pub safety_buffer: Duration,
    pub tidy_orphans: bool,
    pub tidy_expired: bool,
}

/// What one tidy did; the last one is kept for `tidy-status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(super) struct TidyReport {
    pub trigger: String,
    pub dry_run: bool,
    pub safety_buffer: u64,
    pub tidy_orphans: bool,
    pub tidy_expired: bool,
    pub started_at: u64,
    pub finished_at: u64,
    /// Keys in LiteLLM carrying this mount's id.
    pub marked_keys_checked: usize,
    pub records_checked: usize,
    pub orphans_found: usize,
    pub orphans_deleted: usize,
    pub expired_found: usize,
    pub expired_keys_deleted: usize,
    pub records_deleted: usize,
    pub orphans: Vec<String>,
    pub expired: Vec<String>,
    pub errors: Vec<String>,
}

impl TidyReport {
    fn to_data(&self) -> Map<String, Value> {
        let mut data = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        data.insert("started_at".into(), rfc3339(self.started_at).into());
        data.insert("finished_at".into(), rfc3339(self.finished_at).into());
        data
    }
}

/// `config/auto-tidy`, stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct AutoTidy {
    pub enabled: bool,
    pub interval: u64,
    pub safety_buffer: u64,
    pub tidy_orphans: bool,
    pub tidy_expired: bool,
}

impl Default for AutoTidy {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: DEFAULT_INTERVAL.as_secs(),
            safety_buffer: DEFAULT_BUFFER.as_secs(),
            tidy_orphans: true,
            tidy_expired: true,
        }
    }
}

fn option_fields(path: Path) -> Path {
    path.field(Field::new(
        "safety_buffer",
        FieldType::Duration,
        "Leave keys alone until this long after they were created (orphans) or their lease \
         ended (expired). Default 72h.",
    ))
    .field(Field::new(
        "tidy_orphans",
        FieldType::Bool,
        "Delete keys carrying this mount's id that it has no record of. Default true.",
    ))
    .field(Field::new(
        "tidy_expired",
        FieldType::Bool,
        "Delete the keys (and records) of leases that ended. Default true.",
    ))
}

pub(super) fn path(engine: &Arc<Engine>) -> Path {
    option_fields(Path::new("tidy"))
        .field(
            Field::new(
                "dry_run",
                FieldType::Bool,
                "Only report what would be deleted.",
            )
            .default_value(false),
        )
        // Tidy deletes keys in LiteLLM before it writes storage: on a
        // performance standby it must go to the active node, not fail half-way.
        .on_with(
            Operation::Update,
            callback(engine, tidy),
            OperationProperties::new()
                .forward_performance_standby()
                .summary("Delete orphaned and expired keys of this mount.")
                .operation_verb("tidy"),
        )
        .help(
            "Delete the keys leases cannot: orphans, and keys of leases that ended.",
            "Answers with its report (also kept at tidy-status), or with state=running when it \
             takes longer than 30s and carries on in the background. Keys without this mount's \
             id are never touched. dry_run=true only reports.",
        )
}

pub(super) fn status_path(engine: &Arc<Engine>) -> Path {
    Path::new("tidy-status")
        .on(Operation::Read, callback(engine, status))
        .help(
            "The last tidy's report.",
            "Counts, the aliases found and the errors of the last tidy, and whether one runs now.",
        )
}

pub(super) fn auto_path(engine: &Arc<Engine>) -> Path {
    option_fields(Path::new("config/auto-tidy"))
        .field(Field::new(
            "enabled",
            FieldType::Bool,
            "Run tidy by itself every interval (on the active node).",
        ))
        .field(Field::new(
            "interval",
            FieldType::Duration,
            "Time between automatic tidies. Default 12h; the server's tick (about a minute) \
             is the finest grain.",
        ))
        .on(Operation::Read, callback(engine, read_auto))
        .on_write(callback(engine, write_auto))
        .help(
            "Run tidy automatically.",
            "Writes are partial. The automatic tidy deletes (it is never a dry run).",
        )
}

pub(super) fn auto_tidy_task(engine: &Arc<Engine>) -> PeriodicTask {
    PeriodicTask::on_each_tick("auto-tidy", callback(engine, auto_tidy))
}

/// What a `tidy` or `config/auto-tidy` write gives (each path's schema has
/// its own subset); `None` keeps the base value.
#[derive(Deserialize)]
struct TidyInput {
    dry_run: Option<bool>,
    safety_buffer: Option<Duration>,
    tidy_orphans: Option<bool>,
    tidy_expired: Option<bool>,
    interval: Option<Duration>,
    enabled: Option<bool>,
}

impl TidyInput {
    fn options(&self, base: &AutoTidy) -> TidyOptions {
        TidyOptions {
            dry_run: self.dry_run.unwrap_or(false),
            safety_buffer: self
                .safety_buffer
                .unwrap_or(Duration::from_secs(base.safety_buffer)),
            tidy_orphans: self.tidy_orphans.unwrap_or(base.tidy_orphans),
            tidy_expired: self.tidy_expired.unwrap_or(base.tidy_expired),
        }
    }
}

async fn tidy(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let input: TidyInput = req.fields.decode_given()?;
    let options = input.options(&AutoTidy::default());
    if !options.tidy_orphans && !options.tidy_expired {
        return Err(Error::invalid(
            "fields \"tidy_orphans\" and \"tidy_expired\" are both false: nothing to do",
        ));
    }
    let report = match start(engine, &req, options, "manual")?.await {
        Some(report) => report?,
        None => {
            let mut data = Map::new();
            data.insert("state".into(), "running".into());
            return Ok(Some(
                Response::with_data(data)
                    .warn("tidy is still running; its report will be at tidy-status"),
            ));
        }
    };
    let mut data = report.to_data();
    data.insert("state".into(), "finished".into());
    let mut response = Response::with_data(data);
    if !report.errors.is_empty() {
        response = response.warn(format!(
            "tidy met {} error(s); see errors",
            report.errors.len()
        ));
    }
    Ok(Some(response))
}

/// Starts a tidy in a task of its own (a tidy of a big LiteLLM may outlast
/// the request, or the server's 90 s limit on a periodic tick) and waits
/// [`ANSWER_WITHIN`] for its report: `None` if it is still running then (it
/// carries on; its report, or its failure, lands at `tidy-status`). 409
/// while another tidy runs.
pub(super) fn start(
    engine: Arc<Engine>,
    req: &Request,
    options: TidyOptions,
    trigger: &'static str,
) -> Result<impl std::future::Future<Output = Option<Result<TidyReport>>>> {
    let guard = lock(&engine)?;
    let storage = Arc::clone(&req.storage);
    let mut task = tokio::spawn(async move {
        let _tidying = guard;
        let started_at = clock::unix_now();
        let outcome = run_locked(&engine, storage.as_ref(), options, trigger).await;
        if let Err(e) = &outcome {
            tracing::warn!(trigger, error = %e, "tidy failed");
            // No silent failure for a tidy nobody waits for any more.
            let report = TidyReport {
                trigger: trigger.into(),
                dry_run: options.dry_run,
                safety_buffer: options.safety_buffer.as_secs(),
                tidy_orphans: options.tidy_orphans,
                tidy_expired: options.tidy_expired,
                started_at,
                finished_at: clock::unix_now(),
                errors: vec![format!("tidy stopped: {e}")],
                ..TidyReport::default()
            };
            if let Err(se) = put_json(storage.as_ref(), STATUS_KEY, &report).await {
                tracing::warn!(error = %se, "cannot store the report of a failed tidy");
            }
        }
        outcome
    });
    Ok(async move {
        match tokio::time::timeout(ANSWER_WITHIN, &mut task).await {
            Ok(joined) => Some(
                joined
                    .map_err(|e| Error::Internal(format!("tidy failed: {e}")))
                    .and_then(|outcome| outcome),
            ),
            Err(_) => None,
        }
    })
}

/// The mount's tidy lock, or 409 while another tidy runs.
fn lock(engine: &Engine) -> Result<tokio::sync::OwnedMutexGuard<()>> {
    Arc::clone(&engine.tidying)
        .try_lock_owned()
        .map_err(|_| Error::coded(409, "a tidy is already running on this mount"))
}

async fn status(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let last: Option<TidyReport> = get_json(req.storage.as_ref(), STATUS_KEY).await?;
    let running = engine.tidying.try_lock().is_err();
    let mut data = last.as_ref().map(TidyReport::to_data).unwrap_or_default();
    let state = match (running, &last) {
        (true, _) => "running",
        (false, None) => "never_run",
        (false, Some(r)) if r.errors.is_empty() => "finished",
        (false, Some(_)) => "finished_with_errors",
    };
    data.insert("state".into(), state.into());
    Ok(Some(Response::with_data(data)))
}

async fn load_auto(storage: &dyn Storage) -> Result<AutoTidy> {
    Ok(get_json(storage, AUTO_KEY).await?.unwrap_or_default())
}

async fn read_auto(_: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let c = load_auto(req.storage.as_ref()).await?;
    Ok(Some(Response::from_output(&c)?))
}

async fn write_auto(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let _writing = engine.writes.lock().await;
    let mut c = load_auto(storage).await?;
    let input: TidyInput = req.fields.decode_given()?;
    if let Some(i) = input.interval {
        if i.is_zero() {
            return Err(Error::invalid("field \"interval\" must be at least 1s"));
        }
        c.interval = i.as_secs();
    }
    let options = input.options(&c);
    c.safety_buffer = options.safety_buffer.as_secs();
    c.tidy_orphans = options.tidy_orphans;
    c.tidy_expired = options.tidy_expired;
    c.enabled = input.enabled.unwrap_or(c.enabled);
    if c.enabled && !c.tidy_orphans && !c.tidy_expired {
        return Err(Error::invalid(
            "fields \"tidy_orphans\" and \"tidy_expired\" are both false: auto-tidy would do nothing",
        ));
    }
    put_json(storage, AUTO_KEY, &c).await?;
    Ok(Some(Response::from_output(&c)?))
}

async fn auto_tidy(engine: Arc<Engine>, req: Request) -> Result<()> {
    let storage = req.storage.as_ref();
    let config = load_auto(storage).await?;
    if !config.enabled {
        return Ok(());
    }
    let last: Option<TidyReport> = get_json(storage, STATUS_KEY).await?;
    let now = clock::unix_now();
    let due = last.is_none_or(|r| r.dry_run || r.started_at + config.interval <= now);
    if !due {
        return Ok(());
    }
    let options = TidyOptions {
        dry_run: false,
        safety_buffer: Duration::from_secs(config.safety_buffer),
        tidy_orphans: config.tidy_orphans,
        tidy_expired: config.tidy_expired,
    };
    let running = match start(engine, &req, options, "auto") {
        Ok(running) => running,
        // A manual tidy is running: this tick has nothing to do.
        Err(Error::Coded { status: 409, .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    match running.await {
        Some(Ok(report)) if report.errors.is_empty() => Ok(()),
        Some(Ok(report)) => Err(Error::Internal(format!(
            "auto-tidy: {} error(s), the first: {}",
            report.errors.len(),
            report.errors[0]
        ))),
        Some(Err(e)) => Err(e),
        // Still running: the tick moves on to the other tasks; the report
        // lands at tidy-status.
        None => Ok(()),
    }
}

/// One tidy, the caller holding the lock.
async fn run_locked(
    engine: &Engine,
    storage: &dyn Storage,
    options: TidyOptions,
    trigger: &str,
) -> Result<TidyReport> {
    let mut report = TidyReport {
        trigger: trigger.into(),
        dry_run: options.dry_run,
        safety_buffer: options.safety_buffer.as_secs(),
        tidy_orphans: options.tidy_orphans,
        tidy_expired: options.tidy_expired,
        started_at: clock::unix_now(),
        ..TidyReport::default()
    };
    let buffer = options.safety_buffer.as_secs();
    if options.tidy_orphans {
        if let Some(mount_id) = inventory::mount_id(engine, storage).await? {
            tidy_orphans(
                engine,
                storage,
                &mount_id,
                buffer,
                options.dry_run,
                &mut report,
            )
            .await?;
        }
    }
    if options.tidy_expired {
        tidy_expired(engine, storage, buffer, options.dry_run, &mut report).await?;
    }
    report.finished_at = clock::unix_now();
    put_json(storage, STATUS_KEY, &report).await?;
    tracing::info!(
        trigger,
        dry_run = options.dry_run,
        orphans_found = report.orphans_found,
        orphans_deleted = report.orphans_deleted,
        expired_found = report.expired_found,
        records_deleted = report.records_deleted,
        errors = report.errors.len(),
        "tidy finished"
    );
    Ok(report)
}

fn note(list: &mut Vec<String>, alias: &str) {
    if list.len() < LISTED {
        list.push(alias.to_string());
    }
}

/// Is `key` an orphan: this mount's, unknown to it, not being minted, old?
pub(super) fn is_orphan(
    key: &crate::litellm::KeyView,
    mount_id: &str,
    recorded: &HashSet<String>,
    in_flight: &HashSet<String>,
    cutoff: u64,
) -> bool {
    if key.meta(MOUNT_ID_METADATA) != Some(mount_id) {
        return false;
    }
    if let Some(alias) = key.key_alias.as_deref() {
        if recorded.contains(alias) || in_flight.contains(alias) {
            return false;
        }
    }
    // No creation time: its age is unknown, so it is left alone.
    key.created_at
        .as_deref()
        .and_then(parse_time)
        .is_some_and(|t| t <= cutoff)
}

async fn tidy_orphans(
    engine: &Engine,
    storage: &dyn Storage,
    mount_id: &str,
    buffer: u64,
    dry_run: bool,
    report: &mut TidyReport,
) -> Result<()> {
    // Listing first, then WAL entries, then records: an issue writes its
    // record before deleting its WAL entry, so a key listed here is seen in
    // one or the other unless it is really unknown.
    let mut listed = Vec::new();
    let configured = engine.clients.current(storage).await.is_ok();
    for home in proxy::all_homes(storage).await? {
        if home.is_none() && !configured {
            continue;
        }
        let listing = async {
            let client = engine.clients.for_key(storage, home.as_ref()).await?;
            let keys = client.list_keys(None).await.map_err(Error::from)?;
            Ok::<_, Error>((client, keys.keys))
        }
        .await;
        match listing {
            Ok(found) => listed.push(found),
            Err(e) => report.errors.push(format!(
                "listing the keys on {}: {e}",
                home.as_ref()
                    .map_or("the configured proxy", |h| h.base_url.as_str())
            )),
        }
    }
    let in_flight = inventory::aliases_in_flight(storage).await?;
    let recorded: HashSet<String> = inventory::aliases(storage)
        .await?
        .into_iter()
        .chain(static_roles::known_aliases(storage).await?)
        .collect();
    let cutoff = report.started_at.saturating_sub(buffer);
    // Count and delete each key once (see `KeyView::first_seen`).
    let mut seen = HashSet::new();
    for (client, keys) in listed {
        let mut tokens = Vec::new();
        for key in &keys {
            if !key.first_seen(&mut seen) {
                continue;
            }
            if key.meta(MOUNT_ID_METADATA) == Some(mount_id) {
                report.marked_keys_checked += 1;
            }
            if !is_orphan(key, mount_id, &recorded, &in_flight, cutoff) {
                continue;
            }
            let Some(token) = key.token.clone() else {
                continue;
            };
            report.orphans_found += 1;
            note(
                &mut report.orphans,
                key.key_alias.as_deref().unwrap_or(&token),
            );
            tokens.push(token);
        }
        if !dry_run {
            report.orphans_deleted += delete_batches(&client, &tokens, report).await;
        }
    }
    Ok(())
}

/// Deletes keys by token hash, `PAGE_SIZE` at a time; how many are gone.
async fn delete_batches(client: &Client, tokens: &[String], report: &mut TidyReport) -> usize {
    let mut gone = 0;
    for batch in tokens.chunks(PAGE_SIZE) {
        match client.delete_keys(batch).await {
            Ok(_) => gone += batch.len(),
            Err(e) => report
                .errors
                .push(format!("deleting {} key(s): {e}", batch.len())),
        }
    }
    gone
}

async fn tidy_expired(
    engine: &Engine,
    storage: &dyn Storage,
    buffer: u64,
    dry_run: bool,
    report: &mut TidyReport,
) -> Result<()> {
    let cutoff = report.started_at.saturating_sub(buffer);
    let mut by_proxy: BTreeMap<String, Vec<KeyRecord>> = BTreeMap::new();
    let records = inventory::records(storage, inventory::aliases(storage).await?);
    let mut records = std::pin::pin!(records);
    while let Some(record) = records.try_next().await? {
        report.records_checked += 1;
        if record.ended_at(LEASE_START_LAG) > cutoff {
            continue;
        }
        report.expired_found += 1;
        note(&mut report.expired, &record.alias);
        by_proxy
            .entry(record.proxy_id.clone())
            .or_default()
            .push(record);
    }
    if dry_run {
        return Ok(());
    }
    for records in by_proxy.values() {
        let client = match client_for(engine, storage, &records[0]).await {
            Ok(c) => c,
            Err(e) => {
                report.errors.push(format!(
                    "{} expired key(s) on {}: {e}",
                    records.len(),
                    records[0].proxy_url
                ));
                continue;
            }
        };
        for batch in records.chunks(PAGE_SIZE) {
            let tokens: Vec<String> = batch.iter().map(|r| r.token.clone()).collect();
            if let Err(e) = client.delete_keys(&tokens).await {
                report
                    .errors
                    .push(format!("deleting {} expired key(s): {e}", batch.len()));
                continue;
            }
            report.expired_keys_deleted += batch.len();
            // Only once the key is gone: a record is what lets tidy retry.
            for r in batch {
                match inventory::delete(storage, &r.alias).await {
                    Ok(()) => report.records_deleted += 1,
                    Err(e) => report
                        .errors
                        .push(format!("deleting the record of {}: {e}", r.alias)),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::litellm::KeyView;

    fn key(alias: &str, mount: &str, created: u64) -> KeyView {
        let mut metadata = Map::new();
        metadata.insert(MOUNT_ID_METADATA.into(), mount.into());
        KeyView {
            token: Some(format!("hash-{alias}")),
            key_alias: Some(alias.into()),
            created_at: Some(rfc3339(created)),
            metadata,
            ..KeyView::default()
        }
    }

    #[test]
    fn orphans_are_this_mounts_unknown_idle_old_keys() {
        let recorded: HashSet<String> = ["known".to_string()].into();
        let in_flight: HashSet<String> = ["minting".to_string()].into();
        let cutoff = 1_000;
        let orphan = |k: &KeyView| is_orphan(k, "me", &recorded, &in_flight, cutoff);
        assert!(orphan(&key("lost", "me", 900)));
        assert!(!orphan(&key("lost", "other-mount", 900)), "another mount's");
        assert!(!orphan(&key("known", "me", 900)), "recorded");
        assert!(!orphan(&key("minting", "me", 900)), "being minted");
        assert!(!orphan(&key("young", "me", 1_001)), "inside the buffer");
        let mut unmarked = key("hand-made", "me", 900);
        unmarked.metadata.clear();
        assert!(!orphan(&unmarked), "no mark");
        let mut ageless = key("ageless", "me", 900);
        ageless.created_at = None;
        assert!(!orphan(&ageless), "unknown age");
    }
}
