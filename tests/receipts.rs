//! Receipts through the whole local cloud: the sender asks the sandbox for status
//! callbacks, the sandbox calls the gateway's webhook receiver signed as Twilio does,
//! the receiver queues the verified event, and the events function moves the message
//! (once, forward only) and counts it in its batch.

use herald_tests::herald_local::CloudOptions;
use herald_tests::herald_local::requests::RequestCounter;
use herald_tests::herald_local::sandbox::{Faults, UNDELIVERED_NUMBER};
use herald_tests::{TestCloud, eventually, history_statuses, number, quick_redelivery};
use serde_json::json;

/// Receipts on, redelivery (and the events' retry of an early receipt) in 5 seconds.
fn receipts(options: &mut CloudOptions) {
    options.receipts = true;
    quick_redelivery(options, 5);
}

#[tokio::test]
async fn a_text_moves_on_to_delivered_by_its_receipt_once() {
    let test = TestCloud::start_with("rcpt-delivered", receipts).await;
    let token = test.token("acme", "sender").await;
    let id = test.send_sms(&token, &number(1), "hello").await;
    let message = test.wait_for_status(&token, &id, "delivered").await;
    assert_eq!(
        history_statuses(&message),
        ["accepted", "sending", "sent", "delivered"]
    );
    assert_eq!(message["provider_ref"], test.ledger()[0].sid.as_str());
    assert!(message["error"].is_null(), "{message}");
    // Both callbacks (sent, delivered) were answered, and counted for what they did.
    eventually("both callbacks answered", || async {
        (test.cloud.sandbox.callback_log().delivered == 2).then_some(())
    })
    .await;
    let metrics = &test.cloud.metrics;
    eventually("both events applied or found stale", || async {
        let done =
            metrics.total("events", "ReceiptsApplied") + metrics.total("events", "ReceiptsStale");
        (done == 2.0).then_some(())
    })
    .await;
    assert_eq!(metrics.total("events", "ReceiptsApplied"), 1.0);
    assert_eq!(
        metrics.total("events", "ReceiptsStale"),
        1.0,
        "`sent` after `sent`"
    );
    assert_eq!(metrics.total("webhooks", "WebhooksAccepted"), 2.0);
    assert_eq!(metrics.total("webhooks", "WebhooksRejected"), 0.0);
    let batch = id.split('.').next().unwrap();
    let progress = test.get(&format!("/v1/batches/{batch}"), &token).await.body;
    assert_eq!(progress["counts"]["delivered"], 1, "{progress}");
    assert_eq!(progress["counts"]["sent"], 0, "{progress}");
    assert_eq!(progress["counts"]["pending"], 0, "{progress}");
}

/// An SQS batch of receipts reads its messages in one request, not one each, and
/// applies each receipt as before: the `delivered` ones move their messages, the
/// repeated `sent` ones change nothing.
#[tokio::test]
async fn a_batch_of_receipts_reads_its_messages_in_one_request() {
    const TEXTS: usize = 5;
    let counter = RequestCounter::default();
    // The queues' own redelivery: the receipts are handed over by hand, after the
    // batch completed, so none comes early.
    let test = TestCloud::start_with("rcpt-grouped", |o| {
        o.receipts = true;
        o.count_requests = Some(counter.clone());
    })
    .await;
    let token = test.token("acme", "sender").await;
    test.cloud.pause_events();
    let recipients: Vec<_> = (0..TEXTS).map(|i| json!({ "to": number(i) })).collect();
    let batch = test.send_batch(&token, "grouped", &recipients).await;
    test.wait_for_batch(&token, &batch, "completed").await;
    // Each text's `sent` and `delivered`: one SQS batch (the trigger's size is 10).
    let event = test.receive_events(2 * TEXTS).await;

    let before = counter.snapshot();
    let response = herald_events::handle(&test.cloud.events, event).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let counts = counter.snapshot().since(&before);
    let requests = |operation: &str| {
        counts
            .0
            .iter()
            .filter(|(kind, _)| kind.caller == "events" && kind.operation == operation)
            .map(|(_, tally)| tally.requests)
            .sum::<u64>()
    };
    assert_eq!(requests("BatchGetItem"), 1, "{counts:?}");
    assert_eq!(requests("GetItem"), 0, "{counts:?}");
    // A transaction per `delivered` (message, batch count, the event's record), a
    // conditional put per stale `sent` (its record).
    assert_eq!(requests("TransactWriteItems"), TEXTS as u64, "{counts:?}");
    assert_eq!(requests("PutItem"), TEXTS as u64, "{counts:?}");

    let progress = test.get(&format!("/v1/batches/{batch}"), &token).await.body;
    assert_eq!(progress["counts"]["delivered"], TEXTS, "{progress}");
    for i in 0..TEXTS {
        let message = test
            .get(&format!("/v1/messages/{batch}.{i}"), &token)
            .await
            .body;
        // (A loaded machine may re-claim a chunk: `sending` can come twice.)
        let history = history_statuses(&message);
        assert!(
            history.ends_with(&["sent".into(), "delivered".into()]),
            "{history:?}"
        );
        assert_eq!(history.iter().filter(|s| *s == "delivered").count(), 1);
    }
    let metrics = &test.cloud.metrics;
    assert_eq!(metrics.total("events", "ReceiptsApplied"), TEXTS as f64);
    assert_eq!(metrics.total("events", "ReceiptsStale"), TEXTS as f64);
}

#[tokio::test]
async fn the_undelivered_magic_number_ends_undelivered_with_the_carriers_code() {
    let test = TestCloud::start_with("rcpt-undelivered", receipts).await;
    let token = test.token("acme", "sender").await;
    test.allow_magic_numbers("acme").await;
    let id = test.send_sms(&token, UNDELIVERED_NUMBER, "hello").await;
    let message = test.wait_for_status(&token, &id, "undelivered").await;
    assert_eq!(message["error"]["code"], "30006", "{message}");
    assert!(message["error"]["reason"].is_string(), "{message}");
    assert_eq!(
        history_statuses(&message).last().map(String::as_str),
        Some("undelivered")
    );
}

/// Duplicates and reordering: each status callback three times, in any order. The
/// history shows each status once and the status ends where the latest receipt says.
#[tokio::test]
async fn duplicated_and_reordered_callbacks_change_a_message_once() {
    let test = TestCloud::start_with("rcpt-dupes", receipts).await;
    test.cloud.sandbox.set_faults(Faults {
        callback_copies: 3,
        callback_reorder: true,
        callback_delay_ms: 200,
        ..Faults::default()
    });
    let token = test.token("acme", "sender").await;
    let id = test.send_sms(&token, &number(2), "hello").await;
    test.wait_for_status(&token, &id, "delivered").await;
    eventually("six callbacks answered", || async {
        (test.cloud.sandbox.callback_log().delivered == 6).then_some(())
    })
    .await;
    let metrics = &test.cloud.metrics;
    eventually("every event counted", || async {
        let seen: f64 = ["ReceiptsApplied", "ReceiptsStale", "ReceiptsDuplicate"]
            .iter()
            .map(|m| metrics.total("events", m))
            .sum();
        (seen == 6.0).then_some(())
    })
    .await;
    let message = test.get(&format!("/v1/messages/{id}"), &token).await.body;
    assert_eq!(
        history_statuses(&message),
        ["accepted", "sending", "sent", "delivered"]
    );
    assert_eq!(metrics.total("events", "ReceiptsApplied"), 1.0);
    // The first copy of each status is new (applied or stale), the others duplicates.
    assert_eq!(metrics.total("events", "ReceiptsDuplicate"), 4.0);
}

/// The provider takes the text but its answer is lost (it comes after the sender's
/// timeout): the message is `unknown`, and its callbacks, which come before the
/// sender has even settled it, wait on the queue until they can resolve it.
#[tokio::test]
async fn an_unknown_message_is_resolved_by_receipts_that_came_before_it_was_settled() {
    let test = TestCloud::start_with("rcpt-unknown", receipts).await;
    // Taken, callbacks sent at once, the answer only after the sender gave up (1 s).
    test.cloud.sandbox.set_faults(Faults {
        timeout_rate: 1.0,
        timeout_ms: 3_000,
        ..Faults::default()
    });
    let token = test.token("acme", "sender").await;
    let id = test.send_sms(&token, &number(3), "hello").await;
    let message = test.wait_for_status(&token, &id, "delivered").await;
    let history = history_statuses(&message);
    assert!(history.contains(&"unknown".to_owned()), "{history:?}");
    assert_eq!(history.iter().filter(|s| *s == "delivered").count(), 1);
    assert_eq!(
        message["provider_ref"],
        test.ledger()[0].sid.as_str(),
        "learnt from the receipt"
    );
    let metrics = &test.cloud.metrics;
    assert!(
        metrics.total("events", "ReceiptsEarly") >= 1.0,
        "the receipts came first"
    );
    eventually("both receipts read", || async {
        let read =
            metrics.total("events", "ReceiptsApplied") + metrics.total("events", "ReceiptsStale");
        (read == 2.0).then_some(())
    })
    .await;
    let batch = id.split('.').next().unwrap();
    let counts = test.get(&format!("/v1/batches/{batch}"), &token).await.body["counts"].clone();
    assert_eq!(
        (counts["delivered"].as_u64(), counts["unknown"].as_u64()),
        (Some(1), Some(0)),
        "{counts}"
    );
    assert_eq!(test.queue_depth("EventsDLQ").await, 0);
}

/// A receipt for a message Herald never sent (its batch does not exist) is kept as an
/// orphan and counted, once however often it comes.
#[tokio::test]
async fn a_receipt_for_no_message_of_ours_is_kept_once() {
    let test = TestCloud::start_with("rcpt-orphan", receipts).await;
    let nobody = format!("{}.4", herald::BatchId::new());
    let path = format!("/webhooks/twilio/status?tenant=acme&message={nobody}");
    let form = herald_tests::webhooks::form(&[
        ("AccountSid", "AC0"),
        ("MessageSid", "SMorphan"),
        ("MessageStatus", "delivered"),
    ]);
    for _ in 0..2 {
        let answer = test.post_signed_webhook(&path, &form).await;
        assert_eq!(answer.status, 204, "{}", answer.body);
    }
    let metrics = &test.cloud.metrics;
    eventually("both copies read", || async {
        let read = metrics.total("events", "EventsOrphaned")
            + metrics.total("events", "ReceiptsDuplicate");
        (read == 2.0).then_some(())
    })
    .await;
    assert_eq!(metrics.total("events", "EventsOrphaned"), 1.0);
    let today = herald::clock::system().timestamp().day();
    let orphans = test.cloud.sender.store.orphans(today).await.unwrap();
    let ours: Vec<_> = orphans
        .iter()
        .filter(|o| o.message.as_deref() == Some(nobody.as_str()))
        .collect();
    assert_eq!(ours.len(), 1, "{orphans:?}");
    assert_eq!(ours[0].tenant.as_deref(), Some("acme"));
}
