//! The provider's rate shared by every sender instance through DynamoDB (issue 14):
//! blocks of send slots taken with one conditional write each, never overlapping, so
//! instances together never pass the provider's rate; and a block an instance took and
//! never used (it crashed) is lost, never handed out again. A sender number's own rate
//! holds the same way, and a slow number holds up no other tenant.

use herald::keys::{self, Platform};
use herald::store::{BlockAsk, BlockTake, Hold};
use herald_tests::herald_local::sandbox::Faults;
use herald_tests::{TestCloud, number};
use serde_json::{Value, json};

/// The provider's rate in these tests, messages per second.
const RATE: u32 = 25;

#[tokio::test]
async fn concurrent_instances_share_the_rate_and_the_provider_never_answers_429() {
    let test = TestCloud::start_with("provider-rate", |o| {
        o.parameters
            .insert("ProviderRatePerSecond".into(), RATE.to_string());
        o.parameters
            .insert("SenderMaxConcurrency".into(), "3".into());
    })
    .await;
    // The provider enforces the same rate: a token bucket of one second.
    test.cloud.sandbox.set_faults(Faults {
        rate_limit_per_second: f64::from(RATE),
        ..Faults::default()
    });
    let token = test.token("acme", "sender").await;
    // Three chunks, one per instance (the window is the instance count).
    let recipients: Vec<Value> = (0..250).map(|i| json!({ "to": number(i) })).collect();
    let batch = test.send_batch(&token, "shared", &recipients).await;

    let progress = test.wait_for_batch(&token, &batch, "completed").await;
    assert_eq!(progress["counts"]["sent"], 250);
    let ledger = test.ledger();
    assert_eq!(ledger.len(), 250, "every recipient once");
    assert_eq!(
        test.cloud.sandbox.injected().rate_limited,
        0,
        "the provider never refused a message for its rate"
    );
    assert_eq!(test.cloud.send_invocations_timed_out(), 0);
}

/// A number paced at 2 texts a second, its tenant's three batches (one chunk each,
/// so three instances) sent before another tenant's text: the number's rate holds
/// across the instances (the sandbox refuses nothing), and the text on the platform's
/// sender waits for one 2-second slice of the number's chunks, not for them: it is
/// sent before the number has sent one batch's worth (8 s of its texts; 5 in a run).
/// Without slices it waits until an invocation ends: 17 s, about 34 of its texts.
#[tokio::test]
async fn a_senders_own_rate_holds_across_instances_and_holds_up_no_one() {
    const OWN_NUMBER: &str = "+14155550123";
    const PER_BATCH: usize = 16;
    let test = TestCloud::start_with("sender-rate", |o| {
        o.parameters
            .insert("ProviderRatePerSecond".into(), RATE.to_string());
        o.parameters
            .insert("SenderMaxConcurrency".into(), "3".into());
        o.env_overrides
            .insert("HERALD_SENDER_SLICE_SECONDS".into(), "2".into());
    })
    .await;
    test.cloud.sandbox.set_faults(Faults {
        rate_limit_per_second: f64::from(RATE),
        sender_rate_limits: [(OWN_NUMBER.to_owned(), 2.0)].into(),
        ..Faults::default()
    });
    let operator = test.token("herald", "operator").await;
    let created = test
        .post_json(
            "/v1/tenants",
            &operator,
            &json!({
                "tenant_id": "slowco",
                "plan": "enterprise",
                "sms_sender": OWN_NUMBER,
                "sms_sender_rate_per_second": 2,
            })
            .to_string(),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["sms_sender_rate_per_second"], 2.0);

    let slow = test.token("slowco", "sender").await;
    let mut batches = Vec::new();
    for b in 0..3 {
        let recipients: Vec<Value> = (0..PER_BATCH)
            .map(|i| json!({ "to": number(b * 100 + i) }))
            .collect();
        batches.push(test.send_batch(&slow, "paced", &recipients).await);
    }
    let quick = test.token("acme", "sender").await;
    let text = test
        .post_json(
            "/v1/messages",
            &quick,
            &json!({ "to": number(999), "body": "not held up" }).to_string(),
        )
        .await;
    assert_eq!(text.status, 202, "{:?}", text.body);
    let id = text.body["id"].as_str().unwrap();
    test.wait_for_status(&quick, id, "sent").await;
    let from_slow = |ledger: &[herald_tests::herald_local::sandbox::LedgerEntry]| {
        ledger.iter().filter(|e| e.from == OWN_NUMBER).count()
    };
    let slow_sent_by_then = from_slow(&test.ledger());
    assert!(
        slow_sent_by_then < PER_BATCH,
        "the text waited for the slow number's batches ({slow_sent_by_then} sent)"
    );

    for batch in &batches {
        let progress = test.wait_for_batch(&slow, batch, "completed").await;
        assert_eq!(progress["counts"]["sent"], PER_BATCH, "{progress}");
    }
    let ledger = test.ledger();
    assert_eq!(from_slow(&ledger), 3 * PER_BATCH, "every recipient once");
    assert_eq!(ledger.len(), 3 * PER_BATCH + 1);
    let injected = test.cloud.sandbox.injected();
    assert_eq!(injected.sender_rate_limited, 0, "the number's rate held");
    assert_eq!(injected.rate_limited, 0, "the account's rate held");
}

#[tokio::test]
async fn a_block_taken_and_never_used_is_lost_never_handed_out_twice() {
    let test = TestCloud::start_with("provider-rate-blocks", |o| o.run_queues = false).await;
    let store = &test.cloud.sender.store;
    let ask = |now_us, count| BlockAsk {
        now_us,
        count,
        interval_us: 40_000,
        horizon_us: 500_000,
    };
    let now = 1_000_000_000_000;

    // Instance A takes 10 slots and crashes; B, knowing nothing, comes after them.
    let a = store
        .take_rate_block(
            &keys::provider_rate(Platform::operations()),
            ask(now, 10),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        a,
        BlockTake::Granted {
            start_us: now,
            count: 10,
            tat: now + 400_000
        }
    );
    let b = store
        .take_rate_block(
            &keys::provider_rate(Platform::operations()),
            ask(now, 5),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        b,
        BlockTake::Granted {
            start_us: now + 400_000,
            count: 5,
            tat: now + 600_000
        },
        "B's slots start where A's end, although A never used them"
    );
    // Past the horizon: wait until the next slot is within it.
    let c = store
        .take_rate_block(
            &keys::provider_rate(Platform::operations()),
            ask(now, 1),
            Some(now + 600_000),
        )
        .await
        .unwrap();
    assert_eq!(
        c,
        BlockTake::Wait {
            retry_at_us: now + 100_000,
            tat: now + 600_000
        }
    );
    // Once time has passed A's block, its slots are simply gone: a new block starts now.
    let later = now + 2_000_000;
    let d = store
        .take_rate_block(
            &keys::provider_rate(Platform::operations()),
            ask(later, 1),
            Some(now + 600_000),
        )
        .await
        .unwrap();
    assert_eq!(
        d,
        BlockTake::Granted {
            start_us: later,
            count: 1,
            tat: later + 40_000
        }
    );
}

/// One pass at a time sends from a paced number: a second finds it held until the
/// first's time, and takes it once the first gives it back or its time has passed.
#[tokio::test]
async fn a_paced_number_is_held_by_one_pass_at_a_time() {
    let test = TestCloud::start_with("number-hold", |o| o.run_queues = false).await;
    let store = &test.cloud.sender.store;
    let number = herald::domain::SmsSender::parse("+14155550123").unwrap();
    let key = keys::sender_rate(Platform::operations(), &number);
    let now = 1_000_000_000_000;
    let until = now + 15_000_000;

    assert_eq!(
        store.hold_rate_item(&key, "a", now, until).await.unwrap(),
        Hold::Held
    );
    assert_eq!(
        store
            .hold_rate_item(&key, "b", now + 1, now + 2)
            .await
            .unwrap(),
        Hold::BusyUntil(until)
    );
    assert_eq!(
        store
            .hold_rate_item(&key, "a", now + 1, until)
            .await
            .unwrap(),
        Hold::Held,
        "the holder may take it again"
    );
    store.let_go_rate_item(&key, "b").await.unwrap();
    assert_eq!(
        store
            .hold_rate_item(&key, "c", now + 2, now + 3)
            .await
            .unwrap(),
        Hold::BusyUntil(until),
        "only the holder lets go"
    );
    store.let_go_rate_item(&key, "a").await.unwrap();
    assert_eq!(
        store
            .hold_rate_item(&key, "b", now + 3, now + 4)
            .await
            .unwrap(),
        Hold::Held
    );
    // B never lets go (it crashed): its hold ends at its time.
    assert_eq!(
        store
            .hold_rate_item(&key, "c", now + 5, now + 6)
            .await
            .unwrap(),
        Hold::Held
    );
    // The pace's own slots live in the same item and are not disturbed.
    let block = store
        .take_rate_block(
            &key,
            BlockAsk {
                now_us: now,
                count: 1,
                interval_us: 1_000_000,
                horizon_us: 1_000_000,
            },
            None,
        )
        .await
        .unwrap();
    assert!(matches!(block, BlockTake::Granted { start_us, .. } if start_us == now));
}
