//! The backup check: proves on a schedule that Herald's table can be restored, and runs
//! the operator's recovery of one tenant's items. Both are `herald::restore`; this
//! crate reads the invocation, runs what it asks for until its deadline, emits the
//! metrics and fails the invocation when anything is off (so the errors alarm fires).
//!
//! Invocations (the payload):
//! - the schedule's event, or `{}`: one step of the restore drill (`herald::restore::
//!   drill`), then every running tenant recovery moved on until the deadline;
//! - `{"start_drill": true}`: a drill now, refused while one runs;
//! - `{"recover_tenant": {"tenant", "at", "dry_run", "requested_by", "scratch_table"?}}`:
//!   a recovery job, validated, started and moved on until the deadline;
//! - `{"recovery": "<job id>"}`: that job moved on until the deadline, and its state.

use std::time::Duration;

use herald::clock::{SharedClock, Timestamp};
use herald::config::BackupCheckConfig;
use herald::domain::{DrillState, RecoveryJob, RecoveryState};
use herald::ids::TenantId;
use herald::metrics::{Metrics, Record, Unit};
use herald::restore::{
    DrillError, Drills, Recoveries, RecoveryError, RecoveryRequest, Start, StepReport, Tables,
};
use herald::store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

/// Kept back from the invocation deadline to save a recovery's cursor and answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

const FUNCTION: &str = "backup-check";

pub struct Deps {
    pub config: BackupCheckConfig,
    pub drills: Drills,
    pub recoveries: Recoveries,
    pub clock: SharedClock,
    pub metrics: Metrics,
}

impl Deps {
    /// Built once per process: by `main` in Lambda, by the local cloud from the
    /// template-derived environment.
    pub fn from_config(
        config: BackupCheckConfig,
        clients: &herald::aws::Clients,
        clock: SharedClock,
    ) -> Self {
        let dynamodb = clients.dynamodb();
        let store = Store::new(dynamodb.clone(), &config.table);
        let tables = Tables::new(dynamodb);
        Self {
            drills: Drills::new(store.clone(), tables.clone(), config.clone(), clock.clone()),
            recoveries: Recoveries::new(store, tables, config.kms_key_arn.clone(), clock.clone()),
            config,
            metrics: Metrics::stdout(clock.clone()),
            clock,
        }
    }

    /// Sends metric lines to `metrics` instead of standard output.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }
}

/// What an invocation asks for.
#[derive(Debug, Clone)]
pub enum Invocation {
    Scheduled,
    StartDrill,
    RecoverTenant(RecoveryRequest),
    Recovery(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorRequest {
    #[serde(default)]
    start_drill: bool,
    recover_tenant: Option<RecoverTenant>,
    recovery: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverTenant {
    tenant: String,
    /// RFC 3339.
    at: String,
    /// Required: a recovery is a dry run or a real one because the operator said so.
    dry_run: bool,
    requested_by: String,
    scratch_table: Option<String>,
}

impl Invocation {
    pub fn parse(event: &Value) -> Result<Self, BackupCheckError> {
        let invalid = |reason: String| BackupCheckError::InvalidRequest(reason);
        // EventBridge's scheduled event, or an operator's `{}`.
        if event.get("source").and_then(Value::as_str) == Some("aws.events")
            || event.as_object().is_some_and(|o| o.is_empty())
        {
            return Ok(Self::Scheduled);
        }
        let request: OperatorRequest =
            serde_json::from_value(event.clone()).map_err(|e| invalid(e.to_string()))?;
        match (
            request.start_drill,
            request.recover_tenant,
            request.recovery,
        ) {
            (true, None, None) => Ok(Self::StartDrill),
            (false, Some(recover), None) => {
                let tenant = TenantId::parse(&recover.tenant)
                    .map_err(|e| invalid(format!("recover_tenant.tenant: {e}")))?;
                let at = Timestamp::parse(&recover.at)
                    .map_err(|e| invalid(format!("recover_tenant.at: {e}")))?;
                if recover.requested_by.trim().is_empty() {
                    return Err(invalid(
                        "recover_tenant.requested_by: say who asks (it is audited)".into(),
                    ));
                }
                Ok(Self::RecoverTenant(RecoveryRequest {
                    tenant,
                    at,
                    dry_run: recover.dry_run,
                    scratch_table: recover.scratch_table,
                    requested_by: recover.requested_by,
                }))
            }
            (false, None, Some(id)) => Ok(Self::Recovery(id)),
            _ => Err(invalid(
                "ask for one of start_drill, recover_tenant or recovery".into(),
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupCheckError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Drill(#[from] DrillError),
    #[error("restore drill failed: {}", .report.drill_failures())]
    DrillFailed { report: Box<ScheduledReport> },
    #[error("scratch tables were left behind: {}", .report.step.left_behind.join(", "))]
    LeftBehind { report: Box<ScheduledReport> },
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    #[error("recovery job {} failed: {}", .0.id, .0.failure.as_deref().unwrap_or("?"))]
    RecoveryFailed(Box<RecoveryJob>),
}

/// A scheduled run's answer: the drill's step and the recoveries it moved on.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduledReport {
    #[serde(flatten)]
    pub step: StepReport,
    pub recoveries: Vec<RecoveryJob>,
}

impl ScheduledReport {
    /// `{drill id}: {every failure}`, for the invocation's error.
    pub fn drill_failures(&self) -> String {
        match &self.step.drill {
            Some(drill) => format!("{}: {}", drill.id, drill.failures.join("; ")),
            None => "no drill".into(),
        }
    }
}

pub async fn handle(
    deps: &Deps,
    event: Value,
    deadline: Instant,
) -> Result<Value, BackupCheckError> {
    // Each branch boxed: the drill's and the recovery's futures are deep, and one
    // future holding all of them would be as large as the largest of each.
    let answer = match Invocation::parse(&event)? {
        Invocation::Scheduled => {
            serde_json::to_value(Box::pin(scheduled(deps, Start::WhenDue, deadline)).await?)
        }
        Invocation::StartDrill => {
            serde_json::to_value(Box::pin(scheduled(deps, Start::Now, deadline)).await?)
        }
        Invocation::RecoverTenant(request) => {
            let job = Box::pin(deps.recoveries.start(request)).await?;
            let job = Box::pin(deps.recoveries.advance(&job.id, deadline)).await?;
            serde_json::to_value(finished_well(deps, job)?)
        }
        Invocation::Recovery(id) => {
            let job = Box::pin(deps.recoveries.advance(&id, deadline)).await?;
            serde_json::to_value(finished_well(deps, job)?)
        }
    };
    Ok(answer.unwrap_or(Value::Null))
}

/// One drill step, then the running recoveries; fails when the drill failed now or a
/// scratch table was left behind (after the recoveries have had their turn).
pub async fn scheduled(
    deps: &Deps,
    start: Start,
    deadline: Instant,
) -> Result<ScheduledReport, BackupCheckError> {
    let step = Box::pin(deps.drills.step(start)).await;
    if let Ok(report) = &step {
        emit_drill(deps, report);
    }
    let mut recoveries = Vec::new();
    let mut recovery_error = None;
    for id in deps.recoveries.running().await? {
        match Box::pin(deps.recoveries.advance(&id, deadline)).await {
            Ok(job) => recoveries.push(finished_job(deps, job)),
            Err(e) => {
                tracing::error!(job = %id, error = %e, "recovery could not be moved on");
                recovery_error.get_or_insert(e);
            }
        }
    }
    let report = ScheduledReport {
        step: step?,
        recoveries,
    };
    let line = serde_json::to_string(&report).unwrap_or_default();
    if let Some(e) = recovery_error {
        return Err(e.into());
    }
    let drill_failed = report.step.finished
        && report
            .step
            .drill
            .as_ref()
            .is_some_and(|d| d.state == DrillState::Failed);
    if drill_failed {
        tracing::error!(report = %line, "restore drill failed");
        return Err(BackupCheckError::DrillFailed {
            report: Box::new(report),
        });
    }
    if !report.step.left_behind.is_empty() {
        tracing::error!(report = %line, "scratch tables left behind");
        return Err(BackupCheckError::LeftBehind {
            report: Box::new(report),
        });
    }
    tracing::info!(report = %line, "backup check finished");
    Ok(report)
}

fn emit_drill(deps: &Deps, report: &StepReport) {
    let mut record =
        Record::new(FUNCTION).count("ScratchTablesLeftBehind", report.left_behind.len());
    if let (true, Some(drill)) = (report.finished, &report.drill) {
        let succeeded = drill.state == DrillState::Succeeded;
        let checks = drill.checks.clone().unwrap_or_default();
        record = record
            .count("DrillSucceeded", usize::from(succeeded))
            .count("DrillFailed", usize::from(!succeeded))
            .samples(
                "RestorePointAge",
                Unit::Milliseconds,
                vec![drill.restore_point_age_ms as f64],
            )
            .samples(
                "RestoreDuration",
                Unit::Milliseconds,
                drill
                    .restore_duration_ms
                    .map(|ms| ms as f64)
                    .into_iter()
                    .collect(),
            )
            .count("ItemsChecked", checks.items.expected)
            .count(
                "CanariesChecked",
                checks.canaries_present.expected + checks.canaries_absent.expected,
            )
            .property("drill_id", drill.id.as_str())
            .property("scratch_table", drill.scratch_table.as_str());
    }
    deps.metrics.emit(record);
}

/// The job, with its metric once it has finished.
fn finished_job(deps: &Deps, job: RecoveryJob) -> RecoveryJob {
    if job.state.finished() {
        deps.metrics.emit(
            Record::new(FUNCTION)
                .count("RecoveryItemsRestored", job.restored)
                .count(
                    "RecoveryFailed",
                    usize::from(job.state == RecoveryState::Failed),
                )
                .property("job_id", job.id.as_str())
                .property("tenant_id", job.tenant.as_str()),
        );
    }
    job
}

/// The job as it stands; an error when it failed, so the invocation fails too.
fn finished_well(deps: &Deps, job: RecoveryJob) -> Result<RecoveryJob, BackupCheckError> {
    let job = finished_job(deps, job);
    if job.state == RecoveryState::Failed {
        return Err(BackupCheckError::RecoveryFailed(Box::new(job)));
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_schedule_and_operators_ask_for_different_things() {
        let schedule = json!({"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert!(matches!(
            Invocation::parse(&schedule),
            Ok(Invocation::Scheduled)
        ));
        assert!(matches!(
            Invocation::parse(&json!({})),
            Ok(Invocation::Scheduled)
        ));
        assert!(matches!(
            Invocation::parse(&json!({"start_drill": true})),
            Ok(Invocation::StartDrill)
        ));
        let recover = json!({"recover_tenant": {
            "tenant": "acme", "at": "2026-05-01T10:00:00Z", "dry_run": true, "requested_by": "ops"}});
        match Invocation::parse(&recover) {
            Ok(Invocation::RecoverTenant(request)) => {
                assert_eq!(request.tenant.as_str(), "acme");
                assert!(request.dry_run);
                assert_eq!(request.at.to_string(), "2026-05-01T10:00:00.000Z");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Invocation::parse(&json!({"recovery": "01J"})),
            Ok(Invocation::Recovery(id)) if id == "01J"
        ));
    }

    #[test]
    fn an_unclear_request_is_refused_naming_what_is_wrong() {
        for (event, names) in [
            (json!({"start_drill": true, "recovery": "x"}), "one of"),
            (json!({"drill": true}), "unknown field"),
            (
                json!({"recover_tenant": {"tenant": "acme", "at": "yesterday", "dry_run": true, "requested_by": "ops"}}),
                "recover_tenant.at",
            ),
            (
                json!({"recover_tenant": {"tenant": "Acme!", "at": "2026-05-01T10:00:00Z", "dry_run": true, "requested_by": "ops"}}),
                "recover_tenant.tenant",
            ),
            (
                json!({"recover_tenant": {"tenant": "acme", "at": "2026-05-01T10:00:00Z", "requested_by": "ops"}}),
                "dry_run",
            ),
            (
                json!({"recover_tenant": {"tenant": "acme", "at": "2026-05-01T10:00:00Z", "dry_run": false, "requested_by": " "}}),
                "requested_by",
            ),
        ] {
            let err = Invocation::parse(&event).unwrap_err().to_string();
            assert!(err.contains(names), "{event}: {err}");
        }
    }
}
