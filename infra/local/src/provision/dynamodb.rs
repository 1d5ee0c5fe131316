//! DynamoDB tables from `AWS::DynamoDB::Table`: keys, indexes, billing, deletion
//! protection, TTL, point-in-time recovery and the change stream as the template
//! declares them.

use std::collections::HashMap;

use anyhow::{Result, anyhow};
use aws_sdk_dynamodb as dynamodb;
use serde_json::Value;

use super::str_list;
use crate::template::Physical;

fn key_schema(value: &Value) -> Result<Vec<dynamodb::types::KeySchemaElement>> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            Ok(dynamodb::types::KeySchemaElement::builder()
                .attribute_name(k["AttributeName"].as_str().unwrap_or_default())
                .key_type(dynamodb::types::KeyType::from(
                    k["KeyType"].as_str().unwrap_or_default(),
                ))
                .build()?)
        })
        .collect()
}

pub(super) async fn create_table(
    client: &dynamodb::Client,
    name: &str,
    props: &Value,
) -> Result<Physical> {
    let attributes = props["AttributeDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            Ok(dynamodb::types::AttributeDefinition::builder()
                .attribute_name(a["AttributeName"].as_str().unwrap_or_default())
                .attribute_type(dynamodb::types::ScalarAttributeType::from(
                    a["AttributeType"].as_str().unwrap_or_default(),
                ))
                .build()?)
        })
        .collect::<Result<Vec<_>>>()?;
    let indexes = props["GlobalSecondaryIndexes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let projection = dynamodb::types::Projection::builder()
                .projection_type(dynamodb::types::ProjectionType::from(
                    i["Projection"]["ProjectionType"].as_str().unwrap_or("ALL"),
                ))
                .set_non_key_attributes(i["Projection"].get("NonKeyAttributes").map(str_list))
                .build();
            Ok(dynamodb::types::GlobalSecondaryIndex::builder()
                .index_name(i["IndexName"].as_str().unwrap_or_default())
                .set_key_schema(Some(key_schema(&i["KeySchema"])?))
                .projection(projection)
                .build()?)
        })
        .collect::<Result<Vec<_>>>()?;
    let created = client
        .create_table()
        .table_name(name)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_schema(&props["KeySchema"])?))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .billing_mode(dynamodb::types::BillingMode::from(
            props["BillingMode"].as_str().unwrap_or("PAY_PER_REQUEST"),
        ))
        .deletion_protection_enabled(
            props["DeletionProtectionEnabled"]
                .as_bool()
                .unwrap_or(false),
        )
        .set_stream_specification(stream_specification(props)?)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(e) => {
            return Err(dynamodb::error::DisplayErrorContext(e).to_string())
                .map_err(|e| anyhow!(e));
        }
    }
    if let Some(ttl) = props.get("TimeToLiveSpecification")
        && ttl["Enabled"].as_bool() == Some(true)
    {
        let spec = dynamodb::types::TimeToLiveSpecification::builder()
            .attribute_name(ttl["AttributeName"].as_str().unwrap_or_default())
            .enabled(true)
            .build()?;
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| anyhow!(dynamodb::error::DisplayErrorContext(e).to_string()))?;
    }
    if props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool()
        == Some(true)
    {
        let spec = dynamodb::types::PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(true)
            .build()?;
        client
            .update_continuous_backups()
            .table_name(name)
            .point_in_time_recovery_specification(spec)
            .send()
            .await
            .map_err(|e| anyhow!(dynamodb::error::DisplayErrorContext(e).to_string()))?;
    }
    let table = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(|e| anyhow!(dynamodb::error::DisplayErrorContext(e).to_string()))?
        .table
        .ok_or_else(|| anyhow!("table {name} not described"))?;
    let mut attributes = HashMap::from([("Arn".to_owned(), table.table_arn.unwrap_or_default())]);
    if let Some(stream) = table.latest_stream_arn {
        attributes.insert("StreamArn".to_owned(), stream);
    }
    Ok(Physical {
        reference: name.to_owned(),
        attributes,
    })
}

/// The table's stream (issue 15), as `StreamSpecification` declares it.
fn stream_specification(props: &Value) -> Result<Option<dynamodb::types::StreamSpecification>> {
    let Some(view) = props["StreamSpecification"]["StreamViewType"].as_str() else {
        return Ok(None);
    };
    Ok(Some(
        dynamodb::types::StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(dynamodb::types::StreamViewType::from(view))
            .build()?,
    ))
}
