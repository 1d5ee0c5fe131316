//! The emulator's SNS signing (`infra/local/ses_events.py`): what it signs, in either
//! signature version and for either message type, verifies under the certificate it
//! serves exactly as SNS's messages verify under SNS's (`herald::webhook::sns`), and
//! nothing altered does. The SES events it publishes are tested end to end in
//! `ses_receipts.rs`.

use herald::webhook::sns::{SnsError, SnsMessage};
use herald_tests::herald_local::{SNS_LOCAL_CERTIFICATE_PATH, emulator, project_root};
use serde_json::json;

#[tokio::test]
async fn what_the_emulator_signs_verifies_under_the_certificate_it_serves() {
    let endpoint = emulator::endpoint();
    emulator::ensure_for_tests(&project_root(), &endpoint)
        .await
        .expect("the emulator runs");
    let http = reqwest::Client::new();
    let certificate = http
        .get(format!("{endpoint}{SNS_LOCAL_CERTIFICATE_PATH}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let topic = "arn:aws:sns:us-east-1:123456789012:t-emulator-sns";
    let notification = json!({
        "Type": "Notification", "MessageId": "m-1", "TopicArn": topic,
        "Subject": "s", "Message": "{\"eventType\":\"Send\"}",
        "Timestamp": "2026-11-27T20:00:00.000Z",
    });
    let confirmation = json!({
        "Type": "SubscriptionConfirmation", "MessageId": "m-2", "TopicArn": topic,
        "Message": "You have chosen to subscribe.", "Token": "t0k3n",
        "SubscribeURL": format!("{endpoint}/?Action=ConfirmSubscription&Token=t0k3n"),
        "Timestamp": "2026-11-27T20:00:00.000Z",
    });
    for unsigned in [notification, confirmation] {
        for version in ["1", "2"] {
            let mut unsigned = unsigned.clone();
            unsigned["SignatureVersion"] = json!(version);
            let signed: serde_json::Value = http
                .post(format!("{endpoint}/_herald/sns/sign"))
                .json(&unsigned)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                signed["SigningCertURL"],
                format!("{endpoint}{SNS_LOCAL_CERTIFICATE_PATH}")
            );
            let message = SnsMessage::parse(signed.to_string().as_bytes()).unwrap();
            assert_eq!(message.signature_version, version);
            assert_eq!(message.verify(&certificate), Ok(()), "{signed}");
            let mut altered = message.clone();
            altered.timestamp = "2026-11-27T20:00:00.001Z".into();
            assert_eq!(altered.verify(&certificate), Err(SnsError::Signature));
        }
    }
}
