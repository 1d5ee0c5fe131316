//! Texts sent through SNS end `delivered` or `undelivered` by SNS's delivery status
//! logs: the emulator's SNS writes each text's record to its CloudWatch Logs groups,
//! the local cloud hands new records to the events function as the template's
//! subscription filters do (batched, gzip, base64), the function puts them on the
//! events queue, and each is applied to the message found by SNS's message id, or, for
//! a text whose publish answer was lost (`unknown`), by its number. One stack for the
//! whole story: each step only adds texts.

use herald::webhook::sns_logs::log_groups;
use herald_tests::herald_local::CloudOptions;
use herald_tests::herald_local::log_subscription::{filter_log_events, payload};
use herald_tests::herald_local::template::{ACCOUNT_ID, REGION};
use herald_tests::{TestCloud, eventually, history_statuses, quick_redelivery};
use serde_json::{Value, json};

const UNREACHABLE: &str = "+15005550009";

#[tokio::test]
async fn texts_through_sns_end_by_their_delivery_logs_once() {
    let test = TestCloud::start_with("sns-logs", |options: &mut CloudOptions| {
        options.sms_delivery_logs = true;
        // The provider timeout (1 s) loses the held-back answer; an early record comes
        // back in 5 s.
        quick_redelivery(options, 5);
    })
    .await;
    let operator = test.token("herald", "operator").await;
    let created = test
        .post_json(
            "/v1/tenants",
            &operator,
            &json!({ "tenant_id": "snslogs", "plan": "enterprise", "sms_provider": "sns" })
                .to_string(),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    test.allow_magic_numbers("snslogs").await;
    let token = test.token("snslogs", "sender").await;

    // Numbers only this test texts through SNS, in a block of its own per run.
    let block = ulid::Ulid::new().random() % 800;
    let delivered_to = format!("+1415555{:04}", 8000 + block);
    let lost_to = format!("+1415555{:04}", 9000 + block);
    let opted_out_to = format!("+1415555{:04}", 7000 + block);
    let emulator = reqwest::Client::new();
    // The recipient replied STOP to an earlier text: on the account's opt-out list.
    let stopped = emulator
        .post(format!("{}/_herald/sns/opt-outs", test.cloud.emulator))
        .json(&json!({"phone_number": opted_out_to}))
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.status(), 204);
    let fault = json!({"phone_number": lost_to, "seconds": 3, "count": 1});
    let held = emulator
        .post(format!("{}/_herald/sns/late-answers", test.cloud.emulator))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 204);

    let delivered = test.send_sms(&token, &delivered_to, "hello").await;
    let unreachable = test.send_sms(&token, UNREACHABLE, "hello").await;
    let opted_out = test.send_sms(&token, &opted_out_to, "hello").await;
    let lost = test.send_sms(&token, &lost_to, "hello").await;

    let message = test.wait_for_status(&token, &delivered, "delivered").await;
    assert_eq!(
        history_statuses(&message),
        ["accepted", "sending", "sent", "delivered"]
    );
    assert_eq!(message["provider"], "sns");
    assert!(message["error"].is_null(), "{message}");

    let message = test
        .wait_for_status(&token, &unreachable, "undelivered")
        .await;
    assert_eq!(message["error"]["code"], "sns:FAILURE", "{message}");
    assert_eq!(
        message["error"]["reason"],
        "Phone is currently unreachable/unavailable"
    );

    let message = test
        .wait_for_status(&token, &opted_out, "undelivered")
        .await;
    assert_eq!(message["error"]["reason"], "Phone number is opted out");
    let admin = test.token("snslogs", "admin").await;
    let suppressed = test.suppressions(&admin).await;
    assert_eq!(
        suppressed,
        [(opted_out_to.clone(), "opt_out".to_owned())],
        "an opted-out failure suppresses the number"
    );

    // The answer was lost: `unknown`, then resolved by its log, found by its number.
    let message = test.wait_for_status(&token, &lost, "delivered").await;
    assert_eq!(
        history_statuses(&message),
        ["accepted", "sending", "unknown", "delivered"]
    );
    let lost_ref = message["provider_ref"]
        .as_str()
        .expect("the record's id")
        .to_owned();

    // Every record again, twice, as CloudWatch Logs may deliver a batch more than once:
    // nothing moves, each counted as a duplicate.
    let metrics = &test.cloud.metrics;
    let applied = metrics.total("events", "ReceiptsApplied");
    assert_eq!(applied, 4.0, "one receipt per text");
    let mut refs = vec![lost_ref];
    for id in [&delivered, &unreachable, &opted_out] {
        let one = test.get(&format!("/v1/messages/{id}"), &token).await.body;
        refs.push(one["provider_ref"].as_str().unwrap().to_owned());
    }
    let mut ours = Vec::new();
    for group in log_groups(REGION, ACCOUNT_ID) {
        let events = filter_log_events(
            &reqwest::Client::new(),
            &test.cloud.emulator,
            REGION,
            &group,
            0,
        )
        .await
        .unwrap();
        ours.extend(events.into_iter().filter(|e| {
            let record: Value = serde_json::from_str(e["message"].as_str().unwrap()).unwrap();
            refs.iter()
                .any(|r| record["notification"]["messageId"] == r.as_str())
        }));
    }
    assert_eq!(ours.len(), 4, "one record per text: {ours:?}");
    let again = payload(&json!({
        "messageType": "DATA_MESSAGE", "owner": ACCOUNT_ID,
        "logGroup": log_groups(REGION, ACCOUNT_ID)[0], "logStream": "again",
        "subscriptionFilters": ["again"],
        "logEvents": ours.iter().filter(|e| e["message"].as_str().unwrap().contains("SUCCESS")).map(|e| json!({
            "id": e["eventId"], "timestamp": e["timestamp"], "message": e["message"],
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let duplicates_before = metrics.total("events", "ReceiptsDuplicate");
    for _ in 0..2 {
        herald_events::invoke(&test.cloud.events, again.clone())
            .await
            .expect("the batch is queued");
    }
    eventually(
        "both copies of both successes counted as duplicates",
        || async {
            (metrics.total("events", "ReceiptsDuplicate") - duplicates_before == 4.0).then_some(())
        },
    )
    .await;
    assert_eq!(metrics.total("events", "ReceiptsApplied"), 4.0);
    let message = test
        .get(&format!("/v1/messages/{delivered}"), &token)
        .await
        .body;
    assert_eq!(
        history_statuses(&message),
        ["accepted", "sending", "sent", "delivered"]
    );
    let batch = delivered.split('.').next().unwrap();
    let progress = test.get(&format!("/v1/batches/{batch}"), &token).await.body;
    assert_eq!(progress["counts"]["delivered"], 1, "{progress}");
}
