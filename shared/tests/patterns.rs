//! The OpenAPI document's patterns say what the parsers accept, no more and no less:
//! every string generated from a pattern parses, and every string a parser accepts
//! matches its pattern. A client generated from the document then learns each rule
//! before its first 400, and a rule changed in one place fails here.

use herald::domain::{Channel, MessageText, Subject};
use herald::idempotency::IdempotencyKey;
use herald::schema::{ONE_LINE, PRINTABLE};
use herald::template::{self, Template};
use herald::{BatchId, EmailAddress, MessageId, PhoneNumber, TenantId};
use proptest::prelude::*;
use regex::Regex;

fn anchored(pattern: &str) -> Regex {
    Regex::new(&format!("^(?:{pattern})$")).expect("the pattern compiles")
}

/// Strings near the rules: ASCII with the characters the patterns care about, a few
/// controls and some non-ASCII letters.
fn nearby() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ._+@{}\\-\t\n\r\u{1}\u{7f}\u{85}é]{0,40}"
}

fn text_template_pattern() -> String {
    template::pattern(PRINTABLE)
}

proptest! {
    #[test]
    fn ids_match_their_patterns_exactly(raw in nearby(), generated in BatchId::PATTERN) {
        let batch = anchored(BatchId::PATTERN);
        prop_assert!(generated.parse::<BatchId>().is_ok(), "{generated}");
        prop_assert_eq!(raw.parse::<BatchId>().is_ok(), batch.is_match(&raw));
        let tenant = anchored(TenantId::PATTERN);
        prop_assert_eq!(TenantId::parse(&raw).is_ok(), tenant.is_match(&raw), "{:?}", raw);
        let key = anchored(IdempotencyKey::PATTERN);
        prop_assert_eq!(IdempotencyKey::parse(&raw).is_ok(), key.is_match(&raw), "{:?}", raw);
    }

    #[test]
    fn message_ids_the_pattern_admits_parse(id in MessageId::PATTERN, raw in nearby()) {
        prop_assert!(id.parse::<MessageId>().is_ok(), "{id}");
        // The document stops at nine digits of index; anything else it refuses, the
        // parser refuses too.
        if raw.parse::<MessageId>().is_ok() {
            prop_assert!(raw.rsplit('.').next().is_some_and(|i| i.len() > 9) || anchored(MessageId::PATTERN).is_match(&raw));
        }
    }

    #[test]
    fn tenant_ids_the_pattern_admits_parse(id in TenantId::PATTERN) {
        prop_assert!(TenantId::parse(&id).is_ok(), "{id}");
    }

    #[test]
    fn phone_numbers_the_parser_accepts_match_the_pattern(raw in PhoneNumber::PATTERN, other in nearby()) {
        // The pattern is the E.164 form; whether the number exists (and is written
        // without a trunk prefix) is libphonenumber's call, which no pattern can make:
        // the document says so, and a pattern-shaped string may still be refused.
        for candidate in [&raw, &other] {
            if PhoneNumber::parse(candidate).is_ok() {
                prop_assert!(anchored(PhoneNumber::PATTERN).is_match(candidate), "{}", candidate);
            }
        }
    }

    #[test]
    fn email_addresses_match_their_pattern_exactly(
        generated in EmailAddress::PATTERN,
        raw in "[a-zA-Z0-9.@_+!#-]{1,30}(\\.[a-z]{1,4})?",
    ) {
        let pattern = anchored(EmailAddress::PATTERN);
        if generated.len() <= herald::address::MAX_EMAIL_CHARS {
            prop_assert!(EmailAddress::parse(&generated).is_ok(), "{}", generated);
        }
        prop_assert_eq!(EmailAddress::parse(&raw).is_ok(), pattern.is_match(&raw), "{:?}", raw);
    }

    #[test]
    fn texts_and_subjects_match_their_patterns_exactly(raw in nearby()) {
        let text = anchored(&format!("{PRINTABLE}*"));
        let ok = MessageText::parse(Channel::Sms, &raw).is_ok();
        prop_assert_eq!(ok, !raw.is_empty() && text.is_match(&raw), "{:?}", raw);
        let subject = anchored(&format!("{ONE_LINE}*"));
        prop_assert_eq!(Subject::parse(&raw).is_ok(), !raw.is_empty() && subject.is_match(&raw), "{:?}", raw);
    }

    #[test]
    fn templates_match_their_pattern_exactly(
        generated in "([a-z {}]|\\{\\{[ \t]?[a-z_][a-z0-9_]{0,3}[ \t]?\\}\\}){0,12}\\{?",
        raw in "[a-z {}\t\u{1}]{0,24}",
    ) {
        let pattern = anchored(&text_template_pattern());
        for candidate in [&generated, &raw] {
            let parses = Template::parse(candidate).is_ok() && herald::domain::printable(candidate);
            prop_assert_eq!(parses, pattern.is_match(candidate), "{:?}", candidate);
        }
    }
}

#[test]
fn the_template_pattern_knows_the_edge_cases() {
    let pattern = anchored(&text_template_pattern());
    for ok in [
        "", "Hi", "{", "x{", "{}", "}}", "{a}", "{{a}}", "{{ a\t}}", "{{_x1}}}", "{ {a}}",
    ] {
        assert!(pattern.is_match(ok), "{ok:?} is a template");
        assert!(Template::parse(ok).is_ok(), "{ok:?} parses");
    }
    for bad in [
        "{{", "x{{", "{{}}", "{{ }}", "{{1a}}", "{{a}b}}", "{{{a}}", "{{a\n}}", "a\u{1}",
    ] {
        assert!(!pattern.is_match(bad), "{bad:?} is not a template");
    }
}
