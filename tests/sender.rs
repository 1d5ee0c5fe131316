//! The sender under SQS's at-least-once delivery and a failing provider.
//!
//! Longer than most files: each test drives `herald_sender::handle` by hand against
//! its own stack, and the providers that misbehave on purpose live beside the tests
//! that use them.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use herald_tests::herald_local::sandbox::Faults;
use herald_tests::{TestCloud, eventually};
use tokio::time::Instant;

/// The SQS message id of the record carrying `message_id`'s chunk.
fn record_id_for(event: &SqsEvent, message_id: &str) -> String {
    let batch = message_id.split('.').next().unwrap();
    event
        .records
        .iter()
        .find(|r| r.body.as_deref().unwrap().contains(batch))
        .and_then(|r| r.message_id.clone())
        .unwrap()
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

#[tokio::test]
async fn the_same_queue_message_delivered_twice_sends_once() {
    let test = TestCloud::start_with("dup-delivery", |o| o.run_queues = false).await;
    let token = test.token("acme", "sender").await;
    let id = test.send_sms(&token, "+14155550100", "once only").await;
    let event = test.receive_chunks(1).await;

    let first = herald_sender::handle(&test.cloud.sender, event.clone(), deadline()).await;
    let second = herald_sender::handle(&test.cloud.sender, event.clone(), deadline()).await;
    assert!(first.batch_item_failures.is_empty(), "{first:?}");
    assert!(
        second.batch_item_failures.is_empty(),
        "a redelivery of finished work succeeds: {second:?}"
    );

    // Two copies at once: one claims and sends, the other must not send.
    let mut both = event.clone();
    both.records.extend(event.records.clone());
    herald_sender::handle(&test.cloud.sender, both, deadline()).await;

    assert_eq!(
        test.ledger().len(),
        1,
        "sent exactly once: {:?}",
        test.ledger()
    );
    let message = test.wait_for_status(&token, &id, "sent").await;
    assert_eq!(message["attempts"], 1);
}

/// The sandbox through the real adapter, except that the call waits at a gate the test
/// opens: the copy that holds the claim is held there while the others run.
struct Gated {
    inner: herald::provider::twilio::TwilioProvider,
    calls: std::sync::atomic::AtomicUsize,
    open: tokio::sync::Notify,
}

impl herald::provider::Provider for Gated {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn send<'a>(
        &'a self,
        message: &'a herald::provider::Outbound,
    ) -> futures::future::BoxFuture<'a, herald::provider::SendOutcome> {
        Box::pin(async move {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.open.notified().await;
            self.inner.send(message).await
        })
    }
}

#[tokio::test]
async fn concurrent_copies_of_one_chunk_send_once() {
    use futures::StreamExt;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    let test = TestCloud::start_with("dup-concurrent", |o| o.run_queues = false).await;
    let token = test.token("acme", "sender").await;
    let id = test.send_sms(&token, "+14155550100", "race").await;
    let event = test.receive_chunks(1).await;

    let gated = Arc::new(Gated {
        inner: test.twilio_adapter(),
        calls: Default::default(),
        open: Default::default(),
    });
    let deps = test.sender_with(gated.clone());
    let mut copies: futures::stream::FuturesUnordered<_> = (0..4)
        .map(|_| herald_sender::handle(&deps, event.clone(), deadline()))
        .collect();
    // One copy claims and waits at the provider's gate; the other three finish while
    // it holds the claim.
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(copies.next().await.unwrap());
    }
    // The holder takes its send slot from the shared rate (a write) after its claim,
    // so it may reach the gate just after the others have finished: keep it running.
    let reached = eventually("the claim's holder to reach the provider", || async {
        (gated.calls.load(Ordering::SeqCst) > 0).then_some(())
    });
    tokio::select! {
        _ = copies.next() => panic!("the holder finished with the provider's gate shut"),
        () = reached => {}
    }
    assert_eq!(
        gated.calls.load(Ordering::SeqCst),
        1,
        "one copy reached the provider"
    );
    gated.open.notify_one();
    let holder = copies.next().await.unwrap();

    // A copy that found the claim held elsewhere hands the record back to the queue
    // rather than claiming success it cannot vouch for.
    for other in &others {
        assert_eq!(other.batch_item_failures.len(), 1, "{other:?}");
    }
    assert!(holder.batch_item_failures.is_empty(), "{holder:?}");
    assert_eq!(gated.calls.load(Ordering::SeqCst), 1);
    assert_eq!(test.ledger().len(), 1, "{:?}", test.ledger());
    let message = test.wait_for_status(&token, &id, "sent").await;
    assert_eq!(message["attempts"], 1, "claimed once");
}

#[tokio::test]
async fn a_failing_record_is_reported_alone_and_lands_in_the_dlq_after_the_redrive_limit() {
    let failing = "+14155550199";
    let test = TestCloud::start_with("dlq", |o| {
        o.run_queues = false;
        herald_tests::quick_redelivery(o, 5);
    })
    .await;
    test.cloud.sandbox.set_faults(Faults {
        error_rate: 1.0,
        error_status: Some(503),
        only_to: vec![failing.into()],
        ..Faults::default()
    });
    let token = test.token("acme", "sender").await;
    let good = test.send_sms(&token, "+14155550100", "fine").await;
    let bad = test.send_sms(&token, failing, "doomed").await;

    // One invocation with both records: only the failing one is reported.
    let event = test.receive_chunks(2).await;
    let bad_record = record_id_for(&event, &bad);
    let response = herald_sender::handle(&test.cloud.sender, event, deadline()).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec![bad_record]);
    // The runner deletes what succeeded; here the test plays the runner, so it deletes
    // the good record itself.
    test.wait_for_status(&token, &good, "sent").await;

    // Now the event source takes over: redelivered after each visibility timeout
    // until maxReceiveCount, then moved to the DLQ by SQS.
    eventually("the failing chunk in the DLQ", || async {
        test.poll_send_queues().await;
        (test.queue_depth("SendDLQ").await == 1).then_some(())
    })
    .await;
    assert_eq!(test.chunks_queued().await, 0, "nothing left behind");

    let ledger = test.ledger();
    assert_eq!(
        ledger.len(),
        1,
        "only the good message was sent: {ledger:?}"
    );
    assert_eq!(ledger[0].to, "+14155550100");
    let bad_message = test.get(&format!("/v1/messages/{bad}"), &token).await;
    assert_eq!(
        bad_message.body["status"], "sending",
        "released, never sent, not settled"
    );
    assert!(bad_message.body["attempts"].as_u64().unwrap() >= 5);
}

/// `Retry-After: 18446744073709551615` from the provider: the wait is longer than the
/// invocation has, so the claim is given back for the chunk's redelivery, and nothing
/// overflows or panics on the way (a panic would be caught, but would leave the claim
/// held, so the next delivery could not try again).
#[tokio::test]
async fn a_retry_after_of_any_size_gives_the_claim_back_without_a_panic() {
    let test = TestCloud::start_with("huge-retry-after", |o| o.run_queues = false).await;
    test.cloud.sandbox.set_faults(Faults {
        throttle_rate: 1.0,
        retry_after_secs: u64::MAX,
        ..Faults::default()
    });
    let token = test.token("acme", "sender").await;
    let id = test.send_sms(&token, "+14155550100", "later").await;
    let event = test.receive_chunks(1).await;
    let record = event.records[0].message_id.clone().unwrap();

    for delivery in 1..=2 {
        let response = herald_sender::handle(&test.cloud.sender, event.clone(), deadline()).await;
        let handed_back: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(handed_back, vec![record.clone()], "handed back, not lost");
        assert_eq!(
            test.cloud.sandbox.injected().throttles,
            delivery,
            "one call per delivery, then no wait that long"
        );
        let message = test.get(&format!("/v1/messages/{id}"), &token).await.body;
        assert_eq!(
            message["status"], "sending",
            "released, not settled: {message}"
        );
        assert_eq!(
            message["attempts"], delivery,
            "claimed again: it was released"
        );
    }
    assert!(test.ledger().is_empty());
}

/// A provider (not the Twilio adapter, which clamps the header) asking for the longest
/// wait a `Duration` holds, counting how often it is called.
#[derive(Default)]
struct WaitsForever(std::sync::atomic::AtomicUsize);

impl herald::provider::Provider for WaitsForever {
    fn name(&self) -> &'static str {
        "waits-forever"
    }

    fn send<'a>(
        &'a self,
        _: &'a herald::provider::Outbound,
    ) -> futures::future::BoxFuture<'a, herald::provider::SendOutcome> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async {
            herald::provider::SendOutcome::Transient {
                reason: "come back at the end of time".into(),
                retry_after: Some(Duration::MAX),
            }
        })
    }
}

#[tokio::test]
async fn the_longest_wait_a_provider_can_ask_for_does_not_panic_the_sender() {
    use std::sync::Arc;

    let test = TestCloud::start_with("max-retry-after", |o| o.run_queues = false).await;
    let token = test.token("acme", "sender").await;
    let id = test.send_sms(&token, "+14155550100", "later").await;
    let event = test.receive_chunks(1).await;

    let provider = Arc::new(WaitsForever::default());
    let deps = test.sender_with(provider.clone());
    for delivery in 1..=2 {
        let response = herald_sender::handle(&deps, event.clone(), deadline()).await;
        assert_eq!(response.batch_item_failures.len(), 1, "{response:?}");
        assert_eq!(
            provider.0.load(std::sync::atomic::Ordering::SeqCst),
            delivery,
            "asked once per delivery, then not waited for"
        );
        let message = test.get(&format!("/v1/messages/{id}"), &token).await.body;
        assert_eq!(
            message["status"], "sending",
            "released, not settled: {message}"
        );
        assert_eq!(
            message["attempts"], delivery,
            "claimed again: it was released"
        );
    }
}

#[tokio::test]
async fn a_number_the_provider_rejects_fails_for_good_without_retries() {
    let test = TestCloud::start("rejected").await;
    let token = test.token("acme", "sender").await;
    test.allow_magic_numbers("acme").await;
    let id = test
        .send_sms(
            &token,
            herald_tests::herald_local::sandbox::INVALID_NUMBER,
            "nope",
        )
        .await;
    let message = test.wait_for_status(&token, &id, "failed").await;
    assert_eq!(message["error"]["code"], "21211");
    assert_eq!(message["attempts"], 1);
    assert!(test.ledger().is_empty());
    eventually("the queue to drain", || async {
        (test.queue_depth("SendQueue").await == 0).then_some(())
    })
    .await;
    assert_eq!(test.queue_depth("SendDLQ").await, 0);
}

#[tokio::test]
async fn records_that_can_never_succeed_go_straight_to_the_dlq_with_their_reason() {
    use herald::queue::ChunkEnvelope;
    use herald::{BatchId, CorrelationId, TenantId};

    let test = TestCloud::start_with("poison", |o| o.run_queues = false).await;
    let token = test.token("acme", "sender").await;
    let real = test.send_sms(&token, "+14155550100", "acme's own").await;
    let acme_batch: BatchId = real.split('.').next().unwrap().parse().unwrap();

    let envelope = |tenant: &str, batch: BatchId| {
        serde_json::to_string(&ChunkEnvelope::new(
            &TenantId::parse(tenant).unwrap(),
            batch,
            0,
            &CorrelationId::new(),
        ))
        .unwrap()
    };
    let poison = [
        "this is not an envelope".to_owned(),
        envelope("acme", BatchId::new()), // a batch that does not exist
        envelope("globex", acme_batch),   // another tenant's batch
    ];
    let queue = test.cloud.stack.reference("SendQueue").unwrap();
    for body in &poison {
        test.cloud
            .clients
            .sqs
            .send_message()
            .queue_url(queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    let event = test.receive_chunks(4).await;
    let response = herald_sender::handle(&test.cloud.sender, event, deadline()).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "poison is parked, not retried: {response:?}"
    );

    assert_eq!(test.queue_depth("SendDLQ").await, 3);
    assert_eq!(
        test.cloud.metrics.total("sender", "PoisonParked"),
        3.0,
        "each parked record is counted"
    );
    let dlq = test.cloud.stack.reference("SendDLQ").unwrap();
    let parked = test
        .cloud
        .clients
        .sqs
        .receive_message()
        .queue_url(dlq)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let mut reasons: Vec<String> = parked
        .iter()
        .map(|m| {
            let reason = m.message_attributes().unwrap()["herald_reason"]
                .string_value()
                .unwrap();
            format!("{} <- {}", reason, m.body().unwrap())
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("malformed") && r.contains("this is not an envelope")),
        "{reasons:?}"
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("does not exist"))
            .count(),
        2,
        "{reasons:?}"
    );

    // The real record was sent, once; the poisoned ones burned no provider call.
    assert_eq!(test.ledger().len(), 1);
    test.wait_for_status(&token, &real, "sent").await;
}

/// A provider that panics for one number and accepts every other: the seam where real
/// variety exists, used here to make one record's processing blow up.
struct PanicsFor(&'static str);

impl herald::provider::Provider for PanicsFor {
    fn name(&self) -> &'static str {
        "panics-for"
    }

    fn send<'a>(
        &'a self,
        message: &'a herald::provider::Outbound,
    ) -> futures::future::BoxFuture<'a, herald::provider::SendOutcome> {
        Box::pin(async move {
            assert_ne!(message.to(), self.0, "provider blew up");
            herald::provider::SendOutcome::Accepted {
                provider_ref: format!("ref-{}", message.message_id()),
            }
        })
    }
}

#[tokio::test]
async fn a_panic_while_processing_one_record_fails_that_record_only() {
    use std::sync::Arc;

    let test = TestCloud::start_with("panic", |o| o.run_queues = false).await;
    let token = test.token("acme", "sender").await;
    let fine = test.send_sms(&token, "+14155550100", "fine").await;
    let doomed = test.send_sms(&token, "+14155550199", "boom").await;
    let event = test.receive_chunks(2).await;
    let doomed_record = record_id_for(&event, &doomed);

    let deps = test.sender_with(Arc::new(PanicsFor("+14155550199")));
    let response = herald_sender::handle(&deps, event, deadline()).await;

    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec![doomed_record]);
    let sent = test.wait_for_status(&token, &fine, "sent").await;
    assert_eq!(sent["provider"], "panics-for");
    // The panic struck after the claim: the message is held, not settled, so a
    // redelivery after the lease would record it as unknown rather than send it blind.
    let held = test.get(&format!("/v1/messages/{doomed}"), &token).await;
    assert_eq!(held.body["status"], "sending");
}

#[tokio::test]
async fn a_sender_that_died_after_claiming_is_never_resent_but_recorded_as_unknown() {
    use herald::Timestamp;
    use herald::domain::Lease;
    use herald::store::Store;
    use herald::{MessageId, TenantId};

    let test = TestCloud::start_with("crashed-claim", |o| o.run_queues = false).await;
    let token = test.token("acme", "sender").await;
    let id = test.send_sms(&token, "+14155550100", "maybe sent").await;
    let event = test.receive_chunks(1).await;

    // Another sender claimed the message and then vanished, maybe after sending.
    let table = test.cloud.stack.reference("HeraldTable").unwrap();
    let store = Store::new(test.cloud.clients.dynamodb.clone(), table);
    let tenant = TenantId::parse("acme").unwrap();
    let message: MessageId = id.parse().unwrap();
    let chunk = store
        .load_chunk(&tenant, message.batch(), 0)
        .await
        .unwrap()
        .unwrap();
    let to = chunk.recipients[0].to.clone();
    let now = test.cloud.sender.clock.epoch_seconds();
    let claim = |until_epoch: u64| Lease {
        now: test.cloud.sender.clock.timestamp(),
        until: Timestamp::from_epoch_millis(until_epoch * 1000),
    };
    store
        .claim(&tenant, message, &chunk, &to, &claim(now + 60))
        .await
        .unwrap();

    // While its lease runs, a redelivery leaves the message alone and hands the
    // record back for later.
    let response = herald_sender::handle(&test.cloud.sender, event.clone(), deadline()).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert!(test.ledger().is_empty());
    assert_eq!(
        test.get(&format!("/v1/messages/{id}"), &token).await.body["status"],
        "sending"
    );

    // Once the lease has run out, the holder is presumed dead: the message becomes
    // unknown, and is not sent again.
    let key = herald::keys::message(&tenant, message);
    test.cloud
        .clients
        .dynamodb
        .update_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(key.pk))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(key.sk))
        .update_expression("SET lease_until = :past")
        .expression_attribute_values(
            ":past",
            aws_sdk_dynamodb::types::AttributeValue::N((now - 1).to_string()),
        )
        .send()
        .await
        .unwrap();
    let response = herald_sender::handle(&test.cloud.sender, event, deadline()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let message = test.wait_for_status(&token, &id, "unknown").await;
    assert!(
        message["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("stopped"),
        "{message}"
    );
    assert!(test.ledger().is_empty(), "never re-sent blind");

    let batch = herald::keys::batch_meta(&tenant, id.split('.').next().unwrap().parse().unwrap());
    let meta = test
        .cloud
        .clients
        .dynamodb
        .get_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(batch.pk))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(batch.sk))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(meta["unknown_count"].as_n().unwrap(), "1");
    assert_eq!(meta["sent_count"].as_n().unwrap(), "0");
}

/// DynamoDB can apply a write and answer too late for the SDK's attempt timeout (3 s):
/// the SDK sends it again, and the second attempt meets the first one's write. The
/// claim and the settle each know their own write when it comes back to them, so the
/// recipient is texted once and ends `sent` in one delivery (not `unknown` a lease
/// later, as a claim mistaken for another sender's would), counted once.
#[tokio::test]
async fn a_claim_and_a_settle_whose_answers_came_late_are_known_as_the_senders_own() {
    let test = TestCloud::start_with("late-answers", |o| o.run_queues = false).await;
    answer_the_claim_and_the_settle_late(&test, "UpdateItem").await;
    let token = test.token("acme", "sender").await;
    let id = test.send_sms(&token, "+14155550100", "late but once").await;
    let event = test.receive_chunks(1).await;

    let response = herald_sender::handle(&test.cloud.sender, event, deadline()).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "finished in one delivery: {response:?}"
    );
    assert_eq!(test.ledger().len(), 1, "{:?}", test.ledger());
    let message = test.wait_for_status(&token, &id, "sent").await;
    assert_eq!(message["attempts"], 1, "{message}");
    assert_eq!(test.cloud.metrics.total("sender", "Sent"), 1.0);
    assert_eq!(test.cloud.metrics.total("sender", "Unknown"), 0.0);
}

/// A pass the deadline cuts short queues its chunk again at once, behind whatever else
/// is queued, instead of failing the record and leaving the chunk for the visibility
/// timeout (three minutes): the next pass sends the rest, each recipient once.
#[tokio::test]
async fn a_chunk_the_deadline_cuts_short_goes_on_at_once() {
    let test = TestCloud::start_with("cut-short", |o| {
        o.run_queues = false;
        o.parameters
            .insert("ProviderRatePerSecond".into(), "10".into());
    })
    .await;
    let token = test.token("acme", "sender").await;
    let recipients: Vec<serde_json::Value> = (0..40)
        .map(|i| serde_json::json!({ "to": herald_tests::number(i) }))
        .collect();
    let batch = test.send_batch(&token, "in two passes", &recipients).await;
    let event = test.receive_chunks(1).await;

    // Claims stop once a provider call and its settle no longer fit: three seconds
    // after the start, at 10 a second, fewer than 30 of the 40 are sent.
    let config = &test.cloud.sender.config;
    let short = Instant::now()
        + config.provider_timeout
        + herald_sender::SETTLE_MARGIN
        + Duration::from_secs(3);
    let first = herald_sender::handle(&test.cloud.sender, event, short).await;
    assert!(first.batch_item_failures.is_empty(), "done with: {first:?}");
    let sent_first = test.ledger().len();
    assert!(
        (1..40).contains(&sent_first),
        "the deadline cut the pass: {sent_first} sent"
    );

    let again = test.receive_chunks(1).await;
    let second = herald_sender::handle(&test.cloud.sender, again, deadline()).await;
    assert!(second.batch_item_failures.is_empty(), "{second:?}");
    let progress = test.wait_for_batch(&token, &batch, "completed").await;
    assert_eq!(progress["counts"]["sent"], 40, "{progress}");
    assert_eq!(test.ledger().len(), 40, "each recipient once");
}

/// Makes the next claim and the next settle sent as `operation` on the test's table
/// answer 3.5 s late (after the SDK's 3 s attempt timeout), each once.
async fn answer_the_claim_and_the_settle_late(test: &TestCloud, operation: &str) {
    use herald_tests::herald_local::emulator::{self, LateAnswers};

    let table = test.cloud.stack.reference("HeraldTable").unwrap();
    for contains in ["ADD attempts", "settled_by = :token"] {
        let late = LateAnswers {
            table,
            operation,
            contains,
            seconds: 3.5,
            count: 1,
        };
        emulator::answer_late(&test.cloud.emulator, &late)
            .await
            .unwrap();
    }
}

/// What `caller` made of `operation` in `counts`: calls, and requests (the calls and
/// the SDK's retries of them).
fn tally(
    counts: &herald_tests::herald_local::requests::RequestCounts,
    caller: &str,
    operation: &str,
) -> herald_tests::herald_local::requests::Tally {
    counts
        .0
        .iter()
        .filter(|(kind, _)| kind.caller == caller && kind.operation == operation)
        .fold(Default::default(), |sum, (_, tally)| {
            herald_tests::herald_local::requests::Tally {
                calls: sum.calls + tally.calls,
                requests: sum.requests + tally.requests,
                waiting: sum.waiting + tally.waiting,
            }
        })
}

/// The instance's claims, and its settles, go in groups (issue 18): 40 recipients
/// take far fewer than the 80 writes of one claim and one settle each, and each is
/// still texted once and counted once.
#[tokio::test]
async fn a_chunks_claims_and_settles_go_in_groups_and_each_recipient_once() {
    let counter = herald_tests::herald_local::requests::RequestCounter::default();
    let test = TestCloud::start_with("grouped-writes", |o| {
        o.run_queues = false;
        o.count_requests = Some(counter.clone());
    })
    .await;
    let token = test.token("acme", "sender").await;
    let recipients: Vec<serde_json::Value> = (0..40)
        .map(|i| serde_json::json!({ "to": herald_tests::number(i) }))
        .collect();
    let batch = test.send_batch(&token, "grouped", &recipients).await;
    let event = test.receive_chunks(1).await;

    let before = counter.snapshot();
    let response = herald_sender::handle(&test.cloud.sender, event, deadline()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let counts = counter.snapshot().since(&before);

    let progress = test.wait_for_batch(&token, &batch, "completed").await;
    assert_eq!(progress["counts"]["sent"], 40, "{progress}");
    let ledger = test.ledger();
    let texted: std::collections::HashSet<_> = ledger.iter().map(|e| e.to.clone()).collect();
    assert_eq!(
        (ledger.len(), texted.len()),
        (40, 40),
        "each recipient once"
    );
    assert_eq!(test.cloud.metrics.total("sender", "Sent"), 40.0);
    // The first 16 claims (the parallelism) are one transaction; the chunk's count is
    // one more. Every other write of the sender is an `UpdateItem`: the claims and
    // settles that went alone, and the shared rate's blocks.
    let grouped = tally(&counts, "sender", "TransactWriteItems").calls;
    let alone = tally(&counts, "sender", "UpdateItem").calls;
    assert!(grouped >= 2, "{counts:?}");
    assert!(
        grouped + alone < 40,
        "{grouped} grouped, {alone} alone: {counts:?}"
    );
}

/// As `a_claim_and_a_settle_whose_answers_came_late_are_known_as_the_senders_own`, for
/// grouped writes: the SDK sends a transaction again whose first attempt applied, and
/// each claim and settle in it meets its own earlier write (the emulator, like moto,
/// does not answer a repeated `ClientRequestToken` as the first success, which
/// DynamoDB would: the harder case).
#[tokio::test]
async fn grouped_claims_and_settles_whose_answers_came_late_are_the_senders_own() {
    let counter = herald_tests::herald_local::requests::RequestCounter::default();
    let test = TestCloud::start_with("late-grouped", |o| {
        o.run_queues = false;
        o.count_requests = Some(counter.clone());
        // Every settle waits for the others (they end as soon as the last is handed
        // over), so the three are one transaction however the provider's answers fall.
        o.env_overrides
            .insert("HERALD_SETTLE_LINGER_MS".into(), "1000".into());
    })
    .await;
    answer_the_claim_and_the_settle_late(&test, "TransactWriteItems").await;
    let token = test.token("acme", "sender").await;
    let recipients: Vec<serde_json::Value> = (0..3)
        .map(|i| serde_json::json!({ "to": herald_tests::number(i) }))
        .collect();
    let batch = test
        .send_batch(&token, "late, grouped, once", &recipients)
        .await;
    let event = test.receive_chunks(1).await;

    let response = herald_sender::handle(&test.cloud.sender, event, deadline()).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "finished in one delivery: {response:?}"
    );
    let counts = counter.snapshot();
    // Both late answers were met: two transactions were sent twice.
    let transactions = tally(&counts, "sender", "TransactWriteItems");
    assert_eq!(transactions.requests - transactions.calls, 2, "{counts:?}");
    assert_eq!(test.ledger().len(), 3, "{:?}", test.ledger());
    let progress = test.wait_for_batch(&token, &batch, "completed").await;
    assert_eq!(progress["counts"]["sent"], 3, "{progress}");
    for i in 0..3 {
        let message = test
            .get(&format!("/v1/messages/{batch}.{i}"), &token)
            .await
            .body;
        assert_eq!(message["status"], "sent", "{message}");
        assert_eq!(message["attempts"], 1, "{message}");
    }
    assert_eq!(test.cloud.metrics.total("sender", "Sent"), 3.0);
    assert_eq!(test.cloud.metrics.total("sender", "Unknown"), 0.0);
}
