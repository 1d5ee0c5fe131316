//! Per-tenant request rate and daily send quota, kept in DynamoDB with conditional
//! updates so they hold across every concurrent Lambda instance.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};

use super::{Store, StoreError};
use crate::clock::{Day, Timestamp};
use crate::domain::{Admission, Reservation};
use crate::ids::{BatchId, TenantId};
use crate::item::{Cancelled, corrupt, dynamo, get_n, get_s, key_item, n, s, with_key};
use crate::keys;

/// How long a rate window's counter is kept after its second (TTL sweeps it).
const RATE_WINDOW_TTL_SECS: u64 = 120;
/// Quota counters outlive their day by a week, for usage questions.
const QUOTA_TTL_SECS: u64 = 8 * 24 * 3600;

impl Store {
    /// Counts one request in the tenant's current one-second window, unless the window
    /// already holds `limit` requests.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn admit_request(
        &self,
        tenant: &TenantId,
        limit: u32,
        now_epoch: u64,
    ) -> Result<Admission, StoreError> {
        let key = keys::rate_window(tenant, now_epoch);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression("ADD requests :one SET expires_at = :expires, tenant_id = :tenant")
            .condition_expression("attribute_not_exists(requests) OR requests < :limit")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":expires", n(now_epoch + RATE_WINDOW_TTL_SECS))
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let used: u32 = out
                    .attributes
                    .as_ref()
                    .and_then(|a| get_n(a, "requests"))
                    .unwrap_or(limit);
                Ok(Admission::Admitted {
                    limit,
                    remaining: limit.saturating_sub(used),
                })
            }
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(Admission::Limited {
                    limit,
                    retry_after_secs: 1,
                })
            }
            Err(e) => Err(dynamo(e)),
        }
    }

    /// Counts a batch's `count` sends against the tenant's quota for today (UTC), all
    /// or nothing, once per batch: the counter and a per-batch marker are written in
    /// one transaction, so a retry that finishes the same batch finds the marker.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, batch_id = %batch, count = count))]
    pub async fn reserve_sends(
        &self,
        tenant: &TenantId,
        batch: BatchId,
        count: u32,
        limit: u32,
        now: Timestamp,
    ) -> Result<Reservation, StoreError> {
        let (day, now_epoch) = (now.day(), now.epoch_seconds());
        if count > limit {
            return Ok(Reservation::Exceeded {
                used: self.sends_on(tenant, day).await?,
            });
        }
        let counter = keys::quota_day(tenant, day);
        let marker = keys::quota_reservation(tenant, batch);
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&counter)))
            .update_expression("ADD sends :count SET expires_at = :expires, tenant_id = :tenant")
            .condition_expression("attribute_not_exists(sends) OR sends <= :room")
            .expression_attribute_values(":count", n(count))
            .expression_attribute_values(":room", n(limit - count))
            .expression_attribute_values(":expires", n(now_epoch + QUOTA_TTL_SECS))
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .build()
            .map_err(dynamo)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(with_key(
                &marker,
                [
                    ("tenant_id", s(tenant.as_str())),
                    ("day", s(day.to_string())),
                    ("sends", n(count)),
                ],
            )))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(dynamo)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Reservation::Reserved {
                used: self.sends_on(tenant, day).await?,
            }),
            Err(e) => {
                let cancelled = Cancelled::from_error(e)?;
                if cancelled.condition_failed(1) {
                    Ok(Reservation::AlreadyReserved)
                } else if cancelled.condition_failed(0) {
                    Ok(Reservation::Exceeded {
                        used: self.sends_on(tenant, day).await?,
                    })
                } else {
                    Err(cancelled.into())
                }
            }
        }
    }

    /// The writes that give `count` cancelled sends of `batch`'s `chunk` back to the
    /// day they were reserved on, and note the chunk on the batch's reservation; nothing
    /// for a batch that reserved none. The note is the refund's own guard: it is
    /// written only if the chunk is not noted yet, so the transaction that counts the
    /// chunk gives its cancellations back once, whatever happened to the chunk's own
    /// `counted_at` marker. The note is the last write.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, batch_id = %batch, chunk = chunk))]
    pub(super) async fn quota_refund(
        &self,
        tenant: &TenantId,
        batch: BatchId,
        chunk: u32,
        count: u32,
        now: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let marker = keys::quota_reservation(tenant, batch);
        let Some(reservation) = self.get(&marker, true).await? else {
            return Ok(Vec::new());
        };
        let day = get_s(&reservation, "day")
            .and_then(|day| Day::parse(day).ok())
            .ok_or_else(|| corrupt(&marker, "a reservation without its day"))?;
        let counter = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::quota_day(tenant, day))))
            // A counter past its TTL comes back with one, not as a stray item.
            .update_expression(
                "ADD sends :minus SET expires_at = if_not_exists(expires_at, :expires), \
                 tenant_id = :tenant",
            )
            .expression_attribute_values(":minus", n(-i64::from(count)))
            .expression_attribute_values(":expires", n(now.epoch_seconds() + QUOTA_TTL_SECS))
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .build()
            .map_err(dynamo)?;
        let noted = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&marker)))
            .update_expression("ADD returned :count, refunded_chunks :chunk_set")
            .condition_expression("NOT contains(refunded_chunks, :chunk)")
            .expression_attribute_values(":count", n(count))
            .expression_attribute_values(":chunk_set", AttributeValue::Ns(vec![chunk.to_string()]))
            .expression_attribute_values(":chunk", n(chunk))
            .build()
            .map_err(dynamo)?;
        Ok(vec![
            TransactWriteItem::builder().update(counter).build(),
            TransactWriteItem::builder().update(noted).build(),
        ])
    }

    /// Sends counted against the tenant's quota on `day`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, %day))]
    pub async fn sends_on(&self, tenant: &TenantId, day: Day) -> Result<u32, StoreError> {
        let key = keys::quota_day(tenant, day);
        let out = self.get(&key, true).await?;
        Ok(out.and_then(|i| get_n(&i, "sends")).unwrap_or(0))
    }
}
