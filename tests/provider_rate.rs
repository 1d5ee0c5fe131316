//! The provider's rate shared by every sender instance through DynamoDB (issue 14):
//! blocks of send slots taken with one conditional write each, never overlapping, so
//! instances together never pass the provider's rate; and a block an instance took and
//! never used (it crashed) is lost, never handed out again.

use herald::keys::Platform;
use herald::store::{BlockAsk, BlockTake};
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
        .take_rate_block(Platform::operations(), ask(now, 10), None)
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
        .take_rate_block(Platform::operations(), ask(now, 5), None)
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
        .take_rate_block(Platform::operations(), ask(now, 1), Some(now + 600_000))
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
        .take_rate_block(Platform::operations(), ask(later, 1), Some(now + 600_000))
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
