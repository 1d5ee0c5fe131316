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
pub use receipt::OrphanEvent;
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

/// The two requests every repository makes.
impl Store {
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
