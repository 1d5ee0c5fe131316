//! The provider account's rate, shared by every sender instance (issue 14): one item
//! holding `tat`, the time (µs since the epoch) at which the account's next unclaimed
//! send slot starts, slots being `1 / R` apart. A sender number's own rate is kept the
//! same way in an item of its own (`keys::sender_rate`). An instance takes a block of slots with
//! one conditional write (compare-and-set on `tat`), so the slots of all instances never
//! overlap and the account is never asked for more than R per second, while one instance
//! alone can take them all. Slots nobody uses are lost, never handed out twice.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use super::{Store, StoreError};
use crate::item::{dynamo, get_n, is_condition_failure, key_item, n, s};
use crate::keys::Key;

/// What an instance asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockAsk {
    pub now_us: u64,
    /// Slots wanted.
    pub count: u32,
    /// `1 / R`, in µs.
    pub interval_us: u64,
    /// How far ahead of now a block may start: bounds how long a newcomer (another
    /// tenant's single text) waits behind blocks taken before it.
    pub horizon_us: u64,
}

/// What the account's rate gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockTake {
    /// `count` slots, the first at `start_us`, then every `interval_us`; `tat` is the
    /// item's new value (the next ask starts from it).
    Granted { start_us: u64, count: u32, tat: u64 },
    /// Every slot up to the horizon is taken: ask again at `retry_at_us`.
    Wait { retry_at_us: u64, tat: u64 },
}

/// Whether a slice may send from a number now (`Store::hold_rate_item`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    Held,
    /// Another slice holds it until then (µs since the epoch).
    BusyUntil(u64),
}

/// Compare-and-set attempts before giving up on a block (each failure means another
/// instance took one meanwhile, so the rate is being used). From the third on, each
/// waits a random moment first, so instances that keep colliding spread out.
const ATTEMPTS: usize = 16;

impl Store {
    /// Takes a block of send slots from the rate item at `key` (the provider
    /// account's, `keys::provider_rate`, or a sender number's, `keys::sender_rate`). `known_tat` is the item's value as
    /// this instance last saw it (`None` the first time): the write is conditional on
    /// it, and a failed condition returns the current value to try again with.
    #[tracing::instrument(skip_all, fields(rate = %key.pk, count = ask.count))]
    pub async fn take_rate_block(
        &self,
        key: &Key,
        ask: BlockAsk,
        known_tat: Option<u64>,
    ) -> Result<BlockTake, StoreError> {
        let mut known = known_tat;
        for attempt in 0..ATTEMPTS {
            if attempt >= 2 {
                let jitter = rand::random::<u64>() % (ask.interval_us.max(1_000) * 4);
                tokio::time::sleep(std::time::Duration::from_micros(jitter)).await;
            }
            let start = known.unwrap_or(0).max(ask.now_us);
            let tat_now = known.unwrap_or(0);
            if start > ask.now_us + ask.horizon_us {
                return Ok(BlockTake::Wait {
                    retry_at_us: start - ask.horizon_us,
                    tat: tat_now,
                });
            }
            let count = ask.count.max(1);
            let new_tat = start + u64::from(count) * ask.interval_us;
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_item(key)))
                .update_expression("SET tat = :new")
                .expression_attribute_values(":new", n(new_tat))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            let update = match known {
                None => update.condition_expression("attribute_not_exists(tat)"),
                Some(old) => update
                    .condition_expression("tat = :old")
                    .expression_attribute_values(":old", n(old)),
            };
            match update.send().await {
                Ok(_) => {
                    return Ok(BlockTake::Granted {
                        start_us: start,
                        count,
                        tat: new_tat,
                    });
                }
                Err(e) if is_condition_failure(&e) => {
                    // Another instance took a block: start from the value it left.
                    known = match e.into_service_error() {
                        UpdateItemError::ConditionalCheckFailedException(failure) => {
                            failure.item.and_then(|item| get_n::<u64>(&item, "tat"))
                        }
                        _ => None,
                    };
                }
                Err(e) => return Err(dynamo(e)),
            }
        }
        Err(StoreError::Contended(ATTEMPTS as u32))
    }

    /// Takes the rate item at `key` for `holder` until `until_us`, unless another
    /// holder has it past `now_us`: one instance at a time sends from a paced number,
    /// which is all its rate needs, so its other chunks wait in the queue rather than
    /// hold instances. A hint for scheduling, never the pace itself (the slots are).
    #[tracing::instrument(skip_all, fields(rate = %key.pk))]
    pub async fn hold_rate_item(
        &self,
        key: &Key,
        holder: &str,
        now_us: u64,
        until_us: u64,
    ) -> Result<Hold, StoreError> {
        let held = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .update_expression("SET held_by = :holder, held_until = :until")
            .condition_expression(
                "attribute_not_exists(held_until) OR held_until < :now OR held_by = :holder",
            )
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":until", n(until_us))
            .expression_attribute_values(":now", n(now_us))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match held {
            Ok(_) => Ok(Hold::Held),
            Err(e) if is_condition_failure(&e) => Ok(Hold::BusyUntil(
                match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(failure) => failure
                        .item
                        .and_then(|item| get_n::<u64>(&item, "held_until")),
                    _ => None,
                }
                .unwrap_or(until_us),
            )),
            Err(e) => Err(dynamo(e)),
        }
    }

    /// Gives the rate item back, if `holder` still has it.
    #[tracing::instrument(skip_all, fields(rate = %key.pk))]
    pub async fn let_go_rate_item(&self, key: &Key, holder: &str) -> Result<(), StoreError> {
        let let_go = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .update_expression("REMOVE held_by, held_until")
            .condition_expression("held_by = :holder")
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        match let_go {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(dynamo(e)),
        }
    }
}
