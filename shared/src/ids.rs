//! Identifiers. Each is a newtype with a private field and a fallible constructor:
//! holding one means it is well-formed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::schema;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidId(&'static str);

/// A tenant identifier: 1-64 characters of `a-z`, `0-9` and `-`, starting with a letter
/// or digit. Key builders only accept this type, and the API only builds it from
/// verified token claims.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// What `parse` accepts, for the OpenAPI document.
    pub const PATTERN: &str = "[a-z0-9][a-z0-9-]{0,63}";

    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let ok_len = (1..=64).contains(&raw.len());
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_start = raw.bytes().next().is_some_and(|b| b != b'-');
        if ok_len && ok_chars && ok_start {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidId(
                "tenant id must be 1-64 characters of a-z, 0-9 and '-', not starting with '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialSchema for TenantId {
    fn schema() -> RefOr<Schema> {
        schema::done(schema::string(1, 64, Self::PATTERN).examples(["acme"]))
    }
}

impl ToSchema for TenantId {}

impl TryFrom<String> for TenantId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A batch identifier: a ULID, so ids sort by creation time and read well in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BatchId(ulid::Ulid);

impl BatchId {
    /// A ULID in its canonical spelling (Crockford base 32, upper case, first character
    /// at most 7): the only spelling `from_str` accepts.
    pub const PATTERN: &str = "[0-7][0-9A-HJKMNP-TV-Z]{25}";

    pub fn ulid(self) -> ulid::Ulid {
        self.0
    }

    pub fn new() -> Self {
        Self(ulid::Ulid::new())
    }
}

impl PartialSchema for BatchId {
    fn schema() -> RefOr<Schema> {
        schema::done(schema::string(26, 26, Self::PATTERN).examples(["01KB2F6VNS4H9T3C5QJ8W7XR0M"]))
    }
}

impl ToSchema for BatchId {}

impl Default for BatchId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for BatchId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the canonical spelling, so one batch has one id string: the ulid crate
        // also reads lower case, and a first character past '7' (its top bits do not
        // fit in 128) as another id's.
        ulid::Ulid::from_string(s)
            .ok()
            .filter(|ulid| ulid.to_string() == s)
            .map(Self)
            .ok_or(InvalidId("batch id must be a 26-character ULID"))
    }
}

impl TryFrom<String> for BatchId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<BatchId> for String {
    fn from(value: BatchId) -> Self {
        value.to_string()
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A message identifier, deterministic from its place in the batch: `{batch_id}.{index}`.
/// A chunk processed any number of times yields the same message ids, which is what
/// makes the sender's conditional claim a no-op on redelivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageId {
    batch: BatchId,
    index: u32,
}

impl MessageId {
    /// `{batch id}.{index}`, the index without leading zeros. The document stops at nine
    /// digits (a batch holds far fewer messages); `from_str` reads any `u32`.
    pub const PATTERN: &str = r"[0-7][0-9A-HJKMNP-TV-Z]{25}\.(?:0|[1-9][0-9]{0,8})";

    pub fn new(batch: BatchId, index: u32) -> Self {
        Self { batch, index }
    }
    pub fn batch(&self) -> BatchId {
        self.batch
    }
    pub fn index(&self) -> u32 {
        self.index
    }
}

impl PartialSchema for MessageId {
    fn schema() -> RefOr<Schema> {
        schema::done(
            schema::string(28, 36, Self::PATTERN).examples(["01KB2F6VNS4H9T3C5QJ8W7XR0M.0"]),
        )
    }
}

impl ToSchema for MessageId {}

impl FromStr for MessageId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const MSG: &str = "message id must look like {batch_id}.{index}";
        let (batch, index) = s.split_once('.').ok_or(InvalidId(MSG))?;
        let batch = batch.parse().map_err(|_| InvalidId(MSG))?;
        // Reject "+1", "01" and friends: one message, one spelling.
        let canonical = !index.is_empty()
            && index.bytes().all(|b| b.is_ascii_digit())
            && (index == "0" || !index.starts_with('0'));
        let index = index
            .parse()
            .ok()
            .filter(|_| canonical)
            .ok_or(InvalidId(MSG))?;
        Ok(Self { batch, index })
    }
}

impl TryFrom<String> for MessageId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<MessageId> for String {
    fn from(value: MessageId) -> Self {
        value.to_string()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.batch, self.index)
    }
}

/// Follows one request through every function it reaches (API, queue, sender).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CorrelationId(String);

impl CorrelationId {
    pub fn new() -> Self {
        Self(ulid::Ulid::new().to_string())
    }

    /// Accepts a caller-supplied id when it is short and printable; callers get a fresh
    /// one otherwise rather than an error, since the header is only a courtesy.
    pub fn from_header(raw: Option<&str>) -> Self {
        raw.and_then(|r| Self::parse(r).ok()).unwrap_or_default()
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let ok = (1..=128).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidId(
                "correlation id must be 1-128 characters of A-Z, a-z, 0-9, '-', '_', '.', ':'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for CorrelationId {
    fn default() -> Self {
        Self::new()
    }
}

impl TryFrom<String> for CorrelationId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CorrelationId> for String {
    fn from(value: CorrelationId) -> Self {
        value.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_accept_slugs_only() {
        assert!(TenantId::parse("acme").is_ok());
        assert!(TenantId::parse("acme-2").is_ok());
        for bad in ["", "-acme", "Acme", "acme#1", "a b", &"a".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn message_ids_round_trip_and_reject_other_spellings() {
        let batch = BatchId::new();
        let id = MessageId::new(batch, 42);
        assert_eq!(id.to_string().parse::<MessageId>().unwrap(), id);
        for bad in [
            format!("{batch}"),
            format!("{batch}."),
            format!("{batch}.+1"),
            format!("{batch}.01"),
            format!("{batch}.4294967296"),
            format!("{}.1", batch.to_string().to_lowercase()),
            // Decodes to the batch 60AAA… (the first character's top bits overflow).
            "P0AAA0AAA0A0A0P000000P0APA.0".to_owned(),
            "x.1".to_owned(),
        ] {
            assert!(bad.parse::<MessageId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn correlation_ids_fall_back_to_fresh_ones() {
        assert_eq!(CorrelationId::from_header(Some("abc-1")).as_str(), "abc-1");
        assert_ne!(
            CorrelationId::from_header(Some("bad id")).as_str(),
            "bad id"
        );
        assert_eq!(CorrelationId::from_header(None).as_str().len(), 26);
    }
}
