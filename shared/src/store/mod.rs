//! The DynamoDB repositories, one file per kind of item with its mapping: batches,
//! chunks, messages and their listing, tenants, limits, machine clients, the audit log
//! and the sweeper's list. `Store` is the one handle they share. Every write that
//! creates or moves state carries a condition, and a failed condition comes back as a
//! domain outcome (`crate::domain`), not an error.

mod audit;
mod batch;
mod chunk;
mod clients;
mod limits;
mod listing;
mod message;
mod sweep;
mod tenant;

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
}

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
