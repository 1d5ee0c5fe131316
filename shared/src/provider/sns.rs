//! Amazon SNS adapter: SMS through `Publish` to a phone number, with the function's own
//! IAM role (no secret to rotate).

use std::time::Duration;

use aws_sdk_sns::config::retry::RetryConfig;
use aws_sdk_sns::config::timeout::TimeoutConfig;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::{OutboundSms, Provider, SendOutcome};
use crate::telemetry::error_chain;

/// SNS error codes that mean this message can never be sent as it is.
const PERMANENT: &[&str] = &[
    "InvalidParameter",
    "InvalidParameterValue",
    "ValidationException",
    "EndpointDisabled",
    "NotFound",
    "OptedOut",
];

pub struct SnsProvider {
    client: aws_sdk_sns::Client,
}

impl SnsProvider {
    /// The SDK's own retries are off: a retried `Publish` after a timeout could text
    /// someone twice, and the sender already retries what is known not to be sent.
    pub fn new(config: aws_sdk_sns::config::Builder, timeout: Duration) -> Self {
        let config = config
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2).min(timeout))
                    .operation_timeout(timeout)
                    .build(),
            )
            .build();
        Self {
            client: aws_sdk_sns::Client::from_conf(config),
        }
    }

    async fn send(&self, message: &OutboundSms) -> SendOutcome {
        let transactional = MessageAttributeValue::builder()
            .data_type("String")
            .string_value("Transactional")
            .build()
            .expect("data type is set");
        let result = self
            .client
            .publish()
            .phone_number(message.to.as_str())
            .message(&message.body)
            .message_attributes("AWS.SNS.SMS.SMSType", transactional)
            .send()
            .await;
        match result {
            Ok(out) => match out.message_id {
                Some(id) if !id.is_empty() => SendOutcome::Accepted { provider_ref: id },
                _ => SendOutcome::Ambiguous {
                    reason: "SNS answered without a message id".into(),
                },
            },
            Err(error) => classify(error),
        }
    }
}

impl Provider for SnsProvider {
    fn name(&self) -> &'static str {
        "sns"
    }

    fn send_sms<'a>(&'a self, message: &'a OutboundSms) -> BoxFuture<'a, SendOutcome> {
        self.send(message).boxed()
    }
}

fn classify<E, R>(error: SdkError<E, R>) -> SendOutcome
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match &error {
        // SNS answered with an error: it did not take the message.
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().unwrap_or("Unknown").to_owned();
            let reason = err.message().unwrap_or("no message").to_owned();
            if PERMANENT.contains(&code.as_str()) {
                SendOutcome::Rejected { code, reason }
            } else {
                SendOutcome::Transient {
                    reason: format!("SNS {code}: {reason}"),
                    retry_after: None,
                }
            }
        }
        SdkError::ConstructionFailure(_) => SendOutcome::Transient {
            reason: format!("the request could not be built: {}", error_chain(&error)),
            retry_after: None,
        },
        SdkError::DispatchFailure(_) if connection_refused(&error) => SendOutcome::Transient {
            reason: format!("could not reach SNS: {}", error_chain(&error)),
            retry_after: None,
        },
        // A timeout, a connection lost mid-request, an answer that does not parse: the
        // message may have been published.
        _ => SendOutcome::Ambiguous {
            reason: format!(
                "no usable answer from SNS after sending: {}",
                error_chain(&error)
            ),
        },
    }
}

fn connection_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        source = e.source();
    }
    false
}
