//! The emulator's SQS where the launcher (`infra/local/emulator.py`) changes moto's: a
//! message's X-Ray trace header travels as SQS documents it. The `AWSTraceHeader`
//! system attribute is kept on SendMessage and on each SendMessageBatch entry (moto kept
//! only SendMessage's), a request's `X-Amzn-Trace-Id` header applies to every message
//! it sends, and an entry's own attribute wins over the header. And the paths
//! `moto_scale.py` makes cheaper for long queues (queue attributes computed when read,
//! one clock read per scan, receipt handles indexed) still answer as SQS does.

use std::collections::HashMap;

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, MessageSystemAttributeNameForSends,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use herald::queue::trace_attribute;
use herald_tests::herald_local::{emulator, project_root, random_hex};

const REQUEST_TRACE: &str =
    "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1";
const ENTRY_TRACE: &str =
    "Root=1-67891233-111111111111111111111111;Parent=1111111111111111;Sampled=1";

/// The HTTP header the SDK's recursion-detection interceptor adds in Lambda.
fn with_trace_header(request: &mut aws_sdk_sqs::config::http::HttpRequest) {
    request
        .headers_mut()
        .insert("X-Amzn-Trace-Id", REQUEST_TRACE);
}

#[tokio::test]
async fn the_trace_header_reaches_the_receiver_from_the_attribute_or_the_http_header() {
    let sqs = client().await;
    let url = sqs
        .create_queue()
        .queue_name(format!("t-trace-{}", random_hex(8)))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let entry = |id: &str, trace: Option<&str>| {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(id)
            .set_message_system_attributes(trace.map(|t| {
                [(
                    MessageSystemAttributeNameForSends::AwsTraceHeader,
                    trace_attribute(t).unwrap(),
                )]
                .into()
            }))
            .build()
            .unwrap()
    };
    // A batch without the header: only the entry with the attribute is traced.
    sqs.send_message_batch()
        .queue_url(&url)
        .entries(entry("batch-attribute", Some(ENTRY_TRACE)))
        .entries(entry("batch-none", None))
        .send()
        .await
        .unwrap();
    // A batch with the header: every entry is traced, the attribute winning.
    sqs.send_message_batch()
        .queue_url(&url)
        .entries(entry("header-and-attribute", Some(ENTRY_TRACE)))
        .entries(entry("header-only", None))
        .customize()
        .mutate_request(with_trace_header)
        .send()
        .await
        .unwrap();
    // One message with the header.
    sqs.send_message()
        .queue_url(&url)
        .message_body("single-header")
        .customize()
        .mutate_request(with_trace_header)
        .send()
        .await
        .unwrap();

    let mut received = std::collections::BTreeMap::new();
    while received.len() < 5 {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
            .send()
            .await
            .unwrap();
        for message in out.messages.unwrap_or_default() {
            let trace = message
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader))
                .cloned();
            received.insert(message.body.unwrap(), trace);
        }
    }
    let expected = [
        ("batch-attribute", Some(ENTRY_TRACE)),
        ("batch-none", None),
        ("header-and-attribute", Some(ENTRY_TRACE)),
        ("header-only", Some(REQUEST_TRACE)),
        ("single-header", Some(REQUEST_TRACE)),
    ];
    let expected: std::collections::BTreeMap<String, Option<String>> = expected
        .iter()
        .map(|(body, trace)| (body.to_string(), trace.map(str::to_owned)))
        .collect();
    assert_eq!(received, expected);
}

/// A client of the tests' emulator.
async fn client() -> aws_sdk_sqs::Client {
    let endpoint = emulator::endpoint();
    emulator::ensure_for_tests(&project_root(), &endpoint)
        .await
        .expect("the emulator runs");
    aws_sdk_sqs::Client::new(&herald::aws::for_emulator(&endpoint).await)
}

async fn create(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, &str)],
) -> String {
    sqs.create_queue()
        .queue_name(name)
        .set_attributes(Some(
            attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        ))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// The queue's attributes `names`, as GetQueueAttributes answers them.
async fn attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    names: &[QueueAttributeName],
) -> HashMap<QueueAttributeName, String> {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(url)
        .set_attribute_names(Some(names.to_vec()));
    answer.send().await.unwrap().attributes.unwrap_or_default()
}

/// Visible, in flight and delayed.
async fn counts(sqs: &aws_sdk_sqs::Client, url: &str) -> (u32, u32, u32) {
    use QueueAttributeName as A;
    let names = [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
        A::ApproximateNumberOfMessagesDelayed,
    ];
    let got = attributes(sqs, url, &names).await;
    let count = |name: &A| got[name].parse::<u32>().unwrap();
    (count(&names[0]), count(&names[1]), count(&names[2]))
}

#[tokio::test]
async fn counts_deletes_and_deduplication_answer_as_sqs_does() {
    let sqs = client().await;
    let id = random_hex(8);
    create(&sqs, &format!("t-scale-dlq-{id}"), &[]).await;
    let dlq_arn = format!("arn:aws:sqs:us-east-1:123456789012:t-scale-dlq-{id}");
    let redrive = format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":5}}"#);
    let url = create(
        &sqs,
        &format!("t-scale-{id}"),
        &[(QueueAttributeName::RedrivePolicy, &redrive)],
    )
    .await;
    assert_eq!(counts(&sqs, &url).await, (0, 0, 0));
    for i in 0..8 {
        sqs.send_message()
            .queue_url(&url)
            .message_body(format!("m{i}"))
            .delay_seconds(if i < 6 { 0 } else { 300 })
            .send()
            .await
            .unwrap();
    }
    assert_eq!(counts(&sqs, &url).await, (6, 0, 2));

    let received = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(4)
        .visibility_timeout(300)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(received.len(), 4);
    assert_eq!(counts(&sqs, &url).await, (2, 4, 2));

    // Each handle deletes its message; an unknown handle fails alone.
    let mut entries: Vec<_> = received
        .iter()
        .enumerate()
        .map(|(i, m)| (i.to_string(), m.receipt_handle.clone().unwrap()))
        .collect();
    entries.push(("unknown".into(), "not-a-receipt-handle".into()));
    let deleted = sqs
        .delete_message_batch()
        .queue_url(&url)
        .set_entries(Some(
            entries
                .iter()
                .map(|(id, handle)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(id)
                        .receipt_handle(handle)
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.successful.len(), 4);
    let failed: HashMap<_, _> = deleted
        .failed
        .iter()
        .map(|f| (f.id.as_str(), f.code.as_str()))
        .collect();
    assert_eq!(
        failed,
        HashMap::from([("unknown", "ReceiptHandleIsInvalid")])
    );
    assert_eq!(counts(&sqs, &url).await, (2, 0, 2));
    // Deleting a deleted message again succeeds, as SQS allows.
    sqs.delete_message()
        .queue_url(&url)
        .receipt_handle(&entries[0].1)
        .send()
        .await
        .unwrap();

    // Only what was asked for, the redrive policy as JSON.
    let asked = attributes(&sqs, &url, &[QueueAttributeName::RedrivePolicy]).await;
    let policy: serde_json::Value =
        serde_json::from_str(&asked[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(policy["maxReceiveCount"], 5);
    assert_eq!(asked.len(), 1, "{asked:?}");
    // Every attribute when All is asked for, the counts among them.
    let all = attributes(&sqs, &url, &[QueueAttributeName::All]).await;
    assert_eq!(all[&QueueAttributeName::ApproximateNumberOfMessages], "2");
    assert!(all.contains_key(&QueueAttributeName::QueueArn), "{all:?}");

    // A FIFO queue with content-based deduplication keeps one of two equal bodies.
    let fifo = create(
        &sqs,
        &format!("t-scale-{id}.fifo"),
        &[
            (QueueAttributeName::FifoQueue, "true"),
            (QueueAttributeName::ContentBasedDeduplication, "true"),
        ],
    )
    .await;
    for _ in 0..2 {
        sqs.send_message()
            .queue_url(&fifo)
            .message_body("same")
            .message_group_id("g")
            .send()
            .await
            .unwrap();
    }
    assert_eq!(counts(&sqs, &fifo).await, (1, 0, 0));
}
