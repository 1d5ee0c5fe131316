//! Property tests of the parsers that stand at the boundary: phone numbers, email
//! addresses, idempotency keys and ids. For each: valid inputs round-trip through
//! display (and serde) and parse, every accepted value obeys the documented rules,
//! arbitrary strings never panic, and known invalid families are refused.
//! (Templates have their own file, `templates.rs`.)

use herald::address::{InvalidAddress, InvalidEmailAddress, MAX_EMAIL_CHARS, mask_email};
use herald::idempotency::IdempotencyKey;
use herald::phone::mask_phone;
use herald::{Address, BatchId, CorrelationId, EmailAddress, MessageId, PhoneNumber, TenantId};
use proptest::prelude::*;

/// Numbers libphonenumber holds valid: San Francisco and UK mobile ranges.
fn valid_phone() -> impl Strategy<Value = String> {
    prop_oneof!["\\+1415555[0-9]{4}", "\\+4479111[0-9]{5}"]
}

/// Addresses of the everyday shape: a dotted local part and a dotted domain.
fn valid_email() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_%+'-]{1,12}(\\.[a-z0-9]{1,8}){0,2}@[a-z0-9]{1,12}(-[a-z0-9]{1,6})?(\\.[a-z]{2,8}){1,3}"
}

/// Inserts `what` into `text` at a character boundary chosen by `at`.
fn insert(text: &str, at: usize, what: char) -> String {
    let boundary = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .nth(at % (text.chars().count() + 1))
        .unwrap_or(text.len());
    format!("{}{what}{}", &text[..boundary], &text[boundary..])
}

proptest! {
    #[test]
    fn valid_phone_numbers_round_trip(raw in valid_phone()) {
        let phone = PhoneNumber::parse(&raw).expect("valid");
        prop_assert_eq!(phone.as_str(), raw.as_str());
        prop_assert_eq!(PhoneNumber::parse(&phone.to_string()), Ok(phone.clone()));
        let json = serde_json::to_string(&phone).unwrap();
        prop_assert_eq!(serde_json::from_str::<PhoneNumber>(&json).unwrap(), phone);
    }

    #[test]
    fn accepted_phone_numbers_are_e164(raw in prop_oneof!["\\+[0-9]{0,17}", ".{0,20}"]) {
        if let Ok(phone) = PhoneNumber::parse(&raw) {
            let digits = phone.as_str().strip_prefix('+').expect("starts with +");
            prop_assert!((2..=15).contains(&digits.len()), "{}", phone);
            prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
            prop_assert!(!digits.starts_with('0'));
            prop_assert_eq!(phone.as_str(), raw.as_str());
        }
    }

    #[test]
    fn phone_parsing_and_masking_never_panic(raw in any::<String>()) {
        let _ = PhoneNumber::parse(&raw);
        let masked = mask_phone(&raw);
        prop_assert_eq!(masked.chars().count(), raw.chars().count());
    }

    #[test]
    fn phone_numbers_with_spaces_trunk_prefixes_or_no_plus_are_refused(
        raw in valid_phone(),
        at in any::<usize>(),
    ) {
        prop_assert!(PhoneNumber::parse(&insert(&raw, at, ' ')).is_err());
        prop_assert!(PhoneNumber::parse(&raw[1..]).is_err());
        let international_prefix = format!("00{}", &raw[1..]);
        prop_assert!(PhoneNumber::parse(&international_prefix).is_err());
        // A national trunk 0 after the country code is not E.164.
        let trunk = raw.replacen("+44", "+440", 1).replacen("+1", "+10", 1);
        prop_assert!(PhoneNumber::parse(&trunk).is_err(), "{}", trunk);
        let too_long = format!("{raw}0000");
        prop_assert!(PhoneNumber::parse(&too_long).is_err(), "{}", too_long);
    }

    #[test]
    fn valid_email_addresses_round_trip(raw in valid_email()) {
        let email = EmailAddress::parse(&raw).expect("valid");
        prop_assert_eq!(email.as_str(), raw.as_str());
        prop_assert_eq!(EmailAddress::parse(&email.to_string()), Ok(email.clone()));
        let json = serde_json::to_string(&email).unwrap();
        prop_assert_eq!(serde_json::from_str::<EmailAddress>(&json).unwrap(), email.clone());
        prop_assert_eq!(email.folded(), raw.to_ascii_lowercase());
        // Masking keeps neither the mailbox nor the domain whole.
        let (local, domain) = raw.rsplit_once('@').unwrap();
        let masked = email.masked();
        prop_assert!(local.len() < 2 || !masked.starts_with(local), "{}", masked);
        prop_assert!(!masked.contains(domain), "{}", masked);
    }

    #[test]
    fn accepted_email_addresses_obey_the_rules(
        raw in prop_oneof!["[ -~]{0,12}@[ -~]{0,12}", ".{0,30}", valid_email()],
    ) {
        if let Ok(email) = EmailAddress::parse(&raw) {
            let text = email.as_str();
            prop_assert!(text.len() <= MAX_EMAIL_CHARS);
            prop_assert!(text.bytes().all(|b| b.is_ascii_graphic()), "{}", text);
            let (local, domain) = text.rsplit_once('@').expect("an @");
            prop_assert!(!local.is_empty());
            prop_assert!(domain.contains('.') && !domain.starts_with('['), "{}", text);
        }
    }

    #[test]
    fn email_parsing_and_masking_never_panic(raw in any::<String>()) {
        let _ = EmailAddress::parse(&raw);
        let _ = mask_email(&raw);
    }

    #[test]
    fn email_addresses_with_spaces_controls_or_non_ascii_are_refused(
        raw in valid_email(),
        at in any::<usize>(),
        odd in prop_oneof![Just(' '), Just('\n'), Just('\r'), Just('\u{0}'), Just('é'), Just('\u{200b}')],
    ) {
        prop_assert!(EmailAddress::parse(&insert(&raw, at, odd)).is_err());
        let (local, domain) = raw.rsplit_once('@').unwrap();
        let dotless = domain.split('.').next().unwrap();
        prop_assert_eq!(
            EmailAddress::parse(&format!("{local}@{dotless}")),
            Err(InvalidEmailAddress::NoPublicDomain)
        );
        prop_assert!(EmailAddress::parse(&raw.replace('@', "")).is_err());
        let long = format!("{}{raw}", "a".repeat(MAX_EMAIL_CHARS));
        prop_assert_eq!(EmailAddress::parse(&long), Err(InvalidEmailAddress::TooLong));
    }

    #[test]
    fn an_address_of_the_other_channel_is_named_as_such(phone in valid_phone(), email in valid_email()) {
        // The channels, taken from addresses rather than named by their module path.
        let phone_address = Address::Phone(PhoneNumber::parse(&phone).unwrap());
        let email_address = Address::Email(EmailAddress::parse(&email).unwrap());
        let (sms, mail) = (phone_address.channel(), email_address.channel());
        prop_assert_eq!(Address::parse(mail, &phone), Err(InvalidAddress::PhoneOnEmail));
        prop_assert_eq!(Address::parse(sms, &email), Err(InvalidAddress::EmailOnSms));
        prop_assert_eq!(Address::parse(sms, &phone), Ok(phone_address));
        prop_assert_eq!(Address::parse(mail, &email), Ok(email_address));
    }

    #[test]
    fn idempotency_keys_are_1_to_255_visible_ascii_characters(
        raw in prop_oneof!["[!-~]{1,255}", "[ -~]{0,300}", any::<String>()],
    ) {
        let rule = (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        match IdempotencyKey::parse(&raw) {
            Ok(key) => {
                prop_assert!(rule, "{:?} accepted", raw);
                prop_assert_eq!(key.as_str(), raw.as_str());
                prop_assert_eq!(IdempotencyKey::parse(&key.to_string()), Ok(key));
            }
            Err(_) => prop_assert!(!rule, "{:?} refused", raw),
        }
    }

    #[test]
    fn idempotency_keys_with_spaces_or_past_255_characters_are_refused(
        raw in "[!-~]{1,255}",
        at in any::<usize>(),
        odd in prop_oneof![Just(' '), Just('\t'), Just('\u{7f}'), Just('é')],
    ) {
        prop_assert!(IdempotencyKey::parse(&insert(&raw, at, odd)).is_err());
        let too_long = format!("{raw}{}", "k".repeat(256 - raw.len()));
        prop_assert!(IdempotencyKey::parse(&too_long).is_err());
        prop_assert!(IdempotencyKey::parse("").is_err());
    }

    #[test]
    fn tenant_ids_are_slugs(raw in prop_oneof!["[a-z0-9][a-z0-9-]{0,63}", "[ -~]{0,70}", any::<String>()]) {
        let rule = (1..=64).contains(&raw.len())
            && !raw.starts_with('-')
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        match TenantId::parse(&raw) {
            Ok(id) => {
                prop_assert!(rule, "{:?} accepted", raw);
                prop_assert_eq!(id.to_string(), raw.clone());
                let json = serde_json::to_string(&id).unwrap();
                prop_assert_eq!(serde_json::from_str::<TenantId>(&json).unwrap(), id);
            }
            Err(_) => prop_assert!(!rule, "{:?} refused", raw),
        }
    }

    #[test]
    fn batch_and_message_ids_round_trip_in_one_spelling(ulid in any::<u128>(), index in any::<u32>()) {
        let batch: BatchId = ulid::Ulid(ulid).to_string().parse().expect("a ULID");
        prop_assert_eq!(batch.to_string().parse::<BatchId>(), Ok(batch));
        let lower = batch.to_string().to_lowercase();
        if lower != batch.to_string() {
            prop_assert!(lower.parse::<BatchId>().is_err(), "{} accepted", lower);
        }
        let message = MessageId::new(batch, index);
        prop_assert_eq!(message.to_string().parse::<MessageId>(), Ok(message));
        let json = serde_json::to_string(&message).unwrap();
        prop_assert_eq!(serde_json::from_str::<MessageId>(&json).unwrap(), message);
        for other in [
            format!("{batch}.0{index}"),
            format!("{batch}.+{index}"),
            format!("{batch}.{}", u64::from(index) + u64::from(u32::MAX) + 1),
            format!("{batch}.{index}."),
            format!("{batch}{index}"),
        ] {
            prop_assert!(other.parse::<MessageId>().is_err(), "{} accepted", other);
        }
    }

    #[test]
    fn parsed_ids_have_one_spelling_and_never_panic(raw in prop_oneof!["[0-9A-Z]{26}\\.[0-9+]{0,12}", "[ -~]{0,40}", any::<String>()]) {
        if let Ok(batch) = raw.parse::<BatchId>() {
            prop_assert_eq!(batch.to_string(), raw.clone());
        }
        if let Ok(message) = raw.parse::<MessageId>() {
            prop_assert_eq!(message.to_string(), raw.clone());
        }
    }

    #[test]
    fn correlation_ids_are_short_and_printable_or_replaced(raw in prop_oneof!["[A-Za-z0-9._:-]{1,128}", "[ -~]{0,140}", any::<String>()]) {
        let rule = (1..=128).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        prop_assert_eq!(CorrelationId::parse(&raw).is_ok(), rule);
        let from_header = CorrelationId::from_header(Some(&raw));
        prop_assert!(CorrelationId::parse(from_header.as_str()).is_ok());
        prop_assert_eq!(from_header.as_str() == raw, rule);
    }
}
