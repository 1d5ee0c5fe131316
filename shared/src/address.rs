//! Where a message goes: an E.164 phone number (SMS) or an email address (email).
//! Both are parsed once at the boundary; holding one means it is valid for its channel.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};
use validator::ValidateEmail;

use crate::domain::Channel;
use crate::phone::{InvalidPhoneNumber, PhoneNumber};
use crate::schema;

/// Longest address accepted: RFC 5321's 256-octet path less its angle brackets.
pub const MAX_EMAIL_CHARS: usize = 254;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidEmailAddress {
    #[error("email address must be at most {MAX_EMAIL_CHARS} characters")]
    TooLong,
    #[error(
        "email address must be ASCII, with no spaces or control characters (write an international domain in its xn-- form)"
    )]
    NotAscii,
    #[error("email address must be local-part@domain, as in name@example.com")]
    NotAnAddress,
    #[error("email address must name a domain with a dot, not an IP address or a local host")]
    NoPublicDomain,
}

/// An email address a message can be sent to: the HTML5 rule (`validator`'s email
/// check: no quoted local parts, no comments), at most 254 ASCII characters, and a
/// domain with at least one dot (no `user@localhost`, no `user@[10.0.0.1]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    /// What `parse` accepts: the HTML5 rule `validator` applies (a local part of at most
    /// 64 of its characters, domain labels of 1 to 63), in ASCII, with a dotted domain.
    pub const PATTERN: &str = "[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+";

    pub fn parse(raw: &str) -> Result<Self, InvalidEmailAddress> {
        if raw.chars().count() > MAX_EMAIL_CHARS {
            return Err(InvalidEmailAddress::TooLong);
        }
        // SES takes 7-bit addresses (an international domain goes in punycode), and a
        // space or control character is never part of a real address.
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidEmailAddress::NotAscii);
        }
        if !raw.validate_email() {
            return Err(InvalidEmailAddress::NotAnAddress);
        }
        let (_, domain) = raw
            .rsplit_once('@')
            .ok_or(InvalidEmailAddress::NotAnAddress)?;
        if domain.starts_with('[') || !domain.contains('.') {
            return Err(InvalidEmailAddress::NoPublicDomain);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two addresses are compared in to find duplicates: mailboxes that
    /// differ only in letter case are, in practice, one mailbox.
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// For logs: the first letter of the mailbox and of the domain, and the top-level
    /// domain.
    pub fn masked(&self) -> String {
        mask_email(&self.0)
    }
}

impl PartialSchema for EmailAddress {
    fn schema() -> RefOr<Schema> {
        // No `format: email`: that names RFC 5321's mailbox, stricter than the HTML5
        // rule Herald applies (`.ada@example.com` passes here), and the document says
        // what the API enforces, no more.
        schema::done(
            schema::string(3, MAX_EMAIL_CHARS, Self::PATTERN)
                .description(Some(
                    "An email address by the HTML5 rule (no quoted local part, no comments), \
                     in ASCII, with a dotted domain.",
                ))
                .examples(["ada@example.com"]),
        )
    }
}

impl ToSchema for EmailAddress {}

/// Masks an email address for logging: `jane.doe@example.com` becomes `j***@e***.com`.
pub fn mask_email(raw: &str) -> String {
    let Some((local, domain)) = raw.rsplit_once('@') else {
        return "***".into();
    };
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    let tld = domain.rsplit_once('.').map(|(_, tld)| tld).unwrap_or("");
    format!("{}***@{}***.{tld}", first(local), first(domain))
}

impl TryFrom<String> for EmailAddress {
    type Error = InvalidEmailAddress;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> Self {
        value.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A recipient's address, of the kind its channel sends to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    Phone(PhoneNumber),
    Email(EmailAddress),
}

/// Either kind: an E.164 number or an email address (the two never read alike: only
/// an email address has an `@`).
impl PartialSchema for Address {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::OneOf(
            utoipa::openapi::schema::OneOfBuilder::new()
                .item(PhoneNumber::schema())
                .item(EmailAddress::schema())
                .description(Some("An E.164 number (SMS) or an email address."))
                .build(),
        ))
    }
}

impl ToSchema for Address {}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidAddress {
    #[error(transparent)]
    Phone(#[from] InvalidPhoneNumber),
    #[error(transparent)]
    Email(#[from] InvalidEmailAddress),
    #[error("an sms recipient needs a phone number in E.164 form, not an email address")]
    EmailOnSms,
    #[error("an email recipient needs an email address, not a phone number")]
    PhoneOnEmail,
}

impl Address {
    /// `raw` as an address of `channel`. An address of the other kind is named as
    /// such, so the caller hears "wrong channel" rather than "malformed".
    pub fn parse(channel: Channel, raw: &str) -> Result<Self, InvalidAddress> {
        match channel {
            Channel::Sms => match PhoneNumber::parse(raw) {
                Ok(phone) => Ok(Self::Phone(phone)),
                Err(_) if EmailAddress::parse(raw).is_ok() => Err(InvalidAddress::EmailOnSms),
                Err(e) => Err(e.into()),
            },
            Channel::Email => match EmailAddress::parse(raw) {
                Ok(email) => Ok(Self::Email(email)),
                Err(_) if PhoneNumber::parse(raw).is_ok() => Err(InvalidAddress::PhoneOnEmail),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// An address read back from Herald's own table: validated when it was accepted,
    /// so a number's shape is checked again but not its metadata (`PhoneNumber::stored`).
    pub fn stored(channel: Channel, raw: &str) -> Result<Self, InvalidAddress> {
        match channel {
            Channel::Sms => Ok(Self::Phone(PhoneNumber::stored(raw)?)),
            Channel::Email => Ok(Self::Email(EmailAddress::parse(raw)?)),
        }
    }

    pub fn channel(&self) -> Channel {
        match self {
            Self::Phone(_) => Channel::Sms,
            Self::Email(_) => Channel::Email,
        }
    }

    /// As stored (`recipient`) and shown: the E.164 number or the address.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Phone(phone) => phone.as_str(),
            Self::Email(email) => email.as_str(),
        }
    }

    /// The form duplicates are found in (email addresses compared without case).
    pub fn folded(&self) -> String {
        match self {
            Self::Phone(phone) => phone.as_str().to_owned(),
            Self::Email(email) => email.folded(),
        }
    }

    pub fn masked(&self) -> String {
        match self {
            Self::Phone(phone) => phone.masked(),
            Self::Email(email) => email.masked(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for good in [
            "jane@example.com",
            "jane.doe+news@mail.example.co.uk",
            "o'brien@example.ie",
            "x@xn--bcher-kva.example",
            "UPPER@Example.COM",
        ] {
            assert_eq!(EmailAddress::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn rejects_what_is_not_a_sendable_address() {
        for bad in [
            "",
            "jane",
            "@example.com",
            "jane@",
            "jane doe@example.com",
            " jane@example.com",
            "jane@example.com ",
            "jane@exa mple.com",
            "jane\n@example.com",
            "jane@example.com\r\nBcc: x@example.com",
            "jane@@example.com",
            "\"jane\"@example.com",
            "jane@localhost",
            "jane@[127.0.0.1]",
            "jané@example.com",
            "jane@bücher.example",
            "jane@-example.com",
            "+14155550100",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rejects_addresses_over_254_characters() {
        let domain = format!(
            "{}.{}.{}.com",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63)
        );
        let fits = format!(
            "{}@{domain}",
            "j".repeat(MAX_EMAIL_CHARS - 1 - domain.len())
        );
        assert_eq!(fits.len(), MAX_EMAIL_CHARS);
        assert!(EmailAddress::parse(&fits).is_ok());
        let over = format!("j{fits}");
        assert_eq!(
            EmailAddress::parse(&over),
            Err(InvalidEmailAddress::TooLong)
        );
    }

    #[test]
    fn an_address_of_the_other_channel_is_named_as_such() {
        assert_eq!(
            Address::parse(Channel::Email, "+14155550100"),
            Err(InvalidAddress::PhoneOnEmail)
        );
        assert_eq!(
            Address::parse(Channel::Sms, "jane@example.com"),
            Err(InvalidAddress::EmailOnSms)
        );
        assert!(matches!(
            Address::parse(Channel::Email, "jane@example.com"),
            Ok(Address::Email(_))
        ));
        assert!(matches!(
            Address::parse(Channel::Sms, "+14155550100"),
            Ok(Address::Phone(_))
        ));
    }

    #[test]
    fn duplicates_are_found_without_case() {
        let a = Address::parse(Channel::Email, "Jane@Example.com").unwrap();
        let b = Address::parse(Channel::Email, "jane@example.com").unwrap();
        assert_eq!(a.folded(), b.folded());
    }

    #[test]
    fn masks_the_mailbox_and_the_domain() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@e***.com");
        assert_eq!(mask_email("not an address"), "***");
        let masked = EmailAddress::parse("jane@mail.example.org")
            .unwrap()
            .masked();
        assert!(!masked.contains("jane") && !masked.contains("example"));
    }
}
