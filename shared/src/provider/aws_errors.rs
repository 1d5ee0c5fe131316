//! How an AWS SDK error from a provider call (SNS `Publish`, SES `SendEmail`) becomes
//! a `SendOutcome`. The adapters have the SDK's retries off, so this sees every failed
//! attempt, and it errs towards `Ambiguous` whenever the request may have gone out.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};

use super::SendOutcome;
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

/// `permanent` lists the service's error codes that mean this message can never be
/// sent as it is (`failed` with the code); any other error answer is transient (the
/// service answered, so it did not take the message). A refused connection is
/// transient; a timeout, a connection lost mid-request or an answer that does not
/// parse is ambiguous.
pub(crate) fn classify<E, R>(
    service: &str,
    permanent: &[&str],
    error: SdkError<E, R>,
) -> SendOutcome
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match &error {
        SdkError::ServiceError(answer) => {
            let err = answer.err();
            let code = err.code().unwrap_or("Unknown").to_owned();
            let reason = err.message().unwrap_or("no message").to_owned();
            if permanent.contains(&code.as_str()) {
                SendOutcome::Rejected { code, reason }
            } else {
                SendOutcome::Transient {
                    reason: format!("{service} {code}: {reason}"),
                    retry_after: None,
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
