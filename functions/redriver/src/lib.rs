//! The redriver: on its schedule (or when an operator invokes it), moves the send
//! DLQ's messages back to the send queue at a bounded rate, parking the ones that keep
//! coming back. The moving itself is `herald::redrive`, shared with the API's future
//! operator route.

use std::time::Duration;

use herald::config::RedriverConfig;
use herald::redrive::{RedriveReport, Redriver};
use tokio::time::Instant;

/// Kept back from the invocation deadline for the run's last delete and the release
/// of the messages it held.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

pub struct Deps {
    pub config: RedriverConfig,
    pub redriver: Redriver,
}

impl Deps {
    /// Built once per process: by `main` in Lambda, by the local cloud from the
    /// template-derived environment.
    pub fn from_config(config: RedriverConfig, sdk: &herald::aws::SdkConfig) -> Self {
        let redriver = Redriver::new(
            herald::aws::SqsClient::new(sdk),
            &config.dead_letter_queue_url,
            &config.send_queue_url,
            config.limits,
        );
        Self { config, redriver }
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

/// One redrive of the send DLQ. The event is not read: a schedule's event and an
/// operator's `{}` ask for the same thing.
pub async fn handle(deps: &Deps, deadline: Instant) -> Result<RedriveReport, Incomplete> {
    let report = deps.redriver.run(deadline).await;
    let limits = deps.redriver.limits();
    // One line an operator (or a metric filter) can read the whole run from.
    let line = serde_json::to_string(&report).unwrap_or_default();
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
        Ok(report)
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
        Err(Incomplete(report))
    }
}
