//! How an AWS SDK error from a provider call (SNS `Publish`, SES `SendEmail`) becomes
//! a `SendOutcome`. The adapters have the SDK's retries off, so this sees every failed
//! attempt. Only an answer that proves the message was not taken is retried; whenever
//! the request may have gone out and been taken, the outcome is `Ambiguous`.

use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sns::config::http::HttpResponse;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};

use super::{SendOutcome, retry_after};
use crate::telemetry::error_chain;

/// A provider call is one attempt bounded by `timeout`. The SDK's own retries are off:
/// a call retried after a lost answer could deliver twice, and the sender already
/// retries what is known not to be sent.
pub(crate) fn one_attempt(timeout: Duration) -> (RetryConfig, TimeoutConfig) {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2).min(timeout))
        .operation_timeout(timeout)
        .build();
    (RetryConfig::disabled(), timeouts)
}

/// Error codes AWS documents as throttling for these calls: the request was turned
/// away before anything was taken. `Throttling`/`ThrottlingException` is the common
/// one (SES's "Maximum sending rate exceeded" and "Daily message quota exceeded", SNS's
/// "Rate exceeded"); `Throttled`/`ThrottledException` is SNS's modelled 429 and
/// `KMSThrottling` its Publish error when KMS throttles; `TooManyRequestsException`
/// (429) and `LimitExceededException` are SES v2's for `SendEmail`.
pub(crate) const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "Throttled",
    "ThrottledException",
    "KMSThrottling",
    "TooManyRequestsException",
    "LimitExceededException",
];

/// `permanent` lists the service's error codes that mean this message can never be
/// sent as it is (`failed` with the code). Otherwise, by what the answer proves:
/// - a throttling code, a 503 (`ServiceUnavailable`) or another 4xx error answer (the
///   account is paused or suspended, the role may not publish...): turned away, not
///   taken, so `Transient`: retried, then held in the DLQ until it can go;
/// - a refused connection: nothing was sent, `Transient`;
/// - a 5xx other than 503 (`InternalError`, `InternalFailure`, a 502 or 504 from a load
///   balancer), a timeout, a connection lost mid-request, an answer that does not
///   parse, or an error answer without a status: the message may have been taken,
///   `Ambiguous`.
pub(crate) fn classify<E>(
    service: &str,
    permanent: &[&str],
    error: SdkError<E, HttpResponse>,
) -> SendOutcome
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = error.raw_response().map(|r| r.status().as_u16());
    let retry_after = error
        .raw_response()
        .and_then(|r| r.headers().get("retry-after"))
        .and_then(|v| retry_after::parse(v, SystemTime::now()));
    match &error {
        SdkError::ServiceError(answer) => {
            let err = answer.err();
            let code = err.code().unwrap_or("Unknown").to_owned();
            let reason = err.message().unwrap_or("no message").to_owned();
            let status_text = status.map_or_else(|| "no status".to_owned(), |s| s.to_string());
            if permanent.contains(&code.as_str()) {
                SendOutcome::Rejected { code, reason }
            } else if THROTTLING.contains(&code.as_str())
                || status.is_some_and(|s| s == 503 || (400..500).contains(&s))
            {
                SendOutcome::Transient {
                    reason: format!(
                        "{service} turned the request away ({status_text} {code}): {reason}"
                    ),
                    retry_after,
                }
            } else {
                SendOutcome::Ambiguous {
                    reason: format!(
                        "{service} answered {status_text} {code} after the request was sent: {reason}"
                    ),
                }
            }
        }
        SdkError::ConstructionFailure(_) => SendOutcome::Transient {
            reason: format!("the request could not be built: {}", error_chain(&error)),
            retry_after: None,
        },
        SdkError::DispatchFailure(_) if connection_refused(&error) => SendOutcome::Transient {
            reason: format!("could not reach {service}: {}", error_chain(&error)),
            retry_after: None,
        },
        // An answer whose error does not parse still says by its status that it was a
        // refusal.
        SdkError::ResponseError(_) if status.is_some_and(|s| s == 429 || s == 503) => {
            SendOutcome::Transient {
                reason: format!(
                    "{service} turned the request away ({}): {}",
                    status.unwrap_or_default(),
                    error_chain(&error)
                ),
                retry_after,
            }
        }
        // A timeout, a connection lost mid-request, an answer that does not parse: the
        // message may have been taken.
        _ => SendOutcome::Ambiguous {
            reason: format!(
                "no usable answer from {service} after sending: {}",
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

/// Error answers as the SDK hands them over, for the adapters' classification tests.
#[cfg(test)]
pub(crate) mod answers {
    use aws_sdk_sns::config::http::HttpResponse;
    use aws_sdk_sns::error::{ErrorMetadata, SdkError};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    pub(crate) fn raw(status: u16) -> HttpResponse {
        HttpResponse::new(
            StatusCode::try_from(status).expect("a status code"),
            SdkBody::empty(),
        )
    }

    /// The service answered `status` with error `code` (a code of `""`: none parsed).
    pub(crate) fn answered<E>(
        status: u16,
        code: &str,
        generic: impl FnOnce(ErrorMetadata) -> E,
    ) -> SdkError<E, HttpResponse> {
        let mut meta = ErrorMetadata::builder().message("what AWS said");
        if !code.is_empty() {
            meta = meta.code(code);
        }
        SdkError::service_error(generic(meta.build()), raw(status))
    }
}

#[cfg(test)]
mod tests {
    use super::answers::{answered, raw};
    use super::*;
    use aws_sdk_sns::error::ConnectorError;
    use aws_sdk_sns::operation::publish::PublishError;

    fn outcome(status: u16, code: &str) -> SendOutcome {
        classify(
            "SNS",
            &["InvalidParameter"],
            answered(status, code, PublishError::generic),
        )
    }

    #[test]
    fn documented_throttling_is_retried_whatever_its_status() {
        for code in THROTTLING {
            for status in [400, 429, 500] {
                assert!(
                    matches!(outcome(status, code), SendOutcome::Transient { .. }),
                    "{status} {code}"
                );
            }
        }
    }

    #[test]
    fn unavailable_is_retried_with_its_retry_after() {
        let mut raw = raw(503);
        raw.headers_mut().insert("retry-after", "7");
        let error = SdkError::service_error(
            PublishError::generic(
                aws_sdk_sns::error::ErrorMetadata::builder()
                    .code("ServiceUnavailable")
                    .build(),
            ),
            raw,
        );
        assert!(matches!(
            classify("SNS", &[], error),
            SendOutcome::Transient { retry_after: Some(wait), .. } if wait == Duration::from_secs(7)
        ));
        assert!(matches!(outcome(503, ""), SendOutcome::Transient { .. }));
    }

    #[test]
    fn a_huge_retry_after_is_clamped() {
        let mut raw = raw(429);
        raw.headers_mut()
            .insert("retry-after", "18446744073709551615");
        let error = SdkError::service_error(
            PublishError::generic(aws_sdk_sns::error::ErrorMetadata::builder().build()),
            raw,
        );
        assert!(matches!(
            classify("SNS", &[], error),
            SendOutcome::Transient { retry_after: Some(wait), .. } if wait == retry_after::MAX_RETRY_AFTER
        ));
    }

    /// A 4xx error answer is a refusal: the service did not take the message.
    #[test]
    fn other_client_errors_are_refusals_and_retried() {
        for (status, code) in [
            (403, "AuthorizationError"),
            (400, "AccessDeniedException"),
            (403, "InvalidClientTokenId"),
            (403, "ExpiredTokenException"),
            (400, "KMSDisabled"),
            (404, ""),
        ] {
            assert!(
                matches!(outcome(status, code), SendOutcome::Transient { .. }),
                "{status} {code}"
            );
        }
    }

    #[test]
    fn a_permanent_code_fails_the_message() {
        assert_eq!(
            outcome(400, "InvalidParameter"),
            SendOutcome::Rejected {
                code: "InvalidParameter".into(),
                reason: "what AWS said".into()
            }
        );
    }

    /// A 500 may come after the service stored the message; a 502 or 504 from a load
    /// balancer that passed the request on. Sending again could deliver twice.
    #[test]
    fn server_errors_other_than_503_are_unknown() {
        for (status, code) in [
            (500, "InternalError"),
            (500, "InternalFailure"),
            (500, ""),
            (502, ""),
            (504, ""),
            (501, "NotImplemented"),
        ] {
            assert!(
                matches!(outcome(status, code), SendOutcome::Ambiguous { .. }),
                "{status} {code}"
            );
        }
    }

    #[test]
    fn an_answer_that_does_not_parse_is_unknown_unless_its_status_refused() {
        let unreadable =
            |status| SdkError::<PublishError, _>::response_error("no parse", raw(status));
        assert!(matches!(
            classify("SNS", &[], unreadable(200)),
            SendOutcome::Ambiguous { .. }
        ));
        assert!(matches!(
            classify("SNS", &[], unreadable(502)),
            SendOutcome::Ambiguous { .. }
        ));
        for status in [429, 503] {
            assert!(
                matches!(
                    classify("SNS", &[], unreadable(status)),
                    SendOutcome::Transient { .. }
                ),
                "{status}"
            );
        }
    }

    #[test]
    fn a_refused_connection_is_retried() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = SdkError::<PublishError, HttpResponse>::dispatch_failure(ConnectorError::io(
            Box::new(refused),
        ));
        assert!(matches!(
            classify("SNS", &[], error),
            SendOutcome::Transient { .. }
        ));
    }

    #[test]
    fn no_usable_answer_after_sending_is_unknown() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let errors: [SdkError<PublishError, HttpResponse>; 3] = [
            SdkError::timeout_error("operation timed out"),
            SdkError::dispatch_failure(ConnectorError::io(Box::new(reset))),
            SdkError::dispatch_failure(ConnectorError::timeout("read timed out".into())),
        ];
        for error in errors {
            assert!(
                matches!(classify("SNS", &[], error), SendOutcome::Ambiguous { .. }),
                "should be unknown"
            );
        }
    }
}
