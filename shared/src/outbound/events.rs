//! What a tenant's endpoints are told, and when an undelivered event is tried again.
//! An event is a message's move into a status tenants act on (`message.*`), built
//! from the message as the change stream's new image holds it, so no status change
//! goes unannounced; its id is the message id and the status
//! (`{batch}.{index}.delivered`): a message reaches each status at most once (statuses
//! only move forward), so the id is the same however often the stream hands the change
//! over, and receivers deduplicate on `webhook-id`. The recipient's address is
//! masked. `RETRY_SCHEDULE` is the published schedule.

use std::time::Duration;

use serde_json::json;

use crate::address::mask_email;
use crate::clock::Timestamp;
use crate::domain::{
    BatchStatus, BatchView, Channel, DisabledReason, EndpointStatus, EventType, MessageStatus,
    MessageView, WebhookEndpoint,
};
use crate::phone::mask_phone;

/// The delay before each attempt after the first (which is immediate): 5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h, 10 h. Eight attempts in all, over about 27 h 35 min.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// An endpoint whose every delivery has failed for this long is disabled.
pub const FAILING_DISABLES_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);

/// When attempt `failed_attempts + 1` is due after `failed_attempts` failures, the
/// last at `last_attempt`: the schedule's delay, or the endpoint's `Retry-After` when
/// that is later. `None`: the schedule is spent, the event has failed.
pub fn next_attempt(
    failed_attempts: usize,
    last_attempt: Timestamp,
    retry_after: Option<Duration>,
) -> Option<Timestamp> {
    next_attempt_compressed(failed_attempts, last_attempt, retry_after, 1)
}

/// The event type of a message's move into `status`, for statuses tenants hear of.
pub fn event_type_of(status: MessageStatus) -> Option<EventType> {
    Some(match status {
        MessageStatus::Sent => EventType::MessageSent,
        MessageStatus::Delivered => EventType::MessageDelivered,
        MessageStatus::Undelivered => EventType::MessageUndelivered,
        MessageStatus::Failed => EventType::MessageFailed,
        MessageStatus::Unknown => EventType::MessageUnknown,
        MessageStatus::Suppressed => EventType::MessageSuppressed,
        MessageStatus::Accepted | MessageStatus::Sending | MessageStatus::Cancelled => {
            return None;
        }
    })
}

/// One event, as signed and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundEvent {
    /// `webhook-id`.
    pub id: String,
    pub event_type: EventType,
    /// The exact body: the bytes signed are the bytes sent.
    pub body: Vec<u8>,
}

/// The event a change of a message from `old` to `new` announces, if any: none when
/// the status did not change (a claim taken over, a retry's count) or moved into a
/// status tenants do not hear of.
pub fn message_event(old: Option<MessageStatus>, new: &MessageView) -> Option<OutboundEvent> {
    if old == Some(new.status) {
        return None;
    }
    let event_type = event_type_of(new.status)?;
    let masked = match new.channel {
        Channel::Sms => mask_phone(&new.to),
        Channel::Email => mask_email(&new.to),
    };
    let body = json!({
        "type": event_type,
        "timestamp": new.updated_at,
        "data": {
            "message_id": new.id.to_string(),
            "batch_id": new.id.batch().to_string(),
            "channel": new.channel,
            "status": new.status,
            "to": masked,
            "provider_ref": new.provider_ref,
            "error_code": new.error_code,
            "error_reason": new.error_reason,
        },
    });
    Some(OutboundEvent {
        id: format!("{}.{}", new.id, new.status),
        event_type,
        body: serde_json::to_vec(&body).expect("plain JSON data"),
    })
}

/// The event a change of a batch from `old` to `new` announces: `batch.completed`
/// when it moves into `completed` (every message counted), with its counts. One per
/// batch: its id is the batch id and the status.
pub fn batch_event(old: Option<BatchStatus>, new: &BatchView) -> Option<OutboundEvent> {
    if new.status != BatchStatus::Completed || old == Some(BatchStatus::Completed) {
        return None;
    }
    let body = json!({
        "type": EventType::BatchCompleted,
        "timestamp": new.finished_at.unwrap_or(new.created_at),
        "data": {
            "batch_id": new.id.to_string(),
            "channel": new.channel,
            "status": new.status,
            "total": new.total,
            "sent": new.sent,
            "failed": new.failed,
            "unknown": new.unknown,
            "cancelled": new.cancelled,
            "suppressed": new.suppressed,
        },
    });
    Some(OutboundEvent {
        id: format!("{}.completed", new.id),
        event_type: EventType::BatchCompleted,
        body: serde_json::to_vec(&body).expect("plain JSON data"),
    })
}

/// The event an endpoint's move from `old` into disabled by Herald announces to the
/// tenant's other endpoints: `endpoint.disabled` (an admin's own disable is not
/// announced). Its id is the endpoint id and the time it was disabled.
pub fn endpoint_event(old: Option<EndpointStatus>, new: &WebhookEndpoint) -> Option<OutboundEvent> {
    let reason = new.disabled_reason?;
    if new.status != EndpointStatus::Disabled
        || old != Some(EndpointStatus::Enabled)
        || reason == DisabledReason::Admin
    {
        return None;
    }
    let body = json!({
        "type": EventType::EndpointDisabled,
        "timestamp": new.updated_at,
        "data": {
            "endpoint_id": new.id,
            "url": new.url,
            "reason": reason,
        },
    });
    Some(OutboundEvent {
        id: format!("{}.disabled.{}", new.id, new.updated_at.epoch_millis()),
        event_type: EventType::EndpointDisabled,
        body: serde_json::to_vec(&body).expect("plain JSON data"),
    })
}

/// A test event of `event_type` for the endpoint `endpoint_id` (`POST .../test`): the
/// type's shape with example values and `"test": true`, under a fresh id (`test_` and
/// `unique`), so a receiver sees exactly what a real event of that type looks like.
pub fn test_event(
    event_type: EventType,
    endpoint_id: &str,
    unique: &str,
    at: Timestamp,
) -> OutboundEvent {
    let batch = "01JQ0000000000000000000000";
    let data = match event_type {
        EventType::BatchCompleted => json!({
            "batch_id": batch, "channel": Channel::Sms, "status": BatchStatus::Completed,
            "total": 1, "sent": 1, "failed": 0, "unknown": 0, "cancelled": 0, "suppressed": 0,
        }),
        EventType::EndpointDisabled => json!({
            "endpoint_id": endpoint_id, "url": "https://hooks.example.com/herald",
            "reason": DisabledReason::Gone,
        }),
        message => json!({
            "message_id": format!("{batch}.0"), "batch_id": batch, "channel": Channel::Sms,
            "status": message.to_string().trim_start_matches("message."),
            "to": "+14*******00", "provider_ref": null, "error_code": null, "error_reason": null,
        }),
    };
    let body = json!({ "type": event_type, "timestamp": at, "test": true, "data": data });
    OutboundEvent {
        id: format!("test_{unique}"),
        event_type,
        body: serde_json::to_vec(&body).expect("plain JSON data"),
    }
}

/// `RETRY_SCHEDULE` with every delay divided by `divisor` (1 in production; test
/// stacks compress the schedule this way, through the same code path).
pub fn next_attempt_compressed(
    failed_attempts: usize,
    last_attempt: Timestamp,
    retry_after: Option<Duration>,
    divisor: u32,
) -> Option<Timestamp> {
    let scheduled = *RETRY_SCHEDULE.get(failed_attempts.checked_sub(1)?)? / divisor.max(1);
    Some(last_attempt.plus(scheduled.max(retry_after.unwrap_or_default())))
}

/// Whether an endpoint failing since `since` has failed long enough at `now` to be
/// disabled (`FAILING_DISABLES_AFTER`). Never compressed with the retry schedule: tests
/// reach the five days by moving the deliverer's clock (`herald::clock`), so the
/// window they prove is the one deployed.
pub fn failing_too_long(since: Timestamp, now: Timestamp) -> bool {
    now >= since.plus(FAILING_DISABLES_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{BatchId, MessageId};

    fn view(status: MessageStatus, channel: Channel, to: &str) -> MessageView {
        let at = Timestamp::parse("2026-05-01T10:00:00Z").unwrap();
        MessageView {
            id: MessageId::new("01JQ0000000000000000000000".parse::<BatchId>().unwrap(), 7),
            channel,
            to: to.to_owned(),
            status,
            provider: Some("twilio".into()),
            provider_ref: Some("SM123".into()),
            attempts: 1,
            error_code: None,
            error_reason: None,
            created_at: at,
            updated_at: at,
            history: Vec::new(),
        }
    }

    #[test]
    fn a_move_into_a_heard_status_is_one_event_with_a_stable_id_and_a_masked_address() {
        let delivered = view(MessageStatus::Delivered, Channel::Sms, "+14155550100");
        let event = message_event(Some(MessageStatus::Sent), &delivered).unwrap();
        assert_eq!(event.id, "01JQ0000000000000000000000.7.delivered");
        assert_eq!(event.event_type, EventType::MessageDelivered);
        let body: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
        assert_eq!(body["type"], "message.delivered");
        assert_eq!(body["timestamp"], "2026-05-01T10:00:00.000Z");
        assert_eq!(body["data"]["message_id"], "01JQ0000000000000000000000.7");
        assert_eq!(body["data"]["batch_id"], "01JQ0000000000000000000000");
        assert_eq!(body["data"]["to"], "+14*******00");
        assert!(!String::from_utf8_lossy(&event.body).contains("4155550100"));
        // The same change handed over again is the same event, byte for byte.
        assert_eq!(
            message_event(Some(MessageStatus::Sent), &delivered),
            Some(event)
        );
        let email = view(
            MessageStatus::Suppressed,
            Channel::Email,
            "jane.doe@example.com",
        );
        let event = message_event(Some(MessageStatus::Accepted), &email).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
        assert_eq!(body["data"]["to"], "j***@e***.com");
    }

    #[test]
    fn changes_that_are_not_moves_into_heard_statuses_announce_nothing() {
        let sent = view(MessageStatus::Sent, Channel::Sms, "+14155550100");
        assert_eq!(message_event(Some(MessageStatus::Sent), &sent), None);
        assert!(message_event(None, &sent).is_some());
        for quiet in [
            MessageStatus::Accepted,
            MessageStatus::Sending,
            MessageStatus::Cancelled,
        ] {
            let v = view(quiet, Channel::Sms, "+14155550100");
            assert_eq!(message_event(Some(MessageStatus::Accepted), &v), None);
        }
    }

    #[test]
    fn retries_follow_the_published_schedule_or_a_later_retry_after() {
        let at = Timestamp::parse("2026-05-01T10:00:00Z").unwrap();
        let due = |failed, after| next_attempt(failed, at, after).map(|t| t.to_string());
        assert_eq!(due(1, None).as_deref(), Some("2026-05-01T10:00:05.000Z"));
        assert_eq!(due(2, None).as_deref(), Some("2026-05-01T10:05:00.000Z"));
        assert_eq!(due(3, None).as_deref(), Some("2026-05-01T10:30:00.000Z"));
        assert_eq!(due(4, None).as_deref(), Some("2026-05-01T12:00:00.000Z"));
        assert_eq!(due(5, None).as_deref(), Some("2026-05-01T15:00:00.000Z"));
        assert_eq!(due(6, None).as_deref(), Some("2026-05-01T20:00:00.000Z"));
        assert_eq!(due(7, None).as_deref(), Some("2026-05-01T20:00:00.000Z"));
        assert_eq!(due(8, None), None, "eight attempts, then failed");
        assert_eq!(due(0, None), None);
        let later = Some(Duration::from_secs(60));
        assert_eq!(due(1, later).as_deref(), Some("2026-05-01T10:01:00.000Z"));
        let sooner = Some(Duration::from_secs(1));
        assert_eq!(due(2, sooner).as_deref(), Some("2026-05-01T10:05:00.000Z"));
    }

    #[test]
    fn a_batch_completes_once_and_herald_s_disables_are_announced_but_an_admin_s_are_not() {
        let at = Timestamp::parse("2026-05-01T10:00:00Z").unwrap();
        let batch = BatchView {
            id: "01JQ0000000000000000000000".parse().unwrap(),
            channel: Channel::Sms,
            status: BatchStatus::Completed,
            total: 3,
            chunk_count: 1,
            sent: 2,
            failed: 1,
            unknown: 0,
            cancelled: 0,
            suppressed: 0,
            receipts: Default::default(),
            created_by: "u".into(),
            created_at: at,
            enqueued_at: Some(at),
            cancelled_at: None,
            finished_at: Some(at),
            turn: None,
        };
        let event = batch_event(Some(BatchStatus::Enqueued), &batch).unwrap();
        assert_eq!(event.id, "01JQ0000000000000000000000.completed");
        let body: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
        assert_eq!(
            (
                body["data"]["sent"].as_u64(),
                body["data"]["failed"].as_u64()
            ),
            (Some(2), Some(1))
        );
        assert_eq!(batch_event(Some(BatchStatus::Completed), &batch), None);
        let enqueued = BatchView {
            status: BatchStatus::Enqueued,
            ..batch
        };
        assert_eq!(batch_event(Some(BatchStatus::Accepted), &enqueued), None);

        let endpoint = WebhookEndpoint {
            tenant: crate::ids::TenantId::parse("acme").unwrap(),
            id: "ep_1".into(),
            url: "https://hooks.example.com/h".into(),
            event_types: vec![EventType::MessageSent],
            description: String::new(),
            rate_limit_per_second: None,
            status: EndpointStatus::Disabled,
            disabled_reason: Some(DisabledReason::Gone),
            created_at: at,
            created_by: "u".into(),
            updated_at: at,
            sealed_secret: "x".into(),
            previous_secret: None,
            failing_since: None,
        };
        let told = endpoint_event(Some(EndpointStatus::Enabled), &endpoint).unwrap();
        assert_eq!(told.event_type, EventType::EndpointDisabled);
        assert_eq!(
            endpoint_event(Some(EndpointStatus::Disabled), &endpoint),
            None
        );
        let by_admin = WebhookEndpoint {
            disabled_reason: Some(DisabledReason::Admin),
            ..endpoint
        };
        assert_eq!(
            endpoint_event(Some(EndpointStatus::Enabled), &by_admin),
            None
        );
    }

    #[test]
    fn five_failing_days_disable_to_the_second() {
        let since = Timestamp::parse("2026-05-01T10:00:00Z").unwrap();
        let days = |d: u64| since.plus(Duration::from_secs(d * 24 * 3600));
        assert!(!failing_too_long(since, days(4)));
        assert!(!failing_too_long(
            since,
            days(5).minus(Duration::from_millis(1))
        ));
        assert!(failing_too_long(since, days(5)));
        assert!(failing_too_long(since, days(6)));
    }
}
