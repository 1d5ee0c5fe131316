//! Issue 11: an idempotent retry after a failure past the enqueue must not count a
//! batch twice, nor give its cancelled sends back twice. The first attempts die at
//! the queue (deleted) and then just after it: the batch record is as large as
//! DynamoDB allows, so marking it enqueued fails, as it would in AWS. The sender
//! finishes the batch in between; the client's retry with the same key then finds
//! every chunk as the first attempt wrote it and the sender counted it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use herald::keys;
use herald::queue::{ChunkEnvelope, SendQueue};
use herald::{BatchId, CorrelationId, TenantId};
use herald_tests::{TestCloud, eventually, number};
use serde_json::{Value, json};

const TENANT: &str = "acme";

fn batch_body(recipients: usize) -> String {
    let recipients: Vec<Value> = (0..recipients)
        .map(|i| json!({ "to": number(i), "variables": { "name": format!("n{i}") } }))
        .collect();
    json!({ "template": "Hi {{name}}", "recipients": recipients }).to_string()
}

struct Batch<'a> {
    test: &'a TestCloud,
    id: BatchId,
}

impl Batch<'_> {
    fn table(&self) -> &str {
        self.test.cloud.stack.reference("HeraldTable").unwrap()
    }

    fn tenant() -> TenantId {
        TenantId::parse(TENANT).unwrap()
    }

    async fn update(&self, key: keys::Key, expression: &str, value: Option<String>) -> bool {
        let mut update = self
            .test
            .cloud
            .clients
            .dynamodb
            .update_item()
            .table_name(self.table())
            .key("pk", AttributeValue::S(key.pk))
            .key("sk", AttributeValue::S(key.sk))
            .update_expression(expression);
        if let Some(value) = value {
            update = update.expression_attribute_values(":v", AttributeValue::S(value));
        }
        update.send().await.is_ok()
    }

    /// Grows the batch record to the largest item DynamoDB takes (found by trying), so
    /// that the next write adding to it fails.
    async fn fill_record(&self) {
        let meta = || keys::batch_meta(&Self::tenant(), self.id);
        let (mut fits, mut too_big) = (0usize, 500_000usize);
        while too_big - fits > 1 {
            let size = (fits + too_big) / 2;
            if self
                .update(meta(), "SET filler = :v", Some("f".repeat(size)))
                .await
            {
                fits = size;
                assert!(self.update(meta(), "REMOVE filler", None).await);
            } else {
                too_big = size;
            }
        }
        assert!(fits > 300_000, "the record took only {fits} bytes");
        assert!(
            self.update(meta(), "SET filler = :v", Some("f".repeat(fits)))
                .await
        );
    }

    async fn empty_record(&self) {
        let meta = keys::batch_meta(&Self::tenant(), self.id);
        assert!(self.update(meta, "REMOVE filler", None).await);
    }

    async fn progress(&self, token: &str) -> Value {
        self.test
            .get(&format!("/v1/batches/{}", self.id), token)
            .await
            .body
    }

    /// The item at `key`, as stored.
    async fn item(&self, key: keys::Key) -> HashMap<String, AttributeValue> {
        self.test
            .cloud
            .clients
            .dynamodb
            .get_item()
            .table_name(self.table())
            .key("pk", AttributeValue::S(key.pk))
            .key("sk", AttributeValue::S(key.sk))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap()
    }

    /// Today's quota counter as stored: signed, so a refund given twice shows as a
    /// negative count (the API reads it as unsigned).
    async fn sends_today(&self) -> String {
        let day = self.test.cloud.sender.clock.timestamp().day();
        let counter = self.item(keys::quota_day(&Self::tenant(), day)).await;
        counter["sends"].as_n().unwrap().clone()
    }

    /// The batch's quota reservation, as stored.
    async fn reservation(&self) -> HashMap<String, AttributeValue> {
        self.item(keys::quota_reservation(&Self::tenant(), self.id))
            .await
    }
}

/// Runs the sender over the queue until `done` holds and the queue is empty.
async fn send_until(test: &TestCloud, token: &str, id: BatchId, done: impl Fn(&Value) -> bool) {
    eventually("the sender to finish the batch", || async {
        test.poll_send_queues().await;
        let progress = test.get(&format!("/v1/batches/{id}"), token).await.body;
        let empty = test.chunks_queued().await == 0;
        (done(&progress) && empty).then_some(())
    })
    .await;
}

/// The first attempt dies at the queue; the second gets its chunks onto the queue
/// and dies marking the batch enqueued. Answers the batch.
async fn accept_failing_after_the_enqueue<'a>(
    test: &'a TestCloud,
    token: &str,
    key: &str,
    body: &str,
    before_retry: impl AsyncFnOnce(&Batch<'a>),
) -> Batch<'a> {
    test.break_send_queue().await;
    let first = test
        .post_json_with_key("/v1/batches", token, key, body)
        .await;
    assert_eq!(first.status, 503, "{:?}", first.body);
    let ids = test.batch_ids().await;
    assert_eq!(ids.len(), 1);
    let batch = Batch {
        test,
        id: ids[0].parse().unwrap(),
    };
    before_retry(&batch).await;
    batch.fill_record().await;
    test.restore_send_queue().await;
    let second = test
        .post_json_with_key("/v1/batches", token, key, body)
        .await;
    assert_eq!(second.status, 503, "{:?}", second.body);
    assert_eq!(
        test.chunks_queued().await,
        1,
        "the chunk went onto the queue before the failure"
    );
    assert!(
        batch.progress(token).await["enqueued_at"].is_null(),
        "not marked enqueued"
    );
    batch.empty_record().await;
    batch
}

#[tokio::test]
async fn a_retry_after_a_failure_past_the_enqueue_counts_the_batch_once() {
    let test = TestCloud::start_with("retry-counts", |o| o.run_queues = false).await;
    let token = test.token(TENANT, "sender").await;
    let body = batch_body(3);
    let batch = accept_failing_after_the_enqueue(&test, &token, "k-1", &body, async |_| {}).await;

    // The sender finishes the batch the failed request queued.
    send_until(&test, &token, batch.id, |p| p["counts"]["sent"] == 3).await;

    // The client retries, as told to after a 503.
    let retried = test
        .post_json_with_key("/v1/batches", &token, "k-1", &body)
        .await;
    assert_eq!(retried.status, 202, "{:?}", retried.body);
    assert_eq!(retried.body["batch_id"], batch.id.to_string());
    // It queued the chunk again; the sender finds it counted and sends nothing.
    send_until(&test, &token, batch.id, |p| p["status"] == "completed").await;

    let progress = batch.progress(&token).await;
    assert_eq!(progress["total"], 3);
    assert_eq!(progress["counts"]["sent"], 3, "{progress}");
    assert_eq!(progress["counts"]["pending"], 0);
    assert_eq!(progress["percent_done"], 100.0);
    let ledger = test.ledger();
    let mut recipients: Vec<_> = ledger.iter().map(|e| e.to.clone()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(
        (ledger.len(), recipients.len()),
        (3, 3),
        "each recipient once"
    );
    let usage = test.get("/v1/usage", &token).await.body;
    assert_eq!(usage["sends"]["used"], 3, "the quota counted once");
    assert_eq!(test.cloud.metrics.total("api", "MessagesAccepted"), 3.0);
}

#[tokio::test]
async fn a_cancelled_batch_is_refunded_once_whatever_is_retried_or_redelivered() {
    let test = TestCloud::start_with("retry-refund", |o| o.run_queues = false).await;
    let token = test.token(TENANT, "sender").await;
    let body = batch_body(3);
    let cancel = async |batch: &Batch<'_>| {
        let path = format!("/v1/batches/{}/cancel", batch.id);
        let answer = batch.test.post_json(&path, &token, "").await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    };
    let batch = accept_failing_after_the_enqueue(&test, &token, "k-2", &body, cancel).await;
    let used = async || test.get("/v1/usage", &token).await.body["sends"]["used"].clone();
    assert_eq!(used().await, 3, "reserved while the batch was accepted");

    send_until(&test, &token, batch.id, |p| p["finished_at"].is_string()).await;
    assert_eq!(used().await, 0, "the cancelled sends were given back");

    let retried = test
        .post_json_with_key("/v1/batches", &token, "k-2", &body)
        .await;
    assert_eq!(retried.status, 202, "{:?}", retried.body);
    send_until(&test, &token, batch.id, |_| true).await;
    assert_eq!(used().await, 0, "given back once, not twice");
    assert_eq!(batch.sends_today().await, "0");

    // Even a chunk that lost its own `counted_at` marker is not refunded again: the
    // reservation records which chunks it gave back.
    let chunk = keys::chunk(&Batch::tenant(), batch.id, 0);
    assert!(batch.update(chunk, "REMOVE counted_at", None).await);
    let queue = SendQueue::new(
        test.cloud.clients.sqs.clone(),
        test.cloud.stack.reference("SendQueue").unwrap(),
    );
    let envelope = ChunkEnvelope::new(
        &Batch::tenant(),
        batch.id,
        0,
        &CorrelationId::from_header(None),
    );
    queue.enqueue(&[envelope]).await.unwrap();
    send_until(&test, &token, batch.id, |_| true).await;

    assert_eq!(used().await, 0);
    assert_eq!(batch.sends_today().await, "0");
    let progress = batch.progress(&token).await;
    assert_eq!(progress["status"], "cancelled");
    assert_eq!(progress["counts"]["cancelled"], 3, "{progress}");
    assert_eq!(progress["counts"]["pending"], 0);
    let reservation = batch.reservation().await;
    assert_eq!(reservation["sends"].as_n().unwrap(), "3");
    assert_eq!(reservation["returned"].as_n().unwrap(), "3");
    assert!(test.ledger().is_empty(), "nothing was sent");
}
