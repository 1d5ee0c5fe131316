//! Tenants: their plan and limits, whether they may use Herald at all, which SMS
//! provider carries their texts, how their requests and sends are admitted, and the
//! audit log of what was done in their name.

use serde::Serialize;

use crate::clock::Timestamp;
use crate::ids::TenantId;

stored_enum! {
    pub enum TenantStatus {
        Active,
        /// Requests get 403 and queued work is held, not sent.
        Suspended,
    }
}

stored_enum! {
    /// The plans a tenant can be created on; an operator may override either limit.
    pub enum Plan {
        Starter,
        Growth,
        Enterprise,
    }
}

stored_enum! {
    /// Which SMS provider a tenant's messages go through (its profile's `sms_provider`);
    /// Twilio unless the profile says otherwise.
    #[derive(Default)]
    #[schema(as = SmsProvider)]
    pub enum SmsProviderKind {
        /// The Twilio-compatible Messages API (the sandbox locally).
        #[default]
        Twilio,
        /// Amazon SNS, with the sender's own IAM role.
        Sns,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// API requests per second, across every Lambda instance.
    pub api_requests_per_second: u32,
    /// Messages accepted per UTC day.
    pub sends_per_day: u32,
}

impl Limits {
    /// The most an operator may set: far above any plan, low enough that a typo does not
    /// switch a tenant's limits off.
    pub const MAX_API_REQUESTS_PER_SECOND: u32 = 10_000;
    pub const MAX_SENDS_PER_DAY: u32 = 1_000_000_000;
}

impl Plan {
    pub fn limits(self) -> Limits {
        let (api_requests_per_second, sends_per_day) = match self {
            Plan::Starter => (10, 10_000),
            Plan::Growth => (50, 250_000),
            Plan::Enterprise => (200, 5_000_000),
        };
        Limits {
            api_requests_per_second,
            sends_per_day,
        }
    }
}

/// The number (E.164), short code (5 or 6 digits) or messaging service (`MG` and 32
/// hex digits) a tenant's texts go out from when it has its own; tenants without one
/// share the platform's. Inbound texts (STOP, START) find their tenants by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SmsSender(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "an SMS sender is a phone number in E.164 form, a short code (5 or 6 digits) or a messaging service id (MG and 32 hex digits)"
)]
pub struct InvalidSmsSender;

impl SmsSender {
    pub fn parse(raw: &str) -> Result<Self, InvalidSmsSender> {
        // Self::SERVICE_PATTERN.
        let service = raw.len() == 34
            && raw.starts_with("MG")
            && raw[2..].bytes().all(|b| b.is_ascii_hexdigit());
        let short_code = (5..=6).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_digit())
            && !raw.starts_with('0');
        if service || short_code {
            return Ok(Self(raw.to_owned()));
        }
        crate::phone::PhoneNumber::parse(raw)
            .map(|phone| Self(phone.as_str().to_owned()))
            .map_err(|_| InvalidSmsSender)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> SenderKind {
        let s = self.0.as_str();
        if s.starts_with("MG") {
            return SenderKind::MessagingService;
        }
        match crate::phone::PhoneNumber::parse(s) {
            // Only numbers and short codes parse, and a short code is no E.164 number.
            Err(_) => SenderKind::ShortCode,
            Ok(number) if number.kind() == super::NumberType::TollFree => SenderKind::TollFree,
            Ok(_) => SenderKind::LongCode,
        }
    }

    /// The rate its texts go at when the profile sets none: what carriers allow the
    /// kind of number (`None`: only the provider account's rate, as for a messaging
    /// service, whose pool of numbers the provider paces itself).
    pub fn default_rate(&self) -> Option<SenderRate> {
        let per_second = match self.kind() {
            SenderKind::LongCode => 1.0,
            SenderKind::TollFree => 3.0,
            SenderKind::ShortCode => 100.0,
            SenderKind::MessagingService => return None,
        };
        Some(SenderRate(per_second))
    }
}

impl SmsSender {
    /// What a Twilio messaging service id looks like.
    pub const SERVICE_PATTERN: &str = "MG[0-9A-Fa-f]{32}";
    /// What a short code looks like.
    pub const SHORT_CODE_PATTERN: &str = "[1-9][0-9]{4,5}";
}

/// What kind of number a sender is: carriers allow each its own rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderKind {
    /// An ordinary (10-digit in North America) number: about one text a second.
    LongCode,
    /// A toll-free number: about three a second.
    TollFree,
    /// A short code: about a hundred a second.
    ShortCode,
    /// A provider's pool of numbers (Twilio messaging service).
    MessagingService,
}

/// Texts per second one sender may send, across every sender instance (issue 14).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct SenderRate(f64);

// `new` refuses NaN, so equality is total.
impl Eq for SenderRate {}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("must be a number of texts per second from 0.1 to 1000")]
pub struct InvalidSenderRate;

impl SenderRate {
    /// One text every ten seconds: below that a chunk's sends would outlast every
    /// invocation's slice of it.
    pub const MIN: f64 = 0.1;
    /// Ten short codes' worth: above that the figure is a typo, not a number.
    pub const MAX: f64 = 1000.0;

    pub fn new(per_second: f64) -> Result<Self, InvalidSenderRate> {
        (Self::MIN..=Self::MAX)
            .contains(&per_second)
            .then_some(Self(per_second))
            .ok_or(InvalidSenderRate)
    }

    pub fn per_second(self) -> f64 {
        self.0
    }
}

impl utoipa::PartialSchema for SmsSender {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::OneOfBuilder;
        utoipa::openapi::RefOr::T(utoipa::openapi::Schema::OneOf(
            OneOfBuilder::new()
                .item(crate::phone::PhoneNumber::schema())
                .item(crate::schema::done(crate::schema::string(
                    34,
                    34,
                    Self::SERVICE_PATTERN,
                )))
                .item(crate::schema::done(crate::schema::string(
                    5,
                    6,
                    Self::SHORT_CODE_PATTERN,
                )))
                .description(Some(
                    "A sender number in E.164 form, a short code (5 or 6 digits), or a Twilio \
                     messaging service id (`MG` and 32 hex digits).",
                ))
                .build(),
        ))
    }
}

impl utoipa::ToSchema for SmsSender {}

impl TryFrom<String> for SmsSender {
    type Error = InvalidSmsSender;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<SmsSender> for String {
    fn from(sender: SmsSender) -> Self {
        sender.0
    }
}

impl std::fmt::Display for SmsSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantProfile {
    pub tenant: TenantId,
    pub plan: Plan,
    pub status: TenantStatus,
    pub limits: Limits,
    pub sms_provider: SmsProviderKind,
    /// Where, and to what kind of number, it may send texts.
    pub sms_policy: super::SmsPolicy,
    /// Its own SMS sender, set by operators; `None`: the platform's.
    pub sms_sender: Option<SmsSender>,
    /// Its sender's rate as the operator set it; `None`: the kind's default
    /// (`SmsSender::default_rate`).
    pub sms_sender_rate: Option<SenderRate>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl TenantProfile {
    /// The rate its texts go at besides the provider account's: its own sender's, set
    /// or by default; `None` on the platform's sender or a messaging service.
    pub fn sender_rate(&self) -> Option<(&SmsSender, SenderRate)> {
        let sender = self.sms_sender.as_ref()?;
        Some((
            sender,
            self.sms_sender_rate.or_else(|| sender.default_rate())?,
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted {
        limit: u32,
        remaining: u32,
    },
    /// The window is full; the next one opens in `retry_after_secs`.
    Limited {
        limit: u32,
        retry_after_secs: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    Reserved {
        used: u32,
    },
    /// A retry of the request that created the batch: counted the first time.
    AlreadyReserved,
    Exceeded {
        used: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The token subject of whoever acted (a user or a machine client).
    pub actor: String,
    /// What they did, as `noun.verb`: `batch.created`, `tenant.suspended`...
    pub action: String,
    /// What it was done to: a batch id, a tenant id...
    pub target: String,
    /// The correlation id of the request, to find its logs.
    pub request_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray as _;

    fn names_agree<T>()
    where
        T: strum::VariantArray + Copy + Into<&'static str> + Serialize + std::str::FromStr,
        T: std::fmt::Debug + PartialEq,
    {
        for value in T::VARIANTS {
            let name: &'static str = (*value).into();
            assert_eq!(serde_json::to_value(value).unwrap(), name);
            assert_eq!(name.parse::<T>().ok(), Some(*value));
        }
    }

    #[test]
    fn tenant_values_have_one_name_in_json_and_in_items() {
        names_agree::<TenantStatus>();
        names_agree::<Plan>();
        names_agree::<SmsProviderKind>();
        assert_eq!(SmsProviderKind::default(), SmsProviderKind::Twilio);
        assert!("platinum".parse::<Plan>().is_err());
    }

    #[test]
    fn an_sms_sender_is_a_number_or_a_messaging_service() {
        assert_eq!(
            SmsSender::parse("+14155550100").unwrap().as_str(),
            "+14155550100"
        );
        let service = format!("MG{}", "a1".repeat(16));
        assert_eq!(SmsSender::parse(&service).unwrap().as_str(), service);
        assert_eq!(
            SmsSender::parse("24273").unwrap().kind(),
            SenderKind::ShortCode
        );
        for bad in [
            "",
            "0427",
            "1234567",
            "04273",
            "4155550100",
            "MG123",
            "MGzz",
            &format!("MG{}", "g".repeat(32)),
        ] {
            assert_eq!(SmsSender::parse(bad), Err(InvalidSmsSender), "{bad:?}");
        }
    }

    #[test]
    fn a_sender_has_its_kinds_rate_unless_the_profile_sets_one() {
        let rate = |raw: &str| {
            SmsSender::parse(raw)
                .unwrap()
                .default_rate()
                .map(SenderRate::per_second)
        };
        assert_eq!(rate("+14155550100"), Some(1.0));
        assert_eq!(rate("+18002752273"), Some(3.0));
        assert_eq!(rate("+447911123456"), Some(1.0));
        assert_eq!(rate("+448081570000"), Some(3.0), "a UK freephone number");
        assert_eq!(rate("24273"), Some(100.0));
        assert_eq!(rate(&format!("MG{}", "a1".repeat(16))), None);
        for bad in [0.0, -1.0, 0.09, 1000.5, 1e300, f64::NAN, f64::INFINITY] {
            assert_eq!(SenderRate::new(bad), Err(InvalidSenderRate), "{bad}");
        }
        assert_eq!(SenderRate::new(0.5).unwrap().per_second(), 0.5);
    }

    #[test]
    fn plans_grow_in_every_limit() {
        let limits: Vec<_> = Plan::VARIANTS.iter().map(|p| p.limits()).collect();
        assert_eq!(limits[0].sends_per_day, 10_000);
        assert_eq!(limits[2].api_requests_per_second, 200);
        assert!(limits.windows(2).all(|w| {
            w[0].sends_per_day < w[1].sends_per_day
                && w[0].api_requests_per_second < w[1].api_requests_per_second
        }));
    }
}
