//! The rotator locally: built from its template environment like every function, its
//! retirement pass run on its template schedule under `make dev`. The emulator has no
//! Lambda for Secrets Manager to invoke, so `herald_rotator::rotate_now` plays
//! `RotateSecret` (the four steps in order) for `herald-local rotate` and the tests.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The retirement pass every `period`, the first one a period after start.
pub fn schedule(
    period: Duration,
    rotator: Arc<herald_rotator::Deps>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    crate::every(period, shutdown, move || {
        let rotator = rotator.clone();
        async move {
            if let Err(e) = herald_rotator::retire(&rotator).await {
                tracing::error!(
                    error = %herald::telemetry::error_chain(&e),
                    "scheduled key retirement failed"
                );
            }
        }
    })
}
