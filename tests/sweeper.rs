//! Intake that died between writing a batch and enqueuing it, with no client retry:
//! the sweeper finishes it.

use herald::Timestamp;
use herald::queue::SendQueue;
use herald::sweeper::{SweepReport, Sweeper};
use herald_tests::{TestCloud, eventually, number};
use serde_json::json;

const LONG_AGO: &str = "2000-01-01T00:00:00Z";
const FAR_FUTURE: &str = "9999-01-01T00:00:00Z";

fn at(rfc3339: &str) -> Timestamp {
    Timestamp::parse(rfc3339).unwrap()
}

#[tokio::test]
async fn the_sweeper_enqueues_batches_their_requests_left_behind() {
    let test = TestCloud::start("sweeper").await;
    let token = test.token("acme", "sender").await;
    let sqs = &test.cloud.clients.sqs;
    let queue_url = test.cloud.stack.reference("SendQueue").unwrap().to_owned();

    // Break the path between the write and the enqueue for two requests.
    test.break_send_queue().await;
    for i in 0..2 {
        let body = json!({ "to": number(i), "body": "late but sent" }).to_string();
        let answer = test.post_json("/v1/messages", &token, &body).await;
        assert_eq!(answer.status, 503, "{:?}", answer.body);
    }
    test.restore_send_queue().await;
    let batches = test.batch_ids().await;
    assert_eq!(batches.len(), 2);
    for batch in &batches {
        let progress = test.get(&format!("/v1/batches/{batch}"), &token).await.body;
        assert_eq!(progress["status"], "accepted");
    }
    // The client gives up on one and cancels the other.
    let cancelled = &batches[1];
    let answer = test
        .post_json(&format!("/v1/batches/{cancelled}/cancel"), &token, "")
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);

    let sweeper = Sweeper::new(
        test.cloud.sender.store.clone(),
        SendQueue::new(sqs.clone(), &queue_url),
    );
    let now = test.cloud.sender.clock.timestamp();
    // Within the grace period (a request may still be finishing) nothing is touched.
    let early = sweeper.sweep(at(LONG_AGO), now).await.unwrap();
    assert_eq!(early, SweepReport::default());

    let report = sweeper.sweep(at(FAR_FUTURE), now).await.unwrap();
    assert_eq!(
        report,
        SweepReport {
            found: 2,
            enqueued: 2,
            chunks: 2,
            failed: 0
        }
    );
    let sent = test.wait_for_batch(&token, &batches[0], "completed").await;
    assert_eq!(sent["counts"]["sent"], 1);
    let cancelled_progress = eventually("the cancelled batch to finish", || async {
        let body = test
            .get(&format!("/v1/batches/{cancelled}"), &token)
            .await
            .body;
        body["finished_at"].is_string().then_some(body)
    })
    .await;
    assert_eq!(cancelled_progress["counts"]["cancelled"], 1);
    assert_eq!(test.ledger().len(), 1, "the cancelled batch sent nothing");

    // Swept batches left the list.
    let again = sweeper.sweep(at(FAR_FUTURE), now).await.unwrap();
    assert_eq!(again.found, 0);
}
