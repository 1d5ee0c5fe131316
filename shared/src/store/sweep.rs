//! The sweeper's work list: batches written but not (entirely) enqueued, found through
//! a sparse gsi1 partition that `mark_enqueued` removes them from.

use super::{Store, StoreError};
use crate::clock::Timestamp;
use crate::domain::UnqueuedBatch;
use crate::ids::{CorrelationId, TenantId};
use crate::item::{dynamo, get_n, get_s, get_time, s, time};
use crate::keys;

impl Store {
    /// Batches created before `cutoff` and still not marked enqueued. A platform-level
    /// read across tenants: only the sweeper calls it.
    #[tracing::instrument(skip_all, fields(%cutoff))]
    pub(crate) async fn unqueued_batches(
        &self,
        cutoff: Timestamp,
    ) -> Result<Vec<UnqueuedBatch>, StoreError> {
        let mut found = Vec::new();
        for partition in keys::unqueued_shards() {
            let mut start = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name("gsi1")
                    .key_condition_expression("gsi1pk = :p AND gsi1sk < :cutoff")
                    .expression_attribute_values(":p", s(&partition))
                    .expression_attribute_values(":cutoff", time(cutoff))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(dynamo)?;
                for item in out.items.unwrap_or_default() {
                    let parsed = (|| {
                        Some(UnqueuedBatch {
                            tenant: TenantId::parse(get_s(&item, "tenant_id")?).ok()?,
                            batch: get_s(&item, "batch_id")?.parse().ok()?,
                            chunk_count: get_n(&item, "chunk_count")?,
                            // Batches written before windows had every chunk queued.
                            first_window: get_n(&item, "window_next")
                                .or_else(|| get_n(&item, "chunk_count"))?,
                            correlation_id: CorrelationId::from_header(get_s(
                                &item,
                                "correlation_id",
                            )),
                            created_at: get_time(&item, "created_at")?,
                        })
                    })();
                    match parsed {
                        Some(batch) => found.push(batch),
                        None => tracing::error!(
                            pk = get_s(&item, "pk").unwrap_or_default(),
                            "unreadable batch record on the sweeper's list; skipped"
                        ),
                    }
                }
                start = out.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }
}
