//! Amazon SES (API v2) adapter: one plain-text email per `SendEmail`, from the address
//! the configuration names, with the function's own IAM role (no secret to rotate).
//! Each email names the configuration set (whose event destination publishes its
//! events) and carries Herald's tenant and message id as message tags, which SES
//! echoes in every event (`herald::webhook::ses`).

use std::time::Duration;

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageTag};
use futures::FutureExt;
use futures::future::BoxFuture;

use super::aws_errors::{classify, one_attempt};
use super::{Outbound, OutboundEmail, Provider, SendOutcome, wrong_channel};
use crate::address::EmailAddress;
use crate::webhook::ses::{MESSAGE_TAG, TENANT_TAG, message_tag};

/// SES error codes that mean this email can never be sent as it is: the content or an
/// address was refused (`MessageRejected`, `BadRequestException`), or the sending
/// identity, its MAIL FROM domain or a configuration set is not there to send with
/// (`MailFromDomainNotVerifiedException`, `NotFoundException`). Throttling
/// (`TooManyRequestsException`, `LimitExceededException`, `ThrottlingException`), a
/// 503 and the other 4xx refusals (`SendingPausedException`,
/// `AccountSuspendedException`, `AccessDeniedException`) are known not sent and
/// retried: the message is not at fault. Any other 5xx is `unknown`
/// (`aws_errors::classify`).
const PERMANENT: &[&str] = &[
    "MessageRejected",
    "MailFromDomainNotVerifiedException",
    "NotFoundException",
    "BadRequestException",
];

pub struct SesProvider {
    client: aws_sdk_sesv2::Client,
    from: EmailAddress,
    configuration_set: Option<String>,
}

impl SesProvider {
    /// The SDK's own retries are off: a `SendEmail` retried after a lost answer could
    /// email someone twice, and the sender already retries what is known not to be
    /// sent.
    pub fn new(
        config: aws_sdk_sesv2::config::Builder,
        from: EmailAddress,
        configuration_set: Option<String>,
        timeout: Duration,
    ) -> Self {
        let (retries, timeouts) = one_attempt(timeout);
        let config = config
            .retry_config(retries)
            .timeout_config(timeouts)
            .build();
        Self {
            client: aws_sdk_sesv2::Client::from_conf(config),
            from,
            configuration_set,
        }
    }

    async fn send_email(&self, message: &OutboundEmail) -> SendOutcome {
        let (subject, body) = match (utf8(&message.subject), utf8(&message.body)) {
            (Ok(subject), Ok(body)) => (subject, body),
            (Err(e), _) | (_, Err(e)) => {
                return SendOutcome::Rejected {
                    code: "content".into(),
                    reason: e.to_string(),
                };
            }
        };
        let result = self
            .client
            .send_email()
            .from_email_address(self.from.as_str())
            .destination(
                Destination::builder()
                    .to_addresses(message.to.as_str())
                    .build(),
            )
            .content(
                EmailContent::builder()
                    .simple(
                        Message::builder()
                            .subject(subject)
                            .body(Body::builder().text(body).build())
                            .build(),
                    )
                    .build(),
            )
            .set_configuration_set_name(self.configuration_set.clone())
            .email_tags(tag(TENANT_TAG, message.tenant.as_str()))
            .email_tags(tag(MESSAGE_TAG, &message_tag(message.message_id)))
            .send()
            .await;
        match result {
            Ok(out) => match out.message_id {
                Some(id) if !id.is_empty() => SendOutcome::Accepted { provider_ref: id },
                _ => SendOutcome::Ambiguous {
                    reason: "SES answered without a message id".into(),
                },
            },
            Err(error) => classify("SES", PERMANENT, error),
        }
    }
}

fn tag(name: &str, value: &str) -> MessageTag {
    MessageTag::builder()
        .name(name)
        .value(value)
        .build()
        .expect("name and value are set")
}

fn utf8(data: &str) -> Result<Content, aws_sdk_sesv2::error::BuildError> {
    Content::builder().data(data).charset("UTF-8").build()
}

impl Provider for SesProvider {
    fn name(&self) -> &'static str {
        "ses"
    }

    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, SendOutcome> {
        match message {
            Outbound::Email(email) => self.send_email(email).boxed(),
            Outbound::Sms(_) => futures::future::ready(wrong_channel(self.name(), message)).boxed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::aws_errors::answers::answered;
    use aws_sdk_sesv2::operation::send_email::SendEmailError;

    fn outcome(status: u16, code: &str) -> SendOutcome {
        classify(
            "SES",
            PERMANENT,
            answered(status, code, SendEmailError::generic),
        )
    }

    #[test]
    fn a_refused_message_or_identity_fails_with_its_code() {
        for (status, code) in [
            (400, "MessageRejected"),
            (400, "MailFromDomainNotVerifiedException"),
            (404, "NotFoundException"),
            (400, "BadRequestException"),
        ] {
            assert_eq!(
                outcome(status, code),
                SendOutcome::Rejected {
                    code: code.to_owned(),
                    reason: "what AWS said".into()
                },
                "{code}"
            );
        }
    }

    /// `SendEmail`'s errors with the statuses SES documents for them, and the common
    /// ones: each is a refusal, so the email was not taken.
    #[test]
    fn throttling_quotas_pauses_and_unavailability_are_retried() {
        for (status, code) in [
            (429, "TooManyRequestsException"),
            (400, "LimitExceededException"),
            (400, "ThrottlingException"),
            (400, "SendingPausedException"),
            (400, "AccountSuspendedException"),
            (403, "AccessDeniedException"),
            (503, "ServiceUnavailable"),
        ] {
            assert!(
                matches!(outcome(status, code), SendOutcome::Transient { .. }),
                "{code}"
            );
        }
    }

    #[test]
    fn an_internal_failure_may_have_sent_and_is_unknown() {
        for (status, code) in [(500, "InternalFailure"), (502, ""), (504, "")] {
            assert!(
                matches!(outcome(status, code), SendOutcome::Ambiguous { .. }),
                "{status} {code}"
            );
        }
    }
}
