//! Deletes machine clients that exist in Cognito but not (or no longer) for Herald: one
//! created by a registration that died before recording it, or one whose revocation
//! could not delete it. Herald already refuses their tokens; deleting them stops new
//! tokens and gives back their place in the user pool's app-client quota, which every
//! tenant shares.

use std::time::Duration;

use crate::aws::CognitoClient;
use crate::identity::{IdentityError, MachineClients};
use crate::store::Store;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientSweepReport {
    /// Machine clients found in Cognito.
    pub checked: usize,
    /// Deleted: never recorded (and older than the grace period), or revoked.
    pub deleted: usize,
    /// Could not be checked or deleted this time; the next run tries again.
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientSweepError {
    #[error("listing the user pool's clients failed")]
    List(#[source] IdentityError),
}

pub struct ClientSweeper {
    clients: MachineClients,
    store: Store,
    /// How old an unrecorded client must be before it is deleted: longer than the API's
    /// timeout, so a registration still running is never raced.
    grace: Duration,
}

impl ClientSweeper {
    pub fn new(
        cognito: CognitoClient,
        store: Store,
        user_pool_id: impl Into<String>,
        grace: Duration,
    ) -> Self {
        Self {
            clients: MachineClients::new(cognito, user_pool_id),
            store,
            grace,
        }
    }

    pub async fn sweep(&self, now_epoch: u64) -> Result<ClientSweepReport, ClientSweepError> {
        let mut report = ClientSweepReport::default();
        let ids = self.clients.list().await.map_err(ClientSweepError::List)?;
        for id in &ids {
            report.checked += 1;
            match self.orphaned(id, now_epoch).await {
                Ok(false) => {}
                Ok(true) => match self.clients.delete(id).await {
                    Ok(()) => {
                        tracing::warn!(client_id = id, "deleted an orphaned machine client");
                        report.deleted += 1;
                    }
                    Err(e) => {
                        tracing::error!(client_id = id, error = %crate::telemetry::error_chain(e.as_ref()), "could not delete an orphaned machine client");
                        report.failed += 1;
                    }
                },
                Err(e) => {
                    tracing::error!(client_id = id, error = %crate::telemetry::error_chain(e.as_ref()), "could not check a machine client");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Revoked, or never recorded and past the grace period.
    async fn orphaned(&self, client_id: &str, now_epoch: u64) -> Result<bool, IdentityError> {
        // A record that does not read is a failure to report, never a reason to delete.
        if let Some(record) = self.store.machine_client(client_id).await? {
            return Ok(record.revoked_at.is_some());
        }
        let created = self.clients.created_epoch(client_id).await?;
        // Without a creation date there is no telling it from a registration in flight.
        Ok(created.is_some_and(|at| now_epoch.saturating_sub(at) >= self.grace.as_secs()))
    }
}
