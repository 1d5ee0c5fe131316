//! SMS sent through SNS: SNS writes one delivery status record per text to CloudWatch
//! Logs (`sns/{region}/{account}/DirectPublishToPhoneNumber`, and `.../Failure` for
//! failures), and a subscription filter on both groups hands them to the events
//! function, which puts each record on the events queue as an envelope (`form`: the
//! record as SNS wrote it, its log group and its log event id) and applies it from
//! there like every other receipt.
//!
//! A record names only SNS's message id and the number, never Herald's message: it
//! reads as an `UnmatchedReceipt`, and the events function finds the message through
//! the provider reference index (`Store::message_by_provider_ref`).
//!
//! What a record means:
//! - `SUCCESS`: the carrier took the text (`delivered`; SNS logs nothing later).
//! - `FAILURE`: `undelivered`, with SNS's `providerResponse` as the reason; "Phone
//!   number is opted out" also puts the number on the tenant's suppression list.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::EventError;
use crate::clock::Timestamp;
use crate::domain::{
    EventSource, MessageStatus, ProviderEvent, SuppressionReason, UnmatchedReceipt,
};
use crate::phone::PhoneNumber;

/// The envelope fields a delivery status record travels in.
pub const MESSAGE_FIELD: &str = "message";
pub const LOG_GROUP_FIELD: &str = "log_group";
pub const LOG_EVENT_FIELD: &str = "log_event_id";

/// The log groups SNS writes SMS delivery status records to, in one account and region.
pub fn log_groups(region: &str, account: &str) -> [String; 2] {
    let success = format!("sns/{region}/{account}/DirectPublishToPhoneNumber");
    let failure = format!("{success}/Failure");
    [success, failure]
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryRecord {
    notification: Notification,
    delivery: Delivery,
    status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    message_id: String,
    /// `2016-06-28 00:40:34.558`, UTC.
    timestamp: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delivery {
    destination: String,
    #[serde(default)]
    provider_response: Option<String>,
}

/// SNS's answer for a number that texted STOP to it (or was opted out by an operator).
const OPTED_OUT: &str = "opted out";

/// Reads one delivery status record (the envelope's signed-by-IAM fields).
pub fn parse_record(
    fields: &BTreeMap<String, String>,
    received_at: Timestamp,
) -> Result<ProviderEvent, EventError> {
    let raw = fields
        .get(MESSAGE_FIELD)
        .ok_or_else(|| EventError::Invalid("the log event has no message".into()))?;
    let record: DeliveryRecord = serde_json::from_str(raw)
        .map_err(|e| EventError::Invalid(format!("not an SNS delivery status record: {e}")))?;
    let message_id = record.notification.message_id;
    if message_id.is_empty() {
        return Err(EventError::Invalid("the record has no message id".into()));
    }
    let to = PhoneNumber::parse(&record.delivery.destination)
        .map_err(|e| EventError::Invalid(format!("destination: {e}")))?;
    let accepted_at = sns_time(&record.notification.timestamp)?;
    let response = record.delivery.provider_response;
    let (status, error_code, suppress) = match record.status.as_str() {
        "SUCCESS" => (MessageStatus::Delivered, None, None),
        "FAILURE" => {
            let opted_out = response
                .as_deref()
                .is_some_and(|r| r.to_ascii_lowercase().contains(OPTED_OUT));
            let suppress = opted_out.then_some(SuppressionReason::OptOut);
            (
                MessageStatus::Undelivered,
                Some("sns:FAILURE".to_owned()),
                suppress,
            )
        }
        other => {
            return Ok(ProviderEvent::Ignored {
                what: format!("SNS delivery status {other} of {message_id}"),
            });
        }
    };
    Ok(ProviderEvent::Unmatched(UnmatchedReceipt {
        source: EventSource::Sns,
        event_id: message_id.clone(),
        provider_ref: message_id,
        to,
        accepted_at,
        status,
        error_code,
        error_reason: (status == MessageStatus::Undelivered)
            .then_some(response)
            .flatten(),
        received_at,
        suppress,
    }))
}

/// SNS's notification time (`2016-06-28 00:40:34.558`, UTC, without a zone) as RFC 3339.
fn sns_time(raw: &str) -> Result<Timestamp, EventError> {
    let rfc3339 = format!("{}Z", raw.replacen(' ', "T", 1));
    Timestamp::parse(&rfc3339).map_err(|_| EventError::Invalid(format!("timestamp {raw:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's documented example records, verbatim but for the destination, which AWS
    /// masks as `+1XXX5550100` (here `+12065550100`). Source: Amazon SNS Developer
    /// Guide, "Viewing Amazon CloudWatch metrics and logs for SMS deliveries" (also
    /// AWS re:Post knowledge center, "monitor-sns-texts-cloudwatch"): the examples of
    /// the `DirectPublishToPhoneNumber` and `DirectPublishToPhoneNumber/Failure` groups.
    const SUCCESS: &str = r#"{
    "notification": {
        "messageId": "34d9b400-c6dd-5444-820d-fbeb0f1f54cf",
        "timestamp": "2016-06-28 00:40:34.558"
    },
    "delivery": {
        "phoneCarrier": "My Phone Carrier",
        "mnc": 270,
        "destination": "+12065550100",
        "priceInUSD": 0.00645,
        "smsType": "Transactional",
        "mcc": 310,
        "providerResponse": "Message has been accepted by phone carrier",
        "dwellTimeMs": 599,
        "dwellTimeMsUntilDeviceAck": 1344
    },
    "status": "SUCCESS"
}"#;
    const FAILURE: &str = r#"{
    "notification": {
        "messageId": "1077257a-92f3-5ca3-bc97-6a915b310625",
        "timestamp": "2016-06-28 00:40:34.559"
    },
    "delivery": {
        "mnc": 0,
        "destination": "+12065550100",
        "priceInUSD": 0.00645,
        "smsType": "Transactional",
        "mcc": 0,
        "providerResponse": "Unknown error attempting to reach phone",
        "dwellTimeMs": 1420,
        "dwellTimeMsUntilDeviceAck": 1692
    },
    "status": "FAILURE"
}"#;

    fn read(record: &str) -> Result<ProviderEvent, EventError> {
        let fields = BTreeMap::from([(MESSAGE_FIELD.to_owned(), record.to_owned())]);
        parse_record(&fields, Timestamp::from_epoch_millis(7))
    }

    fn unmatched(record: &str) -> UnmatchedReceipt {
        match read(record).unwrap() {
            ProviderEvent::Unmatched(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_documented_success_record_is_a_delivery_of_its_sns_message() {
        let r = unmatched(SUCCESS);
        assert_eq!(r.source, EventSource::Sns);
        assert_eq!(r.provider_ref, "34d9b400-c6dd-5444-820d-fbeb0f1f54cf");
        assert_eq!(r.event_id, r.provider_ref);
        assert_eq!(r.to.as_str(), "+12065550100");
        assert_eq!(r.accepted_at.to_string(), "2016-06-28T00:40:34.558Z");
        assert_eq!(r.status, MessageStatus::Delivered);
        assert_eq!(
            (r.error_code, r.error_reason, r.suppress),
            (None, None, None)
        );
        assert_eq!(r.received_at, Timestamp::from_epoch_millis(7));
    }

    #[test]
    fn the_documented_failure_record_is_undelivered_with_snss_reason() {
        let r = unmatched(FAILURE);
        assert_eq!(r.provider_ref, "1077257a-92f3-5ca3-bc97-6a915b310625");
        assert_eq!(r.status, MessageStatus::Undelivered);
        assert_eq!(r.error_code.as_deref(), Some("sns:FAILURE"));
        assert_eq!(
            r.error_reason.as_deref(),
            Some("Unknown error attempting to reach phone")
        );
        assert_eq!(r.suppress, None);
    }

    #[test]
    fn an_opted_out_number_is_suppressed() {
        let r = unmatched(&FAILURE.replace(
            "Unknown error attempting to reach phone",
            "Phone number is opted out",
        ));
        assert_eq!(r.status, MessageStatus::Undelivered);
        assert_eq!(r.suppress, Some(SuppressionReason::OptOut));
        // Only a failure says so: a success never suppresses whatever it says.
        let ok = unmatched(&SUCCESS.replace(
            "Message has been accepted by phone carrier",
            "Phone number is opted out",
        ));
        assert_eq!(ok.suppress, None);
    }

    #[test]
    fn other_statuses_record_nothing_and_broken_records_are_invalid() {
        assert!(matches!(
            read(&SUCCESS.replace("\"SUCCESS\"", "\"PENDING\"")),
            Ok(ProviderEvent::Ignored { .. })
        ));
        for broken in [
            "Hello world!".to_owned(),
            SUCCESS.replace("+12065550100", "+1XXX5550100"),
            SUCCESS.replace("2016-06-28 00:40:34.558", "yesterday"),
            SUCCESS.replace("34d9b400-c6dd-5444-820d-fbeb0f1f54cf", ""),
            SUCCESS.replace("\"notification\"", "\"note\""),
        ] {
            assert!(
                matches!(read(&broken), Err(EventError::Invalid(_))),
                "{broken}"
            );
        }
        assert!(matches!(
            parse_record(&BTreeMap::new(), Timestamp::from_epoch_millis(1)),
            Err(EventError::Invalid(_))
        ));
    }

    #[test]
    fn the_log_groups_are_snss_names() {
        assert_eq!(
            log_groups("us-east-1", "123456789012"),
            [
                "sns/us-east-1/123456789012/DirectPublishToPhoneNumber".to_owned(),
                "sns/us-east-1/123456789012/DirectPublishToPhoneNumber/Failure".to_owned()
            ]
        );
    }
}
