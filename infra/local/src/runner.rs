//! The local SQS event source: polls a queue and invokes the function with Lambda's
//! batch size, concurrency cap and partial-batch semantics. Records the function
//! reports as failed (or the whole batch, if the answer is unusable) stay on the queue
//! until their visibility timeout ends, so redelivery and the redrive to the DLQ happen
//! as in AWS.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs as sqs;
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::stack::QueueTrigger;
use crate::template::REGION;

/// How long a running poller's receive waits for a message (SQS long polling: one
/// arriving meanwhile is answered at once): 20 s, SQS's longest and what Lambda's
/// pollers ask for. At one second the idle pollers of every stack in a test run were a
/// large share of the emulator's requests (eleven or more a second per stack).
const IDLE_WAIT: Duration = Duration::from_secs(20);

pub type SqsHandler =
    Arc<dyn Fn(SqsEvent, Instant) -> BoxFuture<'static, SqsBatchResponse> + Send + Sync>;

pub struct QueueRunner {
    pub sqs: sqs::Client,
    pub trigger: QueueTrigger,
    pub handler: SqsHandler,
    /// Invocations stopped at the function timeout; each may leave claims that later
    /// turn `unknown`, so tests that expect none can say why when they find some.
    pub timed_out: AtomicUsize,
    /// While set, the pollers receive nothing (the function is "down"): messages
    /// wait on the queue, as they do in SQS while a function is throttled or broken.
    pub paused: std::sync::atomic::AtomicBool,
}

impl QueueRunner {
    /// Runs `workers` pollers, each invoking the handler, until `shutdown` turns true.
    pub async fn run(runner: Arc<Self>, workers: usize, shutdown: watch::Receiver<bool>) {
        let workers: Vec<_> = (0..workers)
            .map(|_| {
                let runner = runner.clone();
                let mut shutdown = shutdown.clone();
                tokio::spawn(async move {
                    while !*shutdown.borrow() {
                        if runner.paused.load(Ordering::Relaxed) {
                            tokio::select! {
                                _ = shutdown.changed() => break,
                                _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                            }
                        }
                        tokio::select! {
                            _ = shutdown.changed() => break,
                            result = runner.poll_waiting(IDLE_WAIT) => {
                                if let Err(e) = result {
                                    tracing::warn!(error = %e, "queue poll failed");
                                    tokio::time::sleep(Duration::from_millis(500)).await;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            let _ = worker.await;
        }
    }

    /// Receives up to one batch, as the event source would hand it to the function,
    /// waiting at most a second for one.
    pub async fn receive(&self) -> Result<SqsEvent, String> {
        self.receive_waiting(Duration::from_secs(1)).await
    }

    async fn receive_waiting(&self, wait: Duration) -> Result<SqsEvent, String> {
        // The SDK's attempt timeout (3 s) is for calls that should answer at once; a
        // long poll answers when a message comes or the wait ends.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(wait + Duration::from_secs(3))
            .operation_timeout(wait + Duration::from_secs(8))
            .build();
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.trigger.queue_url)
            .max_number_of_messages(self.trigger.batch_size.min(10))
            .wait_time_seconds(wait.as_secs() as i32)
            .message_system_attribute_names(sqs::types::MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .customize()
            .config_override(sqs::config::Builder::default().timeout_config(timeouts))
            .send()
            .await
            .map_err(|e| sqs::error::DisplayErrorContext(e).to_string())?;
        let mut event = SqsEvent::default();
        event.records = received
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| self.record(m))
            .collect();
        Ok(event)
    }

    /// Makes received records visible again at once.
    async fn hand_back(&self, receipts: &HashMap<String, String>) -> Result<(), String> {
        let entries: Vec<_> = receipts
            .values()
            .enumerate()
            .map(|(i, receipt)| {
                sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .build()
                    .expect("id and receipt are set")
            })
            .collect();
        self.sqs
            .change_message_visibility_batch()
            .queue_url(&self.trigger.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sqs::error::DisplayErrorContext(e).to_string())
    }

    /// One receive → invoke → delete cycle, waiting at most a second for a record.
    /// Returns how many records were received.
    pub async fn poll_once(&self) -> Result<usize, String> {
        self.poll_waiting(Duration::from_secs(1)).await
    }

    async fn poll_waiting(&self, wait: Duration) -> Result<usize, String> {
        let event = self.receive_waiting(wait).await?;
        if event.records.is_empty() {
            return Ok(0);
        }
        let receipts: HashMap<String, String> = event
            .records
            .iter()
            .filter_map(|m| Some((m.message_id.clone()?, m.receipt_handle.clone()?)))
            .collect();
        let count = event.records.len();
        if self.paused.load(Ordering::Relaxed) {
            // Paused while this receive waited: the function is down, so the records
            // go back to the queue untouched.
            self.hand_back(&receipts).await?;
            return Ok(0);
        }
        let timeout = Duration::from_secs(self.trigger.function_timeout_secs);
        // Lambda stops the invocation at its timeout; every record then comes back
        // after its visibility timeout, as for a failed batch.
        let Ok(response) =
            tokio::time::timeout(timeout, (self.handler)(event, Instant::now() + timeout)).await
        else {
            self.timed_out.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                records = count,
                "invocation timed out; the batch will be redelivered"
            );
            return Ok(count);
        };

        let failed: HashSet<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        // Lambda treats a failure it cannot match to a record as a failed batch.
        let whole_batch_failed = !self.trigger.report_batch_item_failures && !failed.is_empty()
            || failed.iter().any(|id| !receipts.contains_key(id));
        if whole_batch_failed {
            return Ok(count);
        }
        let entries: Vec<_> = receipts
            .iter()
            .filter(|(id, _)| !failed.contains(*id))
            .enumerate()
            .map(|(i, (_, receipt))| {
                sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .expect("id and receipt are set")
            })
            .collect();
        if !entries.is_empty() {
            self.sqs
                .delete_message_batch()
                .queue_url(&self.trigger.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sqs::error::DisplayErrorContext(e).to_string())?;
        }
        Ok(count)
    }

    fn record(&self, message: sqs::types::Message) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = message.message_id;
        record.receipt_handle = message.receipt_handle;
        record.body = message.body;
        record.md5_of_body = message.md5_of_body;
        record.md5_of_message_attributes = message.md5_of_message_attributes;
        record.attributes = message
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), v))
            .collect();
        record.message_attributes = message
            .message_attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let mut attribute = SqsMessageAttribute::default();
                attribute.string_value = v.string_value;
                attribute.data_type = Some(v.data_type);
                (k, attribute)
            })
            .collect();
        record.event_source = Some("aws:sqs".into());
        record.event_source_arn = Some(self.trigger.queue_arn.clone());
        record.aws_region = Some(REGION.into());
        record
    }
}
