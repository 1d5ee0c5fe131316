//! Many conditional writes in one request: the sender's claims and settles, grouped
//! (issue 18). Each write keeps its own condition and its own outcome; grouping only
//! changes how many requests carry them.
//!
//! A group goes as one `TransactWriteItems`. DynamoDB cancels the whole transaction
//! when any condition fails, and says per write why (`CancellationReasons`, with the
//! item as it was when `ReturnValuesOnConditionCheckFailure` asks for it): a write
//! that failed its condition gets its outcome from that item, exactly as the same
//! `UpdateItem` would have; the writes cancelled only because of it (reason `None`),
//! or for a conflict or a throttle, go again in the next round. A write alone goes as
//! the `UpdateItem` it is (one write unit, not a transaction's two).
//!
//! An SDK retry of a transaction whose first attempt applied but answered late carries
//! the same `ClientRequestToken`, which DynamoDB answers as the first success; an
//! emulator that ignores the token cancels it instead, and each write then meets its
//! own earlier write (the claim's token, the settle's `settled_by`), which `refused`
//! reads as its own. Both end the same way.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::{Store, StoreError};
use crate::item::{Cancelled, Item, dynamo, key_item};
use crate::keys::Key;

/// DynamoDB's limit on the writes of one transaction.
pub const MAX_GROUP: usize = 100;
/// Rounds of transactions before what is left goes one write at a time.
const ROUNDS: usize = 3;

/// One conditional update of one item, built once (issue 18: a claim or a settle is
/// built per message, so it is built straight into the maps a request carries, not
/// through the SDK's builders) and sent alone or in a transaction. Its old item comes
/// back when its condition fails (`ALL_OLD`).
#[derive(Debug)]
pub struct ConditionalUpdate {
    pub key: Key,
    pub update: String,
    pub condition: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl ConditionalUpdate {
    /// An update of `key` with room for `values` placeholders.
    pub fn new(key: Key, values: usize) -> Self {
        Self {
            key,
            update: String::new(),
            condition: String::new(),
            names: HashMap::with_capacity(1),
            values: HashMap::with_capacity(values),
        }
    }

    pub fn name(&mut self, placeholder: &str, attribute: &str) -> &mut Self {
        self.names
            .insert(placeholder.to_owned(), attribute.to_owned());
        self
    }

    pub fn value(&mut self, placeholder: &str, value: AttributeValue) -> &mut Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }
}

/// One conditional `UpdateItem` whose failed condition is an outcome, not an error.
pub trait ConditionalWrite: Send + Sync {
    type Outcome: Send;
    /// The write.
    fn request(&self) -> &ConditionalUpdate;
    /// The outcome when the write applied.
    fn applied(&self) -> Self::Outcome;
    /// The outcome when its condition failed, read from the item as it was.
    fn refused(&self, old: Item) -> Result<Self::Outcome, StoreError>;
}

impl Store {
    /// Applies `writes` in as few requests as their items allow; outcomes in their order.
    #[tracing::instrument(skip_all, fields(writes = writes.len()))]
    pub async fn write_all<W: ConditionalWrite>(
        &self,
        writes: Vec<W>,
    ) -> Vec<Result<W::Outcome, StoreError>> {
        let mut outcomes: Vec<Option<Result<W::Outcome, StoreError>>> =
            writes.iter().map(|_| None).collect();
        let mut todo: Vec<usize> = (0..writes.len()).collect();
        for _ in 0..ROUNDS {
            if todo.len() < 2 {
                break;
            }
            // A transaction may name an item once: a second write to the same item (a
            // chunk delivered twice into one invocation) waits for a later round.
            let (now, later) = split_by_item(&writes, todo);
            todo = later;
            if now.len() == 1 {
                // Every write left names the same item: one at a time, in order.
                todo.splice(0..0, now);
                break;
            }
            let items = now
                .iter()
                .map(|&i| {
                    TransactWriteItem::builder()
                        .update(self.as_update(writes[i].request()))
                        .build()
                })
                .collect();
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            match sent.map_err(Cancelled::from_error) {
                Ok(_) => {
                    for i in now {
                        outcomes[i] = Some(Ok(writes[i].applied()));
                    }
                }
                Err(Ok(mut cancelled)) => {
                    for (position, i) in now.into_iter().enumerate() {
                        match cancelled.refused_item(position) {
                            Some(old) => outcomes[i] = Some(writes[i].refused(old)),
                            None => todo.push(i),
                        }
                    }
                }
                Err(Err(failed)) => {
                    // Not cancelled: the request failed (or its answer was lost), so
                    // each of its writes may or may not have applied; each reports the
                    // failure, as its own `UpdateItem` would have.
                    let why = crate::telemetry::error_chain(&failed);
                    for i in now {
                        outcomes[i] = Some(Err(dynamo(GroupFailed(why.clone()))));
                    }
                }
            }
            todo.sort_unstable();
        }
        for i in todo {
            outcomes[i] = Some(self.write_one(&writes[i]).await);
        }
        outcomes
            .into_iter()
            .map(|o| o.expect("every write has an outcome"))
            .collect()
    }

    /// One write as the `UpdateItem` it is.
    pub(super) async fn write_one<W: ConditionalWrite>(
        &self,
        write: &W,
    ) -> Result<W::Outcome, StoreError> {
        let request = write.request();
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&request.key)))
            .update_expression(&request.update)
            .condition_expression(&request.condition)
            .set_expression_attribute_names(
                (!request.names.is_empty()).then(|| request.names.clone()),
            )
            .set_expression_attribute_values(Some(request.values.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(write.applied()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let UpdateItemError::ConditionalCheckFailedException(failure) = e.into_err() else {
                    unreachable!("checked above")
                };
                write.refused(failure.item.unwrap_or_default())
            }
            Err(e) => Err(dynamo(e)),
        }
    }
}

/// The first write to each item, and the rest (in their order).
fn split_by_item<W: ConditionalWrite>(writes: &[W], todo: Vec<usize>) -> (Vec<usize>, Vec<usize>) {
    let mut seen = std::collections::HashSet::new();
    let (mut now, mut later) = (Vec::new(), Vec::new());
    for i in todo {
        let key = &writes[i].request().key;
        if now.len() < MAX_GROUP && seen.insert((key.pk.as_str(), key.sk.as_str())) {
            now.push(i);
        } else {
            later.push(i);
        }
    }
    (now, later)
}

impl Store {
    /// The same write as a transaction's `Update`.
    fn as_update(&self, request: &ConditionalUpdate) -> Update {
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&request.key)))
            .update_expression(&request.update)
            .condition_expression(&request.condition)
            .set_expression_attribute_names(
                (!request.names.is_empty()).then(|| request.names.clone()),
            )
            .set_expression_attribute_values(Some(request.values.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("a conditional update has a table, a key and an update expression")
    }
}

/// A grouped request that failed as a whole, as each of its writes reports it.
#[derive(Debug, thiserror::Error)]
#[error("a grouped write failed: {0}")]
struct GroupFailed(String);
