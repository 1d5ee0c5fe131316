//! The instance's claims, and its settles, grouped into as few DynamoDB requests as
//! they allow (issue 18: the SDK's cost is per request, about a million instructions,
//! and two requests per message were most of the sender's CPU).
//!
//! Each kind has one writer task per instance. A write handed to it waits while the
//! writer's request before it is in flight, and goes with every write handed over in
//! the meantime: under load the groups grow, alone a write goes at once. A settle may
//! also wait up to its linger (`HERALD_SETTLE_LINGER_MS`, 200 ms) for the instance's other claims to finish sending,
//! so that a steady flow of answers is recorded a few at a time; it waits only while
//! some claim of the instance could still join it. Each write keeps its own condition
//! and outcome (`herald::store::ConditionalWrite`), so the guarantees are the single
//! writes': a settle that waits is a message sent and not yet recorded a moment
//! longer, which a crash in that moment leaves `unknown` after its lease, never sent
//! twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use herald::store::{ConditionalWrite, Store, StoreError};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

/// The most writes in one request (DynamoDB allows 100 in a transaction; a smaller
/// group conflicts less and answers sooner).
const MOST: usize = 25;

type Reply<W> = oneshot::Sender<Result<<W as ConditionalWrite>::Outcome, StoreError>>;

pub(crate) struct Grouped<W: ConditionalWrite> {
    store: Store,
    linger: Duration,
    held: Arc<Held>,
    writer: OnceLock<mpsc::UnboundedSender<(W, Reply<W>)>>,
}

/// Claims this instance holds whose settle (or release) is not handed over yet.
#[derive(Default)]
pub(crate) struct Held {
    count: AtomicUsize,
    changed: Notify,
}

impl<W> Grouped<W>
where
    W: ConditionalWrite + 'static,
    W::Outcome: 'static,
{
    /// `linger`: how long a write may wait for `held` claims to join it.
    pub(crate) fn new(store: Store, linger: Duration, held: Arc<Held>) -> Self {
        Self {
            store,
            linger,
            held,
            writer: OnceLock::new(),
        }
    }

    /// Applies `write` with whatever else is handed over with it.
    pub(crate) async fn write(&self, write: W) -> Result<W::Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer().send((write, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Hands `write` over for a claim this instance holds: once it is in the writer's
    /// hands, the claim no longer counts as one that could still join.
    pub(crate) async fn write_for(
        &self,
        claim: Holding,
        write: W,
    ) -> Result<W::Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let handed = self.writer().send((write, reply));
        drop(claim);
        handed.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// The writer task, started by the first write (on the runtime that makes it).
    fn writer(&self) -> &mpsc::UnboundedSender<(W, Reply<W>)> {
        self.writer.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(write_groups(
                self.store.clone(),
                receiver,
                self.linger,
                self.held.clone(),
            ));
            sender
        })
    }
}

async fn write_groups<W: ConditionalWrite>(
    store: Store,
    mut handed: mpsc::UnboundedReceiver<(W, Reply<W>)>,
    linger: Duration,
    held: Arc<Held>,
) {
    while let Some(first) = handed.recv().await {
        let mut group = vec![first];
        let until = Instant::now() + linger;
        // Writes made at the same moment (a chunk's first claims) are one group.
        tokio::task::yield_now().await;
        loop {
            while group.len() < MOST {
                match handed.try_recv() {
                    Ok(write) => group.push(write),
                    Err(_) => break,
                }
            }
            if group.len() >= MOST || held.count.load(Ordering::Acquire) == 0 {
                break;
            }
            tokio::select! {
                write = handed.recv() => match write {
                    Some(write) => group.push(write),
                    None => break,
                },
                () = held.changed.notified() => {}
                () = tokio::time::sleep_until(until) => break,
            }
        }
        let (writes, replies): (Vec<W>, Vec<Reply<W>>) = group.into_iter().unzip();
        let outcomes = store.write_all(writes).await;
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // A caller that has gone (its invocation ended) no longer needs the answer.
            let _ = reply.send(outcome);
        }
    }
}

impl Held {
    /// Counts one claim as held until the `Holding` is dropped.
    pub(crate) fn hold(self: &Arc<Self>) -> Holding {
        self.count.fetch_add(1, Ordering::AcqRel);
        Holding(self.clone())
    }
}

/// One claim the instance holds, counted in `Held` while it lives.
pub(crate) struct Holding(Arc<Held>);

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_one();
    }
}

fn stopped() -> StoreError {
    StoreError::Dynamo(Box::new(WriterStopped))
}

#[derive(Debug, thiserror::Error)]
#[error("the instance's grouped writer has stopped (its runtime ended)")]
struct WriterStopped;
