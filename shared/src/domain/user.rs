//! A tenant's people: who was invited with which role, and since when the tokens
//! issued to them before a change of their access are refused.

use crate::auth::Role;
use crate::clock::Timestamp;
use crate::ids::TenantId;

stored_enum! {
    /// The roles a tenant admin may give: every role but `operator`, which is Herald
    /// staff's and never granted through the API.
    pub enum TenantRole {
        Admin,
        Sender,
        Viewer,
    }
}

impl From<TenantRole> for Role {
    fn from(role: TenantRole) -> Self {
        match role {
            TenantRole::Admin => Role::Admin,
            TenantRole::Sender => Role::Sender,
            TenantRole::Viewer => Role::Viewer,
        }
    }
}

stored_enum! {
    /// `active`, or `removed`: disabled in Cognito and refused by the API for good.
    pub enum UserStatus {
        Active,
        Removed,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantUser {
    /// Cognito's `sub`: the subject of the user's tokens.
    pub user_id: String,
    pub tenant: TenantId,
    /// Lower case; also the user's Cognito user name.
    pub email: String,
    pub name: Option<String>,
    pub role: TenantRole,
    pub status: UserStatus,
    pub created_at: Timestamp,
    /// The subject of whoever invited them (`seed` for users made outside the API).
    pub created_by: String,
    /// Tokens issued at or before this epoch second are refused: the last time the
    /// user's role changed or they were removed. `0` until then.
    pub tokens_after: u64,
    pub changed_at: Option<Timestamp>,
}

impl TenantUser {
    /// Whether a token issued to this user at `issued_at` (epoch seconds) still
    /// stands. Token times are whole seconds, so a token issued in the second of a
    /// change is refused too: signing in a second later gives one that stands.
    pub fn accepts_token_issued_at(&self, issued_at: u64) -> bool {
        self.status == UserStatus::Active && issued_at > self.tokens_after
    }
}

/// What a role change or a removal came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserChange {
    Changed(TenantUser),
    /// Nothing to do: the user already has the role, or is already removed.
    Unchanged(TenantUser),
    /// The tenant's last admin would be left without the role; nothing was written.
    LastAdmin,
    /// No such user in this tenant (another tenant's reads the same).
    NotFound,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(status: UserStatus, tokens_after: u64) -> TenantUser {
        TenantUser {
            user_id: "u".into(),
            tenant: TenantId::parse("acme").unwrap(),
            email: "a@acme.example".into(),
            name: None,
            role: TenantRole::Sender,
            status,
            created_at: Timestamp::from_epoch_millis(0),
            created_by: "seed".into(),
            tokens_after,
            changed_at: None,
        }
    }

    #[test]
    fn tokens_of_the_second_of_a_change_and_before_are_refused() {
        let changed = user(UserStatus::Active, 100);
        assert!(!changed.accepts_token_issued_at(99));
        assert!(!changed.accepts_token_issued_at(100));
        assert!(changed.accepts_token_issued_at(101));
        assert!(!user(UserStatus::Removed, 100).accepts_token_issued_at(500));
    }

    #[test]
    fn operator_is_no_tenant_role() {
        assert!("operator".parse::<TenantRole>().is_err());
        assert_eq!(Role::from(TenantRole::Admin), Role::Admin);
        assert_eq!(
            crate::domain::one_of::<TenantRole>(),
            "must be one of admin, sender, viewer"
        );
    }
}
