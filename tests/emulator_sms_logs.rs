//! The emulator's SNS SMS delivery status logs (`infra/local/sms_logs.py`): nothing is
//! logged until the account's SMS attributes name a delivery status role; then every
//! text's record lands in SNS's log group for its outcome, in the documented shape, a
//! success as often as the sampling rate says; and a publish whose answer is held back
//! still took the text and logged it. It runs in a region of its own (`eu-west-1`):
//! the SMS attributes belong to the account and region, and the stacks of other tests
//! set them in `us-east-1`.

use std::time::Duration;

use aws_sdk_sns::config::Region;
use herald::webhook::sns_logs::log_groups;
use herald_tests::eventually;
use herald_tests::herald_local::log_subscription::filter_log_events;
use herald_tests::herald_local::template::ACCOUNT_ID;
use herald_tests::herald_local::{emulator, project_root};
use serde_json::Value;

const REGION: &str = "eu-west-1";

struct Sns {
    endpoint: String,
    client: aws_sdk_sns::Client,
    http: reqwest::Client,
}

impl Sns {
    async fn publish(&self, to: &str) -> String {
        self.client
            .publish()
            .phone_number(to)
            .message("hello")
            .send()
            .await
            .unwrap_or_else(|e| panic!("publish to {to}: {e:?}"))
            .message_id
            .expect("a message id")
    }

    /// The records in `group` of texts to `to`, parsed.
    async fn records(&self, group: &str, to: &str) -> Vec<Value> {
        filter_log_events(&self.http, &self.endpoint, REGION, group, 0)
            .await
            .unwrap()
            .iter()
            .map(|e| serde_json::from_str::<Value>(e["message"].as_str().unwrap()).unwrap())
            .filter(|r| r["delivery"]["destination"] == to)
            .collect()
    }

    /// The one record of the text with SNS message id `id`, once it is written.
    async fn record_of(&self, group: &str, to: &str, id: &str) -> Value {
        eventually(&format!("the record of {id}"), || async {
            self.records(group, to)
                .await
                .into_iter()
                .find(|r| r["notification"]["messageId"] == id)
        })
        .await
    }
}

/// A number no other test (and no earlier run against the same emulator) texts, and
/// on no opt-out list: a random block of ten per run, `slot` within it.
fn fresh_number(block: u64, slot: u64) -> String {
    format!("+1206555{:04}", 1000 + block * 10 + slot)
}

#[tokio::test]
async fn sns_logs_each_texts_delivery_status_once_a_role_is_set() {
    let endpoint = emulator::endpoint();
    emulator::ensure_for_tests(&project_root(), &endpoint)
        .await
        .expect("the emulator runs");
    let sdk = herald::aws::for_emulator(&endpoint).await;
    let config = aws_sdk_sns::config::Builder::from(&sdk)
        .region(Region::new(REGION))
        .build();
    let sns = Sns {
        endpoint: endpoint.clone(),
        client: aws_sdk_sns::Client::from_conf(config.clone()),
        http: reqwest::Client::new(),
    };
    let [success, failure] = log_groups(REGION, ACCOUNT_ID);
    let block = u64::from(rand_block());

    // Without a role SNS logs nothing (this region's attributes are this test's).
    sns.client
        .set_sms_attributes()
        .attributes("DeliveryStatusIAMRole", "")
        .send()
        .await
        .unwrap();
    let unlogged = fresh_number(block, 0);
    sns.publish(&unlogged).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(sns.records(&success, &unlogged).await.is_empty());

    sns.client
        .set_sms_attributes()
        .attributes(
            "DeliveryStatusIAMRole",
            format!("arn:aws:iam::{ACCOUNT_ID}:role/sns-delivery-status"),
        )
        .attributes("DeliveryStatusSuccessSamplingRate", "100")
        .send()
        .await
        .unwrap();
    let to = fresh_number(block, 1);
    let delivered = sns.publish(&to).await;
    let record = sns.record_of(&success, &to, &delivered).await;
    assert_eq!(record["status"], "SUCCESS", "{record}");
    assert_eq!(
        record["delivery"]["providerResponse"],
        "Message has been accepted by phone carrier"
    );
    // The documented shape, which Herald's parser reads.
    let notification = &record["notification"]["timestamp"];
    assert!(
        notification
            .as_str()
            .is_some_and(|t| t.len() == 23 && t.as_bytes()[10] == b' '),
        "{record}"
    );
    for field in ["mcc", "mnc", "priceInUSD", "smsType", "dwellTimeMs"] {
        assert!(!record["delivery"][field].is_null(), "{field}: {record}");
    }

    // moto's SNS opt-out list, and the number no carrier reaches: failures.
    for (number, response) in [
        ("+447700900149", "Phone number is opted out"),
        ("+15005550009", "Phone is currently unreachable/unavailable"),
    ] {
        let id = sns.publish(number).await;
        let record = sns.record_of(&failure, number, &id).await;
        assert_eq!(record["status"], "FAILURE", "{record}");
        assert_eq!(record["delivery"]["providerResponse"], response);
        assert!(
            sns.records(&success, number)
                .await
                .iter()
                .all(|r| r["notification"]["messageId"] != id.as_str()),
            "a failure is logged as a failure only"
        );
    }

    // With sampling at 0, a success is not logged; a failure still is.
    sns.client
        .set_sms_attributes()
        .attributes("DeliveryStatusSuccessSamplingRate", "0")
        .send()
        .await
        .unwrap();
    let unsampled = fresh_number(block, 2);
    sns.publish(&unsampled).await;
    let id = sns.publish("+15005550009").await;
    sns.record_of(&failure, "+15005550009", &id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sns.records(&success, &unsampled).await.is_empty());

    // An answer held back past the client's timeout: the text was still taken and
    // logged, under a message id the client never learnt.
    sns.client
        .set_sms_attributes()
        .attributes("DeliveryStatusSuccessSamplingRate", "100")
        .send()
        .await
        .unwrap();
    let lost = fresh_number(block, 3);
    let fault = serde_json::json!({"phone_number": lost, "seconds": 2, "count": 1});
    let answer = sns
        .http
        .post(format!("{endpoint}/_herald/sns/late-answers"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    let impatient = aws_sdk_sns::Client::from_conf(
        config
            .to_builder()
            .timeout_config(
                aws_sdk_sns::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(500))
                    .build(),
            )
            .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
            .build(),
    );
    let published = impatient
        .publish()
        .phone_number(&lost)
        .message("hello")
        .send()
        .await;
    assert!(published.is_err(), "the answer came in time: {published:?}");
    let records = eventually("the lost text's record", || async {
        let found = sns.records(&success, &lost).await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(records.len(), 1, "{records:?}");
}

fn rand_block() -> u16 {
    (ulid::Ulid::new().random() % 800) as u16
}
