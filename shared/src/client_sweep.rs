//! Deletes machine clients that exist in Cognito but not (or no longer) for Herald: one
//! created by a registration that died before recording it, or one whose revocation
//! could not delete it. Herald already refuses their tokens; deleting them stops new
//! tokens and gives back their place in the user pool's app-client quota, which every
//! tenant shares.

use std::time::Duration;

use crate::aws::CognitoClient;
use crate::store::Store;

/// Every machine client's Cognito name starts with this; the console's client does not.
pub const MACHINE_CLIENT_PREFIX: &str = "herald-m2m-";

/// The failure of a Cognito call, as the SDK reports it.
pub type CognitoError = Box<dyn std::error::Error + Send + Sync>;

/// Deletes a machine client from Cognito; one already gone counts as deleted.
pub async fn delete_client(
    cognito: &CognitoClient,
    user_pool_id: &str,
    client_id: &str,
) -> Result<(), CognitoError> {
    let deleted = cognito
        .delete_user_pool_client()
        .user_pool_id(user_pool_id)
        .client_id(client_id)
        .send()
        .await;
    match deleted {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(Box::new(e)),
    }
}

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
    List(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub struct ClientSweeper {
    cognito: CognitoClient,
    store: Store,
    user_pool_id: String,
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
            cognito,
            store,
            user_pool_id: user_pool_id.into(),
            grace,
        }
    }

    pub async fn sweep(&self, now_epoch: u64) -> Result<ClientSweepReport, ClientSweepError> {
        let mut report = ClientSweepReport::default();
        let mut next = None;
        loop {
            let page = self
                .cognito
                .list_user_pool_clients()
                .user_pool_id(&self.user_pool_id)
                .max_results(60)
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| ClientSweepError::List(Box::new(e)))?;
            for client in page.user_pool_clients() {
                let machine = client
                    .client_name()
                    .is_some_and(|n| n.starts_with(MACHINE_CLIENT_PREFIX));
                let Some(id) = client.client_id().filter(|_| machine) else {
                    continue;
                };
                report.checked += 1;
                match self.orphaned(id, now_epoch).await {
                    Ok(false) => {}
                    Ok(true) => match delete_client(&self.cognito, &self.user_pool_id, id).await {
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
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                return Ok(report);
            }
        }
    }

    /// Revoked, or never recorded and past the grace period.
    async fn orphaned(&self, client_id: &str, now_epoch: u64) -> Result<bool, CognitoError> {
        // A record that does not read is a failure to report, never a reason to delete.
        if let Some(record) = self.store.machine_client(client_id).await? {
            return Ok(record.revoked_at.is_some());
        }
        let described = self
            .cognito
            .describe_user_pool_client()
            .user_pool_id(&self.user_pool_id)
            .client_id(client_id)
            .send()
            .await?;
        let created = described
            .user_pool_client()
            .and_then(|c| c.creation_date())
            .map(|d| d.secs().max(0) as u64);
        // Without a creation date there is no telling it from a registration in flight.
        Ok(created.is_some_and(|at| now_epoch.saturating_sub(at) >= self.grace.as_secs()))
    }
}
