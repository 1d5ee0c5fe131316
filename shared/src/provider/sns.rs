//! Amazon SNS adapter: SMS through `Publish` to a phone number, with the function's own
//! IAM role (no secret to rotate).

use std::time::Duration;

use aws_sdk_sns::types::MessageAttributeValue;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::aws_errors::{classify, one_attempt};
use super::{Outbound, OutboundSms, Provider, SendOutcome, wrong_channel};

/// SNS error codes that mean this message can never be sent as it is.
/// `ParameterValueInvalid` is the code SNS answers for its `InvalidParameterValue`
/// error (the SDK matches on it); `InvalidParameterValue` is the common AWS one.
const PERMANENT: &[&str] = &[
    "InvalidParameter",
    "ParameterValueInvalid",
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
        let (retries, timeouts) = one_attempt(timeout);
        let config = config
            .retry_config(retries)
            .timeout_config(timeouts)
            .build();
        Self {
            client: aws_sdk_sns::Client::from_conf(config),
        }
    }

    async fn send_sms(&self, message: &OutboundSms) -> SendOutcome {
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
            Err(error) => classify("SNS", PERMANENT, error),
        }
    }
}

impl Provider for SnsProvider {
    fn name(&self) -> &'static str {
        "sns"
    }

    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, SendOutcome> {
        match message {
            Outbound::Sms(sms) => self.send_sms(sms).boxed(),
            Outbound::Email(_) => {
                futures::future::ready(wrong_channel(self.name(), message)).boxed()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::aws_errors::answers::answered;
    use aws_sdk_sns::operation::publish::PublishError;

    /// Publish's errors with the statuses SNS documents for them.
    fn outcome(status: u16, code: &str) -> SendOutcome {
        classify(
            "SNS",
            PERMANENT,
            answered(status, code, PublishError::generic),
        )
    }

    #[test]
    fn a_number_sns_refuses_fails_with_its_code() {
        for code in PERMANENT {
            assert_eq!(
                outcome(400, code),
                SendOutcome::Rejected {
                    code: (*code).to_owned(),
                    reason: "what AWS said".into()
                },
                "{code}"
            );
        }
    }

    #[test]
    fn throttling_unavailability_and_account_refusals_are_retried() {
        for (status, code) in [
            (400, "Throttling"),
            (400, "ThrottlingException"),
            (429, "Throttled"),
            (400, "KMSThrottling"),
            (503, "ServiceUnavailable"),
            (403, "AuthorizationError"),
            (403, "InvalidSecurity"),
            (400, "KMSDisabled"),
            (400, "PlatformApplicationDisabled"),
        ] {
            assert!(
                matches!(outcome(status, code), SendOutcome::Transient { .. }),
                "{status} {code}"
            );
        }
    }

    #[test]
    fn an_internal_error_may_have_published_and_is_unknown() {
        for (status, code) in [
            (500, "InternalError"),
            (500, "InternalFailure"),
            (502, ""),
            (504, ""),
        ] {
            assert!(
                matches!(outcome(status, code), SendOutcome::Ambiguous { .. }),
                "{status} {code}"
            );
        }
    }
}
