//! Tested restores (issue 13) against the local cloud, whose emulator restores a table
//! as it was at a point in time (`tests/emulator.rs` tests that itself): the restore
//! drill through all its steps; a drill that must fail because a canary is missing,
//! and one that never finishes; the recovery of one tenant after a wrong DELETE; the
//! whole-table runbook (and that every template reference to the table follows its
//! `RestoredTableName`); and requests that are refused with nothing changed. One file
//! for the whole proof (hence its length); the harness is in
//! `support/restores.rs`.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, PointInTimeRecoverySpecification, SseSpecification, SseType,
    TimeToLiveSpecification,
};
use herald::clock::Clock;
use herald::domain::{DrillState, ItemKind, RecoveryJob, RecoveryState, Tally};
use herald::keys::Platform;
use herald::restore::{DrillError, RecoveryError, RecoveryRequest, ScratchError, Start};
use herald::{TenantId, Timestamp};
use herald_backup_check::BackupCheckError;
use herald_tests::restores::{MARGIN, quick_drills};
use herald_tests::{TEST_LIMITS, TestCloud, number};
use serde_json::{Value, json};

fn now() -> Timestamp {
    herald::clock::SystemClock.timestamp()
}

fn recipients(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| json!({"to": number(i), "variables": {"name": format!("R{i}")}}))
        .collect()
}

/// How long after the time a canary carries (taken before its PutItem) its write may
/// reach the emulator's journal on a loaded machine, where DynamoDB requests wait
/// their turn. The drill's point is chosen at least this long after the first canary,
/// so that canary is in the restore however busy the emulator was.
const WRITE_SLACK: Duration = Duration::from_secs(1);

/// The first run writes a canary and waits; once that canary is older than a
/// restorable point, the second starts a drill. Answers the drill.
async fn start_a_drill(test: &TestCloud) -> herald::domain::Drill {
    let first = test.drill_step(Start::WhenDue).await.expect("first run");
    assert!(first.step.drill.is_none());
    let waiting = first.step.waiting.as_deref().unwrap_or_default();
    assert!(waiting.contains("no canary"), "{waiting}");
    test.wait_restorable(first.step.canary.written_at.plus(WRITE_SLACK))
        .await;
    let second = test.drill_step(Start::WhenDue).await.expect("second run");
    let drill = second.step.drill.expect("a drill started");
    assert_eq!(drill.state, DrillState::Restoring);
    assert_eq!(
        drill.expectations.canaries_present,
        vec![first.step.canary],
        "the canary before the point"
    );
    assert_eq!(
        drill.expectations.canaries_absent,
        vec![second.step.canary],
        "the canary after the point"
    );
    drill
}

fn total(test: &TestCloud, metric: &str) -> f64 {
    test.cloud.metrics.total("backup-check", metric)
}

#[tokio::test]
async fn a_drill_finds_the_canaries_before_its_point_and_none_after_then_deletes_its_scratch_table()
{
    let test = TestCloud::start_with("drill", quick_drills).await;
    // A tenant's finished batch in the table, for the drill's sample of items.
    let token = test.token("acme", "sender").await;
    let batch = test.send_batch(&token, "Hi {{name}}", &recipients(3)).await;
    test.wait_for_batch(&token, &batch, "completed").await;
    let items = test.snapshot().await.len();

    let drill = start_a_drill(&test).await;
    assert!(drill.restore_point < drill.expectations.canaries_absent[0].written_at);
    assert!(drill.restore_point > drill.expectations.canaries_present[0].written_at);
    assert_eq!(
        drill.expectations.items.len(),
        items,
        "every item, unchanged since"
    );
    assert_eq!(drill.expectations.items_changed, 0);
    assert!(test.table_exists(&drill.scratch_table).await);

    // Runs move it on until one finds the scratch table restored, checks and deletes it.
    let finished = loop {
        let run = test.drill_step(Start::WhenDue).await.expect("a clean run");
        let current = run.step.drill.expect("the drill");
        assert_eq!(current.id, drill.id);
        if run.step.finished {
            break current;
        }
        assert_eq!(current.state, DrillState::Restoring);
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        finished.state,
        DrillState::Succeeded,
        "{:?}",
        finished.failures
    );
    let checks = finished.checks.clone().expect("checks");
    let all = |n| Tally {
        expected: n,
        confirmed: n,
    };
    assert_eq!(checks.canaries_present, all(1));
    assert_eq!(checks.canaries_absent, all(1));
    assert_eq!(checks.items, all(items));
    assert!(checks.schema.holds(), "{:?}", checks.schema);
    let duration = finished.restore_duration_ms.expect("a restore duration");
    assert!(finished.restore_point_age_ms >= MARGIN.as_millis() as u64);
    assert!(finished.scratch_deleted);
    assert!(!test.table_exists(&finished.scratch_table).await);
    assert!(test.scratch_tables().await.is_empty());

    assert_eq!(total(&test, "DrillSucceeded"), 1.0);
    assert_eq!(total(&test, "DrillFailed"), 0.0);
    assert_eq!(total(&test, "RestoreDuration"), duration as f64);
    assert_eq!(
        total(&test, "RestorePointAge"),
        finished.restore_point_age_ms as f64
    );
    assert_eq!(total(&test, "ItemsChecked"), items as f64);
    assert_eq!(total(&test, "CanariesChecked"), 2.0);
    assert_eq!(total(&test, "ScratchTablesLeftBehind"), 0.0);

    // The next run starts none (one an hour here) and finds nothing left behind.
    let next = test.drill_step(Start::WhenDue).await.expect("a clean run");
    assert!(next.step.drill.is_none() && next.step.waiting.is_none());
    assert!(next.step.left_behind.is_empty());
    test.assert_calls_allowed_by_template();
}

#[tokio::test]
async fn a_drill_whose_canary_is_missing_from_the_restore_fails_with_the_metric_and_the_error() {
    let test = TestCloud::start_with("drill-missing-canary", quick_drills).await;
    let drill = start_a_drill(&test).await;
    test.wait_active(&drill.scratch_table).await;
    let canary = drill.expectations.canaries_present[0].clone();
    let key = herald::keys::canary(Platform::operations(), canary.written_at, &canary.id);
    test.cloud
        .clients
        .dynamodb
        .delete_item()
        .table_name(&drill.scratch_table)
        .key("pk", AttributeValue::S(key.pk))
        .key("sk", AttributeValue::S(key.sk))
        .send()
        .await
        .expect("the canary is deleted from the restore");

    let failed = test.drill_step(Start::WhenDue).await.unwrap_err();
    let BackupCheckError::DrillFailed { report } = &failed else {
        panic!("{failed}");
    };
    let drill = report.step.drill.as_ref().expect("the drill");
    let missing = format!(
        "canary {} written at {} (before the point) is missing from the restore",
        canary.id, canary.written_at
    );
    assert_eq!(drill.state, DrillState::Failed);
    assert_eq!(drill.failures, vec![missing.clone()]);
    assert!(failed.to_string().contains(&missing), "{failed}");
    let checks = drill.checks.clone().expect("checks");
    assert_eq!(
        checks.canaries_present,
        Tally {
            expected: 1,
            confirmed: 0
        }
    );
    assert_eq!(
        checks.canaries_absent,
        Tally {
            expected: 1,
            confirmed: 1
        }
    );
    assert!(drill.scratch_deleted);
    assert!(!test.table_exists(&drill.scratch_table).await);
    assert_eq!(total(&test, "DrillFailed"), 1.0);
    assert_eq!(total(&test, "DrillSucceeded"), 0.0);
}

#[tokio::test]
async fn a_drill_that_never_finishes_fails_and_its_scratch_table_is_deleted_once_it_can_be() {
    let test = TestCloud::start_with("drill-too-slow", |options| {
        quick_drills(options);
        // The emulator restores in 5 s; this drill gives it 1 s.
        options
            .env_overrides
            .insert("HERALD_DRILL_TIMEOUT_SECONDS".into(), "1".into());
    })
    .await;
    let drill = start_a_drill(&test).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let failed = test.drill_step(Start::WhenDue).await.unwrap_err();
    let BackupCheckError::DrillFailed { report } = &failed else {
        panic!("{failed}");
    };
    let timed_out = report.step.drill.as_ref().expect("the drill");
    assert_eq!(timed_out.state, DrillState::Failed);
    assert_eq!(
        timed_out.failures,
        vec!["the restore did not finish within 1 s".to_owned()]
    );
    assert!(timed_out.checks.is_none());
    // DynamoDB deletes no table while it is being restored.
    assert!(!timed_out.scratch_deleted);
    assert_eq!(total(&test, "DrillFailed"), 1.0);

    // Once it is restored, the next run deletes it, and fails for it: it was left.
    test.wait_active(&drill.scratch_table).await;
    let left = test.drill_step(Start::WhenDue).await.unwrap_err();
    let BackupCheckError::LeftBehind { report } = &left else {
        panic!("{left}");
    };
    assert_eq!(report.step.left_behind, vec![drill.scratch_table.clone()]);
    assert!(left.to_string().contains(&drill.scratch_table), "{left}");
    assert_eq!(total(&test, "ScratchTablesLeftBehind"), 1.0);
    assert!(!test.table_exists(&drill.scratch_table).await);
    let clean = test.drill_step(Start::WhenDue).await.expect("a clean run");
    assert!(clean.step.left_behind.is_empty());
}

fn request(tenant: &str, at: Timestamp, dry_run: bool) -> RecoveryRequest {
    RecoveryRequest {
        tenant: TenantId::parse(tenant).unwrap(),
        at,
        dry_run,
        scratch_table: None,
        requested_by: "test-operator".into(),
    }
}

/// A tenant's items but its request-rate windows (every request writes one) and the
/// recoveries' own audit entries.
async fn tenant_data(test: &TestCloud, tenant: &str) -> Vec<(String, String, String)> {
    let prefix = format!("TENANT#{tenant}");
    test.snapshot()
        .await
        .into_iter()
        .filter(|(pk, sk, item)| {
            let tenants = pk == &prefix || pk.starts_with(&format!("{prefix}#"));
            tenants && sk != "RATE" && !item.contains("recovery.")
        })
        .collect()
}

/// The batch, its listing and each of its messages, as the API answers them.
async fn api_views(test: &TestCloud, token: &str, batch: &str, messages: &[String]) -> Vec<Value> {
    let mut views = vec![
        test.get(&format!("/v1/batches/{batch}"), token).await.body,
        test.get(&format!("/v1/batches/{batch}/messages"), token)
            .await
            .body,
    ];
    for id in messages {
        views.push(test.get(&format!("/v1/messages/{id}"), token).await.body);
    }
    views
}

fn missing_only(job: &RecoveryJob) -> Vec<(ItemKind, usize)> {
    job.items
        .iter()
        .filter(|(_, c)| c.missing > 0)
        .map(|(k, c)| (*k, c.missing))
        .collect()
}

#[tokio::test]
async fn a_tenant_is_recovered_after_a_wrong_delete_with_nothing_else_touched_and_once() {
    let test = TestCloud::start("recover-tenant").await;
    let acme = test.token("acme", "sender").await;
    let globex = test.token("globex", "sender").await;
    let batch = test.send_batch(&acme, "Hi {{name}}", &recipients(3)).await;
    let other = test
        .send_batch(&globex, "Yo {{name}}", &recipients(2))
        .await;
    test.wait_for_batch(&acme, &batch, "completed").await;
    test.wait_for_batch(&globex, &other, "completed").await;
    let message_ids: Vec<String> = (0..3).map(|i| format!("{batch}.{i}")).collect();
    let seen = api_views(&test, &acme, &batch, &message_ids).await;
    tokio::time::sleep(MARGIN).await;
    let point = now();
    tokio::time::sleep(MARGIN).await;

    // After the point: acme sends again, and an operator suspends and resumes it.
    let later = test.send_sms(&acme, &number(9), "after the point").await;
    test.wait_for_status(&acme, &later, "sent").await;
    let operator = test.token("herald", "operator").await;
    for action in ["suspend", "resume"] {
        let path = format!("/v1/tenants/acme/{action}");
        let answer = test
            .request("POST", &path, Some(&operator), None, None)
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }
    let acme_before = tenant_data(&test, "acme").await;
    let globex_before = tenant_data(&test, "globex").await;

    // The wrong DELETE: the batch (its record, chunk and quota reservation) and its
    // messages, item by item.
    let batch_pk = format!("TENANT#acme#BATCH#{batch}");
    let mut deleted: Vec<(String, String)> = acme_before
        .iter()
        .filter(|(pk, _, _)| pk == &batch_pk)
        .map(|(pk, sk, _)| (pk.clone(), sk.clone()))
        .collect();
    deleted.extend(
        message_ids
            .iter()
            .map(|id| (format!("TENANT#acme#MSG#{id}"), "MSG".to_owned())),
    );
    assert_eq!(deleted.len(), 6, "{deleted:?}");
    for (pk, sk) in &deleted {
        let gone = test
            .cloud
            .clients
            .dynamodb
            .delete_item()
            .table_name(test.live_table())
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S(sk.clone()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .expect("deleted");
        assert!(gone.attributes.is_some(), "{pk} {sk} existed");
    }
    let acme_deleted = tenant_data(&test, "acme").await;
    assert_eq!(
        test.get(&format!("/v1/batches/{batch}"), &acme)
            .await
            .status,
        404
    );
    test.wait_restorable(point).await;
    let check = &test.cloud.backup_check;
    let expected_missing = vec![
        (ItemKind::Batch, 1),
        (ItemKind::Chunk, 1),
        (ItemKind::BatchQuota, 1),
        (ItemKind::Message, 3),
    ];

    // The dry run reports exactly what was deleted, and puts nothing back.
    let dry = check
        .recover_tenant(&request("acme", point, true))
        .await
        .unwrap();
    assert_eq!(dry.state, RecoveryState::Succeeded);
    assert_eq!(missing_only(&dry), expected_missing);
    assert_eq!(dry.restored, 0);
    assert!(dry.scratch_deleted);
    assert_eq!(tenant_data(&test, "acme").await, acme_deleted);

    // The real run puts exactly those back: acme is as before the DELETE, including
    // what changed after the point, and globex is untouched.
    let real = check
        .recover_tenant(&request("acme", point, false))
        .await
        .unwrap();
    assert_eq!(real.state, RecoveryState::Succeeded);
    assert_eq!(missing_only(&real), expected_missing);
    assert_eq!(real.restored, 6);
    let windows = real
        .items
        .get(&ItemKind::RateWindow)
        .copied()
        .unwrap_or_default();
    assert!(
        windows.skipped > 0,
        "acme's requests before the point had rate windows"
    );
    assert_eq!(windows.missing + windows.present, 0, "never put back");
    assert_eq!(tenant_data(&test, "acme").await, acme_before);
    assert_eq!(tenant_data(&test, "globex").await, globex_before);
    assert_eq!(
        api_views(&test, &acme, &batch, &message_ids).await,
        seen,
        "the API shows the batch and every message as before"
    );

    // A second run finds nothing missing and changes nothing.
    let again = check
        .recover_tenant(&request("acme", point, false))
        .await
        .unwrap();
    assert_eq!(again.state, RecoveryState::Succeeded);
    assert_eq!(again.missing(), 0);
    assert_eq!(again.restored, 0);
    assert_eq!(tenant_data(&test, "acme").await, acme_before);
    assert!(test.scratch_tables().await.is_empty());

    // Each run is in acme's audit log: started, then its result (the log reads newest
    // first).
    let admin = test.token("acme", "admin").await;
    let audit = test.get("/v1/audit", &admin).await.body;
    let mut actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("recovery."))
        .collect();
    actions.reverse();
    assert_eq!(
        actions,
        [
            "recovery.started",
            "recovery.dry_run",
            "recovery.started",
            "recovery.restored",
            "recovery.started",
            "recovery.restored"
        ]
    );
    test.assert_calls_allowed_by_template();
}

#[tokio::test]
async fn restores_that_cannot_be_are_refused_clearly_and_change_nothing() {
    let test = TestCloud::start_with("restore-bad-input", quick_drills).await;
    test.register_tenant("acme", TEST_LIMITS).await;
    let check = &test.cloud.backup_check;
    let live = test.live_table().to_owned();
    let window = test.tables().window(&live).await.unwrap();
    let point = now();
    test.wait_restorable(point).await;
    let before = test.snapshot().await;

    // A point outside the restorable window, on either side.
    for at in [
        window.earliest.minus(Duration::from_secs(60)),
        now().plus(Duration::from_secs(3600)),
    ] {
        let refused = check
            .recover_tenant(&request("acme", at, false))
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                BackupCheckError::Recovery(RecoveryError::Scratch(
                    ScratchError::OutsideWindow { .. }
                ))
            ),
            "{refused}"
        );
        assert!(
            refused
                .to_string()
                .contains("outside the restorable window")
        );
    }
    // A tenant that does not exist.
    let refused = check
        .recover_tenant(&request("nobody", point, false))
        .await
        .unwrap_err();
    assert_eq!(refused.to_string(), "tenant nobody does not exist");
    // A scratch table name that is not a recovery's, and one that is taken.
    let mut elsewhere = request("acme", point, false);
    elsewhere.scratch_table = Some("elsewhere".into());
    let refused = check.recover_tenant(&elsewhere).await.unwrap_err();
    assert!(refused.to_string().contains("must begin with"), "{refused}");
    let taken = format!("{live}-recover-taken");
    test.cloud
        .clients
        .dynamodb
        .create_table()
        .table_name(&taken)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("a table in the way");
    let mut in_the_way = request("acme", point, false);
    in_the_way.scratch_table = Some(taken.clone());
    let refused = check.recover_tenant(&in_the_way).await.unwrap_err();
    assert!(
        matches!(
            refused,
            BackupCheckError::Recovery(RecoveryError::Scratch(ScratchError::Exists(ref name))) if name == &taken
        ),
        "{refused}"
    );
    assert_eq!(
        refused.to_string(),
        format!("a table named {taken} already exists")
    );
    test.cloud
        .clients
        .dynamodb
        .delete_table()
        .table_name(&taken)
        .send()
        .await
        .unwrap();
    assert_eq!(test.snapshot().await, before, "nothing written");

    // A second recovery of the tenant while one runs.
    let first = check
        .invoke(json!({"recover_tenant": {
            "tenant": "acme", "at": point.to_string(), "dry_run": true, "requested_by": "test"}}))
        .await
        .expect("started");
    let first: RecoveryJob = serde_json::from_value(first).unwrap();
    assert_eq!(first.state, RecoveryState::Restoring);
    let before = test.snapshot().await;
    let refused = check
        .recover_tenant(&request("acme", point, false))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, BackupCheckError::Recovery(RecoveryError::AlreadyRunning { job, .. }) if job == &first.id),
        "{refused}"
    );
    assert_eq!(test.snapshot().await, before, "nothing written");
    let mut job = first;
    while !job.state.finished() {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let answer = check.invoke(json!({ "recovery": job.id })).await.unwrap();
        job = serde_json::from_value(answer).unwrap();
    }
    assert_eq!(job.state, RecoveryState::Succeeded);

    // A drill started while another runs.
    let drill = start_a_drill(&test).await;
    let before = test.snapshot().await;
    let refused = check
        .invoke(json!({"start_drill": true}))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, BackupCheckError::Drill(DrillError::AlreadyRunning { id, .. }) if id == &drill.id),
        "{refused}"
    );
    assert!(refused.to_string().contains("is running"), "{refused}");
    assert_eq!(test.snapshot().await, before, "nothing written");
    test.wait_active(&drill.scratch_table).await;
    let done = test
        .drill_step(Start::WhenDue)
        .await
        .expect("the drill ends well");
    assert!(done.step.finished);
}

#[tokio::test]
async fn a_whole_table_restored_to_a_new_table_serves_the_stack_pointed_at_it() {
    let test = TestCloud::start("whole-table").await;
    let acme = test.token("acme", "sender").await;
    let batch = test.send_batch(&acme, "Hi {{name}}", &recipients(2)).await;
    let seen = test.wait_for_batch(&acme, &batch, "completed").await;
    tokio::time::sleep(MARGIN).await;
    let point = now();
    tokio::time::sleep(MARGIN).await;
    let later = test.send_sms(&acme, &number(9), "after the point").await;
    test.wait_for_status(&acme, &later, "sent").await;
    // The disaster: every item of the table deleted.
    let live = test.live_table().to_owned();
    let dynamodb = &test.cloud.clients.dynamodb;
    for (pk, sk, _) in test.snapshot().await {
        dynamodb
            .delete_item()
            .table_name(&live)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk))
            .send()
            .await
            .unwrap();
    }

    // The runbook's steps 2 to 5, as the AWS CLI commands make them.
    test.wait_restorable(point).await;
    let restored = format!("{}-restored", test.cloud.stack.name);
    let key = test.cloud.backup_check.deps.config.kms_key_arn.clone();
    dynamodb
        .restore_table_to_point_in_time()
        .source_table_name(&live)
        .target_table_name(&restored)
        .restore_date_time(aws_sdk_dynamodb::primitives::DateTime::from_millis(
            point.epoch_millis() as i64,
        ))
        .sse_specification_override(
            SseSpecification::builder()
                .enabled(true)
                .sse_type(SseType::Kms)
                .kms_master_key_id(&key)
                .build(),
        )
        .send()
        .await
        .expect("restore started");
    test.wait_active(&restored).await;
    dynamodb
        .update_time_to_live()
        .table_name(&restored)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    dynamodb
        .update_continuous_backups()
        .table_name(&restored)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    dynamodb
        .update_table()
        .table_name(&restored)
        .deletion_protection_enabled(true)
        .send()
        .await
        .unwrap();

    // Step 6: the stack deployed with RestoredTableName serves from the restored table.
    let pointed = TestCloud::start_with("whole-table-deployed", |options| {
        options
            .parameters
            .insert("RestoredTableName".into(), restored.clone());
    })
    .await;
    assert_eq!(pointed.cloud.sender.config.table, restored);
    assert_eq!(pointed.cloud.backup_check.deps.config.table, restored);
    let acme = pointed.token("acme", "sender").await;
    let answer = pointed.get(&format!("/v1/batches/{batch}"), &acme).await;
    assert_eq!(answer.body, seen, "the batch as it was at the point");
    let answer = pointed.get(&format!("/v1/messages/{later}"), &acme).await;
    assert_eq!(
        answer.status, 404,
        "the message sent after the point is not there"
    );
}

/// Where `value` names `HeraldTable` outside an `Fn::If` on `UseRestoredTable`, as
/// paths from the template's root.
fn unconditional_table_references(value: &Value, path: String, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(args)) = map.get("Fn::If")
                && args.first() == Some(&json!("UseRestoredTable"))
            {
                return;
            }
            let names_table = map.get("Ref") == Some(&json!("HeraldTable"))
                || map
                    .get("Fn::GetAtt")
                    .and_then(|g| g.get(0))
                    .is_some_and(|r| r == "HeraldTable")
                || map.get("Fn::Sub").is_some_and(|sub| {
                    let text = sub.get(0).unwrap_or(sub);
                    text.as_str().is_some_and(|t| t.contains("${HeraldTable"))
                });
            if names_table {
                found.push(path.clone());
            }
            for (key, inner) in map {
                unconditional_table_references(inner, format!("{path}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                unconditional_table_references(inner, format!("{path}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// The whole-table runbook points the stack at a restored table with one parameter; a
/// function given `HeraldTable` itself (an environment variable, a policy statement)
/// would go on using the lost table, or lose its rights on the new one. So every
/// reference to the table goes through `UseRestoredTable` (a branch adding a plain
/// `!GetAtt HeraldTable.Arn` fails here).
#[test]
fn every_reference_to_the_table_follows_the_restored_table_parameter() {
    let path = herald_tests::herald_local::project_root().join("template.yaml");
    let template = herald_tests::herald_local::template::Template::load(&path).unwrap();
    let mut found = Vec::new();
    for section in ["Globals", "Resources", "Outputs"] {
        unconditional_table_references(&template.body[section], section.to_owned(), &mut found);
    }
    assert_eq!(found, Vec::<String>::new());
    // The check sees the references it lets through.
    let mut conditional = Vec::new();
    unconditional_table_references(
        &json!({"Fn::GetAtt": ["HeraldTable", "Arn"], "Sub": {"Fn::Sub": "${HeraldTable.Arn}/index/gsi1"}}),
        "probe".into(),
        &mut conditional,
    );
    assert_eq!(
        conditional,
        vec!["probe".to_owned(), "probe/Sub".to_owned()]
    );
}
