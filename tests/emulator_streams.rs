//! The emulator's DynamoDB Streams (issue 15), which the local stream event source
//! reads as Lambda's event source mapping reads a table's stream: every write in
//! order with its old and new images, read again from any sequence number; and
//! nothing for a cancelled transaction, even for the writes moto applied before the
//! failing one and rolled back; one record for an update that creates its item
//! (`infra/local/emulator.py`).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, ConditionCheck, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, StreamSpecification, StreamViewType, TransactWriteItem,
};
use aws_sdk_dynamodbstreams as streams;
use herald_tests::herald_local::{emulator, project_root, random_hex};
use streams::types::{OperationType, ShardIteratorType};

fn item(pk: &str, value: &str) -> std::collections::HashMap<String, AttributeValue> {
    [("pk", pk), ("value", value)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), AttributeValue::S(v.to_owned())))
        .collect()
}

#[tokio::test]
async fn the_stream_has_every_write_in_order_and_nothing_of_a_cancelled_transaction() {
    let endpoint = emulator::endpoint();
    emulator::ensure_for_tests(&project_root(), &endpoint)
        .await
        .expect("the emulator runs");
    let sdk = herald::aws::for_emulator(&endpoint).await;
    let (dynamodb, streams) = (Client::new(&sdk), streams::Client::new(&sdk));
    let table = format!("t-streams-{}", random_hex(8));
    let created = dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("table created");
    let stream = created
        .table_description
        .unwrap()
        .latest_stream_arn
        .unwrap();

    let put = |pk: &str, value: &str| {
        dynamodb
            .put_item()
            .table_name(&table)
            .set_item(Some(item(pk, value)))
            .send()
    };
    put("a", "1").await.unwrap();
    put("a", "2").await.unwrap();
    // A new item, then a condition that fails: cancelled, and the stream says nothing.
    let cancelled = dynamodb
        .transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&table)
                        .set_item(Some(item("b", "1")))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(&table)
                        .key("pk", AttributeValue::S("a".into()))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await;
    assert!(
        cancelled
            .err()
            .and_then(|e| e
                .into_service_error()
                .is_transaction_canceled_exception()
                .then_some(()))
            .is_some()
    );
    put("c", "1").await.unwrap();
    // An update that creates its item is one INSERT with the item as written (moto
    // recorded the bare key first), and one that changes it a MODIFY.
    let update = |pk: &str, value: &str| {
        dynamodb
            .update_item()
            .table_name(&table)
            .key("pk", AttributeValue::S(pk.into()))
            .update_expression("SET #value = :value")
            .expression_attribute_names("#value", "value")
            .expression_attribute_values(":value", AttributeValue::S(value.into()))
            .send()
    };
    update("d", "1").await.unwrap();
    update("d", "2").await.unwrap();

    let shards = streams
        .describe_stream()
        .stream_arn(&stream)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap()
        .shards
        .unwrap();
    assert_eq!(shards.len(), 1);
    let shard = shards[0].shard_id.clone().unwrap();
    let read = |kind: ShardIteratorType, at: Option<String>| {
        let (streams, stream, shard) = (&streams, &stream, &shard);
        async move {
            let iterator = streams
                .get_shard_iterator()
                .stream_arn(stream)
                .shard_id(shard)
                .shard_iterator_type(kind)
                .set_sequence_number(at)
                .send()
                .await
                .unwrap()
                .shard_iterator;
            streams
                .get_records()
                .set_shard_iterator(iterator)
                .send()
                .await
                .unwrap()
                .records
                .unwrap_or_default()
        }
    };
    let records = read(ShardIteratorType::TrimHorizon, None).await;
    let seen: Vec<(OperationType, String, Option<String>, Option<String>)> = records
        .iter()
        .map(|r| {
            let data = r.dynamodb.as_ref().unwrap();
            let value = |image: Option<
                &std::collections::HashMap<String, streams::types::AttributeValue>,
            >| { image.map(|i| i["value"].as_s().unwrap().clone()) };
            (
                r.event_name.clone().unwrap(),
                data.keys.as_ref().unwrap()["pk"].as_s().unwrap().clone(),
                value(data.old_image.as_ref()),
                value(data.new_image.as_ref()),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (OperationType::Insert, "a".into(), None, Some("1".into())),
            (
                OperationType::Modify,
                "a".into(),
                Some("1".into()),
                Some("2".into())
            ),
            (OperationType::Insert, "c".into(), None, Some("1".into())),
            (OperationType::Insert, "d".into(), None, Some("1".into())),
            (
                OperationType::Modify,
                "d".into(),
                Some("1".into()),
                Some("2".into())
            ),
        ]
    );
    // Read again from the second record (a batch item failure's restart point).
    let second = records[1]
        .dynamodb
        .as_ref()
        .unwrap()
        .sequence_number
        .clone();
    let again = read(ShardIteratorType::AtSequenceNumber, second.clone()).await;
    assert_eq!(again.len(), 4);
    assert_eq!(again[0].dynamodb.as_ref().unwrap().sequence_number, second);
    // Read after the created item's record: only the update that followed it.
    let created = records[3]
        .dynamodb
        .as_ref()
        .unwrap()
        .sequence_number
        .clone();
    let after = read(ShardIteratorType::AfterSequenceNumber, created).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].event_name, Some(OperationType::Modify));
}
