//! Amazon SES (API v2) adapter: one plain-text email per `SendEmail`, from the address
//! the configuration names, with the function's own IAM role (no secret to rotate).

use std::time::Duration;

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use futures::FutureExt;
use futures::future::BoxFuture;

use super::aws_errors::{classify, one_attempt};
use super::{Outbound, OutboundEmail, Provider, SendOutcome, wrong_channel};
use crate::address::EmailAddress;

/// SES error codes that mean this email can never be sent as it is: the content or an
/// address was refused (`MessageRejected`, `BadRequestException`), or the sending
/// identity, its MAIL FROM domain or a configuration set is not there to send with
/// (`MailFromDomainNotVerifiedException`, `NotFoundException`). Everything else SES
/// answers (`TooManyRequestsException`, `LimitExceededException`,
/// `SendingPausedException`, `AccountSuspendedException`, 5xx) is known not sent and
/// retried: the message is not at fault.
const PERMANENT: &[&str] = &[
    "MessageRejected",
    "MailFromDomainNotVerifiedException",
    "NotFoundException",
    "BadRequestException",
];

pub struct SesProvider {
    client: aws_sdk_sesv2::Client,
    from: EmailAddress,
}

impl SesProvider {
    /// The SDK's own retries are off: a `SendEmail` retried after a lost answer could
    /// email someone twice, and the sender already retries what is known not to be
    /// sent.
    pub fn new(
        config: aws_sdk_sesv2::config::Builder,
        from: EmailAddress,
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
    use aws_sdk_sesv2::error::{ConnectorError, ErrorMetadata, SdkError};
    use aws_sdk_sesv2::operation::send_email::SendEmailError;

    fn answered(code: &str) -> SdkError<SendEmailError, ()> {
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("what SES said")
            .build();
        SdkError::service_error(SendEmailError::generic(meta), ())
    }

    fn outcome(error: SdkError<SendEmailError, ()>) -> SendOutcome {
        classify("SES", PERMANENT, error)
    }

    #[test]
    fn a_refused_message_or_identity_fails_with_its_code() {
        for code in PERMANENT {
            assert_eq!(
                outcome(answered(code)),
                SendOutcome::Rejected {
                    code: (*code).to_owned(),
                    reason: "what SES said".into()
                },
                "{code}"
            );
        }
    }

    #[test]
    fn throttling_quotas_pauses_and_server_errors_are_retried() {
        for code in [
            "TooManyRequestsException",
            "LimitExceededException",
            "SendingPausedException",
            "AccountSuspendedException",
            "InternalFailure",
            "ServiceUnavailable",
            "AccessDeniedException",
        ] {
            assert!(
                matches!(outcome(answered(code)), SendOutcome::Transient { .. }),
                "{code}"
            );
        }
    }

    #[test]
    fn a_refused_connection_is_retried() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = SdkError::dispatch_failure(ConnectorError::io(Box::new(refused)));
        assert!(matches!(outcome(error), SendOutcome::Transient { .. }));
    }

    #[test]
    fn no_usable_answer_after_sending_is_unknown() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        for error in [
            SdkError::timeout_error("operation timed out"),
            SdkError::response_error("the answer does not parse", ()),
            SdkError::dispatch_failure(ConnectorError::io(Box::new(reset))),
            SdkError::dispatch_failure(ConnectorError::timeout("read timed out".into())),
        ] {
            assert!(
                matches!(outcome(error), SendOutcome::Ambiguous { .. }),
                "should be unknown"
            );
        }
    }
}
