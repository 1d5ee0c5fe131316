//! One redrive at a time: the operator's route and the scheduled run share the redrive
//! lease. Whichever comes second is told so (409) or skips its redrive (and counts the
//! skip), in either order; a holder that died holds the lease only until it runs out,
//! then the next run takes it over (the clock seam moves time instead of waiting).

use std::sync::Arc;
use std::time::Duration;

use herald::clock::OffsetClock;
use herald_redriver::RedriveRun;
use herald_tests::{TestCloud, eventually};

/// Dead letters each test puts in the send DLQ.
const DEAD_LETTERS: usize = 8;

/// A stack whose redrives move 2 messages a second, so a run over `DEAD_LETTERS`
/// lasts at least 3.5 s and is surely still running when the second one starts.
/// Nothing polls the send queue: moved messages stay there.
async fn slow_redrives(name: &str) -> TestCloud {
    let test = TestCloud::start_with(name, |o| {
        o.run_queues = false;
        o.env_overrides
            .insert("HERALD_REDRIVE_RATE_PER_SECOND".into(), "2".into());
    })
    .await;
    for i in 0..DEAD_LETTERS {
        let body = format!("chunk-{i}");
        test.put_on_queue("SendDLQ", &body, &[("tenant_id", "String", "acme")])
            .await;
    }
    test
}

/// Waits until some run holds the redrive lease.
async fn lease_taken(test: &TestCloud) {
    eventually("a redrive to hold the lease", || async {
        let holder = test
            .cloud
            .redriver
            .lease
            .holder()
            .await
            .expect("lease read");
        holder.map(|_| ())
    })
    .await;
}

/// The actions in the platform tenant's audit log.
async fn platform_audit(test: &TestCloud, operator: &str) -> Vec<String> {
    let log = test.get("/v1/tenants/herald/audit", operator).await;
    assert_eq!(log.status, 200, "{:?}", log.body);
    log.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().expect("action").to_owned())
        .collect()
}

#[tokio::test]
async fn an_operator_redrive_while_the_scheduled_run_redrives_is_409_and_moves_nothing() {
    let test = slow_redrives("lease-scheduled-first").await;
    let operator = test.token("herald", "operator").await;
    // The API's first request fetches the pool's keys; do it before the race.
    assert!(platform_audit(&test, &operator).await.is_empty());

    let (scheduled, refused) = tokio::join!(test.cloud.scheduled_run(), async {
        lease_taken(&test).await;
        test.post_json_with_key("/v1/operator/redrive", &operator, "redrive-1", "")
            .await
    });

    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(
        refused.body["type"],
        "https://herald.dev/problems/redrive-running"
    );
    let detail = refused.body["detail"].as_str().expect("detail");
    assert!(detail.contains("scheduled redriver"), "{detail}");
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    // At most the scheduled run's budget (its timeout less the margin) plus the lease's.
    assert!((1..=120 + 30).contains(&retry_after), "{retry_after}");

    let report = scheduled.expect("the scheduled run is clean");
    let ran = report.redrive.report().expect("the scheduled run redrove");
    assert_eq!(ran.moved, DEAD_LETTERS);
    assert_eq!(test.queue_depth("SendQueue").await, DEAD_LETTERS);
    // The refusal changed nothing and is not audited as a redrive.
    assert!(platform_audit(&test, &operator).await.is_empty());
    assert!(test.cloud.redriver.lease.holder().await.unwrap().is_none());

    // The refusal released its key: the same request now runs (and finds nothing).
    let again = test
        .post_json_with_key("/v1/operator/redrive", &operator, "redrive-1", "")
        .await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["moved"], 0);
    assert_eq!(platform_audit(&test, &operator).await, ["dlq.redriven"]);
}

#[tokio::test]
async fn the_scheduled_run_skips_its_redrive_while_an_operator_redrives_and_counts_the_skip() {
    let test = slow_redrives("lease-operator-first").await;
    let operator = test.token("herald", "operator").await;
    assert!(platform_audit(&test, &operator).await.is_empty());

    let (answer, scheduled) = tokio::join!(
        test.post_json("/v1/operator/redrive", &operator, ""),
        async {
            lease_taken(&test).await;
            test.cloud.scheduled_run().await
        }
    );

    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["moved"], DEAD_LETTERS);
    let report = scheduled.expect("a skipped redrive is not a failed run");
    match &report.redrive {
        RedriveRun::Skipped { holder, .. } => {
            assert!(holder.starts_with("operator "), "{holder}")
        }
        ran => panic!("the scheduled run redrove beside the operator's: {ran:?}"),
    }
    // The sweeps still ran; the report (the invocation's answer) says what was skipped.
    assert_eq!(report.sweep.found, 0);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["redrive"]["outcome"], "skipped");
    let metrics = &test.cloud.metrics;
    assert_eq!(metrics.total("redriver", "RedriveSkipped"), 1.0);
    assert_eq!(metrics.total("redriver", "Redriven"), 0.0);
    assert_eq!(test.queue_depth("SendQueue").await, DEAD_LETTERS);
    assert_eq!(platform_audit(&test, &operator).await, ["dlq.redriven"]);
}

#[tokio::test]
async fn a_holder_that_died_blocks_redrives_until_its_lease_runs_out_then_one_takes_it_over() {
    let test = slow_redrives("lease-crash").await;
    let operator = test.token("herald", "operator").await;

    // A holder that dies while redriving: its work never ends, and it never releases.
    let (started, holding) = tokio::sync::oneshot::channel();
    let lease = test.cloud.redriver.lease.clone();
    let dying = tokio::spawn(async move {
        let work = async {
            started.send(()).expect("the test waits");
            std::future::pending::<()>().await
        };
        lease
            .run("a holder that dies", Duration::from_secs(60), work)
            .await
    });
    holding.await.expect("the holder took the lease");
    dying.abort();
    let held = test
        .cloud
        .redriver
        .lease
        .holder()
        .await
        .unwrap()
        .expect("the dead holder's lease is still there");
    assert!(held.holder.starts_with("a holder that dies"), "{held:?}");

    // Until it runs out, every redrive is refused and nothing moves.
    let skipped = test.cloud.redrive_run().await.expect("the lease was read");
    assert!(
        matches!(&skipped, RedriveRun::Skipped { holder, .. } if *holder == held.holder),
        "{skipped:?}"
    );
    let refused = test.post_json("/v1/operator/redrive", &operator, "").await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(test.queue_depth("SendQueue").await, 0);

    // Once it has run out (the clock moved past it), the next run takes it over.
    let now = herald::clock::system().timestamp();
    let past_it = now.until(held.until) + Duration::from_secs(1);
    let later = herald_redriver::Deps::from_config(
        test.cloud.redriver.config.clone(),
        &herald::aws::Clients::new(test.cloud.sdk.clone()),
        Arc::new(OffsetClock(past_it)),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let run = herald_redriver::handle(&later, deadline)
        .await
        .expect("the run is clean");
    assert_eq!(run.report().expect("it ran").moved, DEAD_LETTERS);
    assert_eq!(test.queue_depth("SendQueue").await, DEAD_LETTERS);
    // It released the lease it took over.
    assert!(later.lease.holder().await.unwrap().is_none());
}
