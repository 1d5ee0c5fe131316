//! The emulator's own behaviour where the launcher (`infra/local/emulator.py`) changes
//! moto's, tested directly through the SDK. Two parts, one file (longer than most,
//! because both are what every other test relies on the emulator to do):
//!
//! - DynamoDB's transaction guarantee: a cancelled TransactWriteItems leaves every item
//!   it names as it was. The launcher backs up only those items (moto's copy of whole
//!   tables stalled every request once a table was large), so these cases check the
//!   rollback it does instead, in the shapes Herald writes.
//! - Cognito's invitations: AdminCreateUser without a temporary password generates one
//!   (moto leaves the user without any) and keeps the invitation Cognito would email;
//!   a suppressed invitation is neither generated nor kept.
//! - Point-in-time restores (`infra/local/pitr.py`): an item written after the point is
//!   absent from the restore, one deleted after it is present, an update shows its
//!   value at the point; the restorable window advances and bounds every restore; a
//!   restored table is CREATING for a while, then ACTIVE with the source's keys and the
//!   encryption asked for, and without TTL or deletion protection, as in AWS.
//! - Late answers (`infra/local/late_answers.py`): a write applies at once and only its
//!   answer waits.
//! - Connections (opt-in, `HERALD_EMULATOR_KEEP_ALIVE=1`): one stays open from request
//!   to request, as AWS keeps it, whatever the last request's body.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, KeySchemaElement, KeyType,
    Put, ScalarAttributeType, TransactWriteItem, Update,
};
use herald_tests::herald_local::{emulator, project_root, random_hex};

async fn scratch_table() -> (Client, String) {
    let endpoint = emulator::endpoint();
    emulator::ensure_for_tests(&project_root(), &endpoint)
        .await
        .expect("the emulator runs");
    let client = Client::new(&herald::aws::for_emulator(&endpoint).await);
    let table = format!("t-transactions-{}", random_hex(8));
    let mut create = client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, key_type) in [("pk", KeyType::Hash), ("sk", KeyType::Range)] {
        create = create
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(key_type)
                    .build()
                    .unwrap(),
            );
    }
    create.send().await.expect("table created");
    (client, table)
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u32) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

async fn put(client: &Client, table: &str, pk: &str, attributes: &[(&str, AttributeValue)]) {
    let mut request = client
        .put_item()
        .table_name(table)
        .item("pk", s(pk))
        .item("sk", s("X"));
    for (name, value) in attributes {
        request = request.item(*name, value.clone());
    }
    request.send().await.expect("put");
}

async fn get(
    client: &Client,
    table: &str,
    pk: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s("X"))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
}

fn put_new(table: &str, pk: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .item("pk", s(pk))
                .item("sk", s("X"))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .unwrap(),
        )
        .build()
}

fn add_one_and_append(table: &str, pk: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(table)
                .key("pk", s(pk))
                .key("sk", s("X"))
                .update_expression("ADD n :one SET history = list_append(history, :entry)")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":entry", AttributeValue::L(vec![s("later")]))
                .build()
                .unwrap(),
        )
        .build()
}

fn check_n_is(table: &str, pk: &str, value: u32) -> TransactWriteItem {
    TransactWriteItem::builder()
        .condition_check(
            ConditionCheck::builder()
                .table_name(table)
                .key("pk", s(pk))
                .key("sk", s("X"))
                .condition_expression("n = :n")
                .expression_attribute_values(":n", n(value))
                .build()
                .unwrap(),
        )
        .build()
}

async fn cancelled(client: &Client, items: Vec<TransactWriteItem>) -> bool {
    match client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
    {
        Ok(_) => false,
        Err(e) => e
            .as_service_error()
            .is_some_and(|e| e.is_transaction_canceled_exception()),
    }
}

#[tokio::test]
async fn a_cancelled_transaction_leaves_every_item_it_named_as_it_was() {
    let (client, table) = scratch_table().await;
    let counter = [
        ("n", n(1)),
        ("history", AttributeValue::L(vec![s("first")])),
    ];
    put(&client, &table, "counter", &counter).await;
    put(&client, &table, "marker", &[]).await;

    // A new item, then a condition that fails: the new item is not there.
    assert!(
        cancelled(
            &client,
            vec![put_new(&table, "fresh"), check_n_is(&table, "counter", 2)]
        )
        .await
    );
    assert_eq!(get(&client, &table, "fresh").await, None);

    // An update in place, then a put whose condition fails: the update is undone.
    assert!(
        cancelled(
            &client,
            vec![
                add_one_and_append(&table, "counter"),
                put_new(&table, "marker")
            ]
        )
        .await
    );
    // The failing entry first (a chunk counted twice), then the update: undone too.
    assert!(
        cancelled(
            &client,
            vec![
                put_new(&table, "marker"),
                add_one_and_append(&table, "counter")
            ]
        )
        .await
    );
    let item = get(&client, &table, "counter").await.unwrap();
    assert_eq!(item["n"], n(1));
    assert_eq!(item["history"], AttributeValue::L(vec![s("first")]));

    // And a transaction whose conditions hold writes every item.
    assert!(
        !cancelled(
            &client,
            vec![
                put_new(&table, "second-marker"),
                add_one_and_append(&table, "counter")
            ]
        )
        .await
    );
    assert!(get(&client, &table, "second-marker").await.is_some());
    assert_eq!(get(&client, &table, "counter").await.unwrap()["n"], n(2));
}

// ---------------------------------------------------------------- point-in-time restores
// The launcher keeps a journal of item versions (`infra/local/pitr.py`) so a restore
// holds each item as it was at the time asked for, as DynamoDB's does.

use aws_sdk_dynamodb::operation::restore_table_to_point_in_time::RestoreTableToPointInTimeError;
use aws_sdk_dynamodb::primitives::DateTime;
use aws_sdk_dynamodb::types::{
    PointInTimeRecoverySpecification, SseSpecification, SseType, TableStatus,
};
use std::time::Duration;

async fn recoverable_table() -> (Client, String) {
    let (client, table) = scratch_table().await;
    client
        .update_continuous_backups()
        .table_name(&table)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("recovery switched on");
    (client, table)
}

/// The restorable window as the table describes it now: (earliest, latest).
async fn window(client: &Client, table: &str) -> (DateTime, DateTime) {
    let described = client
        .describe_continuous_backups()
        .table_name(table)
        .send()
        .await
        .expect("described")
        .continuous_backups_description
        .and_then(|d| d.point_in_time_recovery_description)
        .expect("a recovery description");
    (
        described.earliest_restorable_date_time.expect("earliest"),
        described.latest_restorable_date_time.expect("latest"),
    )
}

fn now() -> DateTime {
    DateTime::from(std::time::SystemTime::now())
}

/// Waits (no timing asserted) until `point` is restorable.
async fn restorable(client: &Client, table: &str, point: DateTime) {
    for _ in 0..100 {
        if window(client, table).await.1.to_millis().unwrap() >= point.to_millis().unwrap() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{point} never became restorable");
}

/// The error of a restore of `source` into `target` at `at` (the latest restorable
/// time when `None`) that must be refused.
async fn refused_restore(
    client: &Client,
    source: &str,
    target: &str,
    at: Option<DateTime>,
) -> RestoreTableToPointInTimeError {
    client
        .restore_table_to_point_in_time()
        .source_table_name(source)
        .target_table_name(target)
        .set_restore_date_time(at)
        .set_use_latest_restorable_time(at.is_none().then_some(true))
        .send()
        .await
        .expect_err("the restore must be refused")
        .into_service_error()
}

async fn table_status(client: &Client, table: &str) -> TableStatus {
    client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("described")
        .table
        .and_then(|t| t.table_status)
        .expect("a status")
}

async fn pks(client: &Client, table: &str) -> Vec<String> {
    let mut pks: Vec<String> = client
        .scan()
        .table_name(table)
        .send()
        .await
        .expect("scan")
        .items()
        .iter()
        .map(|i| i["pk"].as_s().unwrap().clone())
        .collect();
    pks.sort();
    pks
}

#[tokio::test]
async fn a_restore_holds_each_item_as_it_was_at_the_point_in_time() {
    let (client, table) = recoverable_table().await;
    put(&client, &table, "kept", &[]).await;
    put(&client, &table, "deleted-later", &[]).await;
    put(&client, &table, "updated-later", &[("n", n(1))]).await;
    // A cancelled transaction before the point leaves no version behind.
    assert!(
        cancelled(
            &client,
            vec![put_new(&table, "never"), put_new(&table, "kept")]
        )
        .await
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let point = now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    put(&client, &table, "written-later", &[]).await;
    client
        .delete_item()
        .table_name(&table)
        .key("pk", s("deleted-later"))
        .key("sk", s("X"))
        .send()
        .await
        .expect("deleted");
    put(&client, &table, "updated-later", &[("n", n(2))]).await;

    restorable(&client, &table, point).await;
    let target = format!("{table}-restored");
    let restored = client
        .restore_table_to_point_in_time()
        .source_table_name(&table)
        .target_table_name(&target)
        .restore_date_time(point)
        .send()
        .await
        .expect("restore started")
        .table_description
        .unwrap();
    assert_eq!(restored.table_status, Some(TableStatus::Creating));
    let summary = restored.restore_summary.unwrap();
    assert!(summary.restore_in_progress);
    // Epoch seconds with a fraction on the wire: equal to the millisecond's rounding.
    let asked = point.to_millis().unwrap();
    assert!((summary.restore_date_time.to_millis().unwrap() - asked).abs() <= 1);

    // Not ACTIVE yet: no reads, and no deleting it either.
    let read = client.scan().table_name(&target).send().await.unwrap_err();
    assert!(
        read.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    let delete = client
        .delete_table()
        .table_name(&target)
        .send()
        .await
        .unwrap_err();
    assert!(
        delete
            .as_service_error()
            .unwrap()
            .is_resource_in_use_exception()
    );

    for _ in 0..100 {
        if table_status(&client, &target).await == TableStatus::Active {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(table_status(&client, &target).await, TableStatus::Active);
    assert_eq!(
        pks(&client, &target).await,
        ["deleted-later", "kept", "updated-later"]
    );
    assert_eq!(
        get(&client, &target, "updated-later").await.unwrap()["n"],
        n(1)
    );
    // The source is as it is now.
    assert_eq!(
        pks(&client, &table).await,
        ["kept", "updated-later", "written-later"]
    );
    assert_eq!(
        get(&client, &table, "updated-later").await.unwrap()["n"],
        n(2)
    );
}

#[tokio::test]
async fn the_restorable_window_advances_and_bounds_every_restore() {
    let (client, table) = recoverable_table().await;
    // The latest restorable time trails now; once it has passed the earliest, it moves.
    // (Waiting for a point read from this process's clock is not enough: the SDK keeps
    // milliseconds, so a point taken within the millisecond recovery was switched on
    // counts as restorable while the latest still sits on the earliest.)
    let (earliest, _) = window(&client, &table).await;
    restorable(
        &client,
        &table,
        DateTime::from_millis(earliest.to_millis().unwrap() + 1),
    )
    .await;
    let (_, first_latest) = window(&client, &table).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (same_earliest, later_latest) = window(&client, &table).await;
    assert_eq!(
        earliest, same_earliest,
        "recovery has been on for less than the window"
    );
    assert!(later_latest.to_millis().unwrap() > first_latest.to_millis().unwrap());

    let outside = [
        DateTime::from_millis(earliest.to_millis().unwrap() - 60_000),
        DateTime::from_millis(now().to_millis().unwrap() + 60_000),
    ];
    let never = format!("{table}-never");
    for at in outside {
        let refused = refused_restore(&client, &table, &never, Some(at)).await;
        assert!(
            refused.is_invalid_restore_time_exception(),
            "{at}: {refused:?}"
        );
    }
    // Nothing to restore into a name that is taken, or from a table without recovery.
    let (_, taken) = scratch_table().await;
    let refused = refused_restore(&client, &table, &taken, None).await;
    assert!(refused.is_table_already_exists_exception(), "{refused:?}");
    let refused = refused_restore(&client, &taken, &format!("{taken}-never"), None).await;
    assert!(
        refused.is_point_in_time_recovery_unavailable_exception(),
        "{refused:?}"
    );
    let tables = client
        .list_tables()
        .send()
        .await
        .unwrap()
        .table_names
        .unwrap_or_default();
    assert!(!tables.iter().any(|t| t.ends_with("-never")));
}

#[tokio::test]
async fn a_restored_table_has_the_keys_and_the_encryption_asked_for_but_no_ttl_or_protection() {
    let (client, table) = recoverable_table().await;
    client
        .update_time_to_live()
        .table_name(&table)
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let key = "arn:aws:kms:us-east-1:123456789012:key/restores";
    let target = format!("{table}-encrypted");
    client
        .restore_table_to_point_in_time()
        .source_table_name(&table)
        .target_table_name(&target)
        .use_latest_restorable_time(true)
        .sse_specification_override(
            SseSpecification::builder()
                .enabled(true)
                .sse_type(SseType::Kms)
                .kms_master_key_id(key)
                .build(),
        )
        .send()
        .await
        .expect("restore started");
    let described = client
        .describe_table()
        .table_name(&target)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let names = |t: &aws_sdk_dynamodb::types::TableDescription| {
        t.key_schema()
            .iter()
            .map(|k| (k.attribute_name.clone(), k.key_type.clone()))
            .collect::<Vec<_>>()
    };
    let source = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(names(&described), names(&source));
    assert_eq!(
        described
            .sse_description
            .and_then(|d| d.kms_master_key_arn)
            .as_deref(),
        Some(key)
    );
    assert_eq!(described.deletion_protection_enabled, Some(false));
    for _ in 0..100 {
        if table_status(&client, &target).await == TableStatus::Active {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ttl = client
        .describe_time_to_live()
        .table_name(&target)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .and_then(|d| d.time_to_live_status);
    assert_eq!(
        ttl,
        Some(aws_sdk_dynamodb::types::TimeToLiveStatus::Disabled)
    );
}

// ---------------------------------------------------------------- Cognito invitations

mod invitations {
    use aws_sdk_cognitoidentityprovider::Client;
    use aws_sdk_cognitoidentityprovider::types::{
        AttributeType, AuthFlowType, ChallengeNameType, ExplicitAuthFlowsType, MessageActionType,
    };
    use herald_tests::herald_local::{emulator, project_root, random_hex};
    use serde_json::Value;

    async fn kept(endpoint: &str, email: &str, pool: &str) -> Vec<Value> {
        let url = format!("{endpoint}/_herald/cognito/invitations?email={email}");
        let all: Vec<Value> = reqwest::get(url).await.unwrap().json().await.unwrap();
        all.into_iter()
            .filter(|i| i["user_pool_id"] == pool)
            .collect()
    }

    #[tokio::test]
    async fn an_invitation_without_a_password_gets_one_that_signs_in_once() {
        let endpoint = emulator::endpoint();
        emulator::ensure_for_tests(&project_root(), &endpoint)
            .await
            .expect("the emulator runs");
        let client = Client::new(&herald::aws::for_emulator(&endpoint).await);
        let pool = client
            .create_user_pool()
            .pool_name(format!("t-invitations-{}", random_hex(8)))
            .send()
            .await
            .unwrap()
            .user_pool
            .unwrap()
            .id
            .unwrap();
        let app = client
            .create_user_pool_client()
            .user_pool_id(&pool)
            .client_name("app")
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
            .send()
            .await
            .unwrap()
            .user_pool_client
            .unwrap()
            .client_id
            .unwrap();
        let email_of = |name: &str| format!("{name}-{}@invited.example", random_hex(4));
        let (invited, suppressed) = (email_of("ada"), email_of("bob"));
        for (email, action) in [
            (&invited, None),
            (&suppressed, Some(MessageActionType::Suppress)),
        ] {
            client
                .admin_create_user()
                .user_pool_id(&pool)
                .username(email)
                .set_message_action(action)
                .user_attributes(
                    AttributeType::builder()
                        .name("email")
                        .value(email)
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
        }
        assert!(kept(&endpoint, &suppressed, &pool).await.is_empty());
        let found = kept(&endpoint, &invited.to_uppercase(), &pool).await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0]["username"], invited.as_str());
        let password = found[0]["temporary_password"].as_str().unwrap();
        for class in [char::is_uppercase, char::is_lowercase, char::is_numeric] {
            assert!(password.chars().any(class), "{password}");
        }
        // The temporary password signs in, and asks for a new one first.
        let answer = client
            .initiate_auth()
            .client_id(&app)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", &invited)
            .auth_parameters("PASSWORD", password)
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.challenge_name,
            Some(ChallengeNameType::NewPasswordRequired)
        );
    }
}

/// A late answer (`infra/local/late_answers.py`): the write applies at once and only
/// its answer waits, so a client that gave up on it finds the write done, other
/// requests to the table are answered meanwhile, and the fault is used up after its
/// count.
#[tokio::test]
async fn a_late_answer_comes_after_its_write_applied_and_holds_up_nothing_else() {
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    use herald_tests::herald_local::emulator::LateAnswers;

    let (client, table) = scratch_table().await;
    let endpoint = emulator::endpoint();
    let late = LateAnswers {
        table: &table,
        operation: "UpdateItem",
        contains: "late-marker",
        seconds: 2.0,
        count: 1,
    };
    emulator::answer_late(&endpoint, &late).await.unwrap();
    let impatient = Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&herald::aws::for_emulator(&endpoint).await)
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(std::time::Duration::from_millis(500))
                    .build(),
            )
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    let update = || {
        impatient
            .update_item()
            .table_name(&table)
            .key("pk", AttributeValue::S("late".into()))
            .key("sk", AttributeValue::S("ITEM".into()))
            .update_expression("SET v = :v")
            .expression_attribute_values(":v", AttributeValue::S("late-marker".into()))
            .send()
    };

    assert!(
        update().await.is_err(),
        "the answer missed the attempt timeout"
    );
    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("late".into()))
        .key("sk", AttributeValue::S("ITEM".into()))
        .send()
        .await
        .expect("answered while the late answer waits")
        .item
        .expect("the write applied before its answer");
    assert_eq!(item["v"], AttributeValue::S("late-marker".into()));
    assert!(update().await.is_ok(), "the fault was used up");

    // A transaction is on the tables its writes name.
    let late = LateAnswers {
        operation: "TransactWriteItems",
        ..late
    };
    emulator::answer_late(&endpoint, &late).await.unwrap();
    let transact = |item: &str| {
        let write = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&table)
            .key("pk", AttributeValue::S(item.into()))
            .key("sk", AttributeValue::S("ITEM".into()))
            .update_expression("SET v = :v")
            .expression_attribute_values(":v", AttributeValue::S("late-marker".into()))
            .build()
            .unwrap();
        impatient
            .transact_write_items()
            .transact_items(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .update(write)
                    .build(),
            )
            .send()
    };
    assert!(
        transact("late-transaction").await.is_err(),
        "the answer missed the attempt timeout"
    );
    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("late-transaction".into()))
        .key("sk", AttributeValue::S("ITEM".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the transaction applied before its answer");
    assert_eq!(item["v"], AttributeValue::S("late-marker".into()));
    assert!(
        transact("late-transaction").await.is_ok(),
        "the fault was used up"
    );
}

/// One request on an open connection; the answer's status line, whether it says it
/// closes the connection, and its body.
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    target: &str,
    body: &str,
) -> (String, bool, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: {target}\r\n\
         Content-Type: application/x-amz-json-1.0\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20261128/us-east-1/dynamodb/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the emulator closed the connection mid-answer");
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        let Some((head, rest)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                })
                .map(|(_, v)| v.trim().to_owned())
        };
        let length: usize = header("content-length").expect("a length").parse().unwrap();
        if rest.len() >= length {
            let closes = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
            let status = head.lines().next().unwrap().to_owned();
            return (status, closes, rest[..length].to_owned());
        }
    }
}

/// AWS keeps a connection open between requests and the SDK reuses it; werkzeug's
/// server closed each after one answer. The launcher keeps it open, and a body the
/// application does not read (ListTables ignores unknown members' bytes only after
/// parsing them; an unknown target reads nothing) does not spill into the next
/// request.
#[tokio::test]
async fn a_connection_stays_open_for_the_next_request_whatever_the_last_body() {
    // An emulator of its own: keep-alive is opt-in (`HERALD_EMULATOR_KEEP_ALIVE`).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let root = project_root();
    let venv = std::env::var("HERALD_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv"));
    let _emulator = tokio::process::Command::new(venv.join("bin/python"))
        .arg(root.join("infra/local/emulator.py"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("HERALD_EMULATOR_KEEP_ALIVE", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the emulator starts");
    let mut up = false;
    for _ in 0..300 {
        if emulator::is_up(&endpoint).await {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "the emulator answers at {endpoint}");
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let padding = "x".repeat(100_000);
    let requests = [
        ("DynamoDB_20120810.ListTables", "{}".to_owned()),
        // A body no handler reads: the next request must still start where it should.
        (
            "NoSuchService.NoSuchAction",
            format!("{{\"padding\": \"{padding}\"}}"),
        ),
        ("DynamoDB_20120810.ListTables", r#"{"Limit": 1}"#.to_owned()),
        ("DynamoDB_20120810.ListTables", "{}".to_owned()),
    ];
    for (i, (target, body)) in requests.iter().enumerate() {
        let (status, closes, answer) = exchange(&mut stream, target, body).await;
        assert!(
            !closes,
            "request {i} ({target}) closed the connection: {status}"
        );
        if target.starts_with("DynamoDB") {
            assert_eq!(status, "HTTP/1.1 200 OK", "request {i}: {answer}");
            assert!(answer.contains("TableNames"), "request {i}: {answer}");
        }
    }
}
