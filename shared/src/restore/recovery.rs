//! Recovering one tenant after "someone ran the wrong DELETE": restore the table at a
//! point in time into a scratch table, put back the tenant's items that are there but
//! not in the live table (never overwriting one that exists now), delete the scratch
//! table. A dry run counts, by kind, what it would put back and writes nothing of the
//! tenant's but its audit entries.
//!
//! The restore alone outlasts a Lambda invocation, and copying a large tenant may too,
//! so a recovery is a job stored in the table: `start` validates the request (before
//! writing anything), records the job with its audit entry and asks for the restore;
//! `advance` takes the job's lease and moves it on until its deadline, a page of the
//! scratch table at a time, saving the scan's cursor after every page. Any invocation
//! (the schedule's, the operator's) can advance it; a page done twice puts nothing
//! twice, since an item is only put where none exists.
//!
//! About 450 lines with its unit tests: the job's steps, its lease and its audit are
//! one piece.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::recovery_prefix;
use super::scratch::{Deletion, ScratchError, TableState, Tables};
use crate::clock::{SharedClock, Timestamp};
use crate::domain::{AuditEntry, ItemKind, KindCounts, RecoveryJob, RecoveryState};
use crate::ids::TenantId;
use crate::item::{Item, get_n, get_s};
use crate::keys::{self, Key, Platform};
use crate::store::{Lease, Store, StoreError};

/// Items of the scratch table scanned per page (the cursor is saved after each).
const PAGE: i32 = 200;
/// Items put back (or looked up) at once.
const PARALLEL_ITEMS: usize = 16;
/// Time kept back from the deadline to save the cursor and give the lease back.
const MARGIN: Duration = Duration::from_secs(5);
/// A lease outlives its invocation's deadline by this much, then anyone may take it.
const LEASE_SLACK: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct RecoveryRequest {
    pub tenant: TenantId,
    /// The point in time to recover the tenant's items from.
    pub at: Timestamp,
    pub dry_run: bool,
    /// The scratch table's name; by default the recovery prefix and the job's id.
    pub scratch_table: Option<String>,
    /// Who asked (for the audit log): an operator's name.
    pub requested_by: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("tenant {0} does not exist")]
    UnknownTenant(TenantId),
    #[error("scratch table name {name:?} is not usable: {reason}")]
    ScratchTableName { name: String, reason: String },
    #[error("a recovery of tenant {tenant} is running (job {job}); wait for it to finish")]
    AlreadyRunning { tenant: TenantId, job: String },
    #[error("there is no recovery job {0}")]
    UnknownJob(String),
    #[error("another invocation took over recovery job {0}")]
    LeaseLost(String),
    #[error(transparent)]
    Scratch(#[from] ScratchError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Recoveries {
    store: Store,
    tables: Tables,
    kms_key_arn: String,
    clock: SharedClock,
}

/// What became of one item found in the scratch table.
enum Found {
    /// Not the tenant's (its key only begins like the tenant's).
    Foreign,
    Skipped(ItemKind),
    Missing(ItemKind),
    Present(ItemKind),
}

impl Recoveries {
    pub fn new(store: Store, tables: Tables, kms_key_arn: String, clock: SharedClock) -> Self {
        Self {
            store,
            tables,
            kms_key_arn,
            clock,
        }
    }

    /// Validates the request, records the job and asks for the restore. A refused
    /// request (unknown tenant, a point outside the restorable window, a scratch table
    /// name that is taken or not the recovery's, a recovery of the tenant already
    /// running) writes nothing.
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant, at = %request.at))]
    pub async fn start(&self, request: RecoveryRequest) -> Result<RecoveryJob, RecoveryError> {
        let live = self.store.table_name().to_owned();
        if self.store.get_tenant(&request.tenant).await?.is_none() {
            return Err(RecoveryError::UnknownTenant(request.tenant));
        }
        let window = self.tables.window(&live).await?;
        if !window.contains(request.at) {
            return Err(ScratchError::OutsideWindow {
                table: live,
                at: request.at,
                earliest: window.earliest,
                latest: window.latest,
            }
            .into());
        }
        let id = ulid::Ulid::new().to_string();
        let prefix = recovery_prefix(&live);
        let scratch_table = match request.scratch_table {
            Some(name) => usable_name(name, &prefix)?,
            None => format!("{prefix}{}", id.to_lowercase()),
        };
        if !matches!(self.tables.state(&scratch_table).await?, TableState::Absent) {
            return Err(ScratchError::Exists(scratch_table).into());
        }
        let now = self.clock.timestamp();
        let mut job = RecoveryJob {
            id,
            tenant: request.tenant,
            restore_point: request.at,
            dry_run: request.dry_run,
            scratch_table,
            requested_by: request.requested_by,
            created_at: now,
            state: RecoveryState::Restoring,
            cursor: None,
            items: BTreeMap::new(),
            restored: 0,
            failure: None,
            finished_at: None,
            scratch_deleted: false,
        };
        let mode = if job.dry_run { "dry run" } else { "restore" };
        let started = self.audit(
            &job,
            "recovery.started",
            format!(
                "job {}: {mode} of the tenant's items as they were at {}",
                job.id, job.restore_point
            ),
        );
        let platform = Platform::operations();
        if let Err(running) = self
            .store
            .start_recovery(platform, &job, &started, now.epoch_seconds())
            .await?
        {
            return Err(RecoveryError::AlreadyRunning {
                tenant: job.tenant,
                job: running,
            });
        }
        let restored = self
            .tables
            .restore(
                &live,
                &job.scratch_table,
                job.restore_point,
                &self.kms_key_arn,
            )
            .await;
        if let Err(e) = restored {
            self.fail(&mut job, None, format!("the restore was refused: {e}"))
                .await?;
            return Err(e.into());
        }
        Ok(job)
    }

    /// The jobs running now.
    pub async fn running(&self) -> Result<Vec<String>, RecoveryError> {
        Ok(self
            .store
            .running_recoveries(Platform::operations())
            .await?)
    }

    pub async fn job(&self, id: &str) -> Result<RecoveryJob, RecoveryError> {
        self.store
            .recovery_job(Platform::operations(), id)
            .await?
            .ok_or_else(|| RecoveryError::UnknownJob(id.to_owned()))
    }

    /// Moves the job on until `deadline` (or its end); answers it as it then stands.
    /// A job another invocation is advancing is answered as it is.
    #[tracing::instrument(skip_all, fields(job = %id))]
    pub async fn advance(&self, id: &str, deadline: Instant) -> Result<RecoveryJob, RecoveryError> {
        let mut job = self.job(id).await?;
        if job.state.finished() {
            return Ok(job);
        }
        let platform = Platform::operations();
        let now_ms = self.clock.epoch_millis();
        let left = deadline.saturating_duration_since(Instant::now());
        let lease = Lease {
            holder: ulid::Ulid::new().to_string(),
            until_ms: now_ms + (left + LEASE_SLACK).as_millis() as u64,
        };
        if !self
            .store
            .hold_recovery(platform, id, &lease, now_ms)
            .await?
        {
            return Ok(job);
        }
        let advanced = self.advance_held(&mut job, &lease, deadline).await;
        if !job.state.finished() {
            self.store.release_recovery(platform, id, &lease).await?;
        }
        advanced.map(|()| job)
    }

    async fn advance_held(
        &self,
        job: &mut RecoveryJob,
        lease: &Lease,
        deadline: Instant,
    ) -> Result<(), RecoveryError> {
        if job.state == RecoveryState::Restoring {
            match self.tables.state(&job.scratch_table).await? {
                TableState::Creating => return Ok(()),
                TableState::Active(_) => {
                    job.state = RecoveryState::Copying;
                    self.save(job, lease).await?;
                }
                TableState::Absent | TableState::Deleting | TableState::Other(_) => {
                    let gone = "the scratch table was gone before it was copied from";
                    return self.fail(job, Some(lease), gone.into()).await;
                }
            }
        }
        let scratch = self.store.on_table(&job.scratch_table);
        while job.state == RecoveryState::Copying && Instant::now() + MARGIN < deadline {
            let (items, next) = scratch
                .tenant_items_page(&job.tenant, job.cursor.as_ref(), PAGE)
                .await?;
            self.put_back(job, items).await?;
            job.cursor = next;
            if job.cursor.is_none() {
                return self.complete(job, lease).await;
            }
            self.save(job, lease).await?;
        }
        Ok(())
    }

    async fn save(&self, job: &RecoveryJob, lease: &Lease) -> Result<(), RecoveryError> {
        if self
            .store
            .save_recovery(Platform::operations(), job, lease)
            .await?
        {
            Ok(())
        } else {
            Err(RecoveryError::LeaseLost(job.id.clone()))
        }
    }

    /// Puts back (or, in a dry run, looks up) one page's items of the tenant and adds
    /// them to the job's counts.
    async fn put_back(&self, job: &mut RecoveryJob, items: Vec<Item>) -> Result<(), RecoveryError> {
        let (tenant, dry_run) = (job.tenant.clone(), job.dry_run);
        let now = self.clock.epoch_seconds();
        // In groups, each joined whole: the futures borrow `self` and are collected
        // first, which keeps them `Send` for the Lambda runtime (a stream combinator
        // with a borrowing closure is not, rust-lang/rust#102211).
        let mut found = Vec::with_capacity(items.len());
        for group in items.chunks(PARALLEL_ITEMS) {
            let lookups: Vec<_> = group
                .iter()
                .map(|item| self.put_back_one(&tenant, dry_run, now, item))
                .collect();
            for outcome in futures::future::join_all(lookups).await {
                found.push(outcome?);
            }
        }
        for outcome in found {
            let (kind, count): (ItemKind, fn(&mut KindCounts)) = match outcome {
                Found::Foreign => continue,
                Found::Skipped(kind) => (kind, |c| c.skipped += 1),
                Found::Missing(kind) => (kind, |c| c.missing += 1),
                Found::Present(kind) => (kind, |c| c.present += 1),
            };
            count(job.items.entry(kind).or_default());
            if matches!(outcome, Found::Missing(_)) && !dry_run {
                job.restored += 1;
            }
        }
        Ok(())
    }

    async fn put_back_one(
        &self,
        tenant: &TenantId,
        dry_run: bool,
        now_epoch: u64,
        item: &Item,
    ) -> Result<Found, StoreError> {
        let key = Key {
            pk: get_s(item, "pk").unwrap_or_default().to_owned(),
            sk: get_s(item, "sk").unwrap_or_default().to_owned(),
        };
        let Some(kind) = keys::tenant_item_kind(tenant, &key.pk, &key.sk) else {
            return Ok(Found::Foreign);
        };
        // An item past its TTL would be deleted again by DynamoDB: not put back.
        let expired = get_n::<u64>(item, "expires_at").is_some_and(|at| at <= now_epoch);
        if !kind.restorable() || expired {
            return Ok(Found::Skipped(kind));
        }
        let missing = if dry_run {
            !self.store.item_exists(&key).await?
        } else {
            self.store.put_back(item.clone()).await?
        };
        Ok(if missing {
            Found::Missing(kind)
        } else {
            Found::Present(kind)
        })
    }

    async fn complete(&self, job: &mut RecoveryJob, lease: &Lease) -> Result<(), RecoveryError> {
        job.scratch_deleted = self.delete_scratch(job).await?;
        job.state = RecoveryState::Succeeded;
        job.finished_at = Some(self.clock.timestamp());
        let (action, outcome) = if job.dry_run {
            ("recovery.dry_run", "would be restored")
        } else {
            ("recovery.restored", "restored")
        };
        let entry = self.audit(
            job,
            action,
            format!(
                "job {}: {} items missing at {} ({}), {} {outcome}",
                job.id,
                job.missing(),
                job.restore_point,
                job.missing_by_kind(),
                if job.dry_run {
                    job.missing()
                } else {
                    job.restored
                },
            ),
        );
        self.record_end(job, Some(lease), &entry).await
    }

    async fn fail(
        &self,
        job: &mut RecoveryJob,
        lease: Option<&Lease>,
        reason: String,
    ) -> Result<(), RecoveryError> {
        job.scratch_deleted = self.delete_scratch(job).await?;
        job.state = RecoveryState::Failed;
        job.finished_at = Some(self.clock.timestamp());
        let entry = self.audit(job, "recovery.failed", format!("job {}: {reason}", job.id));
        job.failure = Some(reason);
        self.record_end(job, lease, &entry).await
    }

    async fn record_end(
        &self,
        job: &RecoveryJob,
        lease: Option<&Lease>,
        entry: &AuditEntry,
    ) -> Result<(), RecoveryError> {
        let now = self.clock.epoch_seconds();
        if self
            .store
            .finish_recovery(Platform::operations(), job, lease, entry, now)
            .await?
        {
            Ok(())
        } else {
            Err(RecoveryError::LeaseLost(job.id.clone()))
        }
    }

    async fn delete_scratch(&self, job: &RecoveryJob) -> Result<bool, RecoveryError> {
        Ok(match self.tables.delete(&job.scratch_table).await? {
            Deletion::Deleted | Deletion::Absent => true,
            Deletion::NotYet => false,
        })
    }

    fn audit(&self, job: &RecoveryJob, action: &str, target: String) -> AuditEntry {
        AuditEntry {
            at: self.clock.timestamp(),
            actor: job.requested_by.clone(),
            action: action.to_owned(),
            target,
            request_id: job.id.clone(),
        }
    }
}

/// An operator's scratch table name: the recovery prefix (so a left-behind one is
/// found and deleted) and what DynamoDB allows in a table name.
fn usable_name(name: String, prefix: &str) -> Result<String, RecoveryError> {
    let refuse = |reason: &str| RecoveryError::ScratchTableName {
        name: name.clone(),
        reason: reason.to_owned(),
    };
    if !name.starts_with(prefix) || name.len() == prefix.len() {
        return Err(refuse(&format!("it must begin with {prefix} and go on")));
    }
    if name.len() > 255
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(refuse(
            "a table name is at most 255 characters of a-z, A-Z, 0-9, '_', '-' and '.'",
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_table_name_is_the_recoveries_and_dynamodbs() {
        let prefix = "live-recover-";
        assert!(usable_name("live-recover-acme-1".into(), prefix).is_ok());
        for bad in [
            "live-recover-",
            "other-recover-x",
            "live-recover-a b",
            "live-recover-é",
        ] {
            assert!(usable_name(bad.into(), prefix).is_err(), "{bad}");
        }
        assert!(usable_name(format!("{prefix}{}", "x".repeat(250)), prefix).is_err());
    }
}
