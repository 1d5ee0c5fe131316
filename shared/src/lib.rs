//! `herald`: the domain and the AWS-facing services every Herald function shares.
//!
//! AWS SDK types stay inside this crate: functions speak `TenantId`, `MessageId`,
//! `Recipient`, `ChunkEnvelope` (`domain`), and the repositories here translate.

pub mod address;
pub mod auth;
pub mod aws;
pub mod client_sweep;
pub mod clock;
pub mod config;
pub mod cursor;
pub mod domain;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod intake;
mod item;
pub mod keys;
pub mod lease;
pub mod metrics;
pub mod outbound;
pub mod phone;
pub mod problem;
pub mod provider;
pub mod queue;
pub mod redrive;
pub mod restore;
pub mod schema;
pub mod secrets;
pub mod store;
pub mod sweeper;
pub mod telemetry;
pub mod template;
pub mod token;
pub mod version;
pub mod webhook;

pub use address::{Address, EmailAddress};
pub use clock::{Day, Timestamp};
pub use domain::MessageStatus;
pub use ids::{BatchId, CorrelationId, MessageId, TenantId};
pub use phone::PhoneNumber;
