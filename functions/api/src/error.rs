//! Every answer the API gives that is not a success: one `ApiError` variant per kind of
//! problem, each mapped to exactly one status and one problem type (`ProblemKind`). The
//! OpenAPI document describes the same kinds from the same table, so the two cannot
//! drift. Dependency failures are logged with their cause chain and answered without it.
//! One room on purpose: the kinds, the variants and the mapping between them are one
//! table, read (and changed) together.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald::problem::Problem;
use herald::queue::QueueError;
use herald::store::StoreError;
use herald::token::{FAILED_FETCH_BACKOFF, Rejection};

use crate::FieldErrors;

/// Field errors listed in one answer; past this, the detail says how many more.
const MAX_LISTED_ERRORS: usize = 100;

/// Declares the problem kinds: status, type slug (`https://herald.dev/problems/{slug}`),
/// title, and what the OpenAPI document says of it.
macro_rules! problem_kinds {
    ($($kind:ident => $status:ident, $slug:literal, $title:literal, $doc:literal;)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum ProblemKind {
            $($kind,)+
        }

        impl ProblemKind {
            pub const ALL: &[ProblemKind] = &[$(ProblemKind::$kind,)+];

            pub fn status(self) -> StatusCode {
                match self {
                    $(ProblemKind::$kind => StatusCode::$status,)+
                }
            }

            pub fn slug(self) -> &'static str {
                match self {
                    $(ProblemKind::$kind => $slug,)+
                }
            }

            pub fn title(self) -> &'static str {
                match self {
                    $(ProblemKind::$kind => $title,)+
                }
            }

            /// What the kind means to a client, for the OpenAPI document.
            pub fn doc(self) -> &'static str {
                match self {
                    $(ProblemKind::$kind => $doc,)+
                }
            }
        }
    };
}

problem_kinds! {
    InvalidRequest => BAD_REQUEST, "invalid-request", "Invalid request",
        "Invalid values or query parameters; `errors` lists every failing field (a JSON \
         Pointer into the body, or the parameter name). Nothing was written.";
    MalformedJson => BAD_REQUEST, "malformed-json", "Malformed JSON body",
        "The body is not the JSON object this route takes: unparseable, empty, an unknown \
         field or a value of the wrong type. `errors` names the field when it can.";
    IdempotencyKeyRequired => BAD_REQUEST, "idempotency-key", "Idempotency-Key required",
        "The `Idempotency-Key` header is missing or malformed (1–255 visible ASCII characters).";
    InvalidId => BAD_REQUEST, "invalid-id", "Invalid id",
        "The id in the path is not an id of the kind this route takes.";
    Unauthorized => UNAUTHORIZED, "unauthorized", "Unauthorized",
        "No valid bearer token: missing, malformed, expired, not yet valid, not issued by \
         Herald's user pool, or issued to a client that is not registered or was revoked. \
         `detail` says which.";
    Forbidden => FORBIDDEN, "forbidden", "Forbidden",
        "The token is valid but may not do this: its groups or scopes lack the permission, \
         or its tenant is not registered.";
    TenantSuspended => FORBIDDEN, "tenant-suspended", "Tenant suspended",
        "Your tenant is suspended: its requests are refused and its queued messages held.";
    NotFound => NOT_FOUND, "not-found", "Not Found",
        "No such resource for your tenant. Another tenant's resource answers exactly like a \
         missing one.";
    MethodNotAllowed => METHOD_NOT_ALLOWED, "method-not-allowed", "Method Not Allowed",
        "The path exists, but not with this method.";
    RequestInProgress => CONFLICT, "request-in-progress", "Request in progress",
        "A request with this `Idempotency-Key` has not finished; retry after `Retry-After`.";
    BatchFinished => CONFLICT, "batch-finished", "Batch already finished",
        "Every message of the batch is final; nothing is left to cancel.";
    TenantExists => CONFLICT, "tenant-exists", "Tenant exists",
        "The tenant id is taken.";
    ClientLimitReached => CONFLICT, "client-limit-reached", "Client limit reached",
        "The tenant holds as many active machine clients as it may; revoke one first.";
    UserExists => CONFLICT, "user-exists", "User exists",
        "The email address is a Herald user already (of your tenant or another: an \
         address signs in to one tenant). Nothing was changed.";
    EndpointDisabled => CONFLICT, "endpoint-disabled", "Endpoint disabled",
        "The webhook endpoint is disabled, so nothing is delivered to it: enable it first.";
    LastAdmin => CONFLICT, "last-admin", "Last admin",
        "The user is the tenant's last active admin: promote another admin first. Nothing \
         was changed.";
    OwnAccount => CONFLICT, "own-account", "Own account",
        "An admin cannot change their own role or remove themselves; another admin must. \
         Nothing was changed.";
    UserRemoved => CONFLICT, "user-removed", "User removed",
        "The user was removed; a removed user's role cannot change.";
    RedriveRunning => CONFLICT, "redrive-running", "Redrive running",
        "Another redrive of the dead-letter queue (the scheduled one, or another \
         operator's) is running; nothing was moved. Retry after `Retry-After`, by when its \
         lease has run out.";
    SuppressionExists => CONFLICT, "suppression-exists", "Already suppressed",
        "The address is on the suppression list already; `detail` says why.";
    OptOutLocked => CONFLICT, "opt-out-locked", "Opt-out cannot be lifted",
        "The recipient opted out (texted STOP): only the recipient can lift it, by texting START.";
    BodyTooLarge => PAYLOAD_TOO_LARGE, "body-too-large", "Request body too large",
        "The body is larger than the API accepts (5 MiB unless configured otherwise).";
    UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported Media Type",
        "The body is not sent as `application/json`.";
    IdempotencyKeyReused => UNPROCESSABLE_ENTITY, "idempotency-key-reused", "Idempotency-Key reused",
        "This `Idempotency-Key` was used for a different request; use a new key for a new request.";
    RateLimited => TOO_MANY_REQUESTS, "rate-limited", "Too many requests",
        "Your tenant made more requests this second than its limit; retry after `Retry-After`.";
    QuotaExceeded => TOO_MANY_REQUESTS, "quota-exceeded", "Daily quota exceeded",
        "The request would pass your tenant's daily send quota; nothing was accepted. \
         `Retry-After` is the time to UTC midnight.";
    LineFull => TOO_MANY_REQUESTS, "too-many-batches-waiting", "Too many batches waiting",
        "So many of your tenant's batches wait for their turn to send that no more are \
         taken until the line moves; nothing was accepted. Retry after `Retry-After`, or \
         send fewer, larger batches.";
    Internal => INTERNAL_SERVER_ERROR, "internal", "Internal Server Error",
        "Stored data could not be read. The error was logged; contact support with the \
         correlation id.";
    RedriveIncomplete => BAD_GATEWAY, "redrive-incomplete", "Redrive incomplete",
        "Some dead letters could not be moved (or the DLQ could not be read); `detail` has \
         the counts, and the failed messages are still in the DLQ.";
    Unavailable => SERVICE_UNAVAILABLE, "unavailable", "Service Unavailable",
        "A dependency is temporarily unavailable. Retry later, with the same \
         `Idempotency-Key` for a POST: the retry finishes the same work instead of \
         starting it twice.";
    KeysUnavailable => SERVICE_UNAVAILABLE, "keys-unavailable", "Service Unavailable",
        "The user pool's signing keys could not be fetched to check the token; retry after \
         `Retry-After`.";
}

impl ProblemKind {
    /// The headers an answer of this kind carries, by name (the document describes them).
    pub fn headers(self) -> &'static [&'static str] {
        match self {
            ProblemKind::Unauthorized => &["WWW-Authenticate"],
            ProblemKind::RateLimited => &[
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "RateLimit-Policy",
            ],
            ProblemKind::RequestInProgress
            | ProblemKind::RedriveRunning
            | ProblemKind::QuotaExceeded
            | ProblemKind::LineFull
            | ProblemKind::Unavailable
            | ProblemKind::KeysUnavailable => &["Retry-After"],
            _ => &[],
        }
    }

    fn problem(self) -> Problem {
        Problem::new(self.status(), self.slug(), self.title())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request has {} invalid fields", .0.len())]
    InvalidFields(FieldErrors),
    #[error("malformed JSON body: {detail}")]
    MalformedJson {
        detail: String,
        field: Option<String>,
    },
    #[error("Idempotency-Key {0}")]
    IdempotencyKeyRequired(&'static str),
    #[error("invalid {what} id: {reason}")]
    InvalidId { what: &'static str, reason: String },
    #[error(transparent)]
    Unauthorized(Rejection),
    #[error("forbidden: {0}")]
    Forbidden(Cow<'static, str>),
    #[error("the tenant is suspended")]
    TenantSuspended,
    /// What is missing, for people: "No such batch."
    #[error("{0}")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("a request with this Idempotency-Key is in progress")]
    RequestInProgress,
    #[error("the batch is finished")]
    BatchFinished,
    #[error("the tenant exists")]
    TenantExists,
    #[error("the tenant holds {limit} active machine clients")]
    ClientLimitReached { limit: u32 },
    #[error("the email is a user already")]
    UserExists {
        /// Where the address is in the request.
        field: &'static str,
    },
    #[error("the webhook endpoint is disabled")]
    EndpointDisabled,
    #[error("the user is the tenant's last admin")]
    LastAdmin,
    #[error("an admin acted on their own account")]
    OwnAccount,
    #[error("the user was removed")]
    UserRemoved,
    #[error("a redrive is running: {holder}")]
    RedriveRunning {
        holder: String,
        until: herald::Timestamp,
        retry_after_secs: u64,
    },
    #[error("the address is suppressed already ({reason})")]
    SuppressionExists {
        reason: herald::domain::SuppressionReason,
    },
    #[error("the suppression ({reason}) is the recipient's to lift")]
    OptOutLocked {
        reason: herald::domain::SuppressionReason,
    },
    #[error("the body is over {max_bytes} bytes")]
    BodyTooLarge { max_bytes: usize },
    #[error("the body is not application/json")]
    UnsupportedMediaType,
    #[error("the Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    #[error("over {limit} requests per second")]
    RateLimited { limit: u32, retry_after_secs: u64 },
    #[error("over the daily quota of {limit}")]
    QuotaExceeded {
        limit: u32,
        left: u32,
        count: u32,
        retry_after_secs: u64,
    },
    #[error("{waiting} batches wait for their turn")]
    LineFull { waiting: usize },
    #[error("redrive incomplete: {moved} moved, {parked} parked, {failed} failed")]
    RedriveIncomplete {
        moved: usize,
        parked: usize,
        failed: usize,
    },
    /// A handler or layer met a state the router should have made impossible.
    #[error("misrouted: {0}")]
    Misrouted(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// SQS, queueing webhook deliveries (recover).
    #[error(transparent)]
    Deliveries(#[from] herald::outbound::job::QueueError),
    /// Secrets Manager, reading the cursor key.
    #[error(transparent)]
    Secrets(#[from] herald::secrets::SecretsError),
    /// Cognito: machine clients and users.
    #[error("cognito: {0}")]
    Identity(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A webhook endpoint's sealed secret did not open with the sealing key.
    #[error("webhook secret: {0}")]
    Sealing(String),
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        ApiError::Unauthorized(rejection)
    }
}

impl ApiError {
    /// The one kind of problem this error answers as.
    pub fn kind(&self) -> ProblemKind {
        match self {
            ApiError::InvalidFields(_) => ProblemKind::InvalidRequest,
            ApiError::MalformedJson { .. } => ProblemKind::MalformedJson,
            ApiError::IdempotencyKeyRequired(_) => ProblemKind::IdempotencyKeyRequired,
            ApiError::InvalidId { .. } => ProblemKind::InvalidId,
            ApiError::Unauthorized(Rejection::KeysUnavailable) => ProblemKind::KeysUnavailable,
            ApiError::Unauthorized(_) => ProblemKind::Unauthorized,
            ApiError::Forbidden(_) => ProblemKind::Forbidden,
            ApiError::TenantSuspended => ProblemKind::TenantSuspended,
            ApiError::NotFound(_) => ProblemKind::NotFound,
            ApiError::MethodNotAllowed => ProblemKind::MethodNotAllowed,
            ApiError::RequestInProgress => ProblemKind::RequestInProgress,
            ApiError::BatchFinished => ProblemKind::BatchFinished,
            ApiError::TenantExists => ProblemKind::TenantExists,
            ApiError::ClientLimitReached { .. } => ProblemKind::ClientLimitReached,
            ApiError::UserExists { .. } => ProblemKind::UserExists,
            ApiError::EndpointDisabled => ProblemKind::EndpointDisabled,
            ApiError::LastAdmin => ProblemKind::LastAdmin,
            ApiError::OwnAccount => ProblemKind::OwnAccount,
            ApiError::UserRemoved => ProblemKind::UserRemoved,
            ApiError::RedriveRunning { .. } => ProblemKind::RedriveRunning,
            ApiError::SuppressionExists { .. } => ProblemKind::SuppressionExists,
            ApiError::OptOutLocked { .. } => ProblemKind::OptOutLocked,
            ApiError::BodyTooLarge { .. } => ProblemKind::BodyTooLarge,
            ApiError::UnsupportedMediaType => ProblemKind::UnsupportedMediaType,
            ApiError::IdempotencyKeyReused => ProblemKind::IdempotencyKeyReused,
            ApiError::RateLimited { .. } => ProblemKind::RateLimited,
            ApiError::QuotaExceeded { .. } => ProblemKind::QuotaExceeded,
            ApiError::LineFull { .. } => ProblemKind::LineFull,
            ApiError::RedriveIncomplete { .. } => ProblemKind::RedriveIncomplete,
            ApiError::Misrouted(_)
            | ApiError::Sealing(_)
            | ApiError::Store(StoreError::Corrupt { .. }) => ProblemKind::Internal,
            ApiError::Store(_)
            | ApiError::Queue(_)
            | ApiError::Deliveries(_)
            | ApiError::Secrets(_)
            | ApiError::Identity(_) => ProblemKind::Unavailable,
        }
    }

    pub fn forbidden(detail: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Forbidden(detail.into())
    }

    /// The problem document this error answers with: its kind's status, type and title,
    /// and what this occurrence adds (detail, fields, headers).
    pub fn problem(self) -> Problem {
        let problem = self.kind().problem();
        match self {
            ApiError::InvalidFields(errors) => {
                let total = errors.len();
                let detail = if total > MAX_LISTED_ERRORS {
                    format!(
                        "The request has {total} invalid fields; the first {MAX_LISTED_ERRORS} are listed in errors."
                    )
                } else {
                    "The request has invalid fields; see errors.".to_owned()
                };
                errors
                    .into_inner()
                    .into_iter()
                    .take(MAX_LISTED_ERRORS)
                    .fold(problem.detail(detail), |p, (field, message)| {
                        p.field(field, message)
                    })
            }
            ApiError::MalformedJson { detail, field } => match field {
                Some(field) => problem.detail(detail.clone()).field(field, detail),
                None => problem.detail(detail),
            },
            ApiError::IdempotencyKeyRequired(message) => problem
                .detail("Every POST needs an Idempotency-Key header: a unique value per request, reused only to retry it.")
                .field("Idempotency-Key", message),
            ApiError::InvalidId { what, reason } => problem
                .detail(format!("The path does not hold a {what} id."))
                .field("id", reason),
            ApiError::Unauthorized(Rejection::KeysUnavailable) => problem
                .detail("The sign-in keys could not be fetched; retry shortly.")
                // The verifier asks the JWKS endpoint again only after its backoff.
                .header(
                    header::RETRY_AFTER,
                    HeaderValue::from(FAILED_FETCH_BACKOFF.as_secs()),
                ),
            ApiError::Unauthorized(rejection) => problem
                .detail(rejection.to_string())
                .header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            ApiError::Forbidden(detail) => problem.detail(detail),
            ApiError::TenantSuspended => problem.detail(
                "Your tenant is suspended; its requests are refused and its queued messages are held. Contact support.",
            ),
            ApiError::NotFound(detail) => problem.detail(detail),
            ApiError::MethodNotAllowed => problem,
            ApiError::RequestInProgress => problem
                .detail("A request with this Idempotency-Key is still being processed; retry shortly.")
                .field("Idempotency-Key", "in use by a request that has not finished")
                .header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            ApiError::BatchFinished => problem.detail(
                "Every message of this batch has reached a final status; there is nothing left to cancel.",
            ),
            ApiError::TenantExists => problem
                .detail("A tenant with this id exists already.")
                .field("/tenant_id", "is taken"),
            ApiError::ClientLimitReached { limit } => problem.detail(format!(
                "Your tenant may hold {limit} active machine clients; revoke one first."
            )),
            ApiError::UserExists { field } => problem
                .detail("This email address is a Herald user already; nothing was changed.")
                .field(field, "is a user already"),
            ApiError::EndpointDisabled => {
                problem.detail("Enable the endpoint first; nothing was sent.")
            }
            ApiError::LastAdmin => problem.detail(
                "This user is the tenant's last active admin; make another user an admin first.",
            ),
            ApiError::OwnAccount => problem
                .detail("You cannot change your own role or remove yourself; ask another admin.")
                .field("id", "is your own user"),
            ApiError::UserRemoved => {
                problem.detail("This user was removed; their role cannot change.")
            }
            ApiError::RedriveRunning {
                holder,
                until,
                retry_after_secs,
            } => problem
                .detail(format!(
                    "Another redrive is running ({holder}); its lease runs out at {until} at the latest. Nothing was moved."
                ))
                .header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs)),
            ApiError::SuppressionExists { reason } => problem
                .detail(format!("The address is on the suppression list already, for reason {reason}."))
                .field("/address", "is suppressed already"),
            ApiError::OptOutLocked { reason } => problem.detail(format!(
                "The address is suppressed for reason {reason}: the recipient opted out, and only their START lifts it."
            )),
            ApiError::BodyTooLarge { max_bytes } => {
                problem.detail(format!("The request body may be at most {max_bytes} bytes."))
            }
            ApiError::UnsupportedMediaType => problem
                .detail("Send the request body as application/json.")
                .field("content-type", "must be application/json"),
            ApiError::IdempotencyKeyReused => problem
                .detail("This Idempotency-Key was used for a different request; use a new key for a new request.")
                .field("Idempotency-Key", "already used for a different request"),
            ApiError::RateLimited {
                limit,
                retry_after_secs,
            } => problem
                .detail(format!(
                    "Your tenant may make {limit} requests per second; retry after the Retry-After delay."
                ))
                .header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs)),
            ApiError::QuotaExceeded {
                limit,
                left,
                count,
                retry_after_secs,
            } => problem
                .detail(format!(
                    "Your tenant may send {limit} messages per UTC day and has {left} left today; this request has {count}. Nothing was accepted."
                ))
                .header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs)),
            ApiError::LineFull { waiting } => problem
                .detail(format!(
                    "{waiting} of your tenant's batches wait for their turn to send; no more are taken until one starts. Nothing was accepted."
                ))
                .header(header::RETRY_AFTER, HeaderValue::from_static("60")),
            ApiError::RedriveIncomplete {
                moved,
                parked,
                failed,
            } => problem.detail(format!(
                "{moved} moved, {parked} parked, {failed} failed; the failed messages are still in the DLQ."
            )),
            ApiError::Misrouted(_)
            | ApiError::Sealing(_)
            | ApiError::Store(StoreError::Corrupt { .. }) => problem
                .detail("The error was logged; retry with the same Idempotency-Key or contact support with the correlation id."),
            ApiError::Store(_)
            | ApiError::Queue(_)
            | ApiError::Deliveries(_)
            | ApiError::Secrets(_)
            | ApiError::Identity(_) => problem
                .detail("A dependency is temporarily unavailable; retry later.")
                .header(header::RETRY_AFTER, HeaderValue::from_static("1")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        if kind.status().is_server_error() {
            tracing::error!(error = %herald::telemetry::error_chain(&self), "request failed");
        } else {
            tracing::info!(problem = kind.slug(), reason = %self, "request refused");
        }
        self.problem().into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_slug_and_a_client_or_server_error_status() {
        let mut slugs: Vec<_> = ProblemKind::ALL.iter().map(|k| k.slug()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), ProblemKind::ALL.len());
        for kind in ProblemKind::ALL {
            assert!(
                kind.status().is_client_error() || kind.status().is_server_error(),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn an_error_answers_with_its_kinds_status_type_and_headers() {
        let errors = [
            ApiError::InvalidFields(FieldErrors::one("/to", "is not E.164")),
            ApiError::Unauthorized(Rejection::Expired),
            ApiError::Unauthorized(Rejection::KeysUnavailable),
            ApiError::RateLimited {
                limit: 5,
                retry_after_secs: 1,
            },
            ApiError::QuotaExceeded {
                limit: 10,
                left: 2,
                count: 3,
                retry_after_secs: 60,
            },
            ApiError::RequestInProgress,
            ApiError::LineFull { waiting: 1_000 },
            ApiError::RedriveRunning {
                holder: "scheduled redriver (run 1)".into(),
                until: herald::Timestamp::from_epoch_millis(0),
                retry_after_secs: 90,
            },
            ApiError::Store(StoreError::Unprocessed(3)),
            ApiError::Store(StoreError::Corrupt {
                pk: "p".into(),
                sk: "s".into(),
                reason: "r".into(),
            }),
        ];
        for error in errors {
            let kind = error.kind();
            let problem = error.problem();
            assert_eq!(problem.status, kind.status().as_u16(), "{kind:?}");
            assert!(problem.kind.ends_with(kind.slug()), "{kind:?}");
            assert_eq!(problem.title, kind.title());
            let mut sent: Vec<String> = problem
                .headers
                .iter()
                .map(|(name, _)| name.as_str().to_owned())
                .collect();
            let mut documented: Vec<String> = kind
                .headers()
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .filter(|h| !h.starts_with("ratelimit-"))
                .collect();
            sent.sort();
            documented.sort();
            assert_eq!(sent, documented, "{kind:?}");
        }
    }

    #[test]
    fn field_errors_list_the_first_hundred_and_count_the_rest() {
        let mut errors = FieldErrors::default();
        for i in 0..250 {
            errors.add(format!("/recipients/{i}/to"), "is not E.164");
        }
        let problem = errors.check().unwrap_err().problem();
        assert_eq!(problem.errors.len(), MAX_LISTED_ERRORS);
        assert!(problem.detail.unwrap().contains("250 invalid fields"));
    }
}
