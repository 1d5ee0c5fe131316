//! The document's problem answers, generated from `ProblemKind`: a reusable answer per
//! kind, each operation's answers grouped by status, and the `problems!` sets handlers
//! name in their `#[utoipa::path]` for what they can answer beyond the policy's answers.

use std::collections::{BTreeMap, BTreeSet};

use herald::problem::{self, Problem};
use utoipa::ToSchema;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{Components, ContentBuilder, Header, OpenApi, Ref, RefOr, ResponseBuilder};

use super::{header_of, rate_limit_headers};
use crate::ProblemKind;

/// The extension on each problem answer that lists its problem types' slugs, so code
/// can match on them and `add_problems` can merge the policy's answers into it.
const PROBLEM_TYPES: &str = "x-problem-types";

/// What the document says of a header a problem answer carries.
fn problem_header(name: &str) -> Header {
    match name {
        "Retry-After" => header_of::<u64>(
            "Seconds to wait before retrying: to the next second when rate limited, to UTC \
             midnight when over the daily quota, to the end of the running redrive's lease.",
        ),
        "WWW-Authenticate" => header_of::<String>("`Bearer`."),
        other => rate_limit_headers()
            .into_iter()
            .find(|(name, _)| name == other)
            .map(|(_, header)| header)
            .unwrap_or_else(|| panic!("no description for the {other} header")),
    }
}

/// The answer of one status that can be any of `kinds`: each kind's type and meaning,
/// the headers they carry, and the `x-problem-types` list.
fn problem_answer(kinds: &BTreeSet<ProblemKind>) -> utoipa::openapi::Response {
    let description = kinds
        .iter()
        .map(|kind| format!("`{}`: {}", kind.slug(), kind.doc()))
        .collect::<Vec<_>>()
        .join("\n\n");
    let slugs: Vec<&str> = kinds.iter().map(|kind| kind.slug()).collect();
    let headers: BTreeSet<&str> = kinds
        .iter()
        .flat_map(|kind| kind.headers())
        .copied()
        .collect();
    let mut builder = ResponseBuilder::new()
        .description(description)
        .content(
            problem::CONTENT_TYPE,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(Problem::name())))
                .build(),
        )
        .extensions(Some(
            ExtensionsBuilder::new()
                .add(PROBLEM_TYPES, serde_json::json!(slugs))
                .build(),
        ));
    for name in headers {
        builder = builder.header(name, problem_header(name));
    }
    builder.build()
}

/// The name of a kind's reusable answer in the document's components.
fn component_name(kind: ProblemKind) -> String {
    format!("{kind:?}")
}

/// Every kind's answer, for answers of one kind to refer to.
pub(super) fn add_problem_components(document: &mut OpenApi) {
    let components = document.components.get_or_insert_with(Components::new);
    for kind in ProblemKind::ALL {
        components.responses.insert(
            component_name(*kind),
            problem_answer(&BTreeSet::from([*kind])).into(),
        );
    }
}

/// `kinds`' answers, one per status: a reference when the status has one kind, the
/// kinds described together when it has several.
pub(crate) fn problem_answers(
    kinds: &[ProblemKind],
) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    let mut by_status: BTreeMap<String, BTreeSet<ProblemKind>> = BTreeMap::new();
    for kind in kinds {
        by_status
            .entry(kind.status().as_u16().to_string())
            .or_default()
            .insert(*kind);
    }
    by_status
        .into_iter()
        .map(|(status, kinds)| {
            let answer = match kinds.first() {
                Some(kind) if kinds.len() == 1 => {
                    Ref::from_response_name(component_name(*kind)).into()
                }
                _ => problem_answer(&kinds).into(),
            };
            (status, answer)
        })
        .collect()
}

/// The kinds an answer of the document describes.
fn kinds_of(answer: &RefOr<utoipa::openapi::Response>) -> Vec<ProblemKind> {
    match answer {
        RefOr::Ref(reference) => ProblemKind::ALL
            .iter()
            .copied()
            .filter(|kind| {
                reference
                    .ref_location
                    .ends_with(&format!("/{}", component_name(*kind)))
            })
            .collect(),
        RefOr::T(answer) => answer
            .extensions
            .as_ref()
            .and_then(|e| e.get(PROBLEM_TYPES))
            .and_then(|slugs| slugs.as_array())
            .into_iter()
            .flatten()
            .filter_map(|slug| {
                ProblemKind::ALL
                    .iter()
                    .copied()
                    .find(|kind| Some(kind.slug()) == slug.as_str())
            })
            .collect(),
    }
}

/// Adds `kinds` to an operation's answers, merged with the problem answers it declares.
pub(super) fn add_problems(operation: &mut Operation, kinds: &[ProblemKind]) {
    let mut all: Vec<ProblemKind> = kinds.to_vec();
    all.extend(operation.responses.responses.values().flat_map(kinds_of));
    operation.responses.responses.extend(problem_answers(&all));
}

/// Declares the problems an operation can answer with, beyond those the policy table
/// adds to every operation it covers (401, 403, 429, 500, 503): a type for its
/// `#[utoipa::path(responses(…))]`, listing `ProblemKind`s, so the document describes
/// them from the same table the answers are built from.
macro_rules! problems {
    ($($name:ident: [$($kind:ident),+ $(,)?];)+) => {$(
        pub(crate) enum $name {}

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
                problem_answers(&[$(ProblemKind::$kind),+])
            }
        }
    )+};
}

problems! {
    SendProblems: [InvalidRequest, MalformedJson, IdempotencyKeyRequired, BodyTooLarge,
        UnsupportedMediaType, RequestInProgress, IdempotencyKeyReused, QuotaExceeded,
        LineFull];
    ReadProblems: [InvalidId, NotFound];
    ListProblems: [InvalidId, InvalidRequest, NotFound];
    QueryProblems: [InvalidRequest];
    CancelProblems: [InvalidId, NotFound, IdempotencyKeyRequired, RequestInProgress,
        IdempotencyKeyReused, BatchFinished];
    TenantCreateProblems: [InvalidRequest, MalformedJson, IdempotencyKeyRequired,
        BodyTooLarge, UnsupportedMediaType, RequestInProgress, IdempotencyKeyReused,
        TenantExists, UserExists];
    TenantChangeProblems: [InvalidId, NotFound, IdempotencyKeyRequired,
        RequestInProgress, IdempotencyKeyReused];
    TenantAuditProblems: [InvalidId, InvalidRequest];
    SmsPolicyProblems: [InvalidId, InvalidRequest, MalformedJson, BodyTooLarge,
        UnsupportedMediaType, NotFound];
    SmsSenderProblems: [InvalidId, InvalidRequest, MalformedJson, BodyTooLarge,
        UnsupportedMediaType, NotFound];
    ClientRegisterProblems: [InvalidRequest, MalformedJson, IdempotencyKeyRequired,
        BodyTooLarge, UnsupportedMediaType, RequestInProgress, IdempotencyKeyReused,
        ClientLimitReached];
    ClientRevokeProblems: [NotFound, IdempotencyKeyRequired, RequestInProgress,
        IdempotencyKeyReused];
    UserInviteProblems: [InvalidRequest, MalformedJson, IdempotencyKeyRequired,
        BodyTooLarge, UnsupportedMediaType, RequestInProgress, IdempotencyKeyReused,
        UserExists];
    UserRoleProblems: [InvalidRequest, MalformedJson, BodyTooLarge, UnsupportedMediaType,
        NotFound, IdempotencyKeyRequired, RequestInProgress, IdempotencyKeyReused, LastAdmin,
        OwnAccount, UserRemoved];
    UserRemoveProblems: [NotFound, IdempotencyKeyRequired, RequestInProgress,
        IdempotencyKeyReused, LastAdmin, OwnAccount];
    UserReadProblems: [NotFound];
    RedriveProblems: [IdempotencyKeyRequired, RequestInProgress, IdempotencyKeyReused,
        RedriveRunning, RedriveIncomplete];
    SuppressionListProblems: [InvalidRequest];
    SuppressionAddProblems: [InvalidRequest, MalformedJson, IdempotencyKeyRequired,
        BodyTooLarge, UnsupportedMediaType, RequestInProgress, IdempotencyKeyReused,
        SuppressionExists];
    SuppressionRemoveProblems: [InvalidId, NotFound, OptOutLocked];
    WebhookCreateProblems: [InvalidRequest, MalformedJson, IdempotencyKeyRequired,
        BodyTooLarge, UnsupportedMediaType, RequestInProgress, IdempotencyKeyReused];
    WebhookReadProblems: [NotFound];
    WebhookUpdateProblems: [InvalidRequest, MalformedJson, BodyTooLarge, UnsupportedMediaType,
        NotFound];
    WebhookStatusProblems: [NotFound, IdempotencyKeyRequired, RequestInProgress,
        IdempotencyKeyReused];
    WebhookAttemptsProblems: [InvalidRequest, NotFound];
    WebhookTestProblems: [InvalidRequest, MalformedJson, IdempotencyKeyRequired, BodyTooLarge,
        UnsupportedMediaType, RequestInProgress, IdempotencyKeyReused, NotFound, EndpointDisabled];
    WebhookRecoverProblems: [InvalidRequest, MalformedJson, IdempotencyKeyRequired,
        BodyTooLarge, UnsupportedMediaType, RequestInProgress, IdempotencyKeyReused, NotFound];
}
