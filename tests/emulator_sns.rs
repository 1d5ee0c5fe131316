//! The emulator's SNS signing (`infra/local/ses_events.py`): what it signs, in either
//! signature version and for either message type, verifies under the certificate it
//! serves exactly as SNS's messages verify under SNS's (`herald::webhook::sns`), and
//! nothing altered does; and an HTTP subscription waits for its confirmation, as SNS's
//! do. The SES events it publishes are tested end to end in `ses_receipts.rs` (where
//! the receiver confirms the events topic's subscription before each test starts).

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use herald::webhook::sns::{SnsError, SnsMessage, SnsType};
use herald_tests::herald_local::{SNS_LOCAL_CERTIFICATE_PATH, emulator, project_root, random_hex};
use serde_json::json;
use tokio::sync::mpsc;

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

/// What the endpoint receives next (within 30 s).
async fn next(received: &mut mpsc::UnboundedReceiver<(HeaderMap, String)>) -> (HeaderMap, String) {
    tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("SNS posted within 30 s")
        .expect("the endpoint runs")
}

/// Whether the emulator's SNS still holds `subscription` for its confirmation.
async fn pending(sns: &aws_sdk_sns::Client, subscription: &str) -> String {
    sns.get_subscription_attributes()
        .subscription_arn(subscription)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default()
        .get("PendingConfirmation")
        .cloned()
        .unwrap_or_default()
}

/// As SNS documents (developer guide, "Fanout to HTTP/S endpoints"): subscribing an
/// HTTP endpoint leaves the subscription pending and posts a signed
/// `SubscriptionConfirmation`; nothing published reaches the endpoint until its
/// `SubscribeURL` is visited with the token SNS sent; another token is refused.
#[tokio::test]
async fn an_http_subscription_gets_nothing_until_its_subscribe_url_is_visited() {
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
    let (posted, mut received) = mpsc::unbounded_channel::<(HeaderMap, String)>();
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let posted = posted.clone();
            async move {
                posted.send((headers, body)).ok();
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await });

    let sns = aws_sdk_sns::Client::new(&herald::aws::for_emulator(&endpoint).await);
    let topic = sns
        .create_topic()
        .name(format!("t-confirm-{}", random_hex(8)))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let subscription = sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(&url)
        .return_subscription_arn(true)
        .send()
        .await
        .unwrap()
        .subscription_arn
        .unwrap();
    assert_eq!(pending(&sns, &subscription).await, "true");

    let (headers, body) = next(&mut received).await;
    assert_eq!(
        headers["x-amz-sns-message-type"],
        "SubscriptionConfirmation"
    );
    assert_eq!(headers["x-amz-sns-topic-arn"], topic.as_str());
    let confirmation = SnsMessage::parse(body.as_bytes()).unwrap();
    assert_eq!(
        confirmation.message_type(),
        Ok(SnsType::SubscriptionConfirmation)
    );
    assert_eq!(confirmation.verify(&certificate), Ok(()), "{body}");
    assert_eq!(confirmation.topic_arn, topic);
    let token = confirmation.token.clone().expect("a token");
    let subscribe_url = confirmation.subscribe_url.clone().expect("a SubscribeURL");
    assert!(
        subscribe_url.starts_with(&format!("{endpoint}/?Action=ConfirmSubscription&")),
        "{subscribe_url}"
    );
    assert!(subscribe_url.contains(&token));

    // Pending: a notification goes nowhere.
    sns.publish()
        .topic_arn(&topic)
        .message("early")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        received.try_recv().is_err(),
        "delivered before confirmation"
    );

    let forged = http
        .get(subscribe_url.replace(&token, &"0".repeat(token.len())))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    assert_eq!(pending(&sns, &subscription).await, "true");

    let confirmed = http.get(&subscribe_url).send().await.unwrap();
    assert_eq!(confirmed.status(), 200);
    assert!(confirmed.text().await.unwrap().contains(&subscription));
    assert_eq!(pending(&sns, &subscription).await, "false");

    sns.publish()
        .topic_arn(&topic)
        .message("after")
        .send()
        .await
        .unwrap();
    let (headers, body) = next(&mut received).await;
    assert_eq!(headers["x-amz-sns-message-type"], "Notification");
    let notification = SnsMessage::parse(body.as_bytes()).unwrap();
    assert_eq!(
        notification.message, "after",
        "the early one was never delivered"
    );
    assert_eq!(notification.verify(&certificate), Ok(()));
}
