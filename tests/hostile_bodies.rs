//! The worst request bodies a client can send within the API's limits
//! (`herald_local::hostile`, which `make bench-bodies` times) are answered as bad
//! input: the right status and problem type, the field that is wrong, and nothing
//! written or enqueued.

use herald_local::hostile::{self, Caller, HostileRequest};
use herald_tests::TestCloud;

async fn answer(test: &TestCloud, token: &str, request: &HostileRequest) -> hostile::Answer {
    hostile::send(
        &reqwest::Client::new(),
        &test.cloud.gateway_url,
        token,
        request,
    )
    .await
    .expect("the gateway answers")
}

fn limits(test: &TestCloud) -> hostile::Limits {
    hostile::Limits {
        max_body_bytes: test.cloud.api_config.max_body_bytes,
        max_recipients: test.cloud.api_config.max_recipients,
    }
}

#[tokio::test]
async fn the_worst_bodies_are_refused_naming_the_field_and_change_nothing() {
    let test = TestCloud::start_with("hostile-bodies", |o| o.run_queues = false).await;
    let sender = test.token("acme", "sender").await;
    let operator = test.token("platform", "operator").await;

    let mut failures = Vec::new();
    for request in hostile::catalogue(limits(&test)) {
        let token = match request.caller {
            Caller::Sender => &sender,
            Caller::Operator => &operator,
        };
        let answer = answer(&test, token, &request).await;
        if let Some(difference) = request.check(&answer) {
            failures.push(format!("{}: {difference}; {}", request.name, answer.body));
        }
    }

    assert!(
        failures.is_empty(),
        "answered otherwise:\n{}",
        failures.join("\n")
    );
    assert_eq!(test.table_items().await, 0, "nothing was written");
    // table_items leaves tenant profiles out: the refused tenant must not exist.
    assert_eq!(test.tenant_items("hostile").await, Vec::<String>::new());
    assert_eq!(test.chunks_queued().await, 0, "nothing was enqueued");
}

#[tokio::test]
async fn ten_thousand_invalid_recipients_are_answered_with_the_first_hundred() {
    let test = TestCloud::start_with("hostile-10k", |o| o.run_queues = false).await;
    let sender = test.token("acme", "sender").await;
    let request = hostile::catalogue(limits(&test))
        .into_iter()
        .find(|r| r.name.starts_with("10,000 recipients"))
        .expect("the case is in the catalogue");

    let answer = answer(&test, &sender, &request).await;

    assert_eq!(request.check(&answer), None, "{}", answer.body);
    let errors = answer.body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 100);
    for (i, error) in errors.iter().enumerate() {
        assert_eq!(error["field"], format!("/recipients/{i}/to"));
    }
    let detail = answer.body["detail"].as_str().expect("detail");
    assert!(detail.contains("10000 invalid fields"), "{detail}");
    assert_eq!(test.table_items().await, 0, "nothing was written");
}

#[tokio::test]
async fn an_8_kb_correlation_id_is_replaced_not_echoed() {
    let test = TestCloud::start_with("hostile-corr", |o| o.run_queues = false).await;
    let sender = test.token("acme", "sender").await;
    let long = "c".repeat(hostile::HEADER_BYTES);
    let request = HostileRequest {
        name: "X-Correlation-Id of 8 KB",
        method: "POST",
        path: "/v1/messages",
        caller: Caller::Sender,
        headers: vec![("x-correlation-id", long.clone())],
        body: br#"{"to": "+14155550100", "body": "hi"}"#.to_vec(),
        expected: hostile::Expected {
            status: 202,
            problem: "",
            field: None,
        },
    };

    let answer = answer(&test, &sender, &request).await;

    assert_eq!(request.check(&answer), None, "{}", answer.body);
    let echoed = answer.headers["x-correlation-id"].to_str().unwrap();
    assert_ne!(echoed, long);
    assert_eq!(echoed.len(), 26, "a fresh ULID: {echoed}");
}
