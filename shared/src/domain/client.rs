//! Machine clients: which Cognito app client acts for which tenant, with which scopes,
//! and whether it was revoked.

use crate::auth::Scope;
use crate::clock::Timestamp;
use crate::ids::TenantId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineClient {
    pub client_id: String,
    pub tenant: TenantId,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: Timestamp,
    /// The subject of whoever registered it.
    pub created_by: String,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    Registered,
    /// The tenant already has `limit` active clients; nothing was written.
    LimitReached {
        limit: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    Revoked(MachineClient),
    AlreadyRevoked(MachineClient),
    /// No such client, or another tenant's: the same answer.
    NotFound,
}
