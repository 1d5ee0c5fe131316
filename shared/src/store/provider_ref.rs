//! The provider reference index (gsi2): texts sent through SNS by SNS's message id, and
//! texts whose SNS answer was lost by number, both written by the settle itself
//! (`Store::settle`), so a delivery status log finds its message with one query and
//! no scan. The index is eventually consistent: an entry written a moment ago may not
//! be found yet, which the events function treats as a receipt that came early.

use std::time::Duration;

use super::{Store, StoreError};
use crate::clock::Timestamp;
use crate::ids::{MessageId, TenantId};
use crate::item::{dynamo, get_s, s};
use crate::keys;
use crate::phone::PhoneNumber;

const INDEX: &str = "gsi2";

/// A message found through the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedMessage {
    pub tenant: TenantId,
    pub message: MessageId,
}

impl Store {
    /// The message `provider` took as `provider_ref`, if it is indexed.
    #[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty, %provider_ref))]
    pub async fn message_by_provider_ref(
        &self,
        provider: &str,
        provider_ref: &str,
    ) -> Result<Option<IndexedMessage>, StoreError> {
        let found = self
            .indexed(keys::provider_ref_partition(provider, provider_ref), None)
            .await?;
        if let Some(first) = found.first() {
            tracing::Span::current().record("tenant_id", first.tenant.as_str());
        }
        // One entry per reference: SNS never reuses a message id.
        Ok(found.into_iter().next())
    }

    /// The texts to `to` whose send answer was lost and that were settled `unknown`
    /// between `from` and `until`.
    #[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
    pub async fn lost_texts_to(
        &self,
        to: &PhoneNumber,
        from: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<IndexedMessage>, StoreError> {
        self.indexed(keys::lost_text_partition(to), Some((from, until)))
            .await
    }

    async fn indexed(
        &self,
        partition: String,
        between: Option<(Timestamp, Timestamp)>,
    ) -> Result<Vec<IndexedMessage>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX)
            .expression_attribute_values(":pk", s(partition))
            // A number gets few texts in a window; more than this many is ambiguous
            // whatever the rest are.
            .limit(10);
        query = match between {
            None => query.key_condition_expression("gsi2pk = :pk"),
            Some((from, until)) => query
                .key_condition_expression("gsi2pk = :pk AND gsi2sk BETWEEN :from AND :until")
                .expression_attribute_values(":from", s(time_bound(from, "")))
                .expression_attribute_values(":until", s(time_bound(until, "~"))),
        };
        let out = query.send().await.map_err(dynamo)?;
        Ok(out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| get_s(item, "gsi2sk"))
            .filter_map(keys::parse_provider_ref_entry)
            .map(|(tenant, message, _)| IndexedMessage { tenant, message })
            .collect())
    }
}

/// A bound of a range of gsi2 entries: the time part of `keys::provider_ref_entry`,
/// then `suffix` (empty: before every entry of that millisecond; `~`: after them).
fn time_bound(at: Timestamp, suffix: &str) -> String {
    format!("{:015}{suffix}", at.epoch_millis())
}

/// How far around SNS's publish time a lost text's entry may be: the entry is written
/// when the sender gives up on the answer (after the provider timeout, seconds after
/// the publish) or, for a sender that stopped, when the next one finds its lease over.
pub const LOST_TEXT_WINDOW: Duration = Duration::from_secs(15 * 60);
