//! Revokes that failed, finished by the engine.
//!
//! When a revoke fails (LiteLLM unreachable, or refusing), the server
//! retries it a few times over about ten minutes and then marks the lease
//! irrevocable, and `lease revoke -force` drops a lease whatever the engine
//! answers. Either way the key was meant to end then: a failed revoke leaves
//! a note (the key's token hash and proxy, never the key), and every tick of the
//! server deletes the noted keys as soon as LiteLLM answers again, whatever
//! became of their leases since. A revoke that succeeds later finds the key
//! already gone, which it counts as done.
//!
//! A renewal after a failed revoke removes the note: the lease is alive
//! after all (a synchronous revoke that fails leaves it in place).
//!
//! A note ends too once its key has expired in LiteLLM by itself (the
//! record's lease end plus the grace, and an hour for the clocks): such a
//! key can no longer be used, and a proxy that never answers again (one
//! retired for good) would otherwise be asked every minute forever. The
//! record stays, marked, for `keys/` and tidy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::clock::{rfc3339, unix_now};
use super::inventory;
use super::proxy::Home;
use super::{Engine, EXPIRED_KEY_MARGIN, EXPIRY_GRACE};
use crate::framework::storage::{get_json, put_json};
use crate::framework::{callback, Error, PeriodicTask, Request, Result, Storage};
use crate::litellm::Deleted;

/// Local storage (under the inventory's prefix): the leases are the
/// cluster's own.
const PREFIX: &str = "inventory/unfinished_revokes/";
/// Keys deleted at once (the client batches them).
const IN_FLIGHT: usize = 16;
/// Notes read per storage listing.
const PAGE: usize = 1000;
/// A tick stops deleting after this long; the next one goes on.
const TICK_BUDGET: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize)]
struct Unfinished {
    token: String,
    /// `None` for a lease from before keys recorded their proxy: the
    /// configured one.
    home: Option<Home>,
}

fn note_key(alias: &str) -> String {
    format!("{PREFIX}{alias}")
}

/// Notes a key whose revoke failed (the record in the inventory keeps the
/// time of the first failure). Best effort: the revoke's own error is what
/// the server acts on.
pub(super) async fn note(storage: &dyn Storage, alias: &str, token: &str, home: Option<&Home>) {
    let note = Unfinished {
        token: token.to_string(),
        home: home.cloned(),
    };
    if let Err(e) = put_json(storage, &note_key(alias), &note).await {
        tracing::warn!(key_alias = %alias, error = %e,
            "cannot note the failed revoke; the server's retries and tidy remain");
    }
}

/// The lease is alive again (renewed): nothing to finish.
pub(super) async fn forget(storage: &dyn Storage, alias: &str) -> Result<()> {
    storage.delete(&note_key(alias)).await
}

/// Also on a tainted mount: the server's last tick before a disable
/// deletes what `-force` left noted, and after a disable that failed (its
/// revokes could not reach LiteLLM; the mount stays, tainted) the ticks
/// delete those keys once LiteLLM answers, before anyone retries.
pub(super) fn periodic_task(engine: &Arc<Engine>) -> PeriodicTask {
    PeriodicTask::on_each_tick("finish-failed-revokes", callback(engine, finish))
        .also_on_tainted_mount()
}

/// Deletes the noted keys; a note goes once its key is gone. Pages walk
/// past notes that still fail (a proxy that is still down), so they never
/// hold up the others.
async fn finish(engine: Arc<Engine>, req: Request) -> Result<()> {
    let storage = req.storage.as_ref();
    let started = Instant::now();
    let (mut deleted, mut failed) = (0, Vec::new());
    let mut after = String::new();
    while started.elapsed() < TICK_BUDGET {
        let mut page = storage.list_page(PREFIX, &after, PAGE).await?;
        let last_page = page.len() < PAGE;
        // The cursor moves past whatever was listed, so a page that held
        // nothing but folders cannot be listed again and again.
        if let Some(last) = page.last() {
            after = last.clone();
        }
        page.retain(|a| !a.ends_with('/'));
        let engine = &engine;
        let outcomes: Vec<(String, Result<Finished>)> = futures_util::stream::iter(page)
            .map(|alias| async move {
                let outcome = finish_one(engine, storage, &alias).await;
                (alias, outcome)
            })
            .buffer_unordered(IN_FLIGHT)
            // Within a page too: against a proxy that hangs, each delete
            // waits its timeout, and the server gives the whole tick 90 s.
            // Deletes still running are dropped; their notes stay for the
            // next tick (a key deleted meanwhile is then already gone).
            .take_until(tokio::time::sleep(
                TICK_BUDGET.saturating_sub(started.elapsed()),
            ))
            .collect()
            .await;
        for (alias, outcome) in outcomes {
            match outcome {
                Ok(Finished::Deleted) => {
                    deleted += 1;
                    tracing::info!(key_alias = %alias, "deleted the key of a revoke that had failed");
                }
                Ok(Finished::Gone) => {}
                Ok(Finished::Expired { at, error }) => {
                    tracing::warn!(key_alias = %alias, expired_at = %rfc3339(at), error = %error,
                        "gave up deleting the key of a failed revoke: it expired in LiteLLM by itself; \
                         its record stays for keys/ and tidy");
                }
                Err(e) => failed.push((alias, e)),
            }
        }
        if last_page {
            break;
        }
    }
    if let Some((alias, e)) = failed.first() {
        tracing::warn!(still_unfinished = failed.len(), deleted, key_alias = %alias, error = %e,
            "keys of failed revokes not deleted yet; trying again on the next tick");
    }
    Ok(())
}

/// How a note ended.
#[derive(Debug)]
enum Finished {
    /// LiteLLM deleted the key just now.
    Deleted,
    /// The key was gone already (or the note was).
    Gone,
    /// The key could not be deleted but has expired by itself (unix time).
    Expired { at: u64, error: String },
}

async fn finish_one(engine: &Engine, storage: &dyn Storage, alias: &str) -> Result<Finished> {
    let Some(note) = get_json::<Unfinished>(storage, &note_key(alias)).await? else {
        return Ok(Finished::Gone);
    };
    let deleted = async {
        let client = engine.clients.for_key(storage, note.home.as_ref()).await?;
        Ok::<_, Error>(client.delete_key_batched(&note.token).await?)
    }
    .await;
    let finished = match deleted {
        Ok(Deleted::Now) => Finished::Deleted,
        Ok(Deleted::AlreadyGone) => Finished::Gone,
        Err(e) => match key_expired_at(storage, alias).await? {
            Some(at) => Finished::Expired {
                at,
                error: e.to_string(),
            },
            None => return Err(e),
        },
    };
    forget(storage, alias).await?;
    Ok(finished)
}

/// When the key expired in LiteLLM by itself, if that was more than the
/// clock margin ago (by its record: no record, no end).
async fn key_expired_at(storage: &dyn Storage, alias: &str) -> Result<Option<u64>> {
    let Some(record) = inventory::get(storage, alias).await? else {
        return Ok(None);
    };
    let at = record.lease_expires + EXPIRY_GRACE.as_secs();
    Ok((at + EXPIRED_KEY_MARGIN.as_secs() < unix_now()).then_some(at))
}
