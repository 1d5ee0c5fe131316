//! Listing cursors: opaque to clients, bound to what they page through. A cursor is a
//! position of the listing's choosing (a sort key, an index) and an HMAC-SHA256 tag
//! over the position *and* its scope: the listing (the route), the tenant listed and
//! the query that defines the list (`day=...`, `status=...`). A cursor from another
//! tenant, another listing, another query or with one byte changed fails the tag, so it
//! can never move a listing anywhere its own pages would not have; and because every key
//! a listing reads is still built from the caller's tenant, not even a valid tag could
//! reach another tenant's items.

use aws_lc_rs::{constant_time, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ids::TenantId;

/// What a cursor is bound to.
#[derive(Debug, Clone, Copy)]
pub struct CursorScope<'a> {
    /// The listing, as the route the router matched (`/v1/tenants/{id}/audit`).
    pub listing: &'a str,
    /// The tenant whose items are listed (the caller's, or the operator's path tenant).
    pub tenant: &'a TenantId,
    /// The parameters that define the list, in one canonical form (`day=2025-01-15`);
    /// not the page size, which may change from page to page.
    pub query: &'a str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("is not a cursor this listing returned")]
pub struct BadCursor;

/// The key cursors are signed with (the API's cursor secret).
pub struct CursorKey(hmac::Key);

impl CursorKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The key a secret's value makes.
    pub fn from_secret(secret: &secrecy::SecretString) -> Self {
        use secrecy::ExposeSecret as _;
        Self::new(secret.expose_secret().as_bytes())
    }

    /// The cursor for `position` within `scope`.
    pub fn seal(&self, scope: CursorScope<'_>, position: &str) -> String {
        let tag = self.tag(scope, position);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(position),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// The position a cursor holds, if this key sealed it for exactly `scope`.
    pub fn open(&self, scope: CursorScope<'_>, cursor: &str) -> Result<String, BadCursor> {
        let (position, tag) = cursor.split_once('.').ok_or(BadCursor)?;
        let position = URL_SAFE_NO_PAD.decode(position).map_err(|_| BadCursor)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| BadCursor)?;
        let position = String::from_utf8(position).map_err(|_| BadCursor)?;
        let expected = self.tag(scope, &position);
        constant_time::verify_slices_are_equal(expected.as_ref(), &tag).map_err(|_| BadCursor)?;
        Ok(position)
    }

    /// Each part length-prefixed, so no two scopes write the same bytes.
    fn tag(&self, scope: CursorScope<'_>, position: &str) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.0);
        for part in [
            "herald-cursor-v1",
            scope.listing,
            scope.tenant.as_str(),
            scope.query,
            position,
        ] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part.as_bytes());
        }
        context.sign()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    fn scope<'a>(listing: &'a str, tenant: &'a TenantId, query: &'a str) -> CursorScope<'a> {
        CursorScope {
            listing,
            tenant,
            query,
        }
    }

    #[test]
    fn a_cursor_opens_only_in_the_scope_and_under_the_key_that_sealed_it() {
        let key = CursorKey::new(b"secret one");
        let acme = tenant("acme");
        let globex = tenant("globex");
        let scope = scope("/v1/audit", &acme, "day=2025-01-15");
        let cursor = key.seal(scope, "2025-01-15T10:00:00.000Z#01J");
        assert_eq!(
            key.open(scope, &cursor).as_deref(),
            Ok("2025-01-15T10:00:00.000Z#01J")
        );
        let elsewhere = [
            CursorScope {
                tenant: &globex,
                ..scope
            },
            CursorScope {
                listing: "/v1/clients",
                ..scope
            },
            CursorScope {
                query: "day=2025-01-16",
                ..scope
            },
        ];
        for other in elsewhere {
            assert_eq!(key.open(other, &cursor), Err(BadCursor), "{other:?}");
        }
        assert_eq!(
            CursorKey::new(b"secret two").open(scope, &cursor),
            Err(BadCursor)
        );
    }

    #[test]
    fn a_cursor_with_any_byte_changed_or_malformed_is_refused() {
        let key = CursorKey::new(b"k");
        let acme = tenant("acme");
        let scope = scope("/v1/clients", &acme, "");
        let cursor = key.seal(scope, "position");
        for i in 0..cursor.len() {
            let mut bytes = cursor.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            assert_eq!(key.open(scope, &tampered), Err(BadCursor), "{tampered}");
        }
        for malformed in ["", ".", "abc", "3", "a.b.c", "%%%.%%%"] {
            assert_eq!(key.open(scope, malformed), Err(BadCursor), "{malformed}");
        }
    }
}
