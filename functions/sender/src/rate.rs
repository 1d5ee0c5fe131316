//! The provider account's rate, shared by every sender instance through DynamoDB
//! (issue 14, `docs/concurrency.md`): an instance takes blocks of send slots (one
//! conditional write per block, `Store::take_rate_block`) and hands them to its
//! provider calls in order. Slots of different instances never overlap, so all of them
//! together stay under R, and one instance alone can use all of R.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald::keys::Platform;
use herald::store::{BlockAsk, BlockTake, Store, StoreError};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// A slot reached later than this is dropped rather than used: late sends would bunch
/// with current ones, and the provider allows one second of burst at most.
const LATE_LIMIT: Duration = Duration::from_millis(500);

pub struct SharedRate {
    store: Store,
    interval_us: u64,
    /// Slots taken per write at most.
    block: u32,
    horizon_us: u64,
    local: Mutex<Local>,
}

/// This instance's block: `left` slots from `next_us`.
#[derive(Default)]
struct Local {
    next_us: u64,
    left: u32,
    /// The shared item's value as last seen.
    tat: Option<u64>,
}

impl SharedRate {
    /// `rate` per second, blocks of `block_seconds` of it, starting at most `horizon`
    /// ahead of now.
    pub fn new(store: Store, rate: f64, block_seconds: f64, horizon: Duration) -> Self {
        Self {
            store,
            interval_us: (1_000_000.0 / rate).round().max(1.0) as u64,
            block: (rate * block_seconds).round().max(1.0) as u32,
            horizon_us: horizon.as_micros() as u64,
            local: Mutex::new(Local::default()),
        }
    }

    /// Waits for this instance's next send slot. `want` is how many more this chunk
    /// may need (a block is no larger: a text of one takes one slot, not a second's).
    pub async fn wait(&self, want: u32) -> Result<(), StoreError> {
        let slot_us = {
            let mut local = self.local.lock().await;
            loop {
                let now = now_us();
                let late = LATE_LIMIT.as_micros() as u64;
                while local.left > 0 && local.next_us + late < now {
                    local.next_us += self.interval_us;
                    local.left -= 1;
                }
                if local.left > 0 {
                    let slot = local.next_us;
                    local.next_us += self.interval_us;
                    local.left -= 1;
                    break slot;
                }
                let ask = BlockAsk {
                    now_us: now,
                    count: want.clamp(1, self.block),
                    interval_us: self.interval_us,
                    horizon_us: self.horizon_us,
                };
                match self
                    .store
                    .take_rate_block(Platform::operations(), ask, local.tat)
                    .await?
                {
                    BlockTake::Granted {
                        start_us,
                        count,
                        tat,
                    } => {
                        *local = Local {
                            next_us: start_us,
                            left: count,
                            tat: Some(tat),
                        };
                    }
                    BlockTake::Wait { retry_at_us, tat } => {
                        local.tat = Some(tat);
                        tokio::time::sleep(Duration::from_micros(retry_at_us.saturating_sub(now)))
                            .await;
                    }
                }
            }
        };
        let wait = Duration::from_micros(slot_us.saturating_sub(now_us()));
        tokio::time::sleep_until(Instant::now() + wait).await;
        Ok(())
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}
