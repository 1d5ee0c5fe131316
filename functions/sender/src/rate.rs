//! The provider account's rate, shared by every sender instance through DynamoDB
//! (issue 14, `docs/concurrency.md` "The shared rate"). Provider calls wait at this
//! instance's gate; the gate takes blocks of send slots for the calls waiting at it,
//! one conditional write per block (`Store::take_rate_block`), and gives each call its
//! slot. Slots of all instances never overlap, so together they stay under R, and one
//! instance alone may use all of R.
//!
//! A block holds one slot per call already waiting, never a guess of what will come:
//! a slot nobody waits for is a slot lost to everyone. The gate takes its next block
//! only when its current one is nearly spent (`LEAD` before its end), so the calls
//! that arrive meanwhile share one write: at the full rate a block holds about as many
//! slots as the instance has calls in flight (`HERALD_SEND_PARALLELISM`).
//!
//! A sender number's own rate (a long code's one text a second) is a second gate of
//! the same kind over the number's item; a text waits for the number's slot, then the
//! account's (`retry::send`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald::keys::Key;
use herald::store::{BlockAsk, BlockTake, Store};
use herald::telemetry::error_chain;
use tokio::sync::oneshot;

/// A slot given more than this after its time is not used: the call would bunch with
/// the slots after it, and the provider allows one second of burst at most. (A block's
/// write answered late starts in the past.)
const LATE_LIMIT: Duration = Duration::from_millis(500);
/// How long before its block ends the gate writes for the next one (besides the
/// write's own expected time), so the next block starts as this one ends.
const LEAD: Duration = Duration::from_millis(50);
/// Failed writes in a row (errors, not lost races) before the waiting calls are told
/// there is no slot; a timeout under load is usually followed by an answer.
const ERRORS_BEFORE_GIVING_UP: u32 = 3;

pub struct SharedRate {
    gate: Arc<Gate>,
}

struct Gate {
    store: Store,
    key: Key,
    interval_us: u64,
    /// The most slots one write takes: the horizon's worth of the rate.
    max_block: u32,
    horizon_us: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Calls waiting for a slot, in arrival order.
    waiting: VecDeque<oneshot::Sender<Result<u64, String>>>,
    /// Whether a task is taking blocks for the waiting calls.
    taking: bool,
    /// The shared item's value as last seen.
    tat: Option<u64>,
    /// One write's time, a moving average: a block is asked to start that far ahead,
    /// so a slow answer does not find its slots already past.
    write_us: u64,
}

impl SharedRate {
    /// `rate` calls per second across every instance, kept in the item at `key`; a
    /// block starts at most `horizon` ahead of now.
    pub fn new(store: Store, key: Key, rate: f64, horizon: Duration) -> Self {
        Self {
            gate: Arc::new(Gate {
                store,
                key,
                interval_us: (1_000_000.0 / rate).round().max(1.0) as u64,
                max_block: (rate * horizon.as_secs_f64()).ceil().max(1.0) as u32,
                horizon_us: horizon.as_micros() as u64,
                state: Mutex::default(),
            }),
        }
    }

    /// Waits until this call's send slot. An error is the rate item's: no slot, and
    /// the caller must not call the provider.
    pub async fn wait(&self) -> Result<Slot, String> {
        let (slot, given) = oneshot::channel();
        let start = {
            let mut state = self.gate.state();
            state.waiting.push_back(slot);
            !std::mem::replace(&mut state.taking, true)
        };
        if start {
            tokio::spawn(self.gate.clone().take_blocks());
        }
        let at_us = given
            .await
            .map_err(|_| "the rate gate stopped".to_owned())??;
        tokio::time::sleep(Duration::from_micros(at_us.saturating_sub(now_us()))).await;
        Ok(Slot { at_us })
    }
}

/// A call's send slot, once its time has come.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    at_us: u64,
}

impl Slot {
    /// Whether the call can no longer go in this slot (it waited for another gate
    /// since): it is lost, like a slot handed out late.
    pub fn is_late(self) -> bool {
        now_us().saturating_sub(self.at_us) > LATE_LIMIT.as_micros() as u64
    }
}

impl Gate {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes blocks until no call is waiting.
    async fn take_blocks(self: Arc<Self>) {
        let mut errors = 0;
        loop {
            let (count, known, write_us) = {
                let mut state = self.state();
                if state.waiting.is_empty() {
                    state.taking = false;
                    return;
                }
                let count = (state.waiting.len() as u32).min(self.max_block);
                (count, state.tat, state.write_us)
            };
            let asked_at = now_us();
            let ask = BlockAsk {
                now_us: asked_at + write_us.min(self.horizon_us),
                count,
                interval_us: self.interval_us,
                horizon_us: self.horizon_us,
            };
            let taken = self.store.take_rate_block(&self.key, ask, known).await;
            let took = now_us().saturating_sub(asked_at);
            let resume_at_us = match taken {
                Ok(taken) => {
                    errors = 0;
                    let mut state = self.state();
                    state.write_us = (state.write_us * 3 + took) / 4;
                    let ahead = state.write_us + LEAD.as_micros() as u64;
                    match taken {
                        BlockTake::Granted {
                            start_us,
                            count,
                            tat,
                        } => {
                            self.hand_out(&mut state, start_us, count, tat);
                            tat.saturating_sub(ahead)
                        }
                        BlockTake::Wait { retry_at_us, tat } => {
                            state.tat = Some(tat);
                            retry_at_us.saturating_sub(ahead)
                        }
                    }
                }
                Err(e) if errors + 1 < ERRORS_BEFORE_GIVING_UP => {
                    errors += 1;
                    tracing::warn!(errors, error = %error_chain(&e), "the shared rate's write failed; trying again");
                    now_us() + 100_000 * (1 << errors)
                }
                Err(e) => {
                    errors = 0;
                    let reason = format!("no send slot from the shared rate: {}", error_chain(&e));
                    for call in std::mem::take(&mut self.state().waiting) {
                        let _ = call.send(Err(reason.clone()));
                    }
                    continue;
                }
            };
            tokio::time::sleep(Duration::from_micros(resume_at_us.saturating_sub(now_us()))).await;
        }
    }

    /// Gives the block's slots to the waiting calls in order. A slot already too late
    /// is skipped (lost, never moved); a call that stopped waiting passes its slot on.
    fn hand_out(&self, state: &mut State, start_us: u64, count: u32, tat: u64) {
        state.tat = Some(tat);
        let oldest_usable = now_us().saturating_sub(LATE_LIMIT.as_micros() as u64);
        let slots = (0..u64::from(count))
            .map(|i| start_us + i * self.interval_us)
            .filter(|&at| at >= oldest_usable);
        for at in slots {
            while let Some(call) = state.waiting.pop_front() {
                if call.send(Ok(at)).is_ok() {
                    break;
                }
            }
        }
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}
