//! The redriver: on its schedule (or when an operator invokes it), moves the send
//! DLQ's messages back to the send queue at a bounded rate, parking the ones that keep
//! coming back. The moving itself is `herald::redrive`, shared with the API's operator
//! route. Each scheduled run first sweeps: it enqueues batches their request wrote but
//! never enqueued, and restarts batches' windows of queued chunks that stalled
//! (`herald::sweeper`). Every redrive runs under the redrive lease
//! (`herald::lease`): while the operator's route is redriving, a run skips its redrive
//! and says so in its report.

use herald::metrics::{Metrics, Record};
use std::time::Duration;

use herald::client_sweep::{ClientSweepError, ClientSweepReport, ClientSweeper};
use herald::clock::SharedClock;
use herald::config::RedriverConfig;
use herald::lease::{Busy, RedriveLease};
use herald::queue::SendQueue;
use herald::redrive::{RedriveReport, Redriver};
use herald::store::{Store, StoreError};
use herald::sweeper::{SweepError, SweepReport, Sweeper, WindowSweepReport};
use tokio::time::Instant;

/// Kept back from the invocation deadline for the run's last delete and the release
/// of the messages it held.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

pub struct Deps {
    pub config: RedriverConfig,
    pub redriver: Redriver,
    /// The events DLQ back to the events queue (issue 12), with the same limits.
    pub events_redriver: Redriver,
    pub sweeper: Sweeper,
    pub client_sweeper: ClientSweeper,
    pub lease: RedriveLease,
    pub clock: SharedClock,
    pub metrics: Metrics,
}

impl Deps {
    /// Built once per process: by `main` in Lambda, by the local cloud from the
    /// template-derived environment.
    pub fn from_config(
        config: RedriverConfig,
        clients: &herald::aws::Clients,
        clock: SharedClock,
    ) -> Self {
        let sqs = clients.sqs();
        let redriver = Redriver::new(
            sqs.clone(),
            &config.dead_letter_queue_url,
            &config.send_queue_url,
            config.limits,
        );
        let events_redriver = Redriver::new(
            sqs.clone(),
            &config.events_dlq_url,
            &config.events_queue_url,
            config.limits,
        );
        let store = Store::new(clients.dynamodb(), &config.table);
        let sweeper = Sweeper::new(store.clone(), SendQueue::new(sqs, &config.send_queue_url));
        let lease = RedriveLease::new(store.clone(), clock.clone());
        let client_sweeper = ClientSweeper::new(
            clients.cognito(),
            store,
            &config.user_pool_id,
            config.client_sweep_grace,
        );
        Self {
            config,
            redriver,
            events_redriver,
            sweeper,
            client_sweeper,
            lease,
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

/// A run that needs an operator. Returned as the invocation's error so the function's
/// errors alarm fires; the report was logged already.
#[derive(Debug, thiserror::Error)]
#[error(
    "redrive incomplete: {} moved, {} parked, {} failed, {} deferred, stopped: {}",
    .0.moved, .0.parked, .0.failed, .0.deferred, .0.stopped
)]
pub struct Incomplete(pub RedriveReport);

#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error(transparent)]
    Incomplete(#[from] Incomplete),
    /// The lease could not be read or written: no redrive ran.
    #[error("the redrive lease could not be taken")]
    Lease(#[from] StoreError),
}

/// What one redrive did: ran, or skipped because another run held the lease.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RedriveRun {
    Ran(RedriveReport),
    /// Another redrive (the operator's route) was running; nothing was moved.
    Skipped {
        holder: String,
        until: herald::Timestamp,
    },
}

impl RedriveRun {
    /// The report of a run that ran.
    pub fn report(&self) -> Option<&RedriveReport> {
        match self {
            RedriveRun::Ran(report) => Some(report),
            RedriveRun::Skipped { .. } => None,
        }
    }
}

/// One redrive of the send DLQ, under the redrive lease. The event is not read: a
/// schedule's event and an operator's `{}` ask for the same thing.
pub async fn handle(deps: &Deps, deadline: Instant) -> Result<RedriveRun, RedriveError> {
    let budget = deadline.saturating_duration_since(Instant::now());
    let run = deps
        .lease
        .run("scheduled redriver", budget, deps.redriver.run(deadline))
        .await?;
    let report = match run {
        Ok(report) => report,
        Err(Busy { lease, .. }) => {
            deps.metrics
                .emit(Record::new("redriver").count("RedriveSkipped", 1));
            tracing::warn!(
                holder = %lease.holder,
                until = %lease.until,
                "redrive skipped: another redrive holds the lease"
            );
            return Ok(RedriveRun::Skipped {
                holder: lease.holder,
                until: lease.until,
            });
        }
    };
    report_run(deps, &report);
    if report.is_clean() {
        Ok(RedriveRun::Ran(report))
    } else {
        Err(Incomplete(report).into())
    }
}

/// Logs the run's report as one line and counts it in metrics.
fn report_run(deps: &Deps, report: &RedriveReport) {
    let limits = deps.redriver.limits();
    // One line an operator (or a metric filter) can read the whole run from.
    let line = serde_json::to_string(report).unwrap_or_default();
    deps.metrics.emit(
        Record::new("redriver")
            .count("Redriven", report.moved)
            .count("Parked", report.parked)
            .count("RedriveFailed", report.failed)
            .count("Deferred", report.deferred),
    );
    if report.is_clean() {
        tracing::info!(
            moved = report.moved,
            parked = report.parked,
            failed = report.failed,
            deferred = report.deferred,
            stopped = %report.stopped,
            max_messages = limits.max_messages,
            redrive_limit = limits.redrive_limit,
            report = %line,
            "redrive finished"
        );
    } else {
        tracing::error!(
            moved = report.moved,
            parked = report.parked,
            failed = report.failed,
            deferred = report.deferred,
            stopped = %report.stopped,
            max_messages = limits.max_messages,
            redrive_limit = limits.redrive_limit,
            report = %line,
            "redrive finished with failures"
        );
    }
}

/// What a scheduled run did: the sweeps, then the redrives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScheduledReport {
    pub sweep: SweepReport,
    /// Stalled windows of queued chunks restarted (issue 14).
    pub windows: WindowSweepReport,
    pub clients: ClientSweepReport,
    pub redrive: RedriveRun,
    /// The events DLQ's redrive.
    pub events: RedriveReport,
}

/// One redrive of the events DLQ into the events queue (provider events whose
/// message was not recorded in time, or that failed for a while).
pub async fn handle_events(deps: &Deps, deadline: Instant) -> Result<RedriveReport, Incomplete> {
    let report = deps.events_redriver.run(deadline).await;
    deps.metrics.emit(
        Record::new("redriver")
            .count("EventsRedriven", report.moved)
            .count("EventsParked", report.parked)
            .count("EventsRedriveFailed", report.failed),
    );
    tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "events redrive finished");
    if report.is_clean() {
        Ok(report)
    } else {
        Err(Incomplete(report))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduledError {
    #[error("sweep failed: {0}")]
    Sweep(#[from] SweepError),
    #[error("sweep could not enqueue {0} batches")]
    SweepIncomplete(usize),
    #[error("window sweep could not restart {0} windows")]
    WindowSweepIncomplete(usize),
    #[error("machine client sweep failed: {0}")]
    ClientSweep(#[from] ClientSweepError),
    #[error("machine client sweep could not check or delete {0} clients")]
    ClientSweepIncomplete(usize),
    #[error(transparent)]
    Redrive(#[from] RedriveError),
    #[error("events {0}")]
    EventsRedrive(Incomplete),
}

/// The scheduled run: sweep unqueued batches older than `sweep_after`, windows stalled
/// for `window_stall_after`, and orphaned machine clients, then redrive (or skip the redrive, while the operator's route holds
/// the lease: the report says so). The redrive runs even when a sweep failed; the
/// invocation then fails, so the errors alarm fires.
pub async fn scheduled(deps: &Deps, deadline: Instant) -> Result<ScheduledReport, ScheduledError> {
    let now = deps.clock.timestamp();
    let sweep = deps
        .sweeper
        .sweep(now.minus(deps.config.sweep_after), now)
        .await;
    if let Ok(report) = &sweep {
        deps.metrics.emit(
            Record::new("redriver")
                .count("BatchesSwept", report.enqueued)
                .count("SweepFailed", report.failed),
        );
    }
    match &sweep {
        Ok(report) => tracing::info!(
            found = report.found,
            enqueued = report.enqueued,
            chunks = report.chunks,
            failed = report.failed,
            "sweep finished"
        ),
        Err(e) => tracing::error!(error = %e, "sweep failed"),
    }
    let windows = deps
        .sweeper
        .sweep_windows(now.minus(deps.config.window_stall_after), now)
        .await;
    match &windows {
        Ok(report) => {
            deps.metrics.emit(
                Record::new("redriver")
                    .count("WindowsRestarted", report.restarted)
                    .count("WindowsGivenUp", report.given_up)
                    .count("WindowSweepFailed", report.failed),
            );
            tracing::info!(report = %serde_json::to_string(report).unwrap_or_default(), "window sweep finished");
        }
        Err(e) => tracing::error!(error = %e, "window sweep failed"),
    }
    let clients = deps.client_sweeper.sweep(now.epoch_seconds()).await;
    match &clients {
        Ok(report) => {
            deps.metrics.emit(
                Record::new("redriver")
                    .count("OrphanClientsDeleted", report.deleted)
                    .count("ClientSweepFailed", report.failed),
            );
            tracing::info!(
                checked = report.checked,
                deleted = report.deleted,
                failed = report.failed,
                "machine client sweep finished"
            );
        }
        Err(e) => tracing::error!(error = %e, "machine client sweep failed"),
    }
    let redrive = handle(deps, deadline).await;
    let events = handle_events(deps, deadline).await;
    let (sweep, windows, clients) = (sweep?, windows?, clients?);
    if sweep.failed > 0 {
        return Err(ScheduledError::SweepIncomplete(sweep.failed));
    }
    if windows.failed > 0 {
        return Err(ScheduledError::WindowSweepIncomplete(windows.failed));
    }
    if clients.failed > 0 {
        return Err(ScheduledError::ClientSweepIncomplete(clients.failed));
    }
    Ok(ScheduledReport {
        sweep,
        windows,
        clients,
        redrive: redrive?,
        events: events.map_err(ScheduledError::EventsRedrive)?,
    })
}
