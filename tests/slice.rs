//! One SMS through the whole path: gateway → api → DynamoDB + SQS → sender → sandbox
//! provider → `sent`, readable by its tenant only.

use herald_tests::TestCloud;

#[tokio::test]
async fn an_sms_travels_end_to_end_and_only_its_tenant_can_read_it() {
    let test = TestCloud::start("slice").await;
    let acme = test.token("acme", "sender").await;
    let globex = test.token("globex", "admin").await;

    let accepted = test
        .post_json(
            "/v1/messages",
            &acme,
            r#"{"to": "+14155550100", "body": "Your code is 1234"}"#,
        )
        .await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    assert_eq!(accepted.body["status"], "accepted");
    let id = accepted.body["id"].as_str().unwrap().to_owned();
    assert_eq!(accepted.body["status_url"], format!("/v1/messages/{id}"));
    assert_eq!(
        accepted.headers["location"],
        format!("/v1/messages/{id}").as_str()
    );
    assert!(accepted.headers.contains_key("x-correlation-id"));

    let message = test.wait_for_status(&acme, &id, "sent").await;

    let ledger = test.ledger();
    assert_eq!(
        ledger.len(),
        1,
        "the provider got exactly one message: {ledger:?}"
    );
    assert_eq!(ledger[0].to, "+14155550100");
    assert_eq!(ledger[0].body, "Your code is 1234");
    assert_eq!(message["provider"], "twilio");
    assert_eq!(message["provider_ref"], ledger[0].sid.as_str());
    assert_eq!(message["attempts"], 1);
    let history: Vec<&str> = message["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["accepted", "sending", "sent"]);

    let foreign = test.get(&format!("/v1/messages/{id}"), &globex).await;
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.content_type, "application/problem+json");
    assert_eq!(
        foreign.body,
        test.get(
            &format!("/v1/messages/{}.0", "01JQ0000000000000000000000"),
            &acme
        )
        .await
        .body,
        "another tenant's message reads exactly like a missing one"
    );
}

#[tokio::test]
async fn a_message_reads_as_accepted_before_the_sender_reaches_it() {
    let test = TestCloud::start_with("slice-queued", |o| o.run_queues = false).await;
    let acme = test.token("acme", "viewer").await;
    let sender = test.token("acme", "sender").await;
    let id = test.send_sms(&sender, "+14155550100", "queued").await;

    let message = test.get(&format!("/v1/messages/{id}"), &acme).await;
    assert_eq!(message.status, 200);
    assert_eq!(message.body["status"], "accepted");
    assert_eq!(message.body["to"], "+14155550100");
    assert_eq!(
        test.queue_depth("ExpressQueue").await,
        1,
        "one chunk, one queue message, on the express lane"
    );
    assert!(test.ledger().is_empty());
}
