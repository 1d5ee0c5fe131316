//! The domain: what Herald sends, to whom, in what state, for which tenant. Plain
//! types with no AWS SDK in sight; `store` maps them to items and back, the API to
//! JSON and back.

/// The derives every stored enum shares: one name per variant, the same in JSON
/// (serde), in items and query strings (strum) and in the OpenAPI document (utoipa
/// reads serde's renaming). Each module's tests check that the names agree.
macro_rules! stored_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($body:tt)* }) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
            strum::Display, strum::EnumString, strum::IntoStaticStr, strum::VariantArray,
        )]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        $(#[$meta])*
        $vis enum $name { $($body)* }
    };
}

pub(crate) use stored_enum;

mod batch;
mod client;
mod endpoint;
mod listing;
mod message;
mod platform;
mod receipt;
mod restore;
mod sms_policy;
mod status;
mod suppression;
mod tenant;
mod text;
mod user;

pub use batch::{
    BatchCounts, BatchStatus, BatchTurn, BatchView, CancelOutcome, ChunkCounts, Counted,
    MessagePage, NewBatch, ReceiptDeltas, StalledWindow, StartedBatch, Submission, Submitter,
    UnqueuedBatch,
};
pub use client::{MachineClient, Registration, Revocation};
pub use endpoint::{
    AttemptRecord, AttemptResult, DisabledReason, EndpointChange, EndpointSettings, EndpointStatus,
    EventType, WebhookEndpoint,
};
pub use listing::{ClientFilter, Page};
pub use message::{
    Channel, Chunk, ClaimOutcome, Content, HistoryEntry, Lease, MessageView, Recipient, Settlement,
};
pub use platform::{JobLease, LeaseTake};
pub use receipt::{
    EventSource, InboundText, OptKeyword, ProviderEvent, Receipt, ReceiptOutcome, UnmatchedReceipt,
};
pub use restore::{
    Canary, CanaryRef, Cursor, Drill, DrillChecks, DrillSchedule, DrillState, Expectations,
    ItemKind, KindCounts, RecoveryJob, RecoveryState, SampledItem, SchemaCheck, Tally,
};
pub use sms_policy::{
    Country, DEFAULT_NUMBER_TYPES, InvalidCountry, NumberType, SmsPolicy, SmsRefusal, SmsRules,
};
pub use status::MessageStatus;
pub use suppression::{
    LiftOutcome, SuppressOutcome, Suppression, SuppressionPage, SuppressionReason,
};
pub use tenant::{
    Admission, AuditEntry, InvalidSenderRate, InvalidSmsSender, Limits, Plan, Reservation,
    SenderKind, SenderRate, SmsProviderKind, SmsSender, TenantProfile, TenantStatus,
};
pub use text::{MAX_SUBJECT_CHARS, MessageText, Subject, TextProblem, printable};
pub use user::{TenantRole, TenantUser, UserChange, UserStatus};

/// The names of `T`'s variants, in order, as stored and answered.
pub fn names<T>() -> Vec<&'static str>
where
    T: strum::VariantArray + Copy + Into<&'static str>,
{
    T::VARIANTS.iter().map(|v| (*v).into()).collect()
}

/// `must be one of a, b, c`: what to tell a request that named no variant of `T`.
pub fn one_of<T>() -> String
where
    T: strum::VariantArray + Copy + Into<&'static str>,
{
    format!("must be one of {}", names::<T>().join(", "))
}
