//! Email through Amazon SES (the emulator's, API v2): a batch reaches every recipient
//! exactly once with their own subject and text, each message records SES as its
//! provider, and email and SMS of one tenant each go through their own provider.

use std::collections::HashMap;

use herald_local::LOCAL_EMAIL_FROM;
use herald_tests::{TestCloud, number};
use serde_json::{Value, json};

/// Every page of a batch's listing.
async fn listing(test: &TestCloud, token: &str, batch: &str) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut next = Some(format!("/v1/batches/{batch}/messages?limit=100"));
    while let Some(path) = next {
        let page = test.get(&path, token).await;
        assert_eq!(page.status, 200, "{path}: {:?}", page.body);
        messages.extend(page.body["messages"].as_array().unwrap().iter().cloned());
        next = page.body["next_url"].as_str().map(str::to_owned);
    }
    messages
}

#[tokio::test]
async fn an_email_batch_reaches_every_recipient_once_with_their_own_subject_and_text() {
    let test = TestCloud::start("email-batch").await;
    let token = test.token("acme", "sender").await;
    let recipients: Vec<Value> = (0..150)
        .map(|i| {
            json!({
                "to": test.email(i),
                "variables": { "name": format!("P{i}"), "code": format!("{i:04}") },
            })
        })
        .collect();
    let id = test
        .send_email_batch(
            &token,
            "Your code, {{name}}",
            "Hi {{name}},\nyour code is {{code}}.",
            &recipients,
        )
        .await;

    let progress = test.wait_for_batch(&token, &id, "completed").await;
    assert_eq!(progress["channel"], "email");
    assert_eq!(progress["total"], 150);
    assert_eq!(
        progress["counts"],
        json!({ "pending": 0, "sent": 150, "failed": 0, "unknown": 0, "cancelled": 0,
                "delivered": 0, "undelivered": 0, "suppressed": 0 })
    );
    assert_eq!(progress["percent_done"], 100.0);
    assert_eq!(test.cloud.metrics.total("sender", "Sent"), 150.0);

    // SES holds exactly one email per recipient, each with that recipient's text.
    let sent = test.sent_emails().await;
    assert_eq!(sent.len(), 150, "one SendEmail per recipient");
    let per_recipient = test.emails_per_recipient().await;
    assert_eq!(per_recipient.len(), 150, "every recipient reached");
    assert!(
        per_recipient.values().all(|&n| n == 1),
        "no recipient emailed twice"
    );
    let by_recipient: HashMap<&str, _> = sent
        .iter()
        .map(|e| {
            assert_eq!(e.to.len(), 1, "one recipient per email: {e:?}");
            assert!(e.cc.is_empty() && e.bcc.is_empty(), "{e:?}");
            (e.to[0].as_str(), e)
        })
        .collect();
    for i in 0..150 {
        let email = by_recipient[test.email(i).as_str()];
        assert_eq!(email.source, LOCAL_EMAIL_FROM);
        assert_eq!(email.subject, format!("Your code, P{i}"));
        assert_eq!(email.body, format!("Hi P{i},\nyour code is {i:04}."));
    }
    assert!(
        test.ledger().is_empty(),
        "no email went to the SMS provider"
    );

    // Every message shows its address and SES's id for it.
    let listed = listing(&test, &token, &id).await;
    assert_eq!(listed.len(), 150);
    for (i, message) in listed.iter().enumerate() {
        assert_eq!(message["to"], test.email(i), "{message}");
        assert_eq!(message["status"], "sent", "{message}");
        let reference = message["provider_ref"].as_str().unwrap();
        assert_eq!(by_recipient[test.email(i).as_str()].message_id, reference);
    }
    let one = test.get(&format!("/v1/messages/{id}.7"), &token).await.body;
    assert_eq!(one["channel"], "email", "{one}");
    assert_eq!(one["to"], test.email(7), "{one}");
    assert_eq!(one["provider"], "ses", "{one}");
    assert_eq!(one["attempts"], 1, "{one}");
}

#[tokio::test]
async fn email_goes_through_ses_and_sms_through_the_tenants_sms_provider() {
    let test = TestCloud::start("email-and-sms").await;
    let token = test.token("acme", "sender").await;

    let email = test
        .send_email(&token, &test.email(0), "Hello", "By email")
        .await;
    let text = test.send_sms(&token, &number(0), "By text").await;
    let email = test.wait_for_status(&token, &email, "sent").await;
    let text = test.wait_for_status(&token, &text, "sent").await;

    assert_eq!(email["channel"], "email");
    assert_eq!(email["provider"], "ses");
    assert_eq!(text["channel"], "sms");
    assert_eq!(text["provider"], "twilio");
    let sent = test.sent_emails().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, [test.email(0)]);
    assert_eq!(
        (sent[0].subject.as_str(), sent[0].body.as_str()),
        ("Hello", "By email")
    );
    assert_eq!(sent[0].message_id, email["provider_ref"].as_str().unwrap());
    let ledger = test.ledger();
    assert_eq!(ledger.len(), 1, "only the text reached the SMS provider");
    assert_eq!(ledger[0].to, number(0));
    assert_eq!(ledger[0].body, "By text");
}
