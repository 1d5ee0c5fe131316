//! A tenant's webhook endpoints (issue 15): where Herald pushes the tenant's status
//! events, which events, how fast, and whether it is switched on. The signing secret
//! travels sealed (`crate::outbound::secret`); nothing here holds it in the clear.

use crate::clock::Timestamp;
use crate::ids::TenantId;

stored_enum! {
    /// What an event says happened. A message's events follow its statuses.
    pub enum EventType {
        #[serde(rename = "message.sent")]
        #[strum(serialize = "message.sent")]
        MessageSent,
        #[serde(rename = "message.delivered")]
        #[strum(serialize = "message.delivered")]
        MessageDelivered,
        #[serde(rename = "message.undelivered")]
        #[strum(serialize = "message.undelivered")]
        MessageUndelivered,
        #[serde(rename = "message.failed")]
        #[strum(serialize = "message.failed")]
        MessageFailed,
        #[serde(rename = "message.unknown")]
        #[strum(serialize = "message.unknown")]
        MessageUnknown,
        #[serde(rename = "message.suppressed")]
        #[strum(serialize = "message.suppressed")]
        MessageSuppressed,
        #[serde(rename = "batch.completed")]
        #[strum(serialize = "batch.completed")]
        BatchCompleted,
        #[serde(rename = "endpoint.disabled")]
        #[strum(serialize = "endpoint.disabled")]
        EndpointDisabled,
    }
}

stored_enum! {
    /// Whether Herald delivers to the endpoint.
    pub enum EndpointStatus {
        Enabled,
        Disabled,
    }
}

stored_enum! {
    /// Why an endpoint is disabled.
    pub enum DisabledReason {
        /// An admin disabled it; an admin enables it again.
        Admin,
        /// The endpoint answered 410 Gone.
        Gone,
        /// Every delivery failed for 5 days.
        Failing,
    }
}

/// One endpoint of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub tenant: TenantId,
    /// `ep_` and a ULID.
    pub id: String,
    pub url: String,
    /// Each once, in the order given.
    pub event_types: Vec<EventType>,
    pub description: String,
    /// Deliveries per second at most; none: Herald's own pace.
    pub rate_limit_per_second: Option<u32>,
    pub status: EndpointStatus,
    pub disabled_reason: Option<DisabledReason>,
    pub created_at: Timestamp,
    pub created_by: String,
    pub updated_at: Timestamp,
    /// The signing secret, sealed for this tenant and endpoint.
    pub sealed_secret: String,
    /// The secret a rotation replaced, sealed, and until when it still signs beside
    /// the new one.
    pub previous_secret: Option<(String, Timestamp)>,
    /// Since when every delivery to it has failed (none: the last one succeeded).
    /// Five days of it disable the endpoint.
    pub failing_since: Option<Timestamp>,
}

impl WebhookEndpoint {
    /// The sealed secrets that sign a delivery made at `now`: the current one, and the
    /// one a rotation replaced while its 24 hours last.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&str> {
        let mut secrets = vec![self.sealed_secret.as_str()];
        if let Some((previous, until)) = &self.previous_secret
            && now < *until
        {
            secrets.push(previous);
        }
        secrets
    }
}

/// What a tenant may change of an endpoint: all of it but its id, secret and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSettings {
    pub url: String,
    pub event_types: Vec<EventType>,
    pub description: String,
    pub rate_limit_per_second: Option<u32>,
}

/// What asking to change an endpoint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointChange {
    Changed(WebhookEndpoint),
    /// Already so: nothing written, nothing audited.
    Unchanged(WebhookEndpoint),
    /// No such endpoint of the tenant (or deleted).
    NotFound,
}

stored_enum! {
    /// How one delivery attempt ended.
    pub enum AttemptResult {
        /// A 2xx.
        Delivered,
        /// Not delivered; tried again on the schedule.
        Retrying,
        /// Not delivered, and the schedule is spent: the event failed (recover sends
        /// it again).
        Failed,
        /// The endpoint answered 410 and was disabled.
        Gone,
    }
}

/// One delivery attempt, as the endpoint's attempts log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub event_id: String,
    pub event_type: EventType,
    /// 1 for the first attempt of the event.
    pub attempt: u32,
    pub at: Timestamp,
    pub result: AttemptResult,
    /// The answer's status; none when there was no answer.
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub excerpt: String,
    /// The event's exact body, so that recover can send it again.
    pub body: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::names;

    #[test]
    fn event_types_have_one_name_in_json_and_items() {
        assert_eq!(
            names::<EventType>(),
            [
                "message.sent",
                "message.delivered",
                "message.undelivered",
                "message.failed",
                "message.unknown",
                "message.suppressed",
                "batch.completed",
                "endpoint.disabled"
            ]
        );
        for event in <EventType as strum::VariantArray>::VARIANTS {
            let json = serde_json::to_value(event).unwrap();
            assert_eq!(json, event.to_string());
            assert_eq!(event.to_string().parse::<EventType>().unwrap(), *event);
        }
    }
}
