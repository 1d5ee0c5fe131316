//! The webhook receiver refuses what is not a provider's and stores nothing for it:
//! wrong, missing or misapplied signatures are 403, bodies over the limit 413, what is
//! not a form 415, repeated or empty fields 400; the events queue stays empty and the
//! table unchanged. A rotated auth token is taken, and so is the previous one.

use herald_tests::webhooks::{encode, form};
use herald_tests::{TestCloud, number};

const FORM: &str = "application/x-www-form-urlencoded";

/// A status callback for `message`'s provider reference `sid`.
fn callback(sid: &str, status: &str) -> Vec<(String, String)> {
    form(&[
        ("AccountSid", "AC0000"),
        ("MessageSid", sid),
        ("MessageStatus", status),
        ("To", "+14155552001"),
    ])
}

/// A refused webhook: what it is, its path, body, content type, signature header and
/// the status it must get.
type ForgedCase<'a> = (&'a str, &'a str, Vec<u8>, &'a str, Option<String>, u16);

#[tokio::test]
async fn forged_or_malformed_callbacks_are_refused_and_nothing_is_stored() {
    let test = TestCloud::start("hooks-bad").await;
    let token = test.token("acme", "sender").await;
    let id = test.send_sms(&token, &number(1), "hello").await;
    test.wait_for_status(&token, &id, "sent").await;
    let sid = test.ledger()[0].sid.clone();
    let path = format!("/webhooks/twilio/status?tenant=acme&message={id}");
    let other_path = path.replace(".0", ".1");
    let delivered = callback(&sid, "delivered");
    let signed = test.twilio_signature(&test.webhook_url(&path), &delivered);
    let items_before = test.table_items().await;

    let big = form(&[("MessageSid", &sid), ("Body", &"x".repeat(17 * 1024))]);
    let repeated = format!(
        "{}&MessageStatus=undelivered",
        String::from_utf8(encode(&delivered)).unwrap()
    );
    let empty = callback("", "delivered");
    let cases: Vec<ForgedCase> = vec![
        (
            "wrong signature",
            &path,
            encode(&delivered),
            FORM,
            Some("dGhpcyBpcyBub3QgaXQ=".into()),
            403,
        ),
        (
            "missing signature",
            &path,
            encode(&delivered),
            FORM,
            None,
            403,
        ),
        (
            "signed over other params",
            &path,
            encode(&delivered),
            FORM,
            Some(test.twilio_signature(&test.webhook_url(&path), &callback(&sid, "undelivered"))),
            403,
        ),
        (
            "message id altered in the URL",
            &other_path,
            encode(&delivered),
            FORM,
            Some(signed.clone()),
            403,
        ),
        (
            "signed with another token",
            &path,
            encode(&delivered),
            FORM,
            Some(herald::webhook::twilio::signature(
                "not-the-token",
                &test.webhook_url(&path),
                &delivered,
            )),
            403,
        ),
        (
            "body over the limit",
            &path,
            encode(&big),
            FORM,
            Some(test.twilio_signature(&test.webhook_url(&path), &big)),
            413,
        ),
        (
            "not a form",
            &path,
            b"{\"MessageSid\":\"x\"}".to_vec(),
            "application/json",
            Some(signed.clone()),
            415,
        ),
        (
            "a repeated field",
            &path,
            repeated.into_bytes(),
            FORM,
            Some(signed.clone()),
            400,
        ),
        (
            "an empty message sid, signed",
            &path,
            encode(&empty),
            FORM,
            Some(test.twilio_signature(&test.webhook_url(&path), &empty)),
            400,
        ),
        (
            "an unsigned inbound text",
            "/webhooks/twilio/inbound",
            encode(&delivered),
            FORM,
            None,
            403,
        ),
    ];
    let total = cases.len();
    let mut wrong = Vec::new();
    for (name, path, body, content_type, signature, status) in cases {
        let answer = test
            .post_webhook(path, body, content_type, signature.as_deref())
            .await;
        if answer.status != status || answer.body["status"] != status {
            wrong.push(format!("{name}: {} {}", answer.status, answer.body));
        }
    }
    assert!(wrong.is_empty(), "answered wrongly:\n{}", wrong.join("\n"));
    assert_eq!(test.queue_depth("EventsQueue").await, 0, "nothing enqueued");
    assert_eq!(test.table_items().await, items_before, "nothing stored");
    let metrics = &test.cloud.metrics;
    assert_eq!(metrics.total("webhooks", "WebhooksRejected"), total as f64);
    assert_eq!(metrics.total("webhooks", "RejectedSignature"), 4.0);
    assert_eq!(metrics.total("webhooks", "RejectedUnsigned"), 2.0);
    assert_eq!(metrics.total("webhooks", "RejectedTooLarge"), 1.0);
    assert_eq!(metrics.total("webhooks", "WebhooksAccepted"), 0.0);
    let message = test.get(&format!("/v1/messages/{id}"), &token).await.body;
    assert_eq!(message["status"], "sent");

    // The same callback, signed as Twilio signs it, is taken and applied.
    let answer = test.post_signed_webhook(&path, &delivered).await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    test.wait_for_status(&token, &id, "delivered").await;
}

#[tokio::test]
async fn a_rotated_auth_token_is_taken_and_the_previous_one_too() {
    let test = TestCloud::start("hooks-rotation").await;
    let token = test.token("acme", "sender").await;
    let id = test.send_sms(&token, &number(1), "hello").await;
    test.wait_for_status(&token, &id, "sent").await;
    let sid = test.ledger()[0].sid.clone();
    let path = format!("/webhooks/twilio/status?tenant=acme&message={id}");
    let url = test.webhook_url(&path);
    let old = test.cloud.credentials.auth_token.clone();
    let sent = callback(&sid, "sent");
    let answer = test.post_signed_webhook(&path, &sent).await;
    assert_eq!(answer.status, 204, "the current token: {}", answer.body);

    // Rotate: the secret holds the new token and the old one as previous.
    let credentials = &test.cloud.credentials;
    let rotated = serde_json::json!({
        "account_sid": credentials.account_sid,
        "auth_token": "the-new-token",
        "previous_auth_token": old,
        "from": credentials.from,
    });
    test.cloud
        .clients
        .secrets
        .put_secret_value()
        .secret_id(test.cloud.stack.reference("ProviderSecret").unwrap())
        .secret_string(rotated.to_string())
        .send()
        .await
        .expect("the secret is rotated");
    let delivered = callback(&sid, "delivered");
    let by_new = herald::webhook::twilio::signature("the-new-token", &url, &delivered);
    let answer = test
        .post_webhook(&path, encode(&delivered), FORM, Some(&by_new))
        .await;
    assert_eq!(
        answer.status, 204,
        "the new token (read again on a mismatch): {}",
        answer.body
    );
    test.wait_for_status(&token, &id, "delivered").await;
    let undelivered = callback(&sid, "undelivered");
    let by_old = herald::webhook::twilio::signature(&old, &url, &undelivered);
    let answer = test
        .post_webhook(&path, encode(&undelivered), FORM, Some(&by_old))
        .await;
    assert_eq!(answer.status, 204, "the previous token: {}", answer.body);
    let by_neither = herald::webhook::twilio::signature("another", &url, &undelivered);
    let answer = test
        .post_webhook(&path, encode(&undelivered), FORM, Some(&by_neither))
        .await;
    assert_eq!(answer.status, 403);
    // The late `undelivered` is stale (as the first `sent` was): it cannot take
    // `delivered` back.
    let metrics = &test.cloud.metrics;
    herald_tests::eventually("the late receipt read", || async {
        (metrics.total("events", "ReceiptsStale") == 2.0).then_some(())
    })
    .await;
    let message = test.get(&format!("/v1/messages/{id}"), &token).await.body;
    assert_eq!(message["status"], "delivered");
}
