//! Webhook requests as a provider sends them (signed with the stack's auth token), or
//! as an attacker would (unsigned, signed otherwise), for the receipt tests.

use herald::webhook::twilio;

use crate::{Answer, TestCloud};

impl TestCloud {
    /// The URL the receiver is called at for `path_and_query`.
    pub fn webhook_url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.cloud.webhooks_base_url)
    }

    /// Twilio's signature of a POST of `form` to `url`, with the stack's auth token.
    pub fn twilio_signature(&self, url: &str, form: &[(String, String)]) -> String {
        twilio::signature(&self.cloud.credentials.auth_token, url, form)
    }

    /// Posts `body` (form-encoded, as given) to the receiver with `signature`.
    pub async fn post_webhook(
        &self,
        path_and_query: &str,
        body: Vec<u8>,
        content_type: &str,
        signature: Option<&str>,
    ) -> Answer {
        let mut request = reqwest::Client::new()
            .post(self.webhook_url(path_and_query))
            .header("content-type", content_type)
            .body(body);
        if let Some(signature) = signature {
            request = request.header(twilio::SIGNATURE_HEADER, signature);
        }
        let response = request.send().await.expect("the gateway answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.bytes().await.expect("body");
        Answer {
            status,
            content_type,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
                String::from_utf8_lossy(&bytes).into(),
            )),
        }
    }

    /// Posts `form` signed as Twilio would sign it.
    pub async fn post_signed_webhook(
        &self,
        path_and_query: &str,
        form: &[(String, String)],
    ) -> Answer {
        let signature = self.twilio_signature(&self.webhook_url(path_and_query), form);
        let body = encode(form);
        self.post_webhook(
            path_and_query,
            body,
            "application/x-www-form-urlencoded",
            Some(&signature),
        )
        .await
    }
}

impl TestCloud {
    /// The SES events topic's ARN, as the receiver is configured with it.
    pub fn ses_topic(&self) -> String {
        self.cloud
            .webhooks_config
            .ses_topic_arn
            .clone()
            .expect("the local cloud configures the SES topic")
    }

    /// `message` (an SNS message without its signature) signed with the emulator's SNS
    /// key, as the emulator's SNS signs its deliveries: a valid signature whatever the
    /// message says, for tests of the receiver's other checks.
    pub async fn sns_signed(&self, message: &serde_json::Value) -> serde_json::Value {
        reqwest::Client::new()
            .post(format!("{}/_herald/sns/sign", self.cloud.emulator))
            .json(message)
            .send()
            .await
            .expect("the emulator signs")
            .json()
            .await
            .expect("a signed message")
    }

    /// The tenant's suppressed addresses and their reasons (the first page), as the API
    /// lists them.
    pub async fn suppressions(&self, token: &str) -> Vec<(String, String)> {
        let page = self.get("/v1/suppressions", token).await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.body["suppressions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["address"].as_str().unwrap().to_owned(),
                    s["reason"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Posts `body` to `/webhooks/ses` as SNS posts a message.
    pub async fn post_sns(&self, body: Vec<u8>) -> Answer {
        self.post_webhook(
            herald::webhook::sns::SES_PATH,
            body,
            "text/plain; charset=UTF-8",
            None,
        )
        .await
    }
}

/// `form` as a request body.
pub fn encode(form: &[(String, String)]) -> Vec<u8> {
    let mut encoder = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form {
        encoder.append_pair(name, value);
    }
    encoder.finish().into_bytes()
}

/// Pairs from `(&str, &str)`s.
pub fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
