//! Concurrent single-key deletes coalesced into batched `/key/delete` calls.
//!
//! A revocation storm (`lease revoke -prefix`, a mass expiry) reaches the
//! plugin as many concurrent revokes, one key each, and LiteLLM deletes a
//! whole list in one call. Nothing waits for company: a delete that finds a
//! free slot goes out at once, alone if nothing else is queued; deletes that
//! arrive while every slot is busy queue up and leave together as the next
//! batch. A sequential caller therefore sees single deletes, as before.
//!
//! Outcomes per key: a batch that LiteLLM accepts (200) removed every listed
//! key (LiteLLM also lists missing ones as deleted), so each is `Now`; its
//! "No keys found" 404 means none existed, so each is `AlreadyGone`. When
//! LiteLLM is unreachable, busy (429) or does not answer in time, each key
//! fails with the batch (one by one, each would wait its own timeout; the
//! server retries the revokes). Any other failure (a refusal, a 5xx, a 404
//! from something else) settles nothing: each key is then deleted on its
//! own and gets its own answer, so "already gone" is only ever LiteLLM's
//! word about that key.

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{Client, Deleted, Error, PAGE_SIZE};

/// Batches in flight at once per proxy: enough to keep LiteLLM busy while
/// the next batch fills up.
const MAX_IN_FLIGHT: usize = 4;

struct Pending {
    token: String,
    reply: oneshot::Sender<Result<Deleted, Error>>,
}

/// The queue of one client; its worker starts with the first delete and
/// ends when the last clone of the client is dropped.
#[derive(Clone, Default)]
pub(super) struct DeleteQueue(Arc<OnceLock<mpsc::UnboundedSender<Pending>>>);

impl Client {
    /// Deletes one key by its token hash, in a batch with the deletes that
    /// run at the same time. Same outcomes as `delete_keys` for one key.
    pub async fn delete_key_batched(&self, token: &str) -> Result<Deleted, Error> {
        let queue = self.deletes.0.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            // The worker's client has a queue of its own (never used), so
            // it does not keep this queue's sender alive.
            let worker = Client {
                deletes: DeleteQueue::default(),
                ..self.clone()
            };
            tokio::spawn(run(worker, rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::Interrupted {
            url: self.base_url.to_string(),
            reason: "the delete queue stopped".into(),
        };
        queue
            .send(Pending {
                token: token.to_string(),
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(client: Client, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        // A slot first, then the queue: while all slots are busy, deletes
        // pile up into the next batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < PAGE_SIZE {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let client = client.clone();
        tokio::spawn(async move {
            settle(&client, batch).await;
            drop(slot);
        });
    }
}

async fn settle(client: &Client, mut batch: Vec<Pending>) {
    // Nobody waits for these any more (a tick's budget ran out): their notes
    // stay, and the next tick asks again.
    batch.retain(|p| !p.reply.is_closed());
    if batch.len() > 1 {
        let tokens: Vec<String> = batch.iter().map(|p| p.token.clone()).collect();
        match client.delete_keys(&tokens).await {
            Ok(outcome) => {
                tracing::info!(keys = tokens.len(), outcome = ?outcome, "deleted LiteLLM keys in one batch");
                for p in batch {
                    let _ = p.reply.send(Ok(outcome));
                }
                return;
            }
            Err(e) => {
                let shared: Option<Vec<Error>> = batch.iter().map(|_| e.for_every_key()).collect();
                if let Some(errors) = shared {
                    tracing::warn!(keys = batch.len(), error = %e, "batched key delete failed; so does each key's");
                    for (p, error) in batch.into_iter().zip(errors) {
                        let _ = p.reply.send(Err(error));
                    }
                    return;
                }
                tracing::warn!(keys = batch.len(), error = %e, "batched key delete failed; deleting the keys one by one");
            }
        }
    }
    for p in batch {
        let outcome = client.delete_keys(std::slice::from_ref(&p.token)).await;
        let _ = p.reply.send(outcome);
    }
}
