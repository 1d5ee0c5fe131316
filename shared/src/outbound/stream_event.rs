//! The event Lambda hands a function for a DynamoDB stream (the event source mapping's
//! batch of records, in order within its shard) and the answer that reports a partial
//! batch failure: the sequence number of the first record not processed, from which
//! Lambda hands the shard's records over again. Images are DynamoDB JSON
//! (`{"S": "..."}`), read into the SDK's `AttributeValue` so the repositories' item
//! mappings read them.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::item::Item;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventID", default)]
    pub event_id: String,
    /// `INSERT`, `MODIFY` or `REMOVE`.
    #[serde(rename = "eventName", default)]
    pub event_name: String,
    #[serde(
        rename = "eventSourceARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_source_arn: Option<String>,
    pub dynamodb: StreamData,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamData {
    #[serde(rename = "SequenceNumber", default)]
    pub sequence_number: String,
    #[serde(rename = "Keys", default)]
    pub keys: HashMap<String, Value>,
    #[serde(rename = "NewImage", default, skip_serializing_if = "Option::is_none")]
    pub new_image: Option<HashMap<String, Value>>,
    #[serde(rename = "OldImage", default, skip_serializing_if = "Option::is_none")]
    pub old_image: Option<HashMap<String, Value>>,
}

/// The answer: records from the first one listed on are handed over again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamBatchResponse {
    #[serde(rename = "batchItemFailures", default)]
    pub batch_item_failures: Vec<StreamItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

impl StreamBatchResponse {
    pub fn failed_from(sequence_number: &str) -> Self {
        Self {
            batch_item_failures: vec![StreamItemFailure {
                item_identifier: sequence_number.to_owned(),
            }],
        }
    }
}

/// A DynamoDB JSON image as an item; `None` when any value is not DynamoDB JSON.
pub fn image(image: &HashMap<String, Value>) -> Option<Item> {
    image
        .iter()
        .map(|(k, v)| Some((k.clone(), attribute(v)?)))
        .collect()
}

/// An item as a DynamoDB JSON image (what the stream carries).
pub fn to_image(item: &Item) -> HashMap<String, Value> {
    item.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

fn attribute(value: &Value) -> Option<AttributeValue> {
    let (kind, inner) = value.as_object()?.iter().next()?;
    let strings = || -> Option<Vec<String>> {
        inner
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let blob = |v: &Value| Some(Blob::new(STANDARD.decode(v.as_str()?).ok()?));
    Some(match kind.as_str() {
        "S" => AttributeValue::S(inner.as_str()?.to_owned()),
        "N" => AttributeValue::N(inner.as_str()?.to_owned()),
        "B" => AttributeValue::B(blob(inner)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool()?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(strings()?),
        "NS" => AttributeValue::Ns(strings()?),
        "BS" => AttributeValue::Bs(inner.as_array()?.iter().map(blob).collect::<Option<_>>()?),
        "L" => AttributeValue::L(
            inner
                .as_array()?
                .iter()
                .map(attribute)
                .collect::<Option<_>>()?,
        ),
        "M" => AttributeValue::M(image(
            &inner
                .as_object()?
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )?),
        _ => return None,
    })
}

fn to_json(value: &AttributeValue) -> Value {
    let blob = |b: &Blob| Value::String(STANDARD.encode(b.as_ref()));
    let (kind, inner) = match value {
        AttributeValue::S(s) => ("S", Value::String(s.clone())),
        AttributeValue::N(n) => ("N", Value::String(n.clone())),
        AttributeValue::B(b) => ("B", blob(b)),
        AttributeValue::Bool(b) => ("BOOL", Value::Bool(*b)),
        AttributeValue::Ss(v) => ("SS", v.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(v) => ("NS", v.iter().cloned().map(Value::String).collect()),
        AttributeValue::Bs(v) => ("BS", v.iter().map(blob).collect()),
        AttributeValue::L(v) => ("L", v.iter().map(to_json).collect()),
        AttributeValue::M(m) => ("M", serde_json::to_value(to_image(m)).unwrap_or_default()),
        _ => ("NULL", Value::Bool(true)),
    };
    serde_json::json!({ kind: inner })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_read_every_attribute_type_and_round_trip() {
        let raw = serde_json::json!({
            "pk": {"S": "TENANT#acme#MSG#x.1"},
            "n": {"N": "12"},
            "b": {"B": "AAE="},
            "ok": {"BOOL": true},
            "none": {"NULL": true},
            "ss": {"SS": ["a", "b"]},
            "ns": {"NS": ["1"]},
            "bs": {"BS": ["AAE="]},
            "l": {"L": [{"S": "x"}, {"M": {"at": {"S": "t"}}}]},
        });
        let raw: HashMap<String, Value> = serde_json::from_value(raw).unwrap();
        let item = image(&raw).unwrap();
        assert_eq!(item["n"], AttributeValue::N("12".into()));
        assert_eq!(item["b"], AttributeValue::B(Blob::new(vec![0, 1])));
        assert_eq!(to_image(&item), raw);
        let bad: HashMap<String, Value> =
            serde_json::from_value(serde_json::json!({"x": {"Q": "1"}})).unwrap();
        assert_eq!(image(&bad), None);
    }

    #[test]
    fn a_partial_failure_names_the_first_record_not_processed() {
        let answer = serde_json::to_value(StreamBatchResponse::failed_from("42")).unwrap();
        assert_eq!(
            answer,
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "42"}]})
        );
    }
}
