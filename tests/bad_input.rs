//! Bad input gets a specific 4xx with problem+json naming the problem, and changes
//! nothing: no item written, nothing enqueued. Each test is a table of named cases; a run
//! reports every case that answered wrongly, not only the first.

use herald_tests::{TestCloud, bad_request::Case};
use serde_json::{Value, json};

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let test = TestCloud::start("bad-input").await;
    let token = test.token("acme", "sender").await;
    let json = Some("application/json");
    let message = |name, content_type, body: &[u8], status, field| {
        Case::raw(
            name,
            "/v1/messages",
            content_type,
            body.to_vec(),
            status,
            field,
        )
    };
    let cases = vec![
        message("bad JSON", json, b"{\"to\": ", 400, None),
        message("not an object", json, b"[1, 2]", 400, None),
        message(
            "trailing data",
            json,
            br#"{"to": "+14155550100", "body": "x"} {}"#,
            400,
            None,
        ),
        message(
            "unknown field",
            json,
            br#"{"to": "+14155550100", "body": "x", "priority": 1}"#,
            400,
            Some("/priority"),
        ),
        message(
            "missing field",
            json,
            br#"{"to": "+14155550100"}"#,
            400,
            None,
        ),
        message(
            "unknown channel",
            json,
            br#"{"channel": "fax", "to": "+14155550100", "body": "x"}"#,
            400,
            Some("/channel"),
        ),
        message(
            "not E.164",
            json,
            br#"{"to": "00441234", "body": "x"}"#,
            400,
            Some("/to"),
        ),
        message(
            "too short",
            json,
            br#"{"to": "+1", "body": "x"}"#,
            400,
            Some("/to"),
        ),
        message(
            "spaces",
            json,
            br#"{"to": "+44 7911 123456", "body": "x"}"#,
            400,
            Some("/to"),
        ),
        message(
            "invalid for its country",
            json,
            br#"{"to": "+11234567890", "body": "x"}"#,
            400,
            Some("/to"),
        ),
        message(
            "empty text",
            json,
            br#"{"to": "+14155550100", "body": ""}"#,
            400,
            Some("/body"),
        ),
        message(
            "control characters",
            json,
            b"{\"to\": \"+14155550100\", \"body\": \"a\\u0000b\"}",
            400,
            Some("/body"),
        ),
        message(
            "too long",
            json,
            format!(
                r#"{{"to": "+14155550100", "body": "{}"}}"#,
                "x".repeat(1601)
            )
            .as_bytes(),
            400,
            Some("/body"),
        ),
        message(
            "invalid UTF-8",
            json,
            b"{\"to\": \"+14155550100\", \"body\": \"\xff\xfe\"}",
            400,
            None,
        ),
        message("empty body", json, b"", 400, None),
        message("whitespace body", json, b"  \n", 400, None),
        message(
            "wrong content type",
            Some("text/plain"),
            br#"{"to": "+14155550100", "body": "x"}"#,
            415,
            Some("content-type"),
        ),
        message(
            "no content type",
            None,
            br#"{"to": "+14155550100", "body": "x"}"#,
            415,
            Some("content-type"),
        ),
        message(
            "over the size limit",
            json,
            format!(
                r#"{{"to": "+14155550100", "body": "{}"}}"#,
                "x".repeat(5 * 1024 * 1024)
            )
            .as_bytes(),
            413,
            None,
        ),
    ];
    test.refuses_all(&token, cases).await;

    // Every failing field is named at once, not only the first.
    let both = test
        .post_json("/v1/messages", &token, r#"{"to": "0044", "body": ""}"#)
        .await;
    let fields: Vec<&str> = both.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields.len(), 2, "{fields:?}");
    assert!(fields.contains(&"/to") && fields.contains(&"/body"));

    let malformed_id = test.get("/v1/messages/not-an-id", &token).await;
    assert_eq!(malformed_id.status, 400);
    assert_eq!(malformed_id.body["errors"][0]["field"], "id");

    assert_eq!(test.table_items().await, 0, "nothing was written");
    assert_eq!(test.chunks_queued().await, 0, "nothing was enqueued");
    assert!(test.ledger().is_empty());
}

/// The email rules: an address for an email, a number for an SMS, a subject exactly
/// when the channel is email and within its limits. Each refusal names its field, and
/// nothing is written, enqueued or sent.
#[tokio::test]
async fn bad_email_requests_are_refused_and_change_nothing() {
    let test = TestCloud::start("bad-email").await;
    let token = test.token("acme", "sender").await;
    let to = test.email(0);
    let batch = |subject: Value, recipients: Vec<Value>| {
        json!({
            "channel": "email",
            "subject": subject,
            "template": "Hi {{name}}",
            "recipients": recipients,
        })
    };
    let good = |i: usize| json!({ "to": test.email(i), "variables": { "name": "Ann" } });
    let mut phone_in_the_middle: Vec<Value> = (0..5).map(good).collect();
    phone_in_the_middle[3] = json!({ "to": "+14155550100", "variables": { "name": "Bo" } });
    let mut same_mailbox: Vec<Value> = (0..2).map(good).collect();
    same_mailbox[1]["to"] = json!(test.email(0).to_uppercase());

    // Each names exactly one field: the one that is wrong.
    let cases: Vec<Case> = [
        (
            "email with a space",
            "/v1/messages",
            json!({ "channel": "email", "to": "jane doe@example.com", "subject": "s", "body": "b" }),
            "/to",
        ),
        (
            "email with a control character",
            "/v1/messages",
            json!({ "channel": "email", "to": "jane\u{7}@example.com", "subject": "s", "body": "b" }),
            "/to",
        ),
        (
            "email over 254 characters",
            "/v1/messages",
            json!({ "channel": "email", "to": format!("{}@example.com", "j".repeat(250)), "subject": "s", "body": "b" }),
            "/to",
        ),
        (
            "email without a domain",
            "/v1/messages",
            json!({ "channel": "email", "to": "jane@localhost", "subject": "s", "body": "b" }),
            "/to",
        ),
        (
            "phone number on the email channel",
            "/v1/messages",
            json!({ "channel": "email", "to": "+14155550100", "subject": "s", "body": "b" }),
            "/to",
        ),
        (
            "email on the sms channel",
            "/v1/messages",
            json!({ "channel": "sms", "to": to, "body": "b" }),
            "/to",
        ),
        (
            "email with the default channel",
            "/v1/messages",
            json!({ "to": to, "body": "b" }),
            "/to",
        ),
        (
            "missing subject",
            "/v1/messages",
            json!({ "channel": "email", "to": to, "body": "b" }),
            "/subject",
        ),
        (
            "subject on sms",
            "/v1/messages",
            json!({ "channel": "sms", "to": "+14155550100", "subject": "s", "body": "b" }),
            "/subject",
        ),
        (
            "oversize subject",
            "/v1/messages",
            json!({ "channel": "email", "to": to, "subject": "s".repeat(257), "body": "b" }),
            "/subject",
        ),
        (
            "empty subject",
            "/v1/messages",
            json!({ "channel": "email", "to": to, "subject": "", "body": "b" }),
            "/subject",
        ),
        (
            "line break in the subject",
            "/v1/messages",
            json!({ "channel": "email", "to": to, "subject": "a\r\nBcc: x@example.com", "body": "b" }),
            "/subject",
        ),
        (
            "email body over 10,000 characters",
            "/v1/messages",
            json!({ "channel": "email", "to": to, "subject": "s", "body": "x".repeat(10_001) }),
            "/body",
        ),
        (
            "sms body over 1600 characters",
            "/v1/messages",
            json!({ "channel": "sms", "to": "+14155550100", "body": "x".repeat(1601) }),
            "/body",
        ),
        (
            "unknown field on an email",
            "/v1/messages",
            json!({ "channel": "email", "to": to, "subject": "s", "body": "b", "html": "<p>" }),
            "/html",
        ),
        (
            "phone number on an email batch",
            "/v1/batches",
            batch(json!("Hello {{name}}"), phone_in_the_middle),
            "/recipients/3/to",
        ),
        (
            "the same mailbox twice, in other case",
            "/v1/batches",
            batch(json!("Hello {{name}}"), same_mailbox),
            "/recipients/1/to",
        ),
        (
            "email on an sms batch",
            "/v1/batches",
            json!({ "template": "Hi", "recipients": [{ "to": "+14155550100" }, { "to": to }] }),
            "/recipients/1/to",
        ),
        (
            "email batch without a subject",
            "/v1/batches",
            json!({ "channel": "email", "template": "Hi", "recipients": [{ "to": to }] }),
            "/subject",
        ),
        (
            "sms batch with a subject",
            "/v1/batches",
            json!({ "subject": "s", "template": "Hi", "recipients": [{ "to": "+14155550100" }] }),
            "/subject",
        ),
        (
            "oversize batch subject",
            "/v1/batches",
            batch(json!("s".repeat(257)), vec![good(0)]),
            "/subject",
        ),
        (
            "subject placeholder left open",
            "/v1/batches",
            batch(json!("Hello {{name"), vec![good(0)]),
            "/subject",
        ),
        (
            "subject variable missing",
            "/v1/batches",
            batch(json!("Hello {{nickname}}"), vec![good(0)]),
            "/recipients/0/variables",
        ),
        (
            "a variable makes the subject too long",
            "/v1/batches",
            batch(
                json!("Hello {{name}}"),
                vec![json!({ "to": test.email(0), "variables": { "name": "n".repeat(300) } })],
            ),
            "/recipients/0",
        ),
        (
            "a variable puts a line break in the subject",
            "/v1/batches",
            batch(
                json!("Hello {{name}}"),
                vec![
                    json!({ "to": test.email(0), "variables": { "name": "Ann\nBcc: x@example.com" } }),
                ],
            ),
            "/recipients/0",
        ),
    ]
    .into_iter()
    .map(|(name, route, body, field)| Case::only_field(name, route, &body, field))
    .collect();
    test.refuses_all(&token, cases).await;

    assert_eq!(test.table_items().await, 0, "nothing was written");
    assert_eq!(test.chunks_queued().await, 0, "nothing was enqueued");
    assert!(test.ledger().is_empty());
    assert!(test.sent_emails().await.is_empty(), "no email was sent");
}
