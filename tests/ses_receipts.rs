//! Email receipts through SES → SNS → `/webhooks/ses` → the events function, with the
//! emulator's SES publishing the mailbox simulator's documented outcomes: delivered,
//! a hard bounce and a complaint (each suppressing the address for the tenant), and
//! the next batch to those addresses not calling SES. SNS messages that are not the
//! configured topic's, signed by SNS, with a certificate from SNS's host, are refused
//! and nothing is enqueued.

use herald_tests::herald_local::CloudOptions;
use herald_tests::{TestCloud, eventually, quick_redelivery};
use serde_json::{Value, json};

const SUCCESS: &str = "success@simulator.amazonses.com";
const BOUNCE: &str = "bounce@simulator.amazonses.com";
const COMPLAINT: &str = "complaint@simulator.amazonses.com";
const LISTED: &str = "suppressionlist@simulator.amazonses.com";

fn quick(options: &mut CloudOptions) {
    quick_redelivery(options, 5);
}

/// Every message of the batch: recipient and status.
async fn statuses(test: &TestCloud, token: &str, batch: &str) -> Vec<(String, String)> {
    let page = test
        .get(&format!("/v1/batches/{batch}/messages?limit=100"), token)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let mut found: Vec<(String, String)> = page.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["to"].as_str().unwrap().to_owned(),
                m["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test]
async fn bounces_and_complaints_suppress_and_the_next_batch_does_not_call_ses() {
    let test = TestCloud::start_with("ses-receipts", quick).await;
    let token = test.token("acme", "sender").await;
    let recipients: Vec<Value> = [SUCCESS, BOUNCE, COMPLAINT, LISTED]
        .iter()
        .map(|to| json!({ "to": to }))
        .collect();
    // Each subject names the stack: the simulator's addresses are every test's.
    let first_subject = format!("first {}", test.cloud.stack.name);
    let first = test
        .send_email_batch(&token, &first_subject, "Hello", &recipients)
        .await;
    let expected = pairs(&[
        (BOUNCE, "undelivered"),
        (COMPLAINT, "delivered"),
        (SUCCESS, "delivered"),
        (LISTED, "undelivered"),
    ]);
    eventually("every receipt applied", || async {
        let now = statuses(&test, &token, &first).await;
        (now == expected).then_some(())
    })
    .await;
    let progress = test.wait_for_batch(&token, &first, "completed").await;
    assert_eq!(progress["counts"]["delivered"], 2, "{progress}");
    assert_eq!(progress["counts"]["undelivered"], 2, "{progress}");
    let page = test
        .get(&format!("/v1/batches/{first}/messages?limit=100"), &token)
        .await;
    let bounced = page.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["to"] == BOUNCE)
        .cloned()
        .unwrap();
    assert_eq!(
        bounced["error"],
        json!({ "code": "bounce:Permanent:General", "reason": "smtp; 550 5.1.1 user unknown" })
    );

    // The hard bounces (the simulator's bounce and its suppression list) and the
    // complaint are on the tenant's list; the delivered address is not.
    let listed = test.suppressions(&token).await;
    assert_eq!(
        {
            let mut listed = listed;
            listed.sort();
            listed
        },
        pairs(&[
            (BOUNCE, "bounce"),
            (COMPLAINT, "complaint"),
            (LISTED, "bounce")
        ])
    );

    // The next batch to the same four: SES is called for the delivered address only.
    let second_subject = format!("second {}", test.cloud.stack.name);
    let second = test
        .send_email_batch(&token, &second_subject, "Hello again", &recipients)
        .await;
    let progress = test.wait_for_batch(&token, &second, "completed").await;
    assert_eq!(progress["counts"]["suppressed"], 3, "{progress}");
    let sent = test
        .sent_emails_at("simulator.amazonses.com")
        .await
        .into_iter()
        .filter(|e| e.subject == second_subject)
        .collect::<Vec<_>>();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, [SUCCESS]);
    let metrics = &test.cloud.metrics;
    assert_eq!(metrics.total("webhooks", "WebhooksRejected"), 0.0);
}

/// A notification for `topic`, as SNS would send it (unsigned).
fn notification(topic: &str, message: &str) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": "0b1f5b3c-52a4-5a3e-9a1f-000000000001",
        "TopicArn": topic,
        "Message": message,
        "Timestamp": "2026-11-27T20:00:00.000Z",
        "SignatureVersion": "1",
    })
}

#[tokio::test]
async fn sns_messages_not_signed_by_sns_for_the_topic_are_refused_and_nothing_is_enqueued() {
    let test = TestCloud::start("ses-forged").await;
    test.cloud.pause_events();
    let topic = test.ses_topic();
    let event = json!({
        "eventType": "Delivery",
        "mail": { "messageId": "0100018c-aaaa", "tags": {
            "herald-tenant": ["acme"], "herald-message": ["01KB2F6VNS4H9T3C5QJ8W7XR0M_0"] } },
        "delivery": { "recipients": [SUCCESS] },
    })
    .to_string();
    let good = test.sns_signed(&notification(&topic, &event)).await;
    let with = |field: &str, value: &str| {
        let mut message = good.clone();
        message[field] = json!(value);
        message
    };
    let pem = "/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem";
    let signed_elsewhere = |url: String| {
        let mut message = notification(&topic, &event);
        message["SigningCertURL"] = json!(url);
        message
    };
    let mut cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("not JSON", b"Type=Notification".to_vec(), 400),
        ("not an SNS message", b"{}".to_vec(), 400),
        (
            "wrong signature",
            with("Signature", "dGhpcyBpcyBub3QgaXQ=").to_string().into(),
            403,
        ),
        (
            "altered message",
            with("Message", &event.replace("Delivery", "Bounce"))
                .to_string()
                .into(),
            403,
        ),
        (
            "unknown signature version",
            with("SignatureVersion", "3").to_string().into(),
            403,
        ),
        (
            "oversized body",
            with("Message", &"x".repeat(17 * 1024)).to_string().into(),
            413,
        ),
    ];
    // Signed with the emulator's key, but for another topic or naming a certificate
    // anywhere but SNS's host (and the emulator's, which this stack trusts).
    let other_topic = test
        .sns_signed(&notification(&format!("{topic}-other"), &event))
        .await;
    cases.push(("another topic", other_topic.to_string().into(), 403));
    for url in [
        format!("http://sns.us-east-1.amazonaws.com{pem}"),
        format!("https://sns.us-east-1.amazonaws.com.evil.example{pem}"),
        format!("https://evil.example{pem}"),
        format!("https://sns.us-east-1.amazonaws.com:8443{pem}"),
        format!(
            "{}/_herald/sns/other.pem",
            test.cloud.emulator.replace("127.0.0.1", "localhost")
        ),
    ] {
        let message = test.sns_signed(&signed_elsewhere(url)).await;
        cases.push(("certificate elsewhere", message.to_string().into(), 403));
    }
    let total = cases.len();
    let mut wrong = Vec::new();
    for (name, body, status) in cases {
        let answer = test.post_sns(body).await;
        if answer.status != status {
            wrong.push(format!("{name}: {} {}", answer.status, answer.body));
        }
    }
    assert!(wrong.is_empty(), "answered wrongly:\n{}", wrong.join("\n"));
    assert_eq!(test.queue_depth("EventsQueue").await, 0, "nothing enqueued");
    let metrics = &test.cloud.metrics;
    // The receiver confirmed the events topic's subscription when the stack started
    // (the emulator's SNS, like SNS, delivers nothing before): counted apart.
    eventually("the subscription confirmation counted", || async {
        (metrics.total("webhooks", "SubscriptionsConfirmed") == 1.0).then_some(())
    })
    .await;
    assert_eq!(metrics.total("webhooks", "WebhooksRejected"), total as f64);
    assert_eq!(metrics.total("webhooks", "RejectedTopic"), 1.0);
    assert_eq!(metrics.total("webhooks", "RejectedCertificateUrl"), 5.0);
    assert_eq!(metrics.total("webhooks", "RejectedSignature"), 3.0);
    assert_eq!(metrics.total("webhooks", "RejectedTooLarge"), 1.0);
    assert_eq!(metrics.total("webhooks", "WebhooksAccepted"), 0.0);

    // The same notification, as the emulator's SNS signed it, is taken.
    let answer = test.post_sns(good.to_string().into()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        test.queue_depth("EventsQueue").await,
        1,
        "one event enqueued"
    );
}
