//! One redrive of the send DLQ at a time. The scheduled redriver (its reserved
//! concurrency is one) and the operator's route inside the API both move dead letters;
//! each runs under a lease item, so a second run is told who holds it instead of
//! doubling the redrive rate. The lease is a platform-level item (named by no tenant), and this is the only
//! type that reaches it: only the redriver and the operator-only route build one.

use std::future::Future;
use std::time::Duration;

use crate::clock::{SharedClock, Timestamp};
use crate::domain::{JobLease, LeaseTake};
use crate::store::{Store, StoreError};

/// The lease's name: the job it guards.
const SEND_DLQ_REDRIVE: &str = "redrive#send-dlq";

/// Held this long past the run's own budget: a run stops starting sends at its
/// deadline, then finishes its last delete and makes held messages visible again. A
/// holder that died keeps the lease until then, so the margin is also how long a
/// crash blocks the next redrive.
pub const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Another run holds the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    pub lease: JobLease,
    /// Until the lease runs out, at least a second: by then the holder has released it
    /// or died, and either way the next run may go.
    pub retry_after: Duration,
}

/// The send DLQ's redrive lease.
#[derive(Clone)]
pub struct RedriveLease {
    store: Store,
    clock: SharedClock,
}

impl RedriveLease {
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self { store, clock }
    }

    /// Runs `work` holding the lease for `budget` plus `LEASE_MARGIN`, then releases
    /// it; `Ok(Err(busy))`, without running `work`, while another holder's lease has
    /// not run out. `who` names the holder for whoever is refused (and the logs).
    pub async fn run<F: Future>(
        &self,
        who: &str,
        budget: Duration,
        work: F,
    ) -> Result<Result<F::Output, Busy>, StoreError> {
        let now = self.clock.timestamp();
        let lease = JobLease {
            // The run's own id, so only this run releases what it took.
            holder: format!("{who} (run {})", ulid::Ulid::new()),
            taken_at: now,
            until: now.plus(budget.saturating_add(LEASE_MARGIN)),
        };
        if let LeaseTake::Held(held) = self.store.take_lease(SEND_DLQ_REDRIVE, &lease, now).await? {
            tracing::info!(holder = %held.holder, until = %held.until, "another redrive holds the lease");
            return Ok(Err(busy(held, now)));
        }
        let output = work.await;
        match self
            .store
            .release_lease(SEND_DLQ_REDRIVE, &lease.holder)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                holder = %lease.holder,
                until = %lease.until,
                "the redrive lease ran out and was taken over before this run released it"
            ),
            Err(e) => tracing::warn!(
                error = %crate::telemetry::error_chain(&e),
                until = %lease.until,
                "could not release the redrive lease; it runs out by itself"
            ),
        }
        Ok(Ok(output))
    }

    /// Who holds (or last held, if it ran out unreleased) the lease.
    pub async fn holder(&self) -> Result<Option<JobLease>, StoreError> {
        self.store.lease_holder(SEND_DLQ_REDRIVE).await
    }
}

fn busy(lease: JobLease, now: Timestamp) -> Busy {
    let retry_after = now.until(lease.until).max(Duration::from_secs(1));
    Busy { lease, retry_after }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_lease_says_to_come_back_when_it_runs_out_and_never_sooner_than_a_second() {
        let now = Timestamp::from_epoch_millis(1_700_000_000_000);
        let lease = |until| JobLease {
            holder: "h".into(),
            taken_at: now,
            until,
        };
        let later = busy(lease(now.plus(Duration::from_secs(42))), now);
        assert_eq!(later.retry_after, Duration::from_secs(42));
        let ran_out = busy(lease(now.minus(Duration::from_secs(5))), now);
        assert_eq!(ran_out.retry_after, Duration::from_secs(1));
    }
}
