//! DynamoDB item plumbing every repository shares: attribute values in and out, keys
//! as items, and the reading of failed conditions and cancelled transactions. Typed
//! values go in by their stored names (`strum`) and come back through the same names.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::TransactionCanceledException;

use crate::clock::Timestamp;
use crate::keys::Key;
use crate::store::StoreError;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn dynamo<E: std::error::Error + Send + Sync + 'static>(error: E) -> StoreError {
    StoreError::Dynamo(Box::new(error))
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// An enum by the name it is stored under.
pub(crate) fn name(value: impl Into<&'static str>) -> AttributeValue {
    s(value.into())
}

pub(crate) fn time(value: Timestamp) -> AttributeValue {
    s(value.to_string())
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(crate) fn get_n<T: FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// A string attribute read as what it names (an enum by its stored name); `None`
/// when absent or unknown.
pub(crate) fn get_named<T: FromStr>(item: &Item, name: &str) -> Option<T> {
    get_s(item, name).and_then(|v| v.parse().ok())
}

pub(crate) fn get_time(item: &Item, name: &str) -> Option<Timestamp> {
    get_s(item, name).and_then(|v| Timestamp::parse(v).ok())
}

pub(crate) fn key_item(key: &Key) -> Item {
    HashMap::from([("pk".to_owned(), s(&key.pk)), ("sk".to_owned(), s(&key.sk))])
}

pub(crate) fn with_key<const N: usize>(key: &Key, attributes: [(&str, AttributeValue); N]) -> Item {
    let mut item = key_item(key);
    item.extend(attributes.into_iter().map(|(k, v)| (k.to_owned(), v)));
    item
}

/// The error for an item that does not read as what its key says it is.
pub(crate) fn corrupt(key: &Key, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        pk: key.pk.clone(),
        sk: key.sk.clone(),
        reason: reason.into(),
    }
}

pub(crate) fn is_condition_failure<R>(error: &SdkError<UpdateItemError, R>) -> bool {
    matches!(error, SdkError::ServiceError(e) if e.err().is_conditional_check_failed_exception())
}

/// A transaction DynamoDB cancelled, to ask which of its writes failed their conditions.
pub(crate) struct Cancelled(TransactionCanceledException);

impl Cancelled {
    /// Splits a failed `TransactWriteItems`: a cancellation to look into, or any other
    /// failure as the error it is.
    pub(crate) fn from_error<R>(
        error: SdkError<TransactWriteItemsError, R>,
    ) -> Result<Self, StoreError>
    where
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        match error {
            SdkError::ServiceError(e) if e.err().is_transaction_canceled_exception() => {
                match e.into_err() {
                    TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                        Ok(Self(cancelled))
                    }
                    _ => unreachable!("checked above"),
                }
            }
            other => Err(dynamo(other)),
        }
    }

    /// Whether the write at `index`, in the transaction's order, failed its condition.
    pub(crate) fn condition_failed(&self, index: usize) -> bool {
        self.0
            .cancellation_reasons
            .as_ref()
            .and_then(|reasons| reasons.get(index))
            .and_then(|reason| reason.code.as_deref())
            == Some("ConditionalCheckFailed")
    }

    /// The item as it was when the write at `index` failed its condition (empty when
    /// there was none); `None` when that write was cancelled for another reason.
    pub(crate) fn refused_item(&mut self, index: usize) -> Option<Item> {
        if !self.condition_failed(index) {
            return None;
        }
        let reason = self.0.cancellation_reasons.as_mut()?.get_mut(index)?;
        Some(reason.item.take().unwrap_or_default())
    }
}

impl From<Cancelled> for StoreError {
    fn from(cancelled: Cancelled) -> Self {
        dynamo(cancelled.0)
    }
}
