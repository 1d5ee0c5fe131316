//! Who is calling and what they may do. The tenant comes only from verified token
//! claims; the route policy is one table, and a route that is not in it is denied.

use std::collections::HashMap;

use crate::ids::TenantId;

/// The claim that carries a user's tenant (a Cognito custom attribute).
pub const TENANT_CLAIM: &str = "custom:tenant_id";
pub const GROUPS_CLAIM: &str = "cognito:groups";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Sender,
    Viewer,
    Operator,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Sender, Role::Viewer, Role::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Sender => "sender",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Admin => &[
                SendMessages,
                ReadMessages,
                CancelBatches,
                ReadUsage,
                ReadAudit,
            ],
            Role::Sender => &[SendMessages, ReadMessages, CancelBatches, ReadUsage],
            Role::Viewer => &[ReadMessages, ReadUsage],
            Role::Operator => &[ManageTenants, ReadAnyAudit, RedriveDeadLetters],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    SendMessages,
    ReadMessages,
    CancelBatches,
    ReadUsage,
    /// The caller's own tenant's audit log.
    ReadAudit,
    /// Platform-wide: create, suspend and resume any tenant.
    ManageTenants,
    /// Platform-wide: any tenant's audit log.
    ReadAnyAudit,
    /// Platform-wide: move the send DLQ back to the send queue.
    RedriveDeadLetters,
}

impl Permission {
    /// Platform-wide permissions act on other tenants, named in the path; the caller's
    /// own tenant's plan and limits do not apply to them.
    pub fn is_platform(self) -> bool {
        matches!(
            self,
            Permission::ManageTenants | Permission::ReadAnyAudit | Permission::RedriveDeadLetters
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (and the gateway does not ask for one).
    Public,
    Requires(Permission),
}

/// Route → access. Paths use the router's syntax (`{id}`), so the API can look up the
/// matched path directly.
pub const ROUTE_POLICY: &[(&str, &str, Access)] = &[
    ("GET", "/v1/health", Access::Public),
    // The document describes the API's shape, not anyone's data; clients and code
    // generators fetch it before they hold a token.
    ("GET", "/v1/openapi.json", Access::Public),
    (
        "POST",
        "/v1/messages",
        Access::Requires(Permission::SendMessages),
    ),
    (
        "GET",
        "/v1/messages/{id}",
        Access::Requires(Permission::ReadMessages),
    ),
    (
        "POST",
        "/v1/batches",
        Access::Requires(Permission::SendMessages),
    ),
    (
        "GET",
        "/v1/batches/{id}",
        Access::Requires(Permission::ReadMessages),
    ),
    (
        "GET",
        "/v1/batches/{id}/messages",
        Access::Requires(Permission::ReadMessages),
    ),
    (
        "POST",
        "/v1/batches/{id}/cancel",
        Access::Requires(Permission::CancelBatches),
    ),
    ("GET", "/v1/usage", Access::Requires(Permission::ReadUsage)),
    ("GET", "/v1/audit", Access::Requires(Permission::ReadAudit)),
    (
        "POST",
        "/v1/tenants",
        Access::Requires(Permission::ManageTenants),
    ),
    (
        "GET",
        "/v1/tenants/{id}",
        Access::Requires(Permission::ManageTenants),
    ),
    (
        "POST",
        "/v1/tenants/{id}/suspend",
        Access::Requires(Permission::ManageTenants),
    ),
    (
        "POST",
        "/v1/tenants/{id}/resume",
        Access::Requires(Permission::ManageTenants),
    ),
    (
        "GET",
        "/v1/tenants/{id}/audit",
        Access::Requires(Permission::ReadAnyAudit),
    ),
    (
        "POST",
        "/v1/operator/redrive",
        Access::Requires(Permission::RedriveDeadLetters),
    ),
];

pub fn route_access(method: &str, path: &str) -> Option<Access> {
    ROUTE_POLICY
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, access)| *access)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the token carries no tenant")]
    NoTenant,
    #[error("the token's tenant is not a valid tenant id")]
    BadTenant,
    #[error("the token has no subject")]
    NoSubject,
}

/// The verified caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    tenant: TenantId,
    subject: String,
    roles: Vec<Role>,
}

impl Principal {
    /// Builds the principal from the claims API Gateway's JWT authorizer verified.
    /// API Gateway hands claims over as strings; arrays arrive as `[a b]`.
    pub fn from_claims(claims: &HashMap<String, String>) -> Result<Self, AuthError> {
        let raw_tenant = claims.get(TENANT_CLAIM).ok_or(AuthError::NoTenant)?;
        let tenant = TenantId::parse(raw_tenant).map_err(|_| AuthError::BadTenant)?;
        let subject = claims
            .get("sub")
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::NoSubject)?
            .clone();
        let roles = claims
            .get(GROUPS_CLAIM)
            .map(|g| parse_claim_list(g))
            .unwrap_or_default()
            .iter()
            .filter_map(|g| Role::parse(g))
            .collect();
        Ok(Self {
            tenant,
            subject,
            roles,
        })
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    pub fn may(&self, permission: Permission) -> bool {
        self.roles
            .iter()
            .any(|r| r.permissions().contains(&permission))
    }
}

/// Parses a list claim as API Gateway forwards it: `[a b c]`; a JSON array or a bare
/// value are accepted too.
pub fn parse_claim_list(raw: &str) -> Vec<String> {
    let raw = raw.trim();
    if let Ok(list) = serde_json::from_str::<Vec<String>>(raw) {
        return list;
    }
    raw.trim_start_matches('[')
        .trim_end_matches(']')
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn principal_comes_from_tenant_and_groups_claims() {
        let p = Principal::from_claims(&claims(&[
            ("sub", "u-1"),
            (TENANT_CLAIM, "acme"),
            (GROUPS_CLAIM, "[viewer sender unknown]"),
        ]))
        .unwrap();
        assert_eq!(p.tenant().as_str(), "acme");
        assert_eq!(p.roles(), &[Role::Viewer, Role::Sender]);
        assert!(p.may(Permission::SendMessages));
    }

    #[test]
    fn a_token_without_tenant_is_refused() {
        let err = Principal::from_claims(&claims(&[("sub", "u-1")])).unwrap_err();
        assert_eq!(err, AuthError::NoTenant);
        let err =
            Principal::from_claims(&claims(&[("sub", "u"), (TENANT_CLAIM, "A#B")])).unwrap_err();
        assert_eq!(err, AuthError::BadTenant);
    }

    #[test]
    fn viewers_read_but_do_not_send_and_operators_hold_no_tenant_rights() {
        assert!(
            !Role::Viewer
                .permissions()
                .contains(&Permission::SendMessages)
        );
        assert!(
            Role::Viewer
                .permissions()
                .contains(&Permission::ReadMessages)
        );
        assert!(Role::Operator.permissions().iter().all(|p| p.is_platform()));
        assert!(
            [Role::Admin, Role::Sender, Role::Viewer]
                .iter()
                .all(|r| r.permissions().iter().all(|p| !p.is_platform()))
        );
    }

    #[test]
    fn admins_read_the_audit_log_and_senders_cancel() {
        assert!(Role::Admin.permissions().contains(&Permission::ReadAudit));
        assert!(!Role::Sender.permissions().contains(&Permission::ReadAudit));
        assert!(
            Role::Sender
                .permissions()
                .contains(&Permission::CancelBatches)
        );
        assert!(
            !Role::Viewer
                .permissions()
                .contains(&Permission::CancelBatches)
        );
    }

    #[test]
    fn list_claims_parse_in_every_shape_api_gateway_uses() {
        assert_eq!(parse_claim_list("[a b]"), vec!["a", "b"]);
        assert_eq!(parse_claim_list(r#"["a","b"]"#), vec!["a", "b"]);
        assert_eq!(parse_claim_list("a"), vec!["a"]);
        assert!(parse_claim_list("[]").is_empty());
    }

    #[test]
    fn unknown_routes_have_no_policy() {
        assert_eq!(route_access("GET", "/v1/health"), Some(Access::Public));
        assert_eq!(route_access("DELETE", "/v1/messages/{id}"), None);
    }
}
