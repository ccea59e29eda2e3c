//! `rotate-root` and scheduled rotation of the engine's own admin key.
//!
//! LiteLLM cannot change its master key through the API, and
//! `/key/regenerate` is Enterprise-only and retires the old key in the same
//! call (a crash before the new key is stored would leave the engine with no
//! working key). So a virtual admin key is rotated by generating a successor
//! for the same user, storing it, and deleting the predecessor:
//!
//! 1. WAL entry naming both keys by hash (the successor's material is chosen
//!    here, so its hash is known before LiteLLM sees it);
//! 2. `/key/generate` with that material, as the old key;
//! 3. store the config with the new key;
//! 4. delete the old key, as the new key (which proves it works);
//! 5. delete the WAL entry.
//!
//! After a crash the rollback looks at which key the config holds and
//! deletes the other one: never two admin keys alive, never none stored.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::clock::{self, rfc3339, unix_now};
use super::config::{self, Config};
use super::creds::settle_failed_generate;
use super::cron;
use super::proxy::{self, Home};
use super::{Engine, ISSUE_MARGIN};
use crate::framework::storage::put_json;
use crate::framework::wal::{self, WalEntry};
use crate::framework::{
    callback, Error, Operation, Path, PeriodicTask, Request, Response, Result, Storage,
};
use crate::litellm::{key_token, new_key, Client};

/// WAL kind of an admin key rotation; data `{"old_token", "new_token",
/// "successor_alias", "proxy_id", "proxy_url"}` (hashes, never keys).
pub(super) const KIND: &str = "litellm_root_rotation";
/// Production minimum of `rotation_period`; a mount option lowers it for tests.
pub(super) const DEFAULT_MIN_PERIOD: Duration = Duration::from_secs(3600);

/// When the admin key is rotated on its own; part of the stored config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Policy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
    #[serde(default)]
    pub disabled: bool,
    /// Unix seconds of the last successful rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotated: Option<u64>,
    /// Unix seconds when the next scheduled rotation is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation: Option<u64>,
}

/// The rotation fields of one config write; `None` = not given.
#[derive(Debug, Default)]
pub(super) struct PolicyChange<'a> {
    pub period: Option<Duration>,
    pub schedule: Option<&'a str>,
    pub window: Option<Duration>,
    pub disable: Option<bool>,
}

impl PolicyChange<'_> {
    pub(super) fn is_empty(&self) -> bool {
        self.period.is_none()
            && self.schedule.is_none()
            && self.window.is_none()
            && self.disable.is_none()
    }
}

/// The shortest time between two of the schedule's next 64 times: enough
/// to see the pattern of any minute, hour or day list in a week.
fn shortest_gap(schedule: &cron::Schedule, now: u64) -> Option<u64> {
    let mut at = schedule.next_after(now)?;
    let mut shortest: Option<u64> = None;
    for _ in 0..64 {
        let Some(next) = schedule.next_after(at) else {
            break;
        };
        shortest = Some(shortest.map_or(next - at, |s| s.min(next - at)));
        at = next;
    }
    shortest
}

impl Policy {
    pub(super) fn is_automated(&self) -> bool {
        !self.disabled && (self.period_secs.is_some() || self.schedule.is_some())
    }

    /// The policy after a config write. A period replaces a schedule and
    /// the other way round; giving both at once is an error. `0` / `""`
    /// clear a setting.
    pub(super) fn apply(
        &self,
        change: &PolicyChange,
        min_period: Duration,
        now: u64,
    ) -> Result<Policy> {
        let mut p = self.clone();
        if change.is_empty() {
            return Ok(p);
        }
        let period = change.period.filter(|d| !d.is_zero());
        let schedule = change.schedule.map(str::trim).filter(|s| !s.is_empty());
        if period.is_some() && schedule.is_some() {
            return Err(Error::invalid(
                "fields \"rotation_period\" and \"rotation_schedule\": set one of them, not both",
            ));
        }
        if let Some(d) = change.period {
            if !d.is_zero() && d < min_period {
                return Err(Error::invalid(format!(
                    "field \"rotation_period\" must be at least {}s",
                    min_period.as_secs()
                )));
            }
            p.period_secs = period.map(|d| d.as_secs());
            if period.is_some() {
                p.schedule = None;
                p.window_secs = None;
            }
        }
        if change.schedule.is_some() {
            if let Some(s) = schedule {
                let parsed = cron::Schedule::parse(s)
                    .map_err(|e| Error::invalid(format!("field \"rotation_schedule\": {e}")))?;
                if let Some(gap) = shortest_gap(&parsed, now).filter(|g| *g < min_period.as_secs())
                {
                    return Err(Error::invalid(format!(
                        "field \"rotation_schedule\" fires {gap}s apart; rotations must be at \
                         least {}s apart, as for rotation_period",
                        min_period.as_secs()
                    )));
                }
                if parsed.next_after(now).is_none() {
                    return Err(Error::invalid(format!(
                        "field \"rotation_schedule\": {s:?} matches no date (such as the 31st of \
                         a month that has 30 days), so it would never rotate"
                    )));
                }
                p.period_secs = None;
            } else if change.window.is_none() {
                // Clearing the schedule clears its window, as a period does.
                p.window_secs = None;
            }
            p.schedule = schedule.map(str::to_string);
        }
        if let Some(w) = change.window {
            p.window_secs = (!w.is_zero()).then_some(w.as_secs());
        }
        if p.window_secs.is_some() && p.schedule.is_none() {
            return Err(Error::invalid(
                "field \"rotation_window\" applies to rotation_schedule only",
            ));
        }
        if let Some(w) = p.window_secs.filter(|w| *w < 60) {
            return Err(Error::invalid(format!(
                "field \"rotation_window\" must be at least 60s (rotation is checked once a minute), got {w}s"
            )));
        }
        if let Some(d) = change.disable {
            p.disabled = d;
        }
        // Writing the same settings again (config as code, applied often)
        // must not push the next rotation back.
        let timing = |p: &Policy| (p.period_secs, p.schedule.clone(), p.disabled);
        if timing(&p) != timing(self) || self.next_rotation.is_none() {
            p.next_rotation = p.next_after(now);
        }
        Ok(p)
    }

    /// When the next rotation is due: a period counts from the last
    /// rotation (from `now` if there was none), a schedule from `now`.
    fn next_after(&self, now: u64) -> Option<u64> {
        if self.disabled {
            return None;
        }
        if let Some(period) = self.period_secs {
            return Some(self.last_rotated.unwrap_or(now) + period);
        }
        let schedule = cron::Schedule::parse(self.schedule.as_deref()?).ok()?;
        schedule.next_after(now)
    }
}

pub(super) fn path(engine: &Arc<Engine>) -> Path {
    Path::new("rotate-root")
        .on(Operation::Update, callback(engine, rotate_root))
        .help(
            "Rotate the engine's admin key.",
            "Replaces the configured admin key (a LiteLLM virtual key) with a new key of the same \
             user and permissions, stores it, then deletes the old key. The new key is never \
             returned. Refused when the configured key is the LiteLLM master key, which LiteLLM \
             cannot change through its API: configure a virtual admin key as admin_key first.",
        )
}

async fn rotate_root(engine: Arc<Engine>, req: Request) -> Result<Option<Response>> {
    let storage = req.storage.as_ref();
    let _writing = engine.writes.lock().await;
    let config = config::load(storage).await?.ok_or_else(|| {
        Error::invalid("the LiteLLM connection is not configured: write config first")
    })?;
    let outcome = rotate(&engine, storage, config).await?;
    let mut data = Map::new();
    data.insert("rotated_at".into(), json!(rfc3339(outcome.rotated_at)));
    data.insert("key_alias".into(), json!(outcome.alias));
    if let Some(next) = outcome.next_rotation {
        data.insert("next_rotation".into(), json!(rfc3339(next)));
    }
    let mut response = Response::with_data(data);
    if let Some(w) = outcome.warning {
        response = response.warn(w);
    }
    Ok(Some(response))
}

struct Outcome {
    rotated_at: u64,
    alias: String,
    next_rotation: Option<u64>,
    warning: Option<String>,
}

/// `<alias without an earlier -rot-N>-rot-<unix milliseconds>`: unique, and
/// shows in LiteLLM's UI which key came from which.
fn successor_alias(old: Option<&str>, now: u128) -> String {
    let base = old
        .filter(|a| !a.is_empty())
        .unwrap_or("vault-litellm-admin");
    let base = match base.rsplit_once("-rot-") {
        Some((b, n)) if !b.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => b,
        _ => base,
    };
    format!("{base}-rot-{now}")
}

/// What the successor gets from the old key: owner, permissions and
/// limits; an expiry only if the old key had one (the same lifetime).
fn successor_request(info: &Value, key: &str, alias: &str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("key".into(), json!(key));
    body.insert("key_alias".into(), json!(alias));
    for field in [
        "user_id",
        "team_id",
        "key_type",
        "models",
        "allowed_routes",
        "max_budget",
        "budget_duration",
        "tpm_limit",
        "rpm_limit",
        "max_parallel_requests",
    ] {
        match &info[field] {
            Value::Null => {}
            Value::Array(a) if a.is_empty() => {}
            v => {
                body.insert(field.into(), v.clone());
            }
        }
    }
    let mut metadata = info["metadata"].as_object().cloned().unwrap_or_default();
    // Not the marks of a key this or another mount minted (an admin key
    // taken from static-creds, say): with a mount's id and no record there,
    // the successor would look like that mount's orphan to its tidy.
    metadata.retain(|k, _| !super::roles::RESERVED_METADATA.contains(&k.as_str()));
    metadata.insert("rotated_by".into(), json!("vault-plugin-secrets-litellm"));
    body.insert("metadata".into(), Value::Object(metadata));
    let parse = |v: &Value| v.as_str().and_then(clock::parse);
    if let (Some(expires), Some(created)) = (parse(&info["expires"]), parse(&info["created_at"])) {
        let lifetime = (expires - created).whole_seconds().max(3600);
        body.insert("duration".into(), json!(format!("{lifetime}s")));
    }
    body
}

/// Why the master key cannot be rotated, and what to do instead.
const MASTER_KEY_REFUSAL: &str = "the configured admin key is the LiteLLM master key (LiteLLM \
    knows no virtual key by its hash); LiteLLM cannot change its master key through its API, so \
    it cannot be rotated here. Create a virtual admin key (/user/new with user_role \
    proxy_admin, see the README), write it to config as admin_key, then rotate-root; change the \
    master key itself in LiteLLM's own configuration";

/// Rotates `config`'s key. The caller holds `engine.writes`.
async fn rotate(engine: &Engine, storage: &dyn Storage, config: Config) -> Result<Outcome> {
    let old_client = Client::new(&config.settings()?).map_err(Error::from)?;
    let info = old_client
        .own_key_info()
        .await
        .map_err(Error::from)?
        .ok_or_else(|| Error::invalid(MASTER_KEY_REFUSAL))?;
    if let Some(why) = unrotatable(&info) {
        return Err(Error::invalid(why));
    }
    let now = unix_now();
    let new_key = new_key();
    let old_token = key_token(&config.master_key);
    let new_token = key_token(&new_key);
    // Milliseconds: two rotations in one second must not collide (LiteLLM
    // wants unique aliases, and the old key is alive until the end).
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let alias = successor_alias(info["key_alias"].as_str(), millis);
    let home = Home::of(&config);
    let mut wal_data = Map::new();
    wal_data.insert("old_token".into(), json!(old_token));
    wal_data.insert("new_token".into(), json!(new_token));
    wal_data.insert("successor_alias".into(), json!(alias));
    home.record(&mut wal_data);
    let timeout = config.request_timeout();
    let wal_id = wal::put(
        storage,
        KIND,
        Value::Object(wal_data),
        wal::Schedule {
            // generate, store, delete
            hold_for: 3 * timeout + ISSUE_MARGIN,
            give_up_after: None,
        },
    )
    .await?;

    let request = Value::Object(successor_request(&info, &new_key, &alias));
    if let Err(e) = old_client.generate_key_json(&request).await {
        settle_failed_generate(&old_client, storage, &wal_id, &alias, &e).await;
        return Err(e.into());
    }
    crash_point("after_generate");

    let mut rotated = config.clone();
    rotated.master_key = new_key;
    rotated.key_minted_here = true;
    rotated.rotation.last_rotated = Some(now);
    rotated.rotation.next_rotation = rotated.rotation.next_after(now);
    if let Err(e) = put_json(storage, config::STORAGE_KEY, &rotated).await {
        // A failed write may have landed all the same (a timeout after the
        // commit): only the stored config says which key to keep.
        match config::load(storage).await {
            Ok(Some(stored)) if stored.master_key == rotated.master_key => {}
            Ok(_) => {
                // Not stored: the successor must go; if even that fails,
                // the WAL entry stays and the rollback deletes it.
                if old_client.delete_keys(&[new_token]).await.is_ok() {
                    super::creds::forget_wal(storage, &wal_id, "a successor not stored").await;
                }
                return Err(e);
            }
            // Unknown: the rollback reads the config later and decides.
            Err(_) => return Err(e),
        }
    }
    follow_in_retired(storage, &old_token, &new_token, &rotated).await?;
    engine.clients.forget();
    tracing::info!(key_alias = %alias, proxy_id = %rotated.proxy_id, "admin key rotated; deleting the old one");
    crash_point("after_store");

    let new_client = Client::new(&rotated.settings()?).map_err(Error::from)?;
    let warning = match new_client.delete_keys(&[old_token]).await {
        Ok(_) => {
            wal::delete(storage, &wal_id).await?;
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot delete the old admin key yet; the rollback retries");
            Some(format!(
                "the new admin key is stored, but deleting the old one failed ({e}); the \
                 rollback retries within minutes"
            ))
        }
    };
    Ok(Outcome {
        rotated_at: now,
        alias,
        next_rotation: rotated.rotation.next_rotation,
        warning,
    })
}

/// Retired proxies keep their own settings, but one holding the very key
/// being rotated reaches the same key store (under an older URL): it gets
/// the surviving key too, or its leases could no longer revoke.
async fn follow_in_retired(
    storage: &dyn Storage,
    old_token: &str,
    new_token: &str,
    survivor: &Config,
) -> Result<()> {
    let survivor_token = key_token(&survivor.master_key);
    for mut r in proxy::list_retired(storage).await? {
        let t = key_token(&r.master_key);
        if t != survivor_token && (t == old_token || t == new_token) {
            r.master_key = survivor.master_key.clone();
            r.key_minted_here = survivor.key_minted_here;
            proxy::retire(storage, &r).await?;
            tracing::info!(proxy_id = %r.proxy_id, "retired proxy settings follow the rotated admin key");
        }
    }
    Ok(())
}

/// Test builds only: die at a named step of a rotation.
#[allow(unused_variables)]
pub(super) fn crash_point(step: &str) {
    #[cfg(feature = "fault-injection")]
    if std::env::var("LITELLM_PLUGIN_CRASH_IN_ROTATION").as_deref() == Ok(step) {
        tracing::warn!(step, "fault injection: dying in the middle of a rotation");
        std::process::abort();
    }
}

/// Rollback of an interrupted rotation: whichever key the config holds
/// stays, the other one goes.
pub(super) async fn roll_back(
    engine: &Engine,
    storage: &dyn Storage,
    entry: &WalEntry,
) -> Result<()> {
    let field = |name: &str| {
        entry.data[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::Internal(format!("rotation WAL entry without {name}")))
    };
    let (old_token, new_token) = (field("old_token")?, field("new_token")?);
    let home = entry
        .data
        .as_object()
        .and_then(Home::recorded)
        .ok_or_else(|| Error::Internal("rotation WAL entry without proxy_id".into()))?;
    // Under the lock: a rotation in flight has its own hold anyway, but a
    // config write must not slip between the read and the delete.
    let _writing = engine.writes.lock().await;
    let stored = match config::load(storage).await? {
        Some(c) if c.proxy_id == home.proxy_id => Some(c),
        _ => proxy::load_retired(storage, &home.proxy_id).await?,
    };
    let Some(stored) = stored else {
        return Err(Error::Internal(format!(
            "rotation rollback: this mount no longer knows proxy {}; delete the keys with hashes \
             {old_token} / {new_token} by hand if they still exist",
            home.proxy_id
        )));
    };
    let client = Client::new(&stored.settings()?).map_err(Error::from)?;
    let stored_token = key_token(&stored.master_key);
    // Keys stored elsewhere for this key store follow the survivor.
    follow_in_retired(storage, &old_token, &new_token, &stored).await?;
    engine.clients.forget();
    let (delete, which) = if stored_token == new_token {
        (vec![old_token], "old admin key")
    } else if stored_token == old_token {
        // The successor never reached storage: nobody can know its key.
        (vec![new_token], "unstored successor admin key")
    } else {
        // Rotated again since (a retried request, or a later rotation
        // that was interrupted too), or replaced by hand: neither key is
        // the stored one, and the rotation meant both to be gone.
        (vec![old_token, new_token], "superseded admin keys")
    };
    let outcome = client.delete_keys(&delete).await.map_err(Error::from)?;
    tracing::info!(which, outcome = ?outcome, "rollback: interrupted admin key rotation settled");
    Ok(())
}

/// Runs on every tick of the active node; rotates when due.
pub(super) fn periodic_task(engine: &Arc<Engine>) -> PeriodicTask {
    PeriodicTask::on_each_tick("rotate-root", callback(engine, scheduled))
}

async fn scheduled(engine: Arc<Engine>, req: Request) -> Result<()> {
    let storage = req.storage.as_ref();
    let _writing = engine.writes.lock().await;
    let Some(mut config) = config::load(storage).await? else {
        return Ok(());
    };
    let policy = &config.rotation;
    let Some(due) = policy.next_rotation.filter(|_| policy.is_automated()) else {
        return Ok(());
    };
    let now = unix_now();
    if now < due {
        return Ok(());
    }
    if let Some(window) = policy.window_secs.filter(|w| now > due + w) {
        // Missed the window (server down, sealed): wait for the next slot
        // rather than rotating at an hour the operator did not choose.
        let next = policy.next_after(now);
        tracing::warn!(
            window_s = window,
            "admin key rotation window missed; waiting for the next slot"
        );
        config.rotation.next_rotation = next;
        return put_json(storage, config::STORAGE_KEY, &config).await;
    }
    match rotate(&engine, storage, config).await {
        Ok(o) => {
            tracing::info!(key_alias = %o.alias, "scheduled admin key rotation done");
            Ok(())
        }
        // Nothing changed in storage: the old key stays and the next tick
        // (a minute later) tries again.
        Err(e) => Err(Error::Internal(format!(
            "scheduled admin key rotation failed, retrying on the next tick: {e}"
        ))),
    }
}

/// Rejects a policy that can never work with the configured key: the
/// master key cannot be rotated.
pub(super) async fn check_rotatable(client: &Client) -> std::result::Result<(), String> {
    match client.own_key_info().await {
        Ok(Some(info)) => unrotatable(&info).map_or(Ok(()), |why| Err(why.to_string())),
        Ok(None) => Err(MASTER_KEY_REFUSAL.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Why a virtual key LiteLLM knows cannot be rotated, if it cannot: its
/// successor is a key of the same user, so a key of no user has none.
fn unrotatable(info: &Value) -> Option<&'static str> {
    info["user_id"]
        .as_str()
        .is_none_or(str::is_empty)
        .then_some(
            "the configured admin key has no user_id in LiteLLM, so no successor with the same \
         powers can be made: configure a key of a proxy_admin user (see the README)",
        )
}

/// A warning when the key belongs to a LiteLLM user who is not a proxy
/// admin: LiteLLM then makes every key it mints that user's and refuses
/// keys for other users (a team admin's key may still be intended). Best
/// effort: no warning when LiteLLM does not say.
pub(super) async fn admin_standing(client: &Client) -> Option<String> {
    let info = client.own_key_info().await.ok()??;
    let user = info["user_id"].as_str()?;
    let role = client.user_role(user).await.ok()??;
    (role != "proxy_admin").then(|| {
        format!(
            "admin_key is a key of LiteLLM user {user:?}, whose role is {role:?}, not \
             proxy_admin: LiteLLM makes every key minted with it that user's, and refuses roles \
             with another user_id (or a team the user does not administer); see the README's \
             \"An admin key for the engine\""
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    fn change(
        period: Option<u64>,
        schedule: Option<&str>,
        window: Option<u64>,
    ) -> PolicyChange<'_> {
        PolicyChange {
            period: period.map(Duration::from_secs),
            schedule,
            window: window.map(Duration::from_secs),
            disable: None,
        }
    }

    #[test]
    fn policies() {
        let none = Policy::default();
        let p = none
            .apply(&change(Some(7200), None, None), H, 1000)
            .unwrap();
        assert_eq!(p.period_secs, Some(7200));
        assert_eq!(p.next_rotation, Some(8200));
        assert!(p.is_automated());
        // The same period written again later does not push it back.
        let again = p.apply(&change(Some(7200), None, None), H, 5000).unwrap();
        assert_eq!(again.next_rotation, Some(8200));
        // A new period counts from the last rotation.
        let rotated = Policy {
            last_rotated: Some(2000),
            ..p.clone()
        };
        let shorter = rotated
            .apply(&change(Some(3600), None, None), H, 5000)
            .unwrap();
        assert_eq!(shorter.next_rotation, Some(5600));
        // A schedule replaces the period.
        let s = p
            .apply(&change(None, Some("0 3 * * *"), Some(3600)), H, 1000)
            .unwrap();
        assert_eq!(s.period_secs, None);
        assert_eq!(s.window_secs, Some(3600));
        assert_eq!(s.next_rotation, Some(3 * 3600));
        // Disabling keeps the policy but nothing is due.
        let d = s
            .apply(
                &PolicyChange {
                    disable: Some(true),
                    ..PolicyChange::default()
                },
                H,
                1000,
            )
            .unwrap();
        assert_eq!(d.schedule.as_deref(), Some("0 3 * * *"));
        assert_eq!(d.next_rotation, None);
        assert!(!d.is_automated());
        // An unrelated write leaves it all alone.
        assert_eq!(d.apply(&PolicyChange::default(), H, 5).unwrap(), d);
        // Clearing.
        let c = s.apply(&change(None, Some(""), Some(0)), H, 1000).unwrap();
        assert_eq!(c.schedule, None);
        assert_eq!(c.next_rotation, None);
        // Clearing the schedule alone takes its window with it.
        let c = s.apply(&change(None, Some(""), None), H, 1000).unwrap();
        assert_eq!((c.schedule, c.window_secs), (None, None));
    }

    #[test]
    fn bad_policies_name_the_field() {
        let p = Policy::default();
        let cases = [
            (change(Some(600), None, None), "rotation_period"),
            (change(None, Some("61 * * * *"), None), "rotation_schedule"),
            (change(None, Some("daily"), None), "rotation_schedule"),
            (
                change(Some(7200), Some("* * * * *"), None),
                "rotation_schedule",
            ),
            (change(Some(7200), None, Some(3600)), "rotation_window"),
            (change(None, Some("* * * * *"), None), "rotation_schedule"),
            (
                change(None, Some("0,30 * * * *"), None),
                "rotation_schedule",
            ),
            (change(None, Some("0 * * * *"), Some(5)), "rotation_window"),
            // No date has it: it would never rotate.
            (change(None, Some("0 0 31 2 *"), None), "rotation_schedule"),
            (
                change(None, Some("0 0 31 4,6,9,11 *"), None),
                "rotation_schedule",
            ),
        ];
        for (c, field) in cases {
            let e = p.apply(&c, H, 0).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.to_string().contains(field), "{c:?}: {e}");
        }
        // A lower minimum (the test mount option) allows short periods.
        assert!(p
            .apply(&change(Some(10), None, None), Duration::from_secs(10), 0)
            .is_ok());
    }

    #[test]
    fn successor_aliases() {
        assert_eq!(successor_alias(Some("eng-admin"), 5), "eng-admin-rot-5");
        assert_eq!(
            successor_alias(Some("eng-admin-rot-5"), 9),
            "eng-admin-rot-9"
        );
        assert_eq!(successor_alias(None, 9), "vault-litellm-admin-rot-9");
        assert_eq!(successor_alias(Some("a-rot-x"), 9), "a-rot-x-rot-9");
    }

    #[test]
    fn successors_copy_owner_and_permissions() {
        let info = json!({
            "user_id": "u1", "team_id": null, "key_type": "management",
            "models": [], "allowed_routes": ["management_routes"],
            "metadata": {"purpose": "vault", "vault_mount_id": "m1", "vault_static_role": "r"},
            "expires": null, "created_at": "2026-11-30T17:58:03.442000+00:00",
        });
        let body = successor_request(&info, "sk-new", "a-rot-1");
        assert_eq!(body["user_id"], "u1");
        assert_eq!(body["key_type"], "management");
        assert_eq!(body["allowed_routes"], json!(["management_routes"]));
        assert!(!body.contains_key("models") && !body.contains_key("team_id"));
        assert!(
            !body.contains_key("duration"),
            "no expiry without an old one"
        );
        assert_eq!(body["metadata"]["purpose"], "vault");
        // Another mount's marks stay behind: the successor is nobody's orphan.
        let metadata = body["metadata"].as_object().unwrap();
        assert!(
            !metadata.contains_key("vault_mount_id") && !metadata.contains_key("vault_static_role")
        );
        let mut expiring = info.clone();
        expiring["expires"] = json!("2026-12-30T17:58:03.442000+00:00");
        let body = successor_request(&expiring, "sk-new", "a-rot-1");
        assert_eq!(body["duration"], format!("{}s", 30 * 86400));
    }
}
