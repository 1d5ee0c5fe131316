//! The restore drill, one step per run of the backup check. A restore takes longer
//! than an invocation may run, so each run does what the drill's state asks and
//! returns, and every step can be run twice:
//!
//! 1. every run writes a canary (a platform item) carrying a sample of the live table;
//! 2. with no drill running and the last one old enough, a run starts one: it picks a
//!    restore point before its own canary, records which canaries must be in the
//!    restore (written before the point) and which must not (after it), and which
//!    sampled items did not change across the point, then asks DynamoDB to restore the
//!    table at the point into a scratch table;
//! 3. a run that finds the scratch table ACTIVE checks it (canaries, sampled items,
//!    keys, indexes, TTL, encryption, deletion protection), deletes it and records the
//!    result; one that finds the drill older than its timeout fails it;
//! 4. every run deletes scratch tables no running drill or recovery owns, and reports
//!    them as left behind.
//!
//! One file, longer than most: these steps share the drill's record and its
//! conditions, and read best as the one sequence they are (`tests/restores.rs` runs
//! them against the local cloud).

use serde::Serialize;

use super::config::BackupCheckConfig;
use super::scratch::{Deletion, ScratchError, TableState, Tables};
use super::{drill_prefix, recovery_prefix};
use crate::clock::{SharedClock, Timestamp};
use crate::domain::{
    Canary, CanaryRef, Drill, DrillChecks, DrillSchedule, DrillState, Expectations, SampledItem,
    Tally,
};
use crate::keys::Platform;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(
        "drill {id} is running (started {started_at:?}); a new one can start when it has finished"
    )]
    AlreadyRunning {
        id: String,
        started_at: Option<Timestamp>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Scratch(#[from] ScratchError),
}

/// Whether a run may start a drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// When none runs and the last one started `drill_every` ago (the schedule's runs).
    WhenDue,
    /// Now, unless one runs (an operator's request; refused while one runs).
    Now,
}

/// What one run did, as the function answers and `herald-local backup-check` prints.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub canary: CanaryRef,
    /// The drill this run started or advanced, as it stands after the run.
    pub drill: Option<Drill>,
    /// Whether that drill finished in this run (its result is reported once).
    pub finished: bool,
    /// Why no drill was started although one was due.
    pub waiting: Option<String>,
    /// Scratch tables no running drill or recovery owned: deleted, or to be deleted
    /// once DynamoDB lets them be.
    pub left_behind: Vec<String>,
}

impl StepReport {
    /// A failed drill finished now, or a scratch table was left behind: the run must
    /// fail loudly.
    pub fn is_clean(&self) -> bool {
        let failed = self.finished
            && self
                .drill
                .as_ref()
                .is_some_and(|d| d.state == DrillState::Failed);
        !failed && self.left_behind.is_empty()
    }
}

pub struct Drills {
    store: Store,
    tables: Tables,
    config: BackupCheckConfig,
    clock: SharedClock,
}

impl Drills {
    pub fn new(
        store: Store,
        tables: Tables,
        config: BackupCheckConfig,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            tables,
            config,
            clock,
        }
    }

    fn live(&self) -> &str {
        self.store.table_name()
    }

    /// One run: the canary, the left-behind sweep, then the drill's next step.
    pub async fn step(&self, start: Start) -> Result<StepReport, DrillError> {
        let platform = Platform::operations();
        let schedule = self.store.drill_schedule(platform).await?;
        // Refused before anything is written.
        if start == Start::Now
            && let Some(id) = &schedule.running
        {
            let started_at = self
                .store
                .get_drill(platform, id)
                .await?
                .map(|d| d.started_at);
            return Err(DrillError::AlreadyRunning {
                id: id.clone(),
                started_at,
            });
        }
        let canary = self.write_canary().await?;
        let left_behind = self.sweep().await?;
        let mut report = StepReport {
            canary: canary.reference(),
            drill: None,
            finished: false,
            waiting: None,
            left_behind,
        };
        match &schedule.running {
            Some(id) => {
                let drill = self.store.get_drill(platform, id).await?.ok_or_else(|| {
                    StoreError::Corrupt {
                        pk: "PLATFORM#DRILL".into(),
                        sk: format!("DRILL#{id}"),
                        reason: "the running drill has no record".into(),
                    }
                })?;
                let (drill, finished) = self.advance(drill).await?;
                report.drill = Some(drill);
                report.finished = finished;
            }
            None if start == Start::Now || self.due(&schedule) => {
                match self.start(&canary, start).await? {
                    Ok((drill, finished)) => {
                        report.drill = Some(drill);
                        report.finished = finished;
                    }
                    Err(waiting) => report.waiting = Some(waiting),
                }
            }
            None => {}
        }
        Ok(report)
    }

    fn due(&self, schedule: &DrillSchedule) -> bool {
        schedule
            .last_started_at
            .is_none_or(|last| last.until(self.clock.timestamp()) >= self.config.drill_every)
    }

    async fn write_canary(&self) -> Result<Canary, StoreError> {
        let sample = if self.config.sample_size > 0 {
            self.store
                .sample_items(self.config.sample_size, self.config.sample_segments)
                .await?
        } else {
            Vec::new()
        };
        let canary = Canary {
            id: ulid::Ulid::new().to_string(),
            written_at: self.clock.timestamp(),
            sample,
        };
        self.store
            .put_canary(Platform::operations(), &canary)
            .await?;
        Ok(canary)
    }

    /// Deletes the scratch tables no running drill or recovery owns; answers their
    /// names. The owners are read after the tables are listed, so a drill started
    /// meanwhile is never mistaken for one that left its table behind.
    async fn sweep(&self) -> Result<Vec<String>, DrillError> {
        let platform = Platform::operations();
        let prefixes = [drill_prefix(self.live()), recovery_prefix(self.live())];
        let names = self.tables.named_like(&prefixes).await?;
        if names.is_empty() {
            return Ok(names);
        }
        let mut owned = Vec::new();
        if let Some(id) = self.store.drill_schedule(platform).await?.running
            && let Some(drill) = self.store.get_drill(platform, &id).await?
        {
            owned.push(drill.scratch_table);
        }
        for id in self.store.running_recoveries(platform).await? {
            if let Some(job) = self.store.recovery_job(platform, &id).await? {
                owned.push(job.scratch_table);
            }
        }
        let mut left = Vec::new();
        for name in names.into_iter().filter(|n| !owned.contains(n)) {
            match self.tables.state(&name).await? {
                TableState::Absent | TableState::Deleting => continue,
                TableState::Creating => {}
                TableState::Active(_) | TableState::Other(_) => {
                    self.tables.delete(&name).await?;
                }
            }
            tracing::error!(table = %name, "scratch table left behind");
            left.push(name);
        }
        Ok(left)
    }

    /// Starts a drill at a point before `canary`; `Err(reason)` when it cannot start
    /// yet (no canary before a restorable point).
    async fn start(
        &self,
        canary: &Canary,
        start: Start,
    ) -> Result<Result<(Drill, bool), String>, DrillError> {
        let platform = Platform::operations();
        let now = self.clock.timestamp();
        let window = match self.tables.window(self.live()).await {
            Ok(window) => window,
            Err(ScratchError::RecoveryOff(table)) => {
                let mut drill = self.new_drill(now, now, Expectations::default());
                drill.state = DrillState::Failed;
                drill.failures = vec![format!("point-in-time recovery is off for table {table}")];
                drill.finished_at = Some(now);
                self.store.finish_drill(platform, &drill, false).await?;
                return Ok(Ok((drill, true)));
            }
            Err(e) => return Err(e.into()),
        };
        let margin = self.config.clock_margin;
        let point = window.latest.min(canary.written_at.minus(margin));
        if point < window.earliest {
            return Ok(Err(
                "the table's restorable window began after the last canary".into(),
            ));
        }
        let before = self
            .store
            .canaries(
                platform,
                window.earliest,
                point.minus(margin),
                Some(self.config.canaries_checked),
            )
            .await?;
        let Some(base) = before.last() else {
            return Ok(Err(
                "no canary was written before the restorable point yet; a later run starts the drill"
                    .into(),
            ));
        };
        let after = self
            .store
            .canaries(platform, point.plus(margin), now, None)
            .await?;
        let (items, items_changed) = self.unchanged(&base.sample).await?;
        let expectations = Expectations {
            canaries_present: before.iter().map(Canary::reference).collect(),
            canaries_absent: after.iter().map(Canary::reference).collect(),
            items,
            items_changed,
        };
        let drill = self.new_drill(now, point, expectations);
        if !self.store.start_drill(platform, &drill).await? {
            let schedule = self.store.drill_schedule(platform).await?;
            return match (start, schedule.running) {
                (Start::Now, Some(id)) => Err(DrillError::AlreadyRunning {
                    id,
                    started_at: schedule.last_started_at,
                }),
                _ => Ok(Err("another run started a drill at the same time".into())),
            };
        }
        self.request_restore(drill).await.map(Ok)
    }

    fn new_drill(&self, now: Timestamp, point: Timestamp, expectations: Expectations) -> Drill {
        let id = ulid::Ulid::new().to_string();
        Drill {
            scratch_table: format!("{}{}", drill_prefix(self.live()), id.to_lowercase()),
            id,
            state: DrillState::Restoring,
            started_at: now,
            restore_point: point,
            restore_point_age_ms: point.until(now).as_millis() as u64,
            restore_requested_at: None,
            usable_at: None,
            restore_duration_ms: None,
            expectations,
            checks: None,
            failures: Vec::new(),
            finished_at: None,
            scratch_deleted: false,
        }
    }

    /// The sampled items whose digest is the same now as when they were sampled (before
    /// the point), so also at the point; and how many changed.
    async fn unchanged(
        &self,
        sample: &[SampledItem],
    ) -> Result<(Vec<SampledItem>, usize), StoreError> {
        let now = digests(&self.store, sample).await?;
        let kept: Vec<SampledItem> = sample
            .iter()
            .zip(now)
            .filter(|(item, digest)| digest.as_deref() == Some(item.digest.as_str()))
            .map(|(item, _)| item.clone())
            .collect();
        let changed = sample.len() - kept.len();
        Ok((kept, changed))
    }

    async fn request_restore(&self, mut drill: Drill) -> Result<(Drill, bool), DrillError> {
        let restored = self
            .tables
            .restore(
                self.live(),
                &drill.scratch_table,
                drill.restore_point,
                &self.config.kms_key_arn,
            )
            .await;
        match restored {
            // A name made of this drill's id exists only if this drill asked for it.
            Ok(()) | Err(ScratchError::Exists(_)) => {
                drill.restore_requested_at = Some(self.clock.timestamp());
                self.store
                    .save_drill(Platform::operations(), &drill)
                    .await?;
                Ok((drill, false))
            }
            Err(e) => {
                self.finish(drill, vec![format!("the restore was refused: {e}")])
                    .await
            }
        }
    }

    /// The drill's next step; whether it finished in it.
    async fn advance(&self, drill: Drill) -> Result<(Drill, bool), DrillError> {
        if drill.state != DrillState::Restoring {
            return Ok((drill, false));
        }
        match self.tables.state(&drill.scratch_table).await? {
            TableState::Absent if drill.restore_requested_at.is_none() => {
                self.request_restore(drill).await
            }
            TableState::Absent => {
                let gone = "the scratch table was gone before it was checked".to_owned();
                self.finish(drill, vec![gone]).await
            }
            TableState::Creating => {
                let age = drill.started_at.until(self.clock.timestamp());
                if age > self.config.drill_timeout {
                    let late = format!(
                        "the restore did not finish within {} s",
                        self.config.drill_timeout.as_secs()
                    );
                    self.finish(drill, vec![late]).await
                } else {
                    Ok((drill, false))
                }
            }
            TableState::Active(description) => self.check(drill, &description).await,
            TableState::Deleting => {
                let deleting = "the scratch table was being deleted before it was checked";
                self.finish(drill, vec![deleting.into()]).await
            }
            TableState::Other(status) => {
                let odd = format!("the scratch table is {status}, not ACTIVE");
                self.finish(drill, vec![odd]).await
            }
        }
    }

    async fn check(
        &self,
        mut drill: Drill,
        description: &aws_sdk_dynamodb::types::TableDescription,
    ) -> Result<(Drill, bool), DrillError> {
        let platform = Platform::operations();
        let now = self.clock.timestamp();
        drill.usable_at = Some(now);
        drill.restore_duration_ms = Some(drill.started_at.until(now).as_millis() as u64);
        let tags = [
            ("herald:purpose", "restore-drill"),
            ("herald:source-table", self.live()),
            ("herald:drill", drill.id.as_str()),
        ];
        self.tables.prepare(self.live(), description, &tags).await?;
        let scratch = self.store.on_table(&drill.scratch_table);
        let mut failures = Vec::new();
        let expected = &drill.expectations;
        let mut present = Tally {
            expected: expected.canaries_present.len(),
            confirmed: 0,
        };
        for canary in &expected.canaries_present {
            if scratch.has_canary(platform, canary).await? {
                present.confirmed += 1;
            } else {
                failures.push(format!(
                    "canary {} written at {} (before the point) is missing from the restore",
                    canary.id, canary.written_at
                ));
            }
        }
        let mut absent = Tally {
            expected: expected.canaries_absent.len(),
            confirmed: 0,
        };
        for canary in &expected.canaries_absent {
            if scratch.has_canary(platform, canary).await? {
                failures.push(format!(
                    "canary {} written at {} (after the point) is in the restore",
                    canary.id, canary.written_at
                ));
            } else {
                absent.confirmed += 1;
            }
        }
        let restored = digests(&scratch, &expected.items).await?;
        let mut items = Tally {
            expected: expected.items.len(),
            confirmed: 0,
        };
        for (item, digest) in expected.items.iter().zip(restored) {
            match digest {
                Some(d) if d == item.digest => items.confirmed += 1,
                Some(_) => failures.push(format!(
                    "item {} / {} differs from the live table's at the point",
                    item.pk, item.sk
                )),
                None => failures.push(format!(
                    "item {} / {} is missing from the restore",
                    item.pk, item.sk
                )),
            }
        }
        let schema = self
            .tables
            .check_schema(self.live(), &drill.scratch_table, &self.config.kms_key_arn)
            .await?;
        for (holds, what) in [
            (schema.keys, "the keys differ from the live table's"),
            (schema.indexes, "the indexes differ from the live table's"),
            (schema.ttl, "TTL is not the live table's"),
            (
                schema.encryption,
                "it is not encrypted with the stack's key",
            ),
            (schema.deletion_protection_off, "deletion protection is on"),
        ] {
            if !holds {
                failures.push(format!("scratch table: {what}"));
            }
        }
        drill.checks = Some(DrillChecks {
            canaries_present: present,
            canaries_absent: absent,
            items,
            schema,
        });
        self.finish(drill, failures).await
    }

    /// Deletes the scratch table (when DynamoDB lets it) and records the result.
    async fn finish(
        &self,
        mut drill: Drill,
        failures: Vec<String>,
    ) -> Result<(Drill, bool), DrillError> {
        drill.scratch_deleted = match self.tables.delete(&drill.scratch_table).await? {
            Deletion::Deleted | Deletion::Absent => true,
            Deletion::NotYet => false,
        };
        drill.state = if failures.is_empty() {
            DrillState::Succeeded
        } else {
            DrillState::Failed
        };
        drill.failures = failures;
        drill.finished_at = Some(self.clock.timestamp());
        let recorded = self
            .store
            .finish_drill(Platform::operations(), &drill, true)
            .await?;
        Ok((drill, recorded))
    }
}

/// The digest of each item now in `store`'s table (`None` for one that is not there),
/// eight reads at a time. Joined in groups rather than through a stream with a
/// borrowing closure, which would not be `Send` (rust-lang/rust#102211).
async fn digests(store: &Store, items: &[SampledItem]) -> Result<Vec<Option<String>>, StoreError> {
    let mut found = Vec::with_capacity(items.len());
    for group in items.chunks(8) {
        let reads: Vec<_> = group
            .iter()
            .map(|item| store.item_digest(&item.pk, &item.sk))
            .collect();
        for digest in futures::future::join_all(reads).await {
            found.push(digest?);
        }
    }
    Ok(found)
}
