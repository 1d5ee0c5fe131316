//! Tenant recovery jobs (platform-level items): the job, which carries its progress
//! and the cursor of its scan; a lock per tenant, so one recovery of a tenant runs at a
//! time; and a lease on the job, so two invocations never copy the same page at once.
//! Starting and finishing a job write its audit entry in the same transaction. Also
//! the reads and writes of the copy itself: a page of one tenant's items from a scratch
//! table, and an item put back only where none exists.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

use super::{Store, StoreError};
use crate::domain::{AuditEntry, Cursor, RecoveryJob};
use crate::ids::TenantId;
use crate::item::{
    Cancelled, Item, corrupt, dynamo, get_s, is_condition_failure, key_item, n, name, s, with_key,
};
use crate::keys::{self, Key, Platform};

/// Finished jobs are kept a year, beside the audit entries that name them.
const JOB_TTL_SECS: u64 = 365 * 24 * 3600;

/// Who advances a job now: an id per invocation, and until when (epoch ms).
#[derive(Debug, Clone)]
pub struct Lease {
    pub holder: String,
    pub until_ms: u64,
}

impl Store {
    /// Records the job, takes its tenant's lock and audits the start, all or nothing.
    /// `Err(job id)` of the recovery that holds the lock when one runs.
    #[tracing::instrument(skip_all, fields(tenant_id = %job.tenant, job = %job.id))]
    pub async fn start_recovery(
        &self,
        platform: Platform,
        job: &RecoveryJob,
        entry: &AuditEntry,
        now_epoch: u64,
    ) -> Result<Result<(), String>, StoreError> {
        let lock_key = keys::recovery_lock(platform, &job.tenant);
        let lock = Put::builder()
            .table_name(&self.table)
            .set_item(Some(with_key(&lock_key, [("job_id", s(&job.id))])))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(dynamo)?;
        let record = Put::builder()
            .table_name(&self.table)
            .set_item(Some(job_item(platform, job, None)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(dynamo)?;
        let audit = self.audit_put(&job.tenant, entry, now_epoch)?;
        let written = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(lock).build())
            .transact_items(TransactWriteItem::builder().put(record).build())
            .transact_items(TransactWriteItem::builder().put(audit).build())
            .send()
            .await;
        match written {
            Ok(_) => Ok(Ok(())),
            Err(e) => {
                let cancelled = Cancelled::from_error(e)?;
                if !cancelled.condition_failed(0) {
                    return Err(cancelled.into());
                }
                let holder = self.get(&lock_key, true).await?;
                let running = holder.as_ref().and_then(|i| get_s(i, "job_id"));
                Ok(Err(running.unwrap_or("unknown").to_owned()))
            }
        }
    }

    pub async fn recovery_job(
        &self,
        platform: Platform,
        id: &str,
    ) -> Result<Option<RecoveryJob>, StoreError> {
        let key = keys::recovery_job(platform, id);
        let Some(item) = self.get(&key, true).await? else {
            return Ok(None);
        };
        let text = get_s(&item, "job").ok_or_else(|| corrupt(&key, "no job"))?;
        serde_json::from_str(text)
            .map(Some)
            .map_err(|e| corrupt(&key, e.to_string()))
    }

    /// The ids of the recoveries running now (one per tenant at most).
    #[tracing::instrument(skip_all)]
    pub async fn running_recoveries(&self, platform: Platform) -> Result<Vec<String>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :locks)")
            .expression_attribute_values(":pk", s(keys::recoveries_partition(platform)))
            .expression_attribute_values(":locks", s(keys::RECOVERY_LOCKS))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        Ok(out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|i| get_s(i, "job_id").map(str::to_owned))
            .collect())
    }

    /// Takes the job's lease; `false` when another invocation holds it.
    #[tracing::instrument(skip_all, fields(job = %id))]
    pub async fn hold_recovery(
        &self,
        platform: Platform,
        id: &str,
        lease: &Lease,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let held = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::recovery_job(platform, id))))
            .update_expression("SET holder = :holder, held_until = :until")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(held_until) OR held_until < :now)",
            )
            .expression_attribute_values(":holder", s(&lease.holder))
            .expression_attribute_values(":until", n(lease.until_ms))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        match held {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(dynamo(e)),
        }
    }

    /// Saves the job's progress (its counts and cursor) while holding its lease;
    /// `false` when the lease was lost.
    #[tracing::instrument(skip_all, fields(job = %job.id))]
    pub async fn save_recovery(
        &self,
        platform: Platform,
        job: &RecoveryJob,
        lease: &Lease,
    ) -> Result<bool, StoreError> {
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(job_item(platform, job, Some(lease))?))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(&lease.holder))
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

    /// Records the finished job, frees its tenant's lock and audits the result, all or
    /// nothing; `false` when the lease (if one was held) was lost.
    #[tracing::instrument(skip_all, fields(tenant_id = %job.tenant, job = %job.id))]
    pub async fn finish_recovery(
        &self,
        platform: Platform,
        job: &RecoveryJob,
        lease: Option<&Lease>,
        entry: &AuditEntry,
        now_epoch: u64,
    ) -> Result<bool, StoreError> {
        let mut record = Put::builder()
            .table_name(&self.table)
            .set_item(Some(job_item(platform, job, None)?));
        record = match lease {
            Some(lease) => record
                .condition_expression("holder = :holder")
                .expression_attribute_values(":holder", s(&lease.holder)),
            None => record.condition_expression("attribute_not_exists(holder)"),
        };
        let unlock = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::recovery_lock(platform, &job.tenant))))
            .condition_expression("job_id = :id")
            .expression_attribute_values(":id", s(&job.id))
            .build()
            .map_err(dynamo)?;
        let audit = self.audit_put(&job.tenant, entry, now_epoch)?;
        let written = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(record.build().map_err(dynamo)?)
                    .build(),
            )
            .transact_items(TransactWriteItem::builder().delete(unlock).build())
            .transact_items(TransactWriteItem::builder().put(audit).build())
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e) => {
                let cancelled = Cancelled::from_error(e)?;
                if cancelled.condition_failed(0) {
                    Ok(false)
                } else {
                    Err(cancelled.into())
                }
            }
        }
    }

    /// Gives the lease back, so the next invocation need not wait for it to run out.
    pub async fn release_recovery(
        &self,
        platform: Platform,
        id: &str,
        lease: &Lease,
    ) -> Result<(), StoreError> {
        let released = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::recovery_job(platform, id))))
            .update_expression("REMOVE holder, held_until")
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(&lease.holder))
            .send()
            .await;
        match released {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(dynamo(e)),
        }
    }

    /// One page of this table's items under `tenant`'s keys (a scratch table's, when a
    /// recovery copies from it), from `cursor` on; the cursor of the next page, `None`
    /// after the last. A page scans `limit` items, of which some may be the tenant's.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub(crate) async fn tenant_items_page(
        &self,
        tenant: &TenantId,
        cursor: Option<&Cursor>,
        limit: i32,
    ) -> Result<(Vec<Item>, Option<Cursor>), StoreError> {
        let start = cursor.map(|c| {
            key_item(&Key {
                pk: c.pk.clone(),
                sk: c.sk.clone(),
            })
        });
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(pk, :prefix)")
            .expression_attribute_values(":prefix", s(keys::tenant_key_prefix(tenant)))
            .set_exclusive_start_key(start)
            .limit(limit)
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        let next = out.last_evaluated_key.as_ref().and_then(|key| {
            Some(Cursor {
                pk: get_s(key, "pk")?.to_owned(),
                sk: get_s(key, "sk")?.to_owned(),
            })
        });
        Ok((out.items.unwrap_or_default(), next))
    }

    /// Whether an item is at `key` now.
    pub(crate) async fn item_exists(&self, key: &Key) -> Result<bool, StoreError> {
        Ok(self.get(key, true).await?.is_some())
    }

    /// Writes `item` back unless one exists at its key: whether it was written.
    pub(crate) async fn put_back(&self, item: Item) -> Result<bool, StoreError> {
        self.put_new(item).await
    }
}

fn job_item(
    platform: Platform,
    job: &RecoveryJob,
    lease: Option<&Lease>,
) -> Result<Item, StoreError> {
    let record = serde_json::to_string(job).map_err(dynamo)?;
    let mut item = with_key(
        &keys::recovery_job(platform, &job.id),
        [
            ("state", name(job.state)),
            ("job", s(record)),
            (
                "expires_at",
                n(job.created_at.epoch_seconds() + JOB_TTL_SECS),
            ),
        ],
    );
    if let Some(lease) = lease {
        item.insert("holder".into(), s(&lease.holder));
        item.insert("held_until".into(), n(lease.until_ms));
    }
    Ok(item)
}
