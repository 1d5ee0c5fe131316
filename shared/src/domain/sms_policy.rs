//! Where a tenant may send texts, and to what kind of line: the guard against SMS
//! pumping (traffic pumped to premium-rate or far-away numbers the fraudster is paid
//! for). Each tenant's profile names the countries it may text and the kinds of number
//! it may text; either left unset follows the platform's default (countries from
//! configuration, kinds `DEFAULT_NUMBER_TYPES`), so profiles written before this
//! existed need no backfill. The API refuses a number outside the policy before
//! anything is written.

use std::collections::BTreeSet;
use std::fmt;

stored_enum! {
    /// What kind of line a number is, as the phone library's metadata says from its
    /// digits alone (not who holds it today: a number ported since reads as what its
    /// range was given out as).
    #[derive(PartialOrd, Ord)]
    pub enum NumberType {
        Mobile,
        /// Where the digits do not tell the two apart (the United States, Canada).
        FixedLineOrMobile,
        FixedLine,
        TollFree,
        PremiumRate,
        SharedCost,
        /// A number that forwards wherever its holder says (UK 070, US 500), often
        /// charged like a premium one.
        PersonalNumber,
        Voip,
        Pager,
        /// Universal access ("company") numbers.
        Uan,
        /// Voicemail access numbers.
        Voicemail,
        /// What the library names no kind of, or a kind no text goes to (short codes,
        /// emergency, carrier-specific ranges).
        Other,
    }
}

impl From<phonenumber::Type> for NumberType {
    fn from(kind: phonenumber::Type) -> Self {
        use phonenumber::Type as T;
        match kind {
            T::Mobile => NumberType::Mobile,
            T::FixedLineOrMobile => NumberType::FixedLineOrMobile,
            T::FixedLine => NumberType::FixedLine,
            T::TollFree => NumberType::TollFree,
            T::PremiumRate => NumberType::PremiumRate,
            T::SharedCost => NumberType::SharedCost,
            T::PersonalNumber => NumberType::PersonalNumber,
            T::Voip => NumberType::Voip,
            T::Pager => NumberType::Pager,
            T::Uan => NumberType::Uan,
            T::Voicemail => NumberType::Voicemail,
            T::Emergency
            | T::ShortCode
            | T::StandardRate
            | T::Carrier
            | T::NoInternational
            | T::Unknown => NumberType::Other,
        }
    }
}

/// The kinds of number a tenant may text unless its profile says otherwise: mobiles,
/// and the numbers that may be mobiles. Every other kind a text can reach costs the
/// sender more, or pays someone (premium rate, shared cost, personal numbers), or
/// cannot read a text (fixed lines, pagers, voicemail).
pub const DEFAULT_NUMBER_TYPES: &[NumberType] =
    &[NumberType::Mobile, NumberType::FixedLineOrMobile];

/// A country (or territory) by its ISO 3166-1 alpha-2 code, one the phone library has
/// numbering data for: `US`, `GB`, `JM`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Country([u8; 2]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("must be an ISO 3166-1 alpha-2 country code, such as US or GB")]
pub struct InvalidCountry;

impl Country {
    /// A code as ISO 3166-1 writes it, in capitals (`us` is not one: the API states
    /// its rules rather than guessing past them).
    pub fn parse(raw: &str) -> Result<Self, InvalidCountry> {
        let bytes: [u8; 2] = raw.as_bytes().try_into().map_err(|_| InvalidCountry)?;
        if !bytes.iter().all(u8::is_ascii_uppercase)
            || phonenumber::metadata::DATABASE.by_id(raw).is_none()
        {
            return Err(InvalidCountry);
        }
        Ok(Self(bytes))
    }

    /// Every code `parse` takes, in order.
    pub fn all() -> Vec<Country> {
        let mut all: Vec<Country> = phonenumber::metadata::DATABASE
            .iter()
            .filter_map(|region| Country::parse(region.id()).ok())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("checked ASCII")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Country({self})")
    }
}

impl serde::Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl utoipa::PartialSchema for Country {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        let codes: Vec<String> = Country::all().iter().map(Country::to_string).collect();
        crate::schema::done(
            utoipa::openapi::schema::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String)
                .enum_values(Some(codes))
                .description(Some(
                    "An ISO 3166-1 alpha-2 country code, in capitals, of a country or \
                     territory with a telephone numbering plan.",
                ))
                .examples(["US"]),
        )
    }
}

impl utoipa::ToSchema for Country {}

/// A tenant's own SMS policy, as its profile holds it: a part left `None` follows the
/// platform's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmsPolicy {
    pub countries: Option<BTreeSet<Country>>,
    pub number_types: Option<BTreeSet<NumberType>>,
}

impl SmsPolicy {
    /// The rules in force: the tenant's own parts, the platform's defaults for the rest.
    pub fn rules(&self, default_countries: &BTreeSet<Country>) -> SmsRules {
        SmsRules {
            countries: self
                .countries
                .clone()
                .unwrap_or_else(|| default_countries.clone()),
            number_types: self
                .number_types
                .clone()
                .unwrap_or_else(|| DEFAULT_NUMBER_TYPES.iter().copied().collect()),
        }
    }
}

/// The countries and kinds of number a tenant may text, in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsRules {
    pub countries: BTreeSet<Country>,
    pub number_types: BTreeSet<NumberType>,
}

/// Why a number may not be texted; said to the client at the recipient's field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsRefusal {
    #[error(
        "is a number in {country}, where your tenant may not send texts (it may text {allowed}; an operator can change this)"
    )]
    Country { country: Country, allowed: String },
    #[error(
        "belongs to no country (an international network or service number); your tenant may text only {allowed}"
    )]
    NoCountry { allowed: String },
    #[error(
        "is a {kind} number, which your tenant may not text (it may text {allowed}; an operator can change this)"
    )]
    NumberType { kind: NumberType, allowed: String },
}

impl SmsRules {
    /// Every rule a recipient breaks: none for an email address.
    pub fn refusals_for(&self, address: &crate::Address) -> Vec<SmsRefusal> {
        match address {
            crate::Address::Phone(phone) => self.refusals(phone.country(), phone.kind()),
            crate::Address::Email(_) => Vec::new(),
        }
    }

    /// Every rule a number in `country` (if it is in one) of kind `kind` breaks.
    pub fn refusals(&self, country: Option<Country>, kind: NumberType) -> Vec<SmsRefusal> {
        let mut refusals = Vec::new();
        let countries = || list(&self.countries, "no country");
        match country {
            Some(country) if self.countries.contains(&country) => {}
            Some(country) => refusals.push(SmsRefusal::Country {
                country,
                allowed: countries(),
            }),
            None => refusals.push(SmsRefusal::NoCountry {
                allowed: countries(),
            }),
        }
        if !self.number_types.contains(&kind) {
            refusals.push(SmsRefusal::NumberType {
                kind,
                allowed: list(&self.number_types, "no kind of number"),
            });
        }
        refusals
    }
}

fn list<T: fmt::Display>(items: &BTreeSet<T>, none: &str) -> String {
    if items.is_empty() {
        return none.to_owned();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn countries(codes: &[&str]) -> BTreeSet<Country> {
        codes.iter().map(|c| Country::parse(c).unwrap()).collect()
    }

    #[test]
    fn countries_are_two_letter_codes_the_phone_library_knows() {
        assert_eq!(Country::parse("US").unwrap().as_str(), "US");
        assert_eq!(Country::parse("JM").unwrap().to_string(), "JM");
        for bad in ["", "U", "us", "Us", "USA", "U1", "ZZ", "001", "é1"] {
            assert_eq!(Country::parse(bad), Err(InvalidCountry), "{bad:?}");
        }
    }

    #[test]
    fn every_listed_code_parses_and_the_list_is_the_world() {
        let all = Country::all();
        assert!(all.len() > 200, "{}", all.len());
        assert!(all.contains(&Country::parse("GB").unwrap()));
    }

    #[test]
    fn unset_parts_follow_the_platform_default_and_set_ones_replace_it() {
        let platform = countries(&["US", "CA"]);
        let unset = SmsPolicy::default().rules(&platform);
        assert_eq!(unset.countries, platform);
        assert_eq!(
            unset.number_types.iter().copied().collect::<Vec<_>>(),
            [NumberType::Mobile, NumberType::FixedLineOrMobile]
        );
        let own = SmsPolicy {
            countries: Some(BTreeSet::new()),
            number_types: Some([NumberType::TollFree].into()),
        }
        .rules(&platform);
        assert!(own.countries.is_empty(), "an empty list texts nowhere");
        assert_eq!(own.number_types, [NumberType::TollFree].into());
    }

    #[test]
    fn a_number_breaks_each_rule_it_is_outside_of() {
        let rules = SmsPolicy::default().rules(&countries(&["US", "CA"]));
        let us = Country::parse("US").ok();
        let jm = Country::parse("JM").ok();
        assert!(rules.refusals(us, NumberType::FixedLineOrMobile).is_empty());
        let refused = rules.refusals(jm, NumberType::PremiumRate);
        assert_eq!(refused.len(), 2);
        assert_eq!(
            refused[0].to_string(),
            "is a number in JM, where your tenant may not send texts (it may text CA, US; an operator can change this)"
        );
        assert!(
            refused[1]
                .to_string()
                .starts_with("is a premium_rate number")
        );
        assert!(matches!(
            rules.refusals(None, NumberType::Mobile)[..],
            [SmsRefusal::NoCountry { .. }]
        ));
    }

    #[test]
    fn number_types_have_one_name_in_json_and_in_items() {
        use strum::VariantArray as _;
        for kind in NumberType::VARIANTS {
            let name: &'static str = (*kind).into();
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
            assert_eq!(name.parse::<NumberType>().ok(), Some(*kind));
        }
    }
}
