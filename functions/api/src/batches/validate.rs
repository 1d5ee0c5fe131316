//! Everything a batch request is checked for before anything is written: every
//! recipient's address (for the channel, and for SMS the tenant's policy), variables,
//! rendered text and subject, and duplicates. Every failure is listed with its field
//! path.

use std::collections::{BTreeMap, HashMap};

use herald::Address;
use herald::domain::{
    Channel, MAX_SUBJECT_CHARS, MessageText, Recipient, SmsRules, Subject, printable,
};
use herald::template::{self, RenderError, Template, TemplateError, Variables};
use serde::Deserialize;

use crate::{ApiError, FieldErrors};

pub const MAX_VARIABLES: usize = 20;
pub const MAX_VALUE_CHARS: usize = 1024;
/// Names and values of one recipient's variables, in UTF-8 bytes: keeps a chunk of
/// `CHUNK_SIZE` recipients well under DynamoDB's 400 KB item limit.
pub const MAX_VARIABLE_BYTES: usize = 2048;

/// `POST /v1/batches` as the API reads it; the document's description of it, which
/// depends on the channel, is `openapi::values::create_batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBatch {
    #[serde(default)]
    pub channel: Channel,
    pub subject: Option<String>,
    pub template: String,
    #[serde(deserialize_with = "crate::extract::object::each")]
    pub recipients: Vec<RecipientField>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientField {
    pub to: String,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// A batch request that passed every check.
pub(super) struct Valid {
    pub template: Template,
    pub subject: Option<Template>,
    pub recipients: Vec<Recipient>,
}

/// Checks everything before anything is written: every recipient's address (for the
/// channel, and a number against the tenant's SMS `rules`), variables, rendered text
/// and subject, and duplicates. Every failure is listed with its field path.
pub(super) fn validate(
    request: &CreateBatch,
    channel: Channel,
    max_recipients: usize,
    rules: &SmsRules,
) -> Result<Valid, ApiError> {
    let mut errors = FieldErrors::default();
    if let Err(problems) = MessageText::parse(channel, &request.template) {
        errors.add_text("/template", problems);
    }
    let max_chars = channel.max_text_chars();
    // An over-long template is not scanned (MessageText named it, with its length), and
    // without a template no recipient is rendered.
    let template = match Template::parse_within(&request.template, max_chars) {
        Ok(template) => Some(template),
        Err(TemplateError::TooLong { .. }) => None,
        Err(e) => {
            errors.add("/template", e.to_string());
            None
        }
    };
    let subject_source = Subject::for_channel(channel, request.subject.as_deref())
        .inspect_err(|problems| errors.add_text("/subject", problems.clone()))
        .ok()
        .flatten();
    let subject = subject_source.and_then(|source| {
        Template::parse(source.as_str())
            .inspect_err(|e| errors.add("/subject", e.to_string()))
            .ok()
    });
    let count = request.recipients.len();
    if count == 0 || count > max_recipients {
        errors.add(
            "/recipients",
            format!("must hold 1 to {max_recipients} recipients; it holds {count}"),
        );
        // Checking each of 10,001 recipients would bury the one error that matters.
        return Err(ApiError::InvalidFields(errors));
    }
    let mut first_seen: HashMap<String, usize> = HashMap::with_capacity(count);
    let mut recipients = Vec::with_capacity(count);
    for (i, field) in request.recipients.iter().enumerate() {
        let at = format!("/recipients/{i}");
        let variables = check_variables(&field.variables, &at, &mut errors);
        let to = match Address::parse(channel, &field.to) {
            Ok(to) => to,
            Err(e) => {
                errors.add(format!("{at}/to"), e.to_string());
                continue;
            }
        };
        for refusal in rules.refusals_for(&to) {
            errors.add(format!("{at}/to"), refusal.to_string());
        }
        if let Some(first) = first_seen.insert(to.folded(), i) {
            // Rejected, not silently merged: a list with duplicates is usually a bug
            // upstream that the caller wants to hear about.
            first_seen.insert(to.folded(), first);
            errors.add(
                format!("{at}/to"),
                format!(
                    "duplicates /recipients/{first}/to; each address may appear once per batch"
                ),
            );
            continue;
        }
        if let (Some(template), Some(variables)) = (&template, &variables) {
            match template.render_within(variables, max_chars) {
                Err(RenderError::Missing(missing)) => {
                    errors.add(format!("{at}/variables"), missing.to_string())
                }
                Err(too_long) => errors.add(at.clone(), too_long.to_string()),
                Ok(_) => {}
            }
        }
        if let (Some(subject), Some(variables)) = (&subject, &variables) {
            match subject.render_within(variables, MAX_SUBJECT_CHARS) {
                Err(RenderError::Missing(missing)) => {
                    errors.add(format!("{at}/variables"), missing.to_string())
                }
                Err(RenderError::TooLong { .. }) => errors.add(
                    at.clone(),
                    format!(
                        "the subject for this recipient: a subject is 1 to {MAX_SUBJECT_CHARS} characters; it is longer"
                    ),
                ),
                Ok(text) => {
                    // Named at the recipient: its variables made the subject what it is.
                    for problem in Subject::parse(&text).err().unwrap_or_default() {
                        errors.add(&at, format!("the subject for this recipient: {problem}"));
                    }
                }
            }
        }
        if let Some(variables) = variables {
            recipients.push(Recipient { to, variables });
        }
    }
    errors.check()?;
    Ok(Valid {
        template: template.expect("checked above"),
        subject,
        recipients,
    })
}

fn check_variables(
    variables: &BTreeMap<String, String>,
    at: &str,
    errors: &mut FieldErrors,
) -> Option<Variables> {
    let before = errors.len();
    if variables.len() > MAX_VARIABLES {
        errors.add(
            format!("{at}/variables"),
            format!(
                "at most {MAX_VARIABLES} variables; it has {}",
                variables.len()
            ),
        );
    }
    let bytes: usize = variables.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_VARIABLE_BYTES {
        errors.add(
            format!("{at}/variables"),
            format!("names and values may total {MAX_VARIABLE_BYTES} bytes; they total {bytes}"),
        );
    }
    for (name, value) in variables {
        let path = format!(
            "{at}/variables/{}",
            name.replace('~', "~0").replace('/', "~1")
        );
        if !template::is_name(name) {
            errors.add(
                path.clone(),
                format!(
                    "variable names are 1 to {} letters, digits or _, starting with a letter or _",
                    template::MAX_NAME_CHARS
                ),
            );
        }
        let chars = value.chars().count();
        if chars > MAX_VALUE_CHARS {
            errors.add(
                path.clone(),
                format!("at most {MAX_VALUE_CHARS} characters; it has {chars}"),
            );
        }
        if !printable(value) {
            errors.add(path, "must not contain control characters");
        }
    }
    (errors.len() == before).then(|| variables.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient(to: &str, variables: &[(&str, &str)]) -> RecipientField {
        RecipientField {
            to: to.to_owned(),
            variables: variables
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn sms(template: &str, recipients: Vec<RecipientField>) -> CreateBatch {
        CreateBatch {
            channel: Channel::Sms,
            subject: None,
            template: template.to_owned(),
            recipients,
        }
    }

    /// The platform's defaults: US and Canadian mobiles and the numbers that may be.
    fn default_rules() -> SmsRules {
        let home = ["US", "CA"].map(|c| herald::domain::Country::parse(c).unwrap());
        herald::domain::SmsPolicy::default().rules(&home.into())
    }

    /// The fields a refused request names, in the order they were found.
    fn refused(request: &CreateBatch, max_recipients: usize) -> Vec<(String, String)> {
        match validate(request, request.channel, max_recipients, &default_rules()) {
            Err(ApiError::InvalidFields(errors)) => errors.into_inner(),
            Err(other) => panic!("expected invalid fields, got {other:?}"),
            Ok(_) => panic!("expected the request to be refused"),
        }
    }

    fn fields(errors: &[(String, String)]) -> Vec<&str> {
        errors.iter().map(|(field, _)| field.as_str()).collect()
    }

    #[test]
    fn a_valid_batch_keeps_its_recipients_in_order_with_their_variables() {
        let request = sms(
            "Hi {{name}}",
            vec![
                recipient("+14155550101", &[("name", "Ann")]),
                recipient("+14155550102", &[("name", "Bo")]),
            ],
        );
        let valid = validate(&request, Channel::Sms, 10, &default_rules()).expect("valid");
        assert_eq!(valid.template.source(), "Hi {{name}}");
        assert!(valid.subject.is_none());
        let to: Vec<&str> = valid.recipients.iter().map(|r| r.to.as_str()).collect();
        assert_eq!(to, ["+14155550101", "+14155550102"]);
        assert_eq!(valid.recipients[1].variables["name"], "Bo");
    }

    #[test]
    fn every_failing_recipient_is_named_at_once() {
        // Twice a name of 1,000 characters passes an SMS's 1,600.
        let request = sms(
            "Hi {{name}} {{name}}",
            vec![
                recipient("+14155550101", &[("name", "Ann")]),
                recipient("0044", &[("name", "Bo")]),
                recipient("+14155550101", &[("name", "Cy")]),
                recipient("+14155550103", &[]),
                recipient("+14155550104", &[("name", &"x".repeat(1_000))]),
                recipient("+14155550105", &[("bad name", "x")]),
            ],
        );
        let errors = refused(&request, 10);
        assert_eq!(
            fields(&errors),
            [
                "/recipients/1/to",
                "/recipients/2/to",
                "/recipients/3/variables",
                "/recipients/4",
                "/recipients/5/variables/bad name",
            ],
            "{errors:?}"
        );
        assert!(errors[1].1.contains("duplicates /recipients/0/to"));
    }

    #[test]
    fn numbers_outside_the_tenants_sms_policy_are_named_each_at_its_recipient() {
        let request = sms(
            "Hi",
            vec![
                recipient("+14155550101", &[]),
                recipient("+18762101234", &[]),
                recipient("+19002345678", &[]),
                recipient("+447400123456", &[]),
                recipient("+16132345678", &[]),
            ],
        );
        let errors = refused(&request, 10);
        assert_eq!(
            fields(&errors),
            ["/recipients/1/to", "/recipients/2/to", "/recipients/3/to"],
            "{errors:?}"
        );
        assert!(errors[0].1.contains("in JM"), "{errors:?}");
        assert!(errors[1].1.contains("premium_rate"), "{errors:?}");
        assert!(errors[2].1.contains("in GB"), "{errors:?}");
    }

    #[test]
    fn too_many_recipients_is_the_only_error_reported() {
        let recipients = (0..4)
            .map(|i| recipient(&format!("bad-{i}"), &[]))
            .collect();
        let errors = refused(&sms("Hi", recipients), 3);
        assert_eq!(fields(&errors), ["/recipients"], "{errors:?}");
        assert_eq!(fields(&refused(&sms("Hi", vec![]), 3)), ["/recipients"]);
    }

    #[test]
    fn a_template_over_the_limit_is_named_once_and_no_recipient_is_rendered() {
        let template = "{{a}}".repeat(1_000);
        let recipients = (0..50)
            .map(|i| recipient(&format!("+1415555{i:04}"), &[]))
            .collect();
        let errors = refused(&sms(&template, recipients), 100);
        assert_eq!(fields(&errors), ["/template"], "{errors:?}");
    }

    #[test]
    fn email_addresses_are_duplicates_whatever_their_case() {
        let request = CreateBatch {
            channel: Channel::Email,
            subject: Some("Hello {{name}}".to_owned()),
            template: "Hi {{name}}".to_owned(),
            recipients: vec![
                recipient("ann@example.com", &[("name", "Ann")]),
                recipient("ANN@Example.com", &[("name", "Ann")]),
            ],
        };
        let errors = refused(&request, 10);
        assert_eq!(fields(&errors), ["/recipients/1/to"], "{errors:?}");
    }

    #[test]
    fn a_variable_that_breaks_the_subject_is_named_at_its_recipient() {
        let request = CreateBatch {
            channel: Channel::Email,
            subject: Some("Hello {{name}}".to_owned()),
            template: "Hi".to_owned(),
            recipients: vec![
                recipient("ann@example.com", &[("name", "Ann\nBcc: x@example.com")]),
                recipient("bo@example.com", &[("name", &"n".repeat(300))]),
                recipient("cy@example.com", &[]),
            ],
        };
        let errors = refused(&request, 10);
        assert_eq!(
            fields(&errors),
            ["/recipients/0", "/recipients/1", "/recipients/2/variables"],
            "{errors:?}"
        );
        assert!(errors.iter().take(2).all(|(_, m)| m.contains("subject")));
    }
}
