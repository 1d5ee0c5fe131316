//! Provider credential rotation (issue 20): the rotator's steps against the sandbox's
//! Keys API and the emulator's Secrets Manager — each step idempotent, a failed test
//! leaving `AWSCURRENT` where it was, a second rotation refused while one is pending —
//! and a rotation while a 2,000-recipient batch is sending: every recipient texted
//! once, no call refused for its credentials, the old key refused once its grace
//! period is over.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use herald_rotator::{Retirement, RotationError, Step, StepEvent};
use herald_tests::{TestCloud, number};
use serde_json::{Value, json};

/// The provider secret's value under `AWSCURRENT`.
async fn current(test: &TestCloud) -> Value {
    let out = test
        .cloud
        .clients
        .secrets
        .get_secret_value()
        .secret_id(test.cloud.stack.reference("ProviderSecret").unwrap())
        .send()
        .await
        .expect("the current secret");
    serde_json::from_str(out.secret_string().unwrap()).unwrap()
}

/// Each version's staging labels, sorted.
async fn stages(test: &TestCloud) -> BTreeMap<String, Vec<String>> {
    let out = test
        .cloud
        .clients
        .secrets
        .describe_secret()
        .secret_id(test.cloud.stack.reference("ProviderSecret").unwrap())
        .send()
        .await
        .expect("described");
    out.version_ids_to_stages
        .unwrap_or_default()
        .into_iter()
        .map(|(version, mut labels)| {
            labels.sort();
            (version, labels)
        })
        .collect()
}

/// A `ClientRequestToken` (32 to 64 characters) that reads as `name`.
fn token(name: &str) -> String {
    format!("{name:-<32}")
}

async fn step(test: &TestCloud, step: Step, token: &str) -> Result<(), RotationError> {
    let event = StepEvent {
        step,
        secret_id: test.cloud.stack.reference("ProviderSecret").unwrap().into(),
        client_request_token: token.into(),
    };
    herald_rotator::step(&test.cloud.rotator, &event).await
}

/// One text posted straight to the sandbox with `user`/`password`; its status.
async fn send_as(test: &TestCloud, user: &str, password: &str) -> u16 {
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        test.cloud.sandbox_url, test.cloud.credentials.account_sid
    );
    reqwest::Client::new()
        .post(url)
        .basic_auth(user, Some(password))
        .form(&[
            ("To", "+14155559999"),
            ("From", "+15005550006"),
            ("Body", "hi"),
        ])
        .send()
        .await
        .expect("the sandbox answers")
        .status()
        .as_u16()
}

fn key_of(secret: &Value) -> (String, String) {
    (
        secret["api_key_sid"].as_str().expect("a key sid").into(),
        secret["api_key_secret"]
            .as_str()
            .expect("a key secret")
            .into(),
    )
}

#[tokio::test]
async fn each_step_is_idempotent_and_a_failed_test_leaves_awscurrent_where_it_was() {
    let test = TestCloud::start_with("rotation-steps", |options| {
        options.run_queues = false;
        options
            .env_overrides
            .insert("HERALD_ROTATION_GRACE_SECONDS".into(), "3600".into());
    })
    .await;
    let sandbox = &test.cloud.sandbox;
    let before = current(&test).await;
    assert!(
        before.get("api_key_sid").is_none(),
        "a new stack sends with its auth token"
    );

    // Every step twice: one key, one new version.
    for kind in Step::ALL {
        step(&test, kind, &token("rotation-a")).await.unwrap();
        step(&test, kind, &token("rotation-a")).await.unwrap();
    }
    let after_a = current(&test).await;
    let (key_a, secret_a) = key_of(&after_a);
    assert_eq!(
        sandbox.key_sids(),
        std::slice::from_ref(&key_a),
        "one key made, however often asked"
    );
    for field in ["account_sid", "auth_token", "from"] {
        assert_eq!(after_a[field], before[field], "{field} kept");
    }
    let labels = stages(&test).await;
    assert_eq!(labels[&token("rotation-a")], ["AWSCURRENT"], "{labels:?}");
    assert_eq!(labels.len(), 2);
    assert!(labels.values().any(|l| l == &["AWSPREVIOUS"]), "{labels:?}");
    // The first key replaced the auth token for sending: nothing to delete.
    let retired = herald_rotator::retire(&test.cloud.rotator).await.unwrap();
    assert_eq!(retired, Retirement::default());
    assert_eq!(send_as(&test, &key_a, &secret_a).await, 201);

    // A second rotation, and a third started in its middle: refused, nothing made.
    step(&test, Step::CreateSecret, &token("rotation-b"))
        .await
        .unwrap();
    step(&test, Step::SetSecret, &token("rotation-b"))
        .await
        .unwrap();
    let keys_mid_b = sandbox.key_sids();
    assert_eq!(keys_mid_b.len(), 2);
    let labels_mid_b = stages(&test).await;
    let third = step(&test, Step::CreateSecret, &token("rotation-c")).await;
    assert!(
        matches!(&third, Err(RotationError::InProgress { pending }) if *pending == token("rotation-b")),
        "{third:?}"
    );
    let third = herald_rotator::rotate_now(&test.cloud.rotator, &token("rotation-c")).await;
    assert!(
        matches!(third, Err(RotationError::InProgress { .. })),
        "{third:?}"
    );
    for kind in [Step::SetSecret, Step::TestSecret, Step::FinishSecret] {
        let early = step(&test, kind, &token("rotation-c")).await;
        assert!(
            matches!(early, Err(RotationError::UnknownVersion { .. })),
            "{early:?}"
        );
    }
    assert_eq!(sandbox.key_sids(), keys_mid_b, "no key made or deleted");
    assert_eq!(stages(&test).await, labels_mid_b, "no label moved");

    // The provider loses the pending key: its test fails and AWSCURRENT stays put.
    let key_b = keys_mid_b.iter().find(|k| **k != key_a).unwrap().clone();
    let delete = reqwest::Client::new()
        .delete(format!(
            "{}/2010-04-01/Accounts/{}/Keys/{key_b}.json",
            test.cloud.sandbox_url, test.cloud.credentials.account_sid
        ))
        .basic_auth(
            &test.cloud.credentials.account_sid,
            Some(&test.cloud.credentials.auth_token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
    let failed = step(&test, Step::TestSecret, &token("rotation-b")).await;
    assert!(
        matches!(failed, Err(RotationError::Provider(_))),
        "{failed:?}"
    );
    assert_eq!(stages(&test).await, labels_mid_b, "AWSCURRENT where it was");
    assert_eq!(current(&test).await, after_a);
    assert_eq!(
        send_as(&test, &key_a, &secret_a).await,
        201,
        "the current key still sends"
    );
    let retired = herald_rotator::retire(&test.cloud.rotator).await.unwrap();
    assert_eq!(retired, Retirement::default(), "nothing was marked");

    // The runbook's way out: take AWSPENDING off the failed version, rotate again.
    test.cloud
        .clients
        .secrets
        .update_secret_version_stage()
        .secret_id(test.cloud.stack.reference("ProviderSecret").unwrap())
        .version_stage("AWSPENDING")
        .remove_from_version_id(token("rotation-b"))
        .send()
        .await
        .unwrap();
    herald_rotator::rotate_now(&test.cloud.rotator, &token("rotation-d"))
        .await
        .unwrap();
    let (key_d, _) = key_of(&current(&test).await);
    let retired = herald_rotator::retire(&test.cloud.rotator).await.unwrap();
    assert_eq!(
        retired,
        Retirement {
            waiting: vec![key_a.clone()],
            ..Retirement::default()
        },
        "the replaced key waits out its grace period"
    );
    assert_eq!(sandbox.key_sids().len(), 2);
    assert!(sandbox.key_sids().contains(&key_d));
    assert_eq!(
        send_as(&test, &key_a, &secret_a).await,
        201,
        "and works meanwhile"
    );
    assert_eq!(sandbox.refused_credentials(), 1, "only the lost key's test");
    test.assert_calls_allowed_by_template();
}

/// Submits the batch as a careful client does: a 503 (the emulator slow under load
/// while the other test of this file runs) is tried again with the same key.
async fn submit(test: &TestCloud, bearer: &str, recipients: &[Value]) -> String {
    let body = json!({ "template": "Your code is {{code}}", "recipients": recipients }).to_string();
    for _ in 0..3 {
        let answer = test
            .post_json_with_key("/v1/batches", bearer, "rotation-batch", &body)
            .await;
        match answer.status {
            202 => return answer.body["batch_id"].as_str().unwrap().to_owned(),
            503 => tokio::time::sleep(Duration::from_secs(1)).await,
            other => panic!("batch answered {other}: {}", answer.body),
        }
    }
    panic!("batch refused three times");
}

const RECIPIENTS: usize = 2_000;
/// How long the batch may take to send: the emulator sends 2,000 texts in one to four
/// minutes on a 2-core machine, depending on what else runs (the suite's common three
/// minutes is too short under load).
const SENDING_LIMIT: Duration = Duration::from_secs(600);

/// Waits until the sandbox took `count` texts, reading its ledger in memory (polling
/// the API would take emulator requests from the senders).
async fn sent_at_least(test: &TestCloud, count: usize) {
    let started = Instant::now();
    while test.cloud.sandbox.ledger().len() < count {
        assert!(
            started.elapsed() < SENDING_LIMIT,
            "{count} texts not sent in {SENDING_LIMIT:?}: {}",
            test.cloud.sandbox.ledger().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
/// Waits (as long as `SENDING_LIMIT`, polling every 2 s) for the batch to complete.
async fn completed(test: &TestCloud, bearer: &str, batch: &str) -> Value {
    let started = Instant::now();
    loop {
        let progress = test.get(&format!("/v1/batches/{batch}"), bearer).await.body;
        if progress["status"] == "completed" {
            return progress;
        }
        assert!(
            started.elapsed() < SENDING_LIMIT,
            "the batch did not complete in {SENDING_LIMIT:?}: {progress}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

const GRACE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_rotation_while_2000_recipients_are_sent_texts_each_once_and_refuses_no_call() {
    let test = TestCloud::start_with("rotation-batch", |options| {
        // Senders re-read the secret every second, so they switch keys mid-batch; the
        // grace period covers that with margin, as 900 s covers 300 s in AWS.
        options
            .env_overrides
            .insert("HERALD_SECRET_CACHE_SECONDS".into(), "1".into());
        options.env_overrides.insert(
            "HERALD_ROTATION_GRACE_SECONDS".into(),
            GRACE.as_secs().to_string(),
        );
        options
            .parameters
            .insert("ProviderRatePerSecond".into(), "1000".into());
        // The provider's rate is out of the way, so parallelism alone bounds the claims
        // waiting on the one emulator: 8, as in the fault suites (tests/faults.rs).
        options
            .env_overrides
            .insert("HERALD_SEND_PARALLELISM".into(), "8".into());
    })
    .await;
    let sandbox = &test.cloud.sandbox;
    let rotator = &test.cloud.rotator;
    // The batch starts on a key made by a first rotation.
    herald_rotator::rotate_now(rotator, &token("first"))
        .await
        .unwrap();
    let (old_key, old_secret) = key_of(&current(&test).await);

    let bearer = test.token("acme", "sender").await;
    let recipients: Vec<Value> = (0..RECIPIENTS)
        .map(|i| json!({ "to": number(i), "variables": { "code": i.to_string() } }))
        .collect();
    let batch = submit(&test, &bearer, &recipients).await;
    sent_at_least(&test, RECIPIENTS / 4).await;

    // Rotate mid-batch; a second rotation started in its middle changes nothing.
    step(&test, Step::CreateSecret, &token("second"))
        .await
        .unwrap();
    step(&test, Step::SetSecret, &token("second"))
        .await
        .unwrap();
    let keys = sandbox.key_sids();
    let labels = stages(&test).await;
    let intruder = herald_rotator::rotate_now(rotator, &token("intruder")).await;
    assert!(
        matches!(intruder, Err(RotationError::InProgress { .. })),
        "{intruder:?}"
    );
    assert_eq!(sandbox.key_sids(), keys);
    assert_eq!(stages(&test).await, labels);
    step(&test, Step::TestSecret, &token("second"))
        .await
        .unwrap();
    step(&test, Step::FinishSecret, &token("second"))
        .await
        .unwrap();
    let grace_started = Instant::now();
    let (new_key, _) = key_of(&current(&test).await);
    let early = herald_rotator::retire(rotator).await.unwrap();
    assert_eq!(early.waiting, std::slice::from_ref(&old_key), "{early:?}");

    // Past the grace period the old key is deleted, while the batch still sends.
    tokio::time::sleep((GRACE + Duration::from_secs(1)).saturating_sub(grace_started.elapsed()))
        .await;
    let retired = herald_rotator::retire(rotator).await.unwrap();
    assert_eq!(
        retired.deleted,
        std::slice::from_ref(&old_key),
        "{retired:?}"
    );
    let deleted_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(sandbox.key_sids(), std::slice::from_ref(&new_key));
    let sent_before_deletion = sandbox.ledger().len();

    // The batch's end, not the sandbox's count, ends the wait: a recipient that ended
    // any other way than `sent` then fails on the counts, saying how it ended.
    let progress = completed(&test, &bearer, &batch).await;
    assert_eq!(progress["counts"]["sent"], RECIPIENTS, "{progress}");
    let ledger = sandbox.ledger();
    assert_eq!(
        ledger.len(),
        RECIPIENTS,
        "one provider call taken per recipient"
    );
    let distinct: HashSet<&str> = ledger.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(distinct.len(), RECIPIENTS, "no recipient texted twice");
    assert_eq!(
        sandbox.refused_credentials(),
        0,
        "no call refused for credentials"
    );
    let by_key = |key: &str| ledger.iter().filter(|m| m.credential == key).count();
    assert_eq!(
        by_key(&old_key) + by_key(&new_key),
        RECIPIENTS,
        "all sent with the keys"
    );
    assert!(
        by_key(&old_key) > 0 && by_key(&new_key) > 0,
        "the senders switched keys"
    );
    let after_deletion: Vec<_> = ledger
        .iter()
        .filter(|m| m.received_at_ms > deleted_at_ms)
        .collect();
    assert!(
        after_deletion.iter().all(|m| m.credential == new_key),
        "after the grace period only the new key sends"
    );
    println!(
        "sent with the old key {}, with the new {}; {} before the old key was deleted, {} after",
        by_key(&old_key),
        by_key(&new_key),
        sent_before_deletion,
        after_deletion.len()
    );

    // The old key itself is refused now.
    assert_eq!(send_as(&test, &old_key, &old_secret).await, 401);
    assert_eq!(sandbox.refused_credentials(), 1);
}
