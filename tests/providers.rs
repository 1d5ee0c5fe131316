//! The tenant's profile chooses its SMS provider: an SNS tenant's batch goes out
//! through Amazon SNS (the emulator's), a Twilio tenant's through the Twilio-compatible
//! sandbox, side by side, each message recording which provider took it.

use herald_tests::{TestCloud, number};
use serde_json::{Value, json};

async fn messages(test: &TestCloud, token: &str, batch: &str) -> Vec<Value> {
    let page = test
        .get(&format!("/v1/batches/{batch}/messages"), token)
        .await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    page.body["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn each_tenant_sends_through_the_provider_its_profile_names() {
    let test = TestCloud::start("providers").await;
    let operator = test.token("herald", "operator").await;
    let created = test
        .post_json(
            "/v1/tenants",
            &operator,
            &json!({ "tenant_id": "snsco", "plan": "enterprise", "sms_provider": "sns" })
                .to_string(),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["sms_provider"], "sns");

    let via_sns = test.token("snsco", "sender").await;
    let via_twilio = test.token("acme", "sender").await;
    let recipients: Vec<Value> = (0..3).map(|i| json!({ "to": number(i) })).collect();
    let sns_batch = test
        .send_batch(&via_sns, "Hello via SNS", &recipients)
        .await;
    let twilio_batch = test
        .send_batch(&via_twilio, "Hello via Twilio", &recipients)
        .await;
    for (token, batch) in [(&via_sns, &sns_batch), (&via_twilio, &twilio_batch)] {
        let progress = test.wait_for_batch(token, batch, "completed").await;
        assert_eq!(progress["counts"]["sent"], 3, "{progress}");
    }

    for message in messages(&test, &via_sns, &sns_batch).await {
        let one = test
            .get(
                &format!("/v1/messages/{}", message["id"].as_str().unwrap()),
                &via_sns,
            )
            .await
            .body;
        assert_eq!(one["provider"], "sns", "{one}");
        assert!(
            one["provider_ref"].as_str().is_some_and(|r| !r.is_empty()),
            "{one}"
        );
    }
    let ledger = test.ledger();
    assert_eq!(
        ledger.len(),
        3,
        "only the Twilio tenant's texts reach the sandbox"
    );
    assert!(ledger.iter().all(|e| e.body == "Hello via Twilio"));
}
