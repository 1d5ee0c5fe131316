//! The backup check in the local cloud: built from its template environment, run on
//! its schedule (compressed under `make dev`, so a whole drill takes well under a
//! minute), and invoked on request with the same JSON events an operator sends the
//! function in AWS (`herald-local backup-check`, `herald-local recover-tenant`, tests).

use std::sync::Arc;
use std::time::Duration;

use herald::domain::RecoveryJob;
use herald::restore::RecoveryRequest;
use herald_backup_check::{BackupCheckError, DEADLINE_MARGIN, Deps};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::CloudOptions;

/// `make dev`'s schedule: a run every 10 s (AWS: 15 minutes) and a drill a minute
/// (AWS: a day), so a drill starts, restores (the emulator takes a few seconds) and is
/// checked within about half a minute; a margin of half a second around the restore
/// point (the emulator's clock is this machine's).
pub const DEV_PERIOD: Duration = Duration::from_secs(10);

pub fn compress_for_dev(options: &mut CloudOptions) {
    options.backup_check_period = Some(DEV_PERIOD);
    for (key, value) in [
        ("HERALD_DRILL_EVERY_SECONDS", "60"),
        ("HERALD_DRILL_TIMEOUT_SECONDS", "120"),
        ("HERALD_DRILL_CLOCK_MARGIN_MS", "500"),
    ] {
        options.env_overrides.insert(key.into(), value.into());
    }
}

/// How long to wait between invocations that move a recovery on while its scratch
/// table is restored.
const RECOVERY_PAUSE: Duration = Duration::from_millis(250);

pub struct BackupCheck {
    pub deps: Arc<Deps>,
    /// The function's timeout, from the template.
    pub timeout: Duration,
}

impl BackupCheck {
    /// One invocation with `event`, under the deadline Lambda would give it.
    pub async fn invoke(&self, event: Value) -> Result<Value, BackupCheckError> {
        let deadline = tokio::time::Instant::now() + self.timeout.saturating_sub(DEADLINE_MARGIN);
        herald_backup_check::handle(&self.deps, event, deadline).await
    }

    /// One scheduled run: a step of the drill, then the running recoveries.
    pub async fn scheduled(&self) -> Result<Value, BackupCheckError> {
        self.invoke(json!({})).await
    }

    /// A tenant recovery from start to end, as an operator runs it in AWS: one
    /// invocation starts it, more move it on until it has finished.
    pub async fn recover_tenant(
        &self,
        request: &RecoveryRequest,
    ) -> Result<RecoveryJob, BackupCheckError> {
        let mut start = json!({
            "tenant": request.tenant.as_str(),
            "at": request.at.to_string(),
            "dry_run": request.dry_run,
            "requested_by": request.requested_by,
        });
        if let Some(name) = &request.scratch_table {
            start["scratch_table"] = json!(name);
        }
        let mut job = job(self.invoke(json!({ "recover_tenant": start })).await?)?;
        while !job.state.finished() {
            tokio::time::sleep(RECOVERY_PAUSE).await;
            job = self::job(self.invoke(json!({ "recovery": job.id })).await?)?;
        }
        Ok(job)
    }

    /// The local EventBridge schedule: a scheduled run every `period`, the first a
    /// period after start.
    pub fn schedule(
        self: Arc<Self>,
        period: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        crate::every(period, shutdown, move || {
            let check = self.clone();
            // The function logs its report; a failed run's error as well.
            async move {
                if let Err(e) = check.scheduled().await {
                    tracing::error!(error = %e, "scheduled backup check failed");
                }
            }
        })
    }
}

fn job(answer: Value) -> Result<RecoveryJob, BackupCheckError> {
    serde_json::from_value(answer).map_err(|e| {
        BackupCheckError::InvalidRequest(format!("the function answered no recovery job: {e}"))
    })
}
