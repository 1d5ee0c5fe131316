//! SES's event publishing (through an SNS topic): the message tags the sender puts on
//! each email so its events name Herald's tenant and message, and the reading of an
//! event record (the SNS notification's `Message`) into a `ProviderEvent`.
//!
//! What each event means for the message:
//! - `Send`: SES took it (`sent`; resolves an `unknown` message).
//! - `Delivery`: the receiving server took it (`delivered`).
//! - `Bounce`: `undelivered`; a `Permanent` bounce also suppresses the address (SES's
//!   own account suppression list answers a `Permanent` bounce too). A `Transient` or
//!   `Undetermined` bounce does not: the address may take mail later.
//! - `Complaint`: the email was delivered and the recipient marked it as spam:
//!   `delivered`, and the address is suppressed.
//! - `Reject`, `Rendering Failure`: SES did not send it (`undelivered`).
//! - `DeliveryDelay`, `Open`, `Click`, `Subscription`: nothing to record.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::EventError;
use crate::clock::Timestamp;
use crate::domain::{EventSource, MessageStatus, ProviderEvent, Receipt, SuppressionReason};
use crate::ids::{MessageId, TenantId};

/// The message tags (SES `EmailTags`) the sender sets on every email.
pub const TENANT_TAG: &str = "herald-tenant";
pub const MESSAGE_TAG: &str = "herald-message";

/// A message id as a tag value: SES allows letters, digits, `_` and `-` in one, so the
/// id's `.` becomes `_` (a batch id, a ULID, has neither).
pub fn message_tag(message: MessageId) -> String {
    message.to_string().replace('.', "_")
}

fn message_from_tag(value: &str) -> Option<MessageId> {
    value.replacen('_', ".", 1).parse().ok()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventRecord {
    /// Event publishing says `eventType`; an identity's feedback notifications say
    /// `notificationType` for the same records.
    #[serde(alias = "notificationType")]
    event_type: String,
    mail: Mail,
    #[serde(default)]
    bounce: Option<Bounce>,
    #[serde(default)]
    complaint: Option<Complaint>,
    #[serde(default)]
    reject: Option<Reject>,
    #[serde(default)]
    failure: Option<Failure>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mail {
    message_id: String,
    #[serde(default)]
    tags: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bounce {
    bounce_type: String,
    #[serde(default)]
    bounce_sub_type: Option<String>,
    #[serde(default)]
    bounced_recipients: Vec<BouncedRecipient>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BouncedRecipient {
    #[serde(default)]
    diagnostic_code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complaint {
    #[serde(default)]
    complaint_feedback_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Reject {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Failure {
    #[serde(default)]
    error_message: Option<String>,
}

/// Reads the SES event in a verified SNS notification (`fields`: its signed fields).
pub fn parse_event(
    fields: &BTreeMap<String, String>,
    received_at: Timestamp,
) -> Result<ProviderEvent, EventError> {
    let message = fields
        .get("Message")
        .ok_or_else(|| EventError::Invalid("the notification has no Message".into()))?;
    let record: EventRecord = serde_json::from_str(message)
        .map_err(|e| EventError::Invalid(format!("not an SES event: {e}")))?;
    let mail_id = record.mail.message_id.as_str();
    let tag = |name: &str| record.mail.tags.get(name).and_then(|v| v.first());
    let (Some(tenant), Some(message)) = (tag(TENANT_TAG), tag(MESSAGE_TAG)) else {
        return Ok(ProviderEvent::Ignored {
            what: format!("SES {} of {mail_id}, not sent by Herald", record.event_type),
        });
    };
    let tenant =
        TenantId::parse(tenant).map_err(|e| EventError::Invalid(format!("{TENANT_TAG}: {e}")))?;
    let message = message_from_tag(message)
        .ok_or_else(|| EventError::Invalid(format!("{MESSAGE_TAG}: not a message id")))?;
    let Some(reading) = read(&record) else {
        return Ok(ProviderEvent::Ignored {
            what: format!("SES {} of {mail_id}", record.event_type),
        });
    };
    Ok(ProviderEvent::Receipt(Receipt {
        source: EventSource::Ses,
        event_id: format!("{mail_id}:{}", record.event_type),
        tenant,
        message,
        provider_ref: mail_id.to_owned(),
        status: reading.status,
        error_code: reading.code,
        error_reason: reading.reason,
        received_at,
        suppress: reading.suppress,
    }))
}

/// What one event says about its message.
struct Reading {
    status: MessageStatus,
    code: Option<String>,
    reason: Option<String>,
    suppress: Option<SuppressionReason>,
}

fn read(record: &EventRecord) -> Option<Reading> {
    let failed = |code: String, reason: String| Reading {
        status: MessageStatus::Undelivered,
        code: Some(code),
        reason: Some(reason),
        suppress: None,
    };
    Some(match record.event_type.as_str() {
        "Send" => Reading {
            status: MessageStatus::Sent,
            code: None,
            reason: None,
            suppress: None,
        },
        "Delivery" => Reading {
            status: MessageStatus::Delivered,
            code: None,
            reason: None,
            suppress: None,
        },
        "Bounce" => {
            let bounce = record.bounce.as_ref()?;
            let kind = bounce.bounce_type.as_str();
            let sub = bounce.bounce_sub_type.as_deref().unwrap_or("General");
            let diagnostic = bounce
                .bounced_recipients
                .iter()
                .find_map(|r| r.diagnostic_code.clone());
            let reason = diagnostic.unwrap_or_else(|| format!("a {kind} bounce ({sub})"));
            let mut reading = failed(format!("bounce:{kind}:{sub}"), reason);
            if kind == "Permanent" {
                reading.suppress = Some(SuppressionReason::Bounce);
            }
            reading
        }
        "Complaint" => Reading {
            status: MessageStatus::Delivered,
            code: Some(format!(
                "complaint:{}",
                record
                    .complaint
                    .as_ref()
                    .and_then(|c| c.complaint_feedback_type.as_deref())
                    .unwrap_or("unspecified")
            )),
            reason: None,
            suppress: Some(SuppressionReason::Complaint),
        },
        "Reject" => failed(
            "reject".into(),
            record
                .reject
                .as_ref()
                .and_then(|r| r.reason.clone())
                .unwrap_or_else(|| "SES rejected the email".into()),
        ),
        "Rendering Failure" => failed(
            "rendering-failure".into(),
            record
                .failure
                .as_ref()
                .and_then(|f| f.error_message.clone())
                .unwrap_or_else(|| "SES could not render the email".into()),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `mail` object of AWS's documented event examples (SES developer guide,
    /// "Examples of event data that Amazon SES publishes to Amazon SNS"), headers left
    /// out, with the tags Herald's sender adds.
    fn record(event_type: &str, detail: &str) -> BTreeMap<String, String> {
        let message = format!(
            r#"{{"eventType":"{event_type}",{detail}"mail":{{"timestamp":"2016-10-19T23:20:52.240Z","source":"sender@example.com","sourceArn":"arn:aws:ses:us-east-1:123456789012:identity/sender@example.com","sendingAccountId":"123456789012","messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000","destination":["recipient@example.com"],"headersTruncated":false,"tags":{{"ses:configuration-set":["ConfigSet"],"ses:source-ip":["192.0.2.0"],"ses:from-domain":["example.com"],"ses:caller-identity":["ses_user"],"herald-tenant":["acme"],"herald-message":["01KB2F6VNS4H9T3C5QJ8W7XR0M_7"]}}}}}}"#
        );
        BTreeMap::from([("Message".to_owned(), message)])
    }

    fn receipt(event_type: &str, detail: &str) -> Receipt {
        match parse_event(&record(event_type, detail), Timestamp::from_epoch_millis(9)).unwrap() {
            ProviderEvent::Receipt(r) => r,
            other => panic!("{event_type}: {other:?}"),
        }
    }

    const BOUNCE: &str = r#""bounce":{"bounceType":"Permanent","bounceSubType":"General","bouncedRecipients":[{"emailAddress":"recipient@example.com","action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}],"timestamp":"2017-08-05T00:41:02.669Z","feedbackId":"01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000","reportingMTA":"dsn; mta.example.com"},"#;
    const COMPLAINT: &str = r#""complaint":{"complainedRecipients":[{"emailAddress":"recipient@example.com"}],"timestamp":"2017-08-05T00:41:02.669Z","feedbackId":"01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000","userAgent":"Mozilla/5.0","complaintFeedbackType":"abuse","arrivalDate":"2017-08-05T00:41:02.669Z"},"#;
    const DELIVERY: &str = r#""delivery":{"timestamp":"2016-10-19T23:21:04.133Z","processingTimeMillis":11893,"recipients":["recipient@example.com"],"smtpResponse":"250 2.6.0 Message received","reportingMTA":"mta.example.com"},"#;

    #[test]
    fn the_documented_events_read_as_receipts_of_the_tagged_message() {
        let delivered = receipt("Delivery", DELIVERY);
        assert_eq!(delivered.status, MessageStatus::Delivered);
        assert_eq!(delivered.tenant.as_str(), "acme");
        assert_eq!(
            delivered.message.to_string(),
            "01KB2F6VNS4H9T3C5QJ8W7XR0M.7"
        );
        assert_eq!(
            delivered.provider_ref,
            "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
        );
        assert_eq!(
            delivered.event_id,
            "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000:Delivery"
        );
        assert_eq!((delivered.suppress, delivered.error_code), (None, None));

        let sent = receipt("Send", r#""send":{},"#);
        assert_eq!((sent.status, sent.suppress), (MessageStatus::Sent, None));

        let bounced = receipt("Bounce", BOUNCE);
        assert_eq!(bounced.status, MessageStatus::Undelivered);
        assert_eq!(bounced.suppress, Some(SuppressionReason::Bounce));
        assert_eq!(
            bounced.error_code.as_deref(),
            Some("bounce:Permanent:General")
        );
        assert_eq!(
            bounced.error_reason.as_deref(),
            Some("smtp; 550 5.1.1 user unknown")
        );

        let complained = receipt("Complaint", COMPLAINT);
        assert_eq!(complained.status, MessageStatus::Delivered);
        assert_eq!(complained.suppress, Some(SuppressionReason::Complaint));
        assert_eq!(complained.error_code.as_deref(), Some("complaint:abuse"));

        let rejected = receipt("Reject", r#""reject":{"reason":"Bad content"},"#);
        assert_eq!(rejected.status, MessageStatus::Undelivered);
        assert_eq!(rejected.error_reason.as_deref(), Some("Bad content"));
        assert_eq!(rejected.suppress, None);

        let unrendered = receipt(
            "Rendering Failure",
            r#""failure":{"errorMessage":"Attribute 'attributeName' is not present in the rendering data.","templateName":"MyTemplate"},"#,
        );
        assert_eq!(unrendered.status, MessageStatus::Undelivered);
        assert_eq!(unrendered.error_code.as_deref(), Some("rendering-failure"));
    }

    #[test]
    fn transient_and_undetermined_bounces_do_not_suppress() {
        for kind in ["Transient", "Undetermined"] {
            let bounced = receipt("Bounce", &BOUNCE.replace("Permanent", kind));
            assert_eq!(bounced.status, MessageStatus::Undelivered, "{kind}");
            assert_eq!(bounced.suppress, None, "{kind}");
        }
        // SES's account suppression list answers with a permanent bounce of its own.
        let listed = receipt(
            "Bounce",
            &BOUNCE.replace("\"General\"", "\"OnAccountSuppressionList\""),
        );
        assert_eq!(listed.suppress, Some(SuppressionReason::Bounce));
    }

    #[test]
    fn delays_opens_clicks_and_untagged_mail_record_nothing() {
        for event in ["DeliveryDelay", "Open", "Click", "Subscription"] {
            let parsed = parse_event(&record(event, ""), Timestamp::from_epoch_millis(1));
            assert!(
                matches!(parsed, Ok(ProviderEvent::Ignored { .. })),
                "{event}"
            );
        }
        let untagged = record("Delivery", DELIVERY)
            .into_iter()
            .map(|(k, v)| (k, v.replace("herald-", "other-")))
            .collect();
        assert!(matches!(
            parse_event(&untagged, Timestamp::from_epoch_millis(1)),
            Ok(ProviderEvent::Ignored { .. })
        ));
    }

    #[test]
    fn malformed_records_and_tags_are_invalid() {
        let at = Timestamp::from_epoch_millis(1);
        for fields in [
            BTreeMap::new(),
            BTreeMap::from([("Message".to_owned(), "Hello world!".to_owned())]),
            record("Delivery", DELIVERY)
                .into_iter()
                .map(|(k, v)| (k, v.replace("_7\"", "_x\"")))
                .collect(),
            record("Delivery", DELIVERY)
                .into_iter()
                .map(|(k, v)| (k, v.replace("[\"acme\"]", "[\"ACME!\"]")))
                .collect(),
        ] {
            assert!(
                matches!(parse_event(&fields, at), Err(EventError::Invalid(_))),
                "{fields:?}"
            );
        }
    }

    #[test]
    fn message_ids_survive_the_tag() {
        let id: MessageId = "01KB2F6VNS4H9T3C5QJ8W7XR0M.42".parse().unwrap();
        let tag = message_tag(id);
        assert!(tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        assert_eq!(message_from_tag(&tag), Some(id));
    }
}
