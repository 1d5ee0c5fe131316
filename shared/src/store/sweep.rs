//! The sweeper's work lists, sparse gsi1 partitions of batch records: batches written
//! but not enqueued (`mark_enqueued` removes them), and batches sending, whose windows
//! it watches (`window.rs`).

use super::{Store, StoreError};
use crate::clock::Timestamp;
use crate::domain::UnqueuedBatch;
use crate::ids::{CorrelationId, TenantId};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;

use crate::item::{Item, get_n, get_s, get_time, s, time};
use crate::keys;

impl Store {
    /// Batches created before `cutoff` and still not marked enqueued. A platform-level
    /// read across tenants: only the sweeper calls it.
    #[tracing::instrument(skip_all, fields(%cutoff))]
    pub(crate) async fn unqueued_batches(
        &self,
        cutoff: Timestamp,
    ) -> Result<Vec<UnqueuedBatch>, StoreError> {
        let items = self
            .listed_before(keys::unqueued_shards(), cutoff, None)
            .await?;
        Ok(parse_listed(items, "the sweeper's list", |item| {
            Some(UnqueuedBatch {
                tenant: TenantId::parse(get_s(item, "tenant_id")?).ok()?,
                batch: get_s(item, "batch_id")?.parse().ok()?,
                chunk_count: get_n(item, "chunk_count")?,
                // Batches written before windows had every chunk queued.
                first_window: get_n(item, "window_next").or_else(|| get_n(item, "chunk_count"))?,
                takes_turns: item.contains_key("turn"),
                correlation_id: CorrelationId::from_header(get_s(item, "correlation_id")),
                created_at: get_time(item, "created_at")?,
            })
        }))
    }

    /// Every batch record listed in these gsi1 partitions before `cutoff` (its
    /// `gsi1sk` starts with a time), that passes `filter` (which may use `:cutoff`).
    pub(super) async fn listed_before(
        &self,
        partitions: impl Iterator<Item = String>,
        cutoff: Timestamp,
        filter: Option<&'static str>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        for partition in partitions {
            let query = |q: QueryFluentBuilder| {
                q.index_name("gsi1")
                    .key_condition_expression("gsi1pk = :p AND gsi1sk < :cutoff")
                    .set_filter_expression(filter.map(str::to_owned))
                    .expression_attribute_values(":p", s(&partition))
                    .expression_attribute_values(":cutoff", time(cutoff))
            };
            found.extend(self.query_all(query, None).await?);
        }
        Ok(found)
    }
}

/// The items `parse` reads; an unreadable one is logged (naming `list`) and skipped.
pub(super) fn parse_listed<T>(
    items: Vec<Item>,
    list: &str,
    parse: impl Fn(&Item) -> Option<T>,
) -> Vec<T> {
    items
        .iter()
        .filter_map(|item| {
            let parsed = parse(item);
            if parsed.is_none() {
                tracing::error!(
                    pk = get_s(item, "pk").unwrap_or_default(),
                    "unreadable batch record on {list}; skipped"
                );
            }
            parsed
        })
        .collect()
}
