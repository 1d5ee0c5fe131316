//! The rules for what a message says: its text (or a template's source) and an email's
//! subject. Parsed once into `MessageText` and `Subject`; every rule a value breaks is
//! reported, so a request hears about all of them at once.

use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::Channel;
use crate::schema::{self, ONE_LINE, PRINTABLE};

/// Longest text one SMS may carry (Twilio's limit; it splits it into segments).
pub const MAX_SMS_CHARS: usize = 1600;
/// Longest plain-text body of one email.
pub const MAX_EMAIL_CHARS: usize = 10_000;
/// Longest email subject.
pub const MAX_SUBJECT_CHARS: usize = 256;

impl Channel {
    /// The longest text a message of this channel may carry, rendered.
    pub fn max_text_chars(self) -> usize {
        match self {
            Channel::Sms => MAX_SMS_CHARS,
            Channel::Email => MAX_EMAIL_CHARS,
        }
    }

    fn text_noun(self) -> &'static str {
        match self {
            Channel::Sms => "an SMS",
            Channel::Email => "an email",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextProblem {
    #[error("must not be empty")]
    Empty,
    #[error("must not contain control characters")]
    Control,
    #[error("{noun} text may be at most {max} characters; it has {chars}")]
    TooLong {
        noun: &'static str,
        max: usize,
        chars: usize,
    },
    #[error("is required for email")]
    SubjectRequired,
    #[error("only email messages have a subject; remove it or send with \"channel\": \"email\"")]
    SubjectOnSms,
    #[error("a subject is 1 to {MAX_SUBJECT_CHARS} characters; it has {0}")]
    SubjectLength(usize),
    #[error("a subject must not contain control characters or line breaks")]
    SubjectControl,
}

/// Whether `text` holds no control characters other than newline, carriage return and
/// tab.
pub fn printable(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// A message's text, or the source of a template for one: not empty, printable, and
/// no longer than its channel carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    /// A `channel` message's text as the document describes it.
    pub fn schema_for(channel: Channel) -> RefOr<Schema> {
        schema::done(schema::string(
            1,
            channel.max_text_chars(),
            &format!("{PRINTABLE}*"),
        ))
    }

    pub fn parse(channel: Channel, text: &str) -> Result<Self, Vec<TextProblem>> {
        let mut problems = Vec::new();
        if text.is_empty() {
            problems.push(TextProblem::Empty);
        }
        if !printable(text) {
            problems.push(TextProblem::Control);
        }
        let (max, chars) = (channel.max_text_chars(), text.chars().count());
        if chars > max {
            problems.push(TextProblem::TooLong {
                noun: channel.text_noun(),
                max,
                chars,
            });
        }
        match problems.is_empty() {
            true => Ok(Self(text.to_owned())),
            false => Err(problems),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An email subject (or the source of a template for one): 1 to `MAX_SUBJECT_CHARS`
/// characters with no control characters at all, since a line break in a subject
/// would be a header break in the email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    pub fn parse(text: &str) -> Result<Self, Vec<TextProblem>> {
        let mut problems = Vec::new();
        let chars = text.chars().count();
        if chars == 0 || chars > MAX_SUBJECT_CHARS {
            problems.push(TextProblem::SubjectLength(chars));
        }
        if text.chars().any(char::is_control) {
            problems.push(TextProblem::SubjectControl);
        }
        match problems.is_empty() {
            true => Ok(Self(text.to_owned())),
            false => Err(problems),
        }
    }

    /// The subject a message of `channel` carries: required for email, refused for SMS.
    pub fn for_channel(
        channel: Channel,
        text: Option<&str>,
    ) -> Result<Option<Self>, Vec<TextProblem>> {
        match (channel, text) {
            (Channel::Email, None) => Err(vec![TextProblem::SubjectRequired]),
            (Channel::Sms, Some(_)) => Err(vec![TextProblem::SubjectOnSms]),
            (Channel::Sms, None) => Ok(None),
            (Channel::Email, Some(text)) => Self::parse(text).map(Some),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl PartialSchema for Subject {
    fn schema() -> RefOr<Schema> {
        schema::done(schema::string(
            1,
            MAX_SUBJECT_CHARS,
            &format!("{ONE_LINE}*"),
        ))
    }
}

impl ToSchema for Subject {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_reports_every_rule_it_breaks() {
        assert!(MessageText::parse(Channel::Sms, "Hi\r\n\tthere").is_ok());
        assert_eq!(
            MessageText::parse(Channel::Sms, ""),
            Err(vec![TextProblem::Empty])
        );
        let long_and_bell = format!("{}\u{7}", "x".repeat(1600));
        let problems = MessageText::parse(Channel::Sms, &long_and_bell).unwrap_err();
        assert_eq!(problems.len(), 2);
        assert_eq!(
            problems[1].to_string(),
            "an SMS text may be at most 1600 characters; it has 1601"
        );
        assert!(MessageText::parse(Channel::Email, &"x".repeat(10_000)).is_ok());
        assert!(MessageText::parse(Channel::Email, &"x".repeat(10_001)).is_err());
        // Characters, not bytes: 1600 accented letters are one SMS text.
        assert!(MessageText::parse(Channel::Sms, &"é".repeat(1600)).is_ok());
    }

    #[test]
    fn subjects_belong_to_email_and_hold_no_line_break() {
        assert_eq!(
            Subject::for_channel(Channel::Email, None),
            Err(vec![TextProblem::SubjectRequired])
        );
        assert_eq!(
            Subject::for_channel(Channel::Sms, Some("s")),
            Err(vec![TextProblem::SubjectOnSms])
        );
        assert_eq!(Subject::for_channel(Channel::Sms, None), Ok(None));
        assert!(
            Subject::for_channel(Channel::Email, Some("Your code"))
                .unwrap()
                .is_some()
        );
        assert_eq!(Subject::parse(""), Err(vec![TextProblem::SubjectLength(0)]));
        assert_eq!(
            Subject::parse("a\r\nBcc: x@example.com"),
            Err(vec![TextProblem::SubjectControl])
        );
        assert!(Subject::parse(&"s".repeat(256)).is_ok());
        assert!(Subject::parse(&"s".repeat(257)).is_err());
    }
}
