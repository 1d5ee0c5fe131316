//! The DynamoDB repositories, one file per kind of item with its mapping: batches,
//! chunks, messages and their listing, tenants, limits, machine clients, the audit log
//! and the sweeper's list, receipts and suppression lists, webhook endpoints, and the platform's restore
//! drills and tenant recovery jobs. `Store` is the one handle they share. Every write that
//! creates or moves state carries a condition, and a failed condition comes back as a
//! domain outcome (`crate::domain`), not an error.

mod audit;
mod batch;
mod chunk;
mod clients;
mod drill;
mod grouped;
mod lease;
mod limits;
mod listing;
mod message;
mod page;
mod provider_rate;
mod provider_ref;
mod receipt;
mod recovery;
mod suppression;
mod sweep;
mod tenant;
mod turn;
mod users;
mod webhook_endpoints;
mod window;
// Status webhooks to tenants, the pipeline (issue 15).
mod deliveries;
mod delivery_limits;
mod stream;

pub use grouped::{ConditionalUpdate, ConditionalWrite, MAX_GROUP};
pub use message::{ClaimWrite, SettleWrite, Unsent};
pub use provider_rate::{BlockAsk, BlockTake, Hold};
pub use provider_ref::{IndexedMessage, LOST_TEXT_WINDOW};
pub use receipt::{OrphanEvent, ReceiptReads};
pub use recovery::Lease;
pub use stream::{StreamChange, stream_change};
pub use suppression::Lifter;
pub use turn::{MAX_WAITING, Turn};
pub use window::MAX_WINDOW_RESTARTS;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB request failed")]
    Dynamo(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("item {pk}/{sk} is not readable: {reason}")]
    Corrupt {
        pk: String,
        sk: String,
        reason: String,
    },
    #[error("DynamoDB left {0} writes unprocessed after retries")]
    Unprocessed(usize),
    #[error("a write lost to concurrent writes {0} times in a row")]
    Contended(u32),
    /// A listing cursor that no listing of this tenant gave out.
    #[error("the cursor is not one this listing gave")]
    InvalidCursor,
}

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::KeysAndAttributes;

use crate::item::{Item, dynamo, key_item};
use crate::keys::Key;

#[derive(Clone)]
pub struct Store {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl Store {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

/// The requests every repository makes.
impl Store {
    /// The items that exist at `keys` (at most 100, none twice: BatchGetItem's limits),
    /// in no order, in one request when DynamoDB processes them all; the keys it leaves
    /// unprocessed are asked for again, in five requests at most.
    async fn get_many(&self, keys: &[Key], consistent: bool) -> Result<Vec<Item>, StoreError> {
        let mut pending: Vec<Item> = keys.iter().map(key_item).collect();
        let mut found = Vec::with_capacity(pending.len());
        for attempt in 0..5u32 {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(consistent)
                .build()
                .map_err(dynamo)?;
            let mut out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(dynamo)?;
            found.extend(
                out.responses
                    .as_mut()
                    .and_then(|r| r.remove(&self.table))
                    .unwrap_or_default(),
            );
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
        }
        match pending.len() {
            0 => Ok(found),
            left => Err(StoreError::Unprocessed(left)),
        }
    }

    /// The item at `key`; `consistent` for a read that must see the latest write.
    async fn get(&self, key: &Key, consistent: bool) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(dynamo)?;
        Ok(out.item)
    }

    /// Writes `item` unless an item with its key exists; whether it was written.
    async fn put_new(&self, item: Item) -> Result<bool, StoreError> {
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(dynamo(e)),
        }
    }
}
