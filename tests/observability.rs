//! What the logs of a run show, read from the lines the functions wrote (the JSON layer
//! of `herald::telemetry`, captured for this process): one request followed by its
//! correlation id from the API through the sender's provider calls and back through
//! the webhook receiver and the events function applying its receipts, and a whole
//! run's lines (a batch with receipts, an undelivered text, an email, a bad request, a
//! machine client's token) holding no recipient address and no secret. Receipts are
//! also counted per outcome (`Delivered`, `Undelivered`) for the dashboard. And the
//! X-Ray trace header a chunk was queued with (`AWSTraceHeader`) stays with it when the
//! sender parks it and the redriver moves it back, and the lines about it name the
//! request's correlation id.
//!
//! The tests share the one capture (the subscriber is per process), so each looks only
//! for what it made: its own correlation id, its own addresses and secrets.

use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_sqs::types::{MessageSystemAttributeName, MessageSystemAttributeNameForSends};
use herald_tests::herald_local::CloudOptions;
use herald_tests::herald_local::sandbox::UNDELIVERED_NUMBER;
use herald_tests::{TestCloud, eventually, number, quick_redelivery};
use serde_json::{Value, json};

/// Every line the process logged since the first test asked.
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static LINES: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LINES
        .get_or_init(|| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            herald::telemetry::capture(move || Sink(sink.clone()));
            lines
        })
        .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn lines(capture: &Mutex<Vec<u8>>) -> Vec<Value> {
    String::from_utf8(capture.lock().unwrap().clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
        .collect()
}

/// Receipts on, redelivery of an early receipt in 5 seconds (the shortest visibility in
/// which an invocation still has time to claim, call and settle).
fn receipts(options: &mut CloudOptions) {
    options.receipts = true;
    quick_redelivery(options, 5);
}

/// `POST path` with `body`, the caller's token and correlation id; the answer's status
/// and body.
async fn post(
    test: &TestCloud,
    path: &str,
    token: &str,
    correlation: &str,
    body: &Value,
) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(format!("{}{path}", test.cloud.gateway_url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("idempotency-key", ulid::Ulid::new().to_string())
        .header("x-correlation-id", correlation)
        .body(body.to_string())
        .send()
        .await
        .expect("gateway answers");
    let echoed = answer.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(echoed, correlation, "the answer echoes the caller's id");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn one_request_is_followed_by_its_correlation_id_to_the_provider_and_back_through_its_receipts()
 {
    let capture = captured();
    let test = TestCloud::start_with("obs-follow", receipts).await;
    let token = test.token("acme", "sender").await;
    let correlation = format!("obs-{}", herald_tests::herald_local::random_hex(12));
    let recipients: Vec<Value> = (0..3)
        .map(|i| json!({ "to": number(100 + i), "variables": { "name": format!("P{i}") } }))
        .collect();
    let body = json!({ "template": "Hi {{name}}", "recipients": recipients });
    let (status, accepted) = post(&test, "/v1/batches", &token, &correlation, &body).await;
    assert_eq!(status, 202, "{accepted}");
    let batch = accepted["batch_id"].as_str().unwrap().to_owned();
    test.wait_for_batch(&token, &batch, "completed").await;
    // Each text's delivery receipt applied (its `sent` callback changes nothing: the
    // sender recorded it sent already).
    let delivered = |lines: &[Value]| {
        lines
            .iter()
            .filter(|l| {
                l["correlation_id"] == correlation.as_str()
                    && l["message"] == "receipt applied"
                    && l["to"] == "delivered"
            })
            .count()
    };
    eventually("every delivery receipt's line", || async {
        (delivered(&lines(&capture)) == 3).then_some(())
    })
    .await;

    // Counted per outcome for the dashboard: three delivered, none undelivered.
    let metrics = &test.cloud.metrics;
    eventually("the delivered count", || async {
        (metrics.total("events", "Delivered") == 3.0).then_some(())
    })
    .await;
    assert_eq!(metrics.total("events", "Undelivered"), 0.0);

    let ours: Vec<Value> = lines(&capture)
        .into_iter()
        .filter(|l| l["correlation_id"] == correlation.as_str())
        .collect();
    let said = |message: &str| -> Vec<&Value> {
        ours.iter().filter(|l| l["message"] == message).collect()
    };
    // The API took the batch,
    let taken = said("batch accepted");
    assert_eq!(taken.len(), 1, "{ours:#?}");
    assert_eq!(taken[0]["batch_id"], batch.as_str());
    assert_eq!(taken[0]["tenant_id"], "acme");
    // the sender called the provider for each text and settled it sent,
    let settled = said("message settled");
    assert_eq!(settled.len(), 3, "{ours:#?}");
    for line in &settled {
        assert_eq!(line["status"], "sent");
        assert_eq!(line["batch_id"], batch.as_str());
        assert!(line["message_id"].as_str().unwrap().starts_with(&batch));
    }
    // and the events function applied each text's delivery receipt.
    let receipts = said("receipt applied");
    assert_eq!(receipts.len(), 3, "{ours:#?}");
    assert!(receipts.iter().all(|l| l["tenant_id"] == "acme"));
    let mut messages: Vec<&str> = receipts
        .iter()
        .map(|l| l["message_id"].as_str().unwrap())
        .collect();
    messages.sort_unstable();
    let mut sent: Vec<&str> = settled
        .iter()
        .map(|l| l["message_id"].as_str().unwrap())
        .collect();
    sent.sort_unstable();
    assert_eq!(
        messages, sent,
        "the receipts are for the texts the request sent"
    );
}

#[tokio::test]
async fn a_whole_runs_lines_hold_no_recipient_address_and_no_secret() {
    let capture = captured();
    let test = TestCloud::start_with("obs-secrets", receipts).await;
    let admin = test.token("beta", "admin").await;
    let sender = test.token("beta", "sender").await;
    test.allow_magic_numbers("beta").await;
    let (client_id, client_secret) = test.machine_client(&admin, &["messages:send"]).await;
    let client_token = test
        .client_token(&client_id, &client_secret, None)
        .await
        .expect("a machine client's token");
    let texts: Vec<String> = (300..303)
        .map(number)
        .chain([UNDELIVERED_NUMBER.to_owned()])
        .collect();
    let emails = [
        "success@simulator.amazonses.com",
        "bounce@simulator.amazonses.com",
    ];
    // A batch of texts with receipts, one undelivered; a text from the machine client;
    // emails, one bouncing (and suppressed by its receipt); a refused address.
    let recipients: Vec<Value> = texts.iter().map(|to| json!({ "to": to })).collect();
    let batch = test.send_batch(&sender, "Hello", &recipients).await;
    let by_client = test.send_sms(&client_token, &number(310), "hi").await;
    let subject = format!("obs {}", test.cloud.stack.name);
    let email_recipients: Vec<Value> = emails.iter().map(|to| json!({ "to": to })).collect();
    let email_batch = test
        .send_email_batch(&sender, &subject, "Hello", &email_recipients)
        .await;
    let refused = "+1415555999";
    let answer = test
        .post_json(
            "/v1/messages",
            &sender,
            &json!({ "to": refused, "body": "x" }).to_string(),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);

    test.wait_for_batch(&sender, &batch, "completed").await;
    test.wait_for_status(&sender, &by_client, "delivered").await;
    test.wait_for_batch(&sender, &email_batch, "completed")
        .await;
    // The bounce's receipt reached the events function and suppressed the address.
    eventually("the bounce suppressed", || async {
        let page = test.get("/v1/suppressions", &sender).await;
        (page.body.to_string().contains(emails[1])).then_some(())
    })
    .await;

    let mut addresses: Vec<String> = texts.clone();
    addresses.extend([number(310), refused.to_owned()]);
    // A number also without its `+`.
    let digits: Vec<String> = addresses
        .iter()
        .map(|a| a.trim_start_matches('+').to_owned())
        .collect();
    addresses.extend(digits);
    addresses.extend(emails.iter().map(|e| e.to_string()));
    let secrets = [
        test.cloud.credentials.auth_token.clone(),
        client_secret,
        client_token,
        admin,
        sender,
    ];
    // Counted per outcome: the undelivered text and the bounce; three texts, the
    // client's text and the simulator's success delivered.
    let metrics = &test.cloud.metrics;
    eventually("the receipts counted per outcome", || async {
        let counted = (
            metrics.total("events", "Delivered"),
            metrics.total("events", "Undelivered"),
        );
        (counted == (5.0, 2.0)).then_some(())
    })
    .await;

    // The paths that handle addresses were logged: masked, the bad request refused,
    // both undelivered receipts (the text's and the bounce's) applied.
    let ours: Vec<Value> = lines(&capture)
        .into_iter()
        .filter(|l| l["tenant_id"] == "beta")
        .collect();
    let count = |message: &str, field: &str, value: &str| {
        ours.iter()
            .filter(|l| l["message"] == message && l[field].as_str() == Some(value))
            .count()
    };
    assert_eq!(
        count("message accepted", "to", "+14*******10"),
        1,
        "{ours:#?}"
    );
    assert_eq!(
        count("receipt applied", "to", "undelivered"),
        2,
        "{ours:#?}"
    );
    assert!(
        ours.iter()
            .any(|l| l["message"] == "answered" && l["status"] == 400)
    );
    let text = String::from_utf8(capture.lock().unwrap().clone()).unwrap();
    for needle in addresses.iter().chain(&secrets) {
        let found: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(needle.as_str()))
            .collect();
        assert!(
            found.is_empty(),
            "{needle} is in the logs:\n{}",
            found.join("\n")
        );
    }
}

/// The X-Ray trace a message was queued with stays with it when the sender parks it
/// and when the redriver moves it back: the request that queued it stays its trace.
#[tokio::test]
async fn a_parked_and_redriven_chunk_keeps_the_trace_it_was_queued_with() {
    let capture = captured();
    // No queue runner: the test hands the record to the sender itself.
    let test = TestCloud::start_with("obs-trace", |o| o.run_queues = false).await;
    let sqs = &test.cloud.clients.sqs;
    let trace = "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1";
    let correlation = format!("obs-{}", herald_tests::herald_local::random_hex(12));
    let correlation_attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value(&correlation)
        .build()
        .unwrap();
    sqs.send_message()
        .queue_url(test.cloud.stack.reference("SendQueue").unwrap())
        .message_body("not an envelope")
        .message_attributes("correlation_id", correlation_attribute)
        .message_system_attributes(
            MessageSystemAttributeNameForSends::AwsTraceHeader,
            herald::queue::trace_attribute(trace).unwrap(),
        )
        .send()
        .await
        .unwrap();
    let event = test.receive_chunks(1).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let answer = herald_sender::handle(&test.cloud.sender, event, deadline).await;
    assert!(answer.batch_item_failures.is_empty(), "parked, not failed");
    assert_eq!(test.queue_depth("SendDLQ").await, 1);

    let redriven = test.cloud.redrive().await;
    assert_eq!(redriven.moved, 1, "{redriven:?}");
    let back = sqs
        .receive_message()
        .queue_url(test.cloud.stack.reference("SendQueue").unwrap())
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body(), Some("not an envelope"));
    let kept = back[0]
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader));
    assert_eq!(kept.map(String::as_str), Some(trace));
    // The sender's line parking it and the redriver's moving it back name the request
    // it came from (its attribute: its body names nothing).
    let said: Vec<Value> = lines(&capture)
        .into_iter()
        .filter(|l| l["correlation_id"] == correlation.as_str())
        .map(|l| l["message"].clone())
        .collect();
    assert_eq!(
        said,
        [
            "record can never succeed; parked in the DLQ",
            "dead letter moved back"
        ]
    );
}
