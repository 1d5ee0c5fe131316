//! One attempt of one event to each of its tenant's endpoints that takes it (enabled,
//! subscribed to its type): secrets opened, the delivery signed and sent
//! (`deliver`) with every secret that signs now (both during a rotation), and an
//! endpoint answering 410 disabled at once, with an audit entry
//! (`webhook_endpoint.disabled`, by `herald`). What to do with the other outcomes
//! (schedule a retry, count a failure) is the caller's, per endpoint.

use super::deliver::{Attempt, Deliverer, Delivery, Outcome};
use super::events::OutboundEvent;
use super::secret::{Sealer, SigningSecret};
use crate::clock::SharedClock;
use crate::domain::{AuditEntry, DisabledReason, EndpointStatus, WebhookEndpoint};
use crate::ids::TenantId;
use crate::store::{Store, StoreError};

/// Endpoints read per page while looking for an event's endpoints.
const PAGE: usize = 100;
/// Who the audit log says disabled an endpoint that answered 410.
pub const ACTOR: &str = "herald";

/// One endpoint's attempt.
#[derive(Debug, Clone)]
pub struct EndpointAttempt {
    pub endpoint_id: String,
    pub attempt: Attempt,
}

pub struct Dispatcher {
    pub store: Store,
    pub deliverer: Deliverer,
    pub sealer: Sealer,
    pub clock: SharedClock,
}

impl Dispatcher {
    /// Every enabled endpoint of `tenant` subscribed to the event's type.
    pub async fn endpoints_for(
        &self,
        tenant: &TenantId,
        event: &OutboundEvent,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let mut found = enabled_endpoints(&self.store, tenant).await?;
        found.retain(|e| e.event_types.contains(&event.event_type));
        Ok(found)
    }

    /// One attempt of `event` to each of its endpoints, concurrently.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, event_id = %event.id))]
    pub async fn dispatch(
        &self,
        tenant: &TenantId,
        event: &OutboundEvent,
    ) -> Result<Vec<EndpointAttempt>, StoreError> {
        let endpoints = self.endpoints_for(tenant, event).await?;
        let attempts = endpoints.iter().map(|e| self.attempt(e, event));
        futures::future::join_all(attempts)
            .await
            .into_iter()
            .collect()
    }

    /// One attempt of `event` to `endpoint`, and its 410 acted on.
    pub async fn attempt(
        &self,
        endpoint: &WebhookEndpoint,
        event: &OutboundEvent,
    ) -> Result<EndpointAttempt, StoreError> {
        let secrets = endpoint
            .signing_secrets(self.clock.timestamp())
            .into_iter()
            .map(|sealed| self.sealer.open(&endpoint.tenant, &endpoint.id, sealed))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt {
                pk: format!("TENANT#{}#WEBHOOK#{}", endpoint.tenant, endpoint.id),
                sk: "WEBHOOK".to_owned(),
                reason: e.to_string(),
            })?;
        let secrets: Vec<&SigningSecret> = secrets.iter().collect();
        let delivery = Delivery {
            id: &event.id,
            timestamp: self.clock.epoch_seconds(),
            body: &event.body,
        };
        let attempt = self
            .deliverer
            .attempt(&endpoint.url, &secrets, delivery)
            .await;
        if attempt.outcome == Outcome::Gone {
            self.disable(endpoint, DisabledReason::Gone, &event.id)
                .await?;
        }
        Ok(EndpointAttempt {
            endpoint_id: endpoint.id.clone(),
            attempt,
        })
    }

    /// Disables `endpoint` for `reason`, audited; one disabled already stays as it is.
    pub async fn disable(
        &self,
        endpoint: &WebhookEndpoint,
        reason: DisabledReason,
        event_id: &str,
    ) -> Result<(), StoreError> {
        let audit = AuditEntry {
            at: self.clock.timestamp(),
            actor: ACTOR.to_owned(),
            action: "webhook_endpoint.disabled".to_owned(),
            target: endpoint.id.clone(),
            request_id: event_id.to_owned(),
        };
        self.store
            .change_webhook_endpoint(
                &endpoint.tenant,
                &endpoint.id,
                &audit,
                self.clock.epoch_seconds(),
                |current| {
                    if current.status == EndpointStatus::Disabled {
                        return current.clone();
                    }
                    WebhookEndpoint {
                        status: EndpointStatus::Disabled,
                        disabled_reason: Some(reason),
                        ..current.clone()
                    }
                },
            )
            .await?;
        Ok(())
    }
}

/// Every enabled endpoint of `tenant`, whatever it is subscribed to.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn enabled_endpoints(
    store: &Store,
    tenant: &TenantId,
) -> Result<Vec<WebhookEndpoint>, StoreError> {
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .webhook_endpoint_page(tenant, after.as_deref(), PAGE)
            .await?;
        found.extend(
            page.items
                .into_iter()
                .filter(|e| e.status == EndpointStatus::Enabled),
        );
        match page.after {
            Some(next) => after = Some(next),
            None => return Ok(found),
        }
    }
}
