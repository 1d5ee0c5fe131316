//! The local DynamoDB stream event source (issue 15): reads each shard of the table's
//! stream in order, as Lambda's event source mapping does, and invokes the function
//! with up to `BatchSize` records at a time. With `ReportBatchItemFailures`, a batch
//! item failure names the first record not processed: the shard is read again from
//! it (the records before it are done), after a short backoff, so records are handed
//! over in order and none is skipped; an invocation that times out or answers a
//! failure it cannot match is retried whole, as Lambda does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams as streams;
use futures::future::BoxFuture;
use herald::outbound::stream_event::{
    StreamBatchResponse, StreamData, StreamEvent, StreamRecord, to_image,
};
use streams::types::ShardIteratorType;
use tokio::sync::watch;

use crate::provision::Stack;

pub type StreamHandler =
    Arc<dyn Fn(StreamEvent) -> BoxFuture<'static, StreamBatchResponse> + Send + Sync>;

/// How often an idle shard is read (Lambda reads each shard about four times a second).
const POLL: Duration = Duration::from_millis(250);
/// The wait before a failed batch is handed over again.
const BACKOFF: Duration = Duration::from_millis(500);

/// A function's DynamoDB stream trigger, as the template declares it.
#[derive(Debug, Clone)]
pub struct StreamTrigger {
    pub stream_arn: String,
    pub batch_size: i32,
    pub from_start: bool,
    pub function_timeout_secs: u64,
}

impl Stack {
    /// The function's `DynamoDB` event.
    pub fn stream_trigger(&self, id: &str) -> Result<StreamTrigger> {
        let function = self.properties(id)?;
        let props = function["Events"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, e)| e)
            .find(|e| e["Type"] == "DynamoDB")
            .map(|e| &e["Properties"])
            .ok_or_else(|| anyhow!("{id} has no DynamoDB event"))?;
        Ok(StreamTrigger {
            stream_arn: props["Stream"]
                .as_str()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| anyhow!("{id}'s stream is not provisioned"))?
                .to_owned(),
            batch_size: props["BatchSize"].as_i64().unwrap_or(100) as i32,
            from_start: props["StartingPosition"] == "TRIM_HORIZON",
            function_timeout_secs: self.function_timeout_secs(id)?,
        })
    }
}

pub struct StreamRunner {
    pub streams: streams::Client,
    pub trigger: StreamTrigger,
    pub handler: StreamHandler,
}

impl StreamRunner {
    /// Reads every shard of the stream until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let shards = match self.shards().await {
            Ok(shards) => shards,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the stream cannot be read");
                return;
            }
        };
        let readers: Vec<_> = shards
            .into_iter()
            .map(|shard| {
                let runner = self.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move { runner.read_shard(shard, shutdown).await })
            })
            .collect();
        for reader in readers {
            let _ = reader.await;
        }
    }

    async fn shards(&self) -> Result<Vec<String>> {
        let described = self
            .streams
            .describe_stream()
            .stream_arn(&self.trigger.stream_arn)
            .send()
            .await
            .map_err(|e| anyhow!(streams::error::DisplayErrorContext(e).to_string()))?;
        Ok(described
            .stream_description
            .and_then(|d| d.shards)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| s.shard_id)
            .collect())
    }

    async fn iterator(&self, shard: &str, at: Option<&str>) -> Result<String> {
        let kind = match (at, self.trigger.from_start) {
            (Some(_), _) => ShardIteratorType::AtSequenceNumber,
            (None, true) => ShardIteratorType::TrimHorizon,
            (None, false) => ShardIteratorType::Latest,
        };
        self.streams
            .get_shard_iterator()
            .stream_arn(&self.trigger.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .set_sequence_number(at.map(str::to_owned))
            .send()
            .await
            .map_err(|e| anyhow!(streams::error::DisplayErrorContext(e).to_string()))?
            .shard_iterator
            .context("no shard iterator")
    }

    async fn read_shard(&self, shard: String, mut shutdown: watch::Receiver<bool>) {
        let mut iterator = None;
        while !*shutdown.borrow() {
            let wait = match self.step(&shard, &mut iterator).await {
                Ok(true) => Duration::ZERO,
                Ok(false) => POLL,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "stream read failed");
                    BACKOFF
                }
            };
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One read and, when it found records, one invocation. Whether it found any.
    async fn step(&self, shard: &str, iterator: &mut Option<String>) -> Result<bool> {
        let current = match iterator.take() {
            Some(it) => it,
            None => self.iterator(shard, None).await?,
        };
        let read = self
            .streams
            .get_records()
            .shard_iterator(&current)
            .limit(self.trigger.batch_size)
            .send()
            .await
            .map_err(|e| anyhow!(streams::error::DisplayErrorContext(e).to_string()));
        let read = match read {
            Ok(read) => read,
            Err(e) => {
                *iterator = Some(current);
                return Err(e);
            }
        };
        let records: Vec<StreamRecord> = read
            .records
            .unwrap_or_default()
            .iter()
            .map(|r| self.record(r))
            .collect();
        *iterator = read.next_shard_iterator;
        let Some(first) = records.first().map(|r| r.dynamodb.sequence_number.clone()) else {
            return Ok(false);
        };
        let sequence: Vec<String> = records
            .iter()
            .map(|r| r.dynamodb.sequence_number.clone())
            .collect();
        let timeout = Duration::from_secs(self.trigger.function_timeout_secs);
        let answer = tokio::time::timeout(timeout, (self.handler)(StreamEvent { records })).await;
        let again_from = match answer {
            Err(_) => Some(first),
            Ok(response) => match response.batch_item_failures.first() {
                None => None,
                Some(failure) if sequence.contains(&failure.item_identifier) => {
                    Some(failure.item_identifier.clone())
                }
                Some(_) => Some(first),
            },
        };
        if let Some(at) = again_from {
            *iterator = Some(self.iterator(shard, Some(&at)).await?);
            tokio::time::sleep(BACKOFF).await;
        }
        Ok(true)
    }

    /// A record as Lambda hands it to the function.
    fn record(&self, record: &streams::types::Record) -> StreamRecord {
        let data = record.dynamodb.as_ref();
        let image = |m: Option<&HashMap<String, streams::types::AttributeValue>>| {
            m.map(|m| to_image(&m.iter().map(|(k, v)| (k.clone(), attribute(v))).collect()))
        };
        StreamRecord {
            event_id: record.event_id.clone().unwrap_or_default(),
            event_name: record
                .event_name
                .as_ref()
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
            event_source_arn: Some(self.trigger.stream_arn.clone()),
            dynamodb: StreamData {
                sequence_number: data
                    .and_then(|d| d.sequence_number.clone())
                    .unwrap_or_default(),
                keys: image(data.and_then(|d| d.keys.as_ref())).unwrap_or_default(),
                new_image: image(data.and_then(|d| d.new_image.as_ref())),
                old_image: image(data.and_then(|d| d.old_image.as_ref())),
            },
        }
    }
}

/// The streams SDK's attribute value as the DynamoDB SDK's (the same data model).
fn attribute(value: &streams::types::AttributeValue) -> AttributeValue {
    use streams::types::AttributeValue as V;
    let blob = |b: &streams::primitives::Blob| Blob::new(b.as_ref().to_vec());
    match value {
        V::S(s) => AttributeValue::S(s.clone()),
        V::N(n) => AttributeValue::N(n.clone()),
        V::B(b) => AttributeValue::B(blob(b)),
        V::Bool(b) => AttributeValue::Bool(*b),
        V::Ss(v) => AttributeValue::Ss(v.clone()),
        V::Ns(v) => AttributeValue::Ns(v.clone()),
        V::Bs(v) => AttributeValue::Bs(v.iter().map(blob).collect()),
        V::L(v) => AttributeValue::L(v.iter().map(attribute).collect()),
        V::M(m) => AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), attribute(v))).collect()),
        _ => AttributeValue::Null(true),
    }
}
