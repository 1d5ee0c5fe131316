//! The emulator's SQS where the launcher (`infra/local/emulator.py`) changes moto's: a
//! message's X-Ray trace header travels as SQS documents it. The `AWSTraceHeader`
//! system attribute is kept on SendMessage and on each SendMessageBatch entry (moto kept
//! only SendMessage's), a request's `X-Amzn-Trace-Id` header applies to every message
//! it sends, and an entry's own attribute wins over the header.

use aws_sdk_sqs::types::{
    MessageSystemAttributeName, MessageSystemAttributeNameForSends, SendMessageBatchRequestEntry,
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
    let endpoint = emulator::endpoint();
    emulator::ensure_for_tests(&project_root(), &endpoint)
        .await
        .expect("the emulator runs");
    let sqs = aws_sdk_sqs::Client::new(&herald::aws::for_emulator(&endpoint).await);
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
