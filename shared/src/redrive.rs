//! Moving dead letters back to their source queue.
//!
//! The emulator implements no `StartMessageMoveTask`, and that API could neither count
//! redrives per message nor leave poison behind, so the redriver moves messages itself:
//! receive from the DLQ, send to the source queue (same body and attributes, plus
//! `herald_redrives` incremented), then delete from the DLQ. A message whose counter has
//! reached the limit is parked: it stays in the DLQ, where the depth alarm keeps firing
//! until an operator looks at it.
//!
//! One room on purpose: receiving, moving, parking and the report are one loop with one
//! budget; about 80 of its lines are the tests at the bottom.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName, MessageSystemAttributeNameForSends,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// The message attribute counting how often a message was moved back.
pub const REDRIVES_ATTRIBUTE: &str = "herald_redrives";
/// Set by whoever parked a record on purpose (the sender's poison path).
const REASON_ATTRIBUTE: &str = "herald_reason";
/// SQS allows at most ten message attributes.
const MAX_ATTRIBUTES: usize = 10;
/// Long polling asks every SQS server, where a short poll may answer empty while
/// messages wait; an empty long poll is what ends a run.
const RECEIVE_WAIT_SECONDS: i32 = 1;
/// Held messages stay hidden a little past the run's deadline, so a run that dies
/// releases them soon after instead of after the queue's own visibility timeout.
const VISIBILITY_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedriveLimits {
    /// Messages sent to the source queue per second, at most.
    pub rate_per_second: f64,
    /// Messages one run tries to move (moved plus failed); parked ones do not count,
    /// since they cost no send.
    pub max_messages: usize,
    /// A message already moved back this many times is parked instead.
    pub redrive_limit: u32,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// The DLQ had nothing this run had not already looked at.
    Drained,
    /// `max_messages` were attempted.
    MaxMessages,
    /// The deadline would have passed before the next send.
    OutOfTime,
    /// Receiving from the DLQ failed; logged with its cause.
    ReceiveFailed,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stopped::Drained => "drained",
            Stopped::MaxMessages => "max_messages",
            Stopped::OutOfTime => "out_of_time",
            Stopped::ReceiveFailed => "receive_failed",
        })
    }
}

/// What one run did. Every message it received is in exactly one of the counts, or
/// was left untouched in the DLQ because the run stopped first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RedriveReport {
    /// Sent to the source queue and deleted from the DLQ.
    pub moved: usize,
    /// At the redrive limit (or unable to carry the counter): left in the DLQ.
    pub parked: usize,
    /// A send or a delete failed; the message is still in the DLQ.
    pub failed: usize,
    /// Its body was already moved by this run: it came straight back (the sender
    /// parks a poison chunk at once) or is a duplicate. Left for the next run, so the
    /// redrive limit counts runs, not one run's loop.
    pub deferred: usize,
    pub stopped: Stopped,
}

impl RedriveReport {
    /// Whether anything needs an operator: failures, or a run that could not read.
    pub fn is_clean(&self) -> bool {
        self.failed == 0 && self.stopped != Stopped::ReceiveFailed
    }
}

/// What to do with one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Send it back carrying this redrive count.
    Move {
        redrives: u32,
    },
    Park {
        reason: String,
    },
}

fn judge(attributes: &HashMap<String, MessageAttributeValue>, limit: u32) -> Verdict {
    let count = attributes
        .get(REDRIVES_ATTRIBUTE)
        .map(|v| v.string_value().unwrap_or_default());
    let done = match count {
        None => 0,
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(n) => n,
            // A counter we cannot read could hide a message that loops for ever.
            Err(_) => {
                return Verdict::Park {
                    reason: format!("{REDRIVES_ATTRIBUTE} is not a count: {raw:?}"),
                };
            }
        },
    };
    if done >= limit {
        let why = attributes
            .get(REASON_ATTRIBUTE)
            .and_then(|v| v.string_value())
            .unwrap_or("no reason recorded: it used up its receives on the source queue");
        return Verdict::Park {
            reason: format!("redriven {done} times (limit {limit}); last failure: {why}"),
        };
    }
    if count.is_none() && attributes.len() >= MAX_ATTRIBUTES {
        return Verdict::Park {
            reason: format!(
                "it carries {MAX_ATTRIBUTES} attributes already, so {REDRIVES_ATTRIBUTE} cannot be added"
            ),
        };
    }
    Verdict::Move { redrives: done + 1 }
}

fn digest(body: &str) -> [u8; 32] {
    Sha256::digest(body.as_bytes()).into()
}

/// Spaces sends evenly; the first goes at once.
struct Pace {
    interval: Duration,
    next: Option<Instant>,
}

impl Pace {
    fn per_second(rate: f64) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: None,
        }
    }

    /// When the next send may go, if it is taken at `now`.
    fn slot(&self, now: Instant) -> Instant {
        self.next.map_or(now, |next| next.max(now))
    }

    fn take(&mut self, now: Instant) -> Instant {
        let slot = self.slot(now);
        self.next = Some(slot + self.interval);
        slot
    }
}

/// Moves one DLQ's messages back to its source queue. Holds no global state: the
/// scheduled function and, later, an operator route each build one from their clients.
#[derive(Clone)]
pub struct Redriver {
    client: aws_sdk_sqs::Client,
    dead_letter_url: String,
    source_url: String,
    limits: RedriveLimits,
}

impl Redriver {
    pub fn new(
        client: aws_sdk_sqs::Client,
        dead_letter_url: impl Into<String>,
        source_url: impl Into<String>,
        limits: RedriveLimits,
    ) -> Self {
        Self {
            client,
            dead_letter_url: dead_letter_url.into(),
            source_url: source_url.into(),
            limits,
        }
    }

    pub fn limits(&self) -> RedriveLimits {
        self.limits
    }

    /// One run: moves up to `max_messages` at `rate_per_second`, parks what reached the
    /// limit, and stops early rather than send past `deadline`.
    ///
    /// A message is deleted from the DLQ only after the source queue accepted it, so no
    /// message is ever lost. If that delete fails, the message is in both queues and a
    /// later run moves it again: a duplicate chunk, which the sender's conditional
    /// claim turns into a no-op.
    #[tracing::instrument(skip_all, fields(dlq = %self.dead_letter_url))]
    pub async fn run(&self, deadline: Instant) -> RedriveReport {
        let mut report = RedriveReport {
            moved: 0,
            parked: 0,
            failed: 0,
            deferred: 0,
            stopped: Stopped::Drained,
        };
        // Messages received but left in the DLQ (parked, failed, or not reached), by id,
        // with their latest receipt handle: hidden during the run so they are not
        // received again, and released at its end.
        let mut held: HashMap<String, String> = HashMap::new();
        let mut seen: HashSet<String> = HashSet::new();
        // Digests, not bodies: a run may move hundreds of bodies of up to 256 KiB.
        let mut moved_bodies: HashSet<[u8; 32]> = HashSet::new();
        let mut pace = Pace::per_second(self.limits.rate_per_second);

        'run: loop {
            let attempted = report.moved + report.failed;
            if attempted >= self.limits.max_messages {
                report.stopped = Stopped::MaxMessages;
                break;
            }
            if Instant::now() >= deadline {
                report.stopped = Stopped::OutOfTime;
                break;
            }
            // Never take more than the run may still move, so a bounded run leaves the
            // rest visible rather than hidden.
            let want = (self.limits.max_messages - attempted).min(10) as i32;
            let messages = match self.receive(want, deadline).await {
                Ok(messages) => messages,
                Err(e) => {
                    tracing::error!(error = %e, "receiving from the DLQ failed; stopping the run");
                    report.stopped = Stopped::ReceiveFailed;
                    break;
                }
            };
            let mut fresh = Vec::new();
            for message in messages {
                let (Some(id), Some(receipt)) = (message.message_id(), message.receipt_handle())
                else {
                    continue;
                };
                if seen.insert(id.to_owned()) {
                    fresh.push(message);
                } else if let Some(old) = held.get_mut(id) {
                    // Received again (its hiding ran out): only the new handle works.
                    *old = receipt.to_owned();
                }
            }
            if fresh.is_empty() {
                report.stopped = Stopped::Drained;
                break;
            }

            let mut fresh = fresh.into_iter();
            while let Some(message) = fresh.next() {
                let id = message.message_id().unwrap_or_default().to_owned();
                let receipt = message.receipt_handle().unwrap_or_default().to_owned();
                let attributes = message.message_attributes().cloned().unwrap_or_default();
                // The lines about a dead letter name the request and tenant it came from.
                let text = |name: &str| attributes.get(name).and_then(|v| v.string_value.clone());
                let (correlation, tenant) = (text("correlation_id"), text("tenant_id"));
                let (correlation, tenant) = (correlation.as_deref(), tenant.as_deref());
                // Before judging: a chunk is looked at once per run, so each lands in
                // exactly one count (one that came back at the limit is parked next run).
                let body = digest(message.body().unwrap_or_default());
                if moved_bodies.contains(&body) {
                    tracing::info!(sqs_message_id = %id, correlation_id = correlation, tenant_id = tenant, "came back during this run; left for the next one");
                    report.deferred += 1;
                    held.insert(id, receipt);
                    continue;
                }
                let redrives = match judge(&attributes, self.limits.redrive_limit) {
                    Verdict::Park { reason } => {
                        tracing::error!(sqs_message_id = %id, correlation_id = correlation, tenant_id = tenant, %reason, "dead letter parked in the DLQ");
                        report.parked += 1;
                        held.insert(id, receipt);
                        continue;
                    }
                    Verdict::Move { redrives } => redrives,
                };
                let slot = pace.slot(Instant::now());
                if report.moved + report.failed >= self.limits.max_messages || slot >= deadline {
                    report.stopped = if slot >= deadline {
                        Stopped::OutOfTime
                    } else {
                        Stopped::MaxMessages
                    };
                    held.insert(id, receipt);
                    for rest in fresh {
                        if let (Some(id), Some(receipt)) =
                            (rest.message_id(), rest.receipt_handle())
                        {
                            held.insert(id.to_owned(), receipt.to_owned());
                        }
                    }
                    break 'run;
                }
                tokio::time::sleep_until(pace.take(Instant::now())).await;

                if let Err(e) = self.send(&message, attributes, redrives).await {
                    tracing::error!(sqs_message_id = %id, correlation_id = correlation, tenant_id = tenant, error = %e, "sending a dead letter back failed; it stays in the DLQ");
                    report.failed += 1;
                    held.insert(id, receipt);
                    continue;
                }
                // Sent is enough: even if the delete fails, this body is in the source
                // queue now.
                moved_bodies.insert(body);
                match self
                    .client
                    .delete_message()
                    .queue_url(&self.dead_letter_url)
                    .receipt_handle(&receipt)
                    .send()
                    .await
                {
                    Ok(_) => {
                        tracing::info!(sqs_message_id = %id, correlation_id = correlation, tenant_id = tenant, redrives, "dead letter moved back");
                        report.moved += 1;
                    }
                    Err(e) => {
                        tracing::error!(
                            sqs_message_id = %id,
                            correlation_id = correlation,
                            tenant_id = tenant,
                            error = %DisplayErrorContext(e),
                            "moved back but not deleted from the DLQ; a later run will move it again"
                        );
                        report.failed += 1;
                        held.insert(id, receipt);
                    }
                }
            }
        }

        self.release(held).await;
        report
    }

    async fn receive(&self, want: i32, deadline: Instant) -> Result<Vec<Message>, String> {
        let hide = deadline.saturating_duration_since(Instant::now()) + VISIBILITY_GRACE;
        let out = self
            .client
            .receive_message()
            .queue_url(&self.dead_letter_url)
            .max_number_of_messages(want.clamp(1, 10))
            .wait_time_seconds(RECEIVE_WAIT_SECONDS)
            // SQS caps visibility at 12 hours.
            .visibility_timeout(hide.as_secs().clamp(1, 43_200) as i32)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        Ok(out.messages.unwrap_or_default())
    }

    async fn send(
        &self,
        message: &Message,
        attributes: HashMap<String, MessageAttributeValue>,
        redrives: u32,
    ) -> Result<(), String> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.source_url)
            .message_body(message.body().unwrap_or_default());
        // The message goes back with the trace of the request that first queued it.
        if let Some(trace) = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader))
        {
            request = request.message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                crate::queue::trace_attribute(trace).map_err(|e| e.to_string())?,
            );
        }
        for (name, value) in attributes
            .into_iter()
            .filter(|(name, _)| name != REDRIVES_ATTRIBUTE)
        {
            // Rebuilt rather than passed through: a received value may carry the empty
            // list fields SQS reserves, which a send must not set.
            let value = MessageAttributeValue::builder()
                .data_type(value.data_type)
                .set_string_value(value.string_value)
                .set_binary_value(value.binary_value)
                .build()
                .map_err(|e| e.to_string())?;
            request = request.message_attributes(name, value);
        }
        let counter = MessageAttributeValue::builder()
            .data_type("Number")
            .string_value(redrives.to_string())
            .build()
            .map_err(|e| e.to_string())?;
        request
            .message_attributes(REDRIVES_ATTRIBUTE, counter)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        Ok(())
    }

    /// Makes the messages this run kept hidden visible again at once: parked ones must
    /// show in the DLQ's depth (its alarm) and to operators, failed ones are for the
    /// next run. A release that fails only delays them until their hiding runs out.
    async fn release(&self, held: HashMap<String, String>) {
        let held: Vec<(String, String)> = held.into_iter().collect();
        for group in held.chunks(10) {
            let entries: Result<Vec<_>, _> = group
                .iter()
                .enumerate()
                .map(|(i, (_, receipt))| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .visibility_timeout(0)
                        .build()
                })
                .collect();
            let result = match entries {
                Ok(entries) => self
                    .client
                    .change_message_visibility_batch()
                    .queue_url(&self.dead_letter_url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map(|out| out.failed.len())
                    .map_err(|e| DisplayErrorContext(e).to_string()),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(0) => {}
                Ok(failed) => {
                    tracing::warn!(
                        failed,
                        "some held dead letters stay hidden until their visibility timeout"
                    )
                }
                Err(e) => {
                    tracing::warn!(error = %e, "held dead letters stay hidden until their visibility timeout")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(pairs: &[(&str, &str)]) -> HashMap<String, MessageAttributeValue> {
        pairs
            .iter()
            .map(|(name, value)| {
                let data_type = if *name == REDRIVES_ATTRIBUTE {
                    "Number"
                } else {
                    "String"
                };
                (
                    name.to_string(),
                    MessageAttributeValue::builder()
                        .data_type(data_type)
                        .string_value(*value)
                        .build()
                        .unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_first_dead_letter_moves_with_count_one_and_the_count_climbs_to_the_limit() {
        assert_eq!(
            judge(&attributes(&[("tenant_id", "acme")]), 3),
            Verdict::Move { redrives: 1 }
        );
        assert_eq!(
            judge(&attributes(&[(REDRIVES_ATTRIBUTE, "2")]), 3),
            Verdict::Move { redrives: 3 }
        );
        let Verdict::Park { reason } = judge(
            &attributes(&[(REDRIVES_ATTRIBUTE, "3"), (REASON_ATTRIBUTE, "malformed")]),
            3,
        ) else {
            panic!("a message at the limit must be parked");
        };
        assert!(
            reason.contains("redriven 3 times") && reason.contains("malformed"),
            "{reason}"
        );
    }

    #[test]
    fn an_unreadable_counter_or_no_room_for_one_parks_the_message() {
        assert!(matches!(
            judge(&attributes(&[(REDRIVES_ATTRIBUTE, "many")]), 3),
            Verdict::Park { .. }
        ));
        let names: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
        let full: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "x")).collect();
        assert!(matches!(judge(&attributes(&full), 3), Verdict::Park { .. }));
        // With the counter among the ten, it is replaced, not added.
        let mut with_counter = full.clone();
        with_counter[9] = (REDRIVES_ATTRIBUTE, "1");
        assert_eq!(
            judge(&attributes(&with_counter), 3),
            Verdict::Move { redrives: 2 }
        );
    }

    #[test]
    fn sends_are_spaced_at_the_rate_and_the_first_goes_at_once() {
        let start = Instant::now();
        let mut pace = Pace::per_second(4.0);
        let slots: Vec<Duration> = (0..4).map(|_| pace.take(start) - start).collect();
        assert_eq!(
            slots,
            [0, 250, 500, 750].map(Duration::from_millis).to_vec()
        );
        // A slow sender does not earn a burst: slots count from now when late.
        let late = start + Duration::from_secs(10);
        assert_eq!(pace.take(late), late);
        assert_eq!(pace.slot(late), late + Duration::from_millis(250));
    }
}
