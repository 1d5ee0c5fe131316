//! The emulator keeps DynamoDB's transaction guarantee: a cancelled TransactWriteItems
//! leaves every item it names as it was. The launcher backs up only those items
//! (moto's copy of whole tables stalled every request once a table was large), so
//! these cases check the rollback it does instead, in the shapes Herald writes.

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
