//! The request values the document names once and refers to everywhere: each comes
//! from the newtype (or rule) in `herald` that checks it, so the document states
//! exactly what the API enforces. The request bodies are built from them here too,
//! because a body's rules depend on its channel (`oneOf` an SMS and an email shape),
//! which no derive can say.

use std::borrow::Cow;

use herald::domain::{Channel, MessageText, Subject};
use herald::schema::{self, ONE_LINE, PRINTABLE};
use herald::template::{self, NAME_PATTERN};
use herald::{EmailAddress, PhoneNumber};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Type,
};
use utoipa::openapi::{Components, Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::batches::validate::{MAX_VALUE_CHARS, MAX_VARIABLE_BYTES, MAX_VARIABLES};

/// Adds every named value to the document's components.
pub(crate) fn add_value_components(components: &mut Components) {
    let named: [(&str, RefOr<Schema>); 13] = [
        ("PhoneNumber", PhoneNumber::schema()),
        ("EmailAddress", EmailAddress::schema()),
        ("SmsText", MessageText::schema_for(Channel::Sms)),
        ("EmailText", MessageText::schema_for(Channel::Email)),
        ("Subject", Subject::schema()),
        ("SmsTemplate", text_template(Channel::Sms.max_text_chars())),
        (
            "EmailTemplate",
            text_template(Channel::Email.max_text_chars()),
        ),
        (
            "SubjectTemplate",
            template_schema(
                herald::domain::MAX_SUBJECT_CHARS,
                &template::pattern(ONE_LINE, " "),
            ),
        ),
        ("Variables", variables_schema()),
        ("TenantId", herald::TenantId::schema()),
        ("BatchId", herald::BatchId::schema()),
        ("MessageId", herald::MessageId::schema()),
        (
            "IdempotencyKey",
            herald::idempotency::IdempotencyKey::schema(),
        ),
    ];
    for (name, value) in named {
        components.schemas.insert(name.to_owned(), value);
    }
}

fn text_template(max_chars: usize) -> RefOr<Schema> {
    template_schema(max_chars, &template::pattern(PRINTABLE, r"[ \t]"))
}

fn template_schema(max_chars: usize, pattern: &str) -> RefOr<Schema> {
    schema::done(schema::string(1, max_chars, pattern).description(Some(
        "Text with `{{name}}` placeholders, every `{{` closed; inside the braces a \
             name may be padded with spaces (and tabs, outside a subject).",
    )))
}

fn variables_schema() -> RefOr<Schema> {
    schema::done(
        ObjectBuilder::new()
            .max_properties(Some(MAX_VARIABLES))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(format!("^{NAME_PATTERN}$"))),
            ))
            .additional_properties(Some(schema::string(
                0,
                MAX_VALUE_CHARS,
                &format!("{PRINTABLE}*"),
            )))
            .description(Some(format!(
                "At most {MAX_VARIABLES} names (letters, digits or `_`, starting with a letter \
                 or `_`) with their values; names and values together at most \
                 {MAX_VARIABLE_BYTES} bytes of UTF-8."
            ))),
    )
}

fn named(name: &str) -> RefOr<Schema> {
    Ref::from_schema_name(name).into()
}

/// The `channel` property of one shape: `sms` may be left out, `email` may not.
fn channel(value: Channel) -> ObjectBuilder {
    let name: &'static str = value.into();
    let property = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([name]));
    match value {
        Channel::Sms => property.default(Some(name.into())),
        Channel::Email => property,
    }
}

/// A closed object (no other properties) with these properties, the required ones
/// marked.
fn object(properties: Vec<(&str, RefOr<Schema>, bool)>) -> ObjectBuilder {
    properties.into_iter().fold(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(AdditionalProperties::FreeForm(false))),
        |object, (name, value, required)| {
            let object = object.property(name, value);
            if required {
                object.required(name)
            } else {
                object
            }
        },
    )
}

fn one_of(description: &str, shapes: [(Channel, ObjectBuilder); 2]) -> RefOr<Schema> {
    let mut one_of = OneOfBuilder::new().description(Some(description));
    for (channel, shape) in shapes {
        let title = match channel {
            Channel::Sms => "SMS",
            Channel::Email => "Email",
        };
        one_of = one_of.item(shape.title(Some(title)));
    }
    RefOr::T(Schema::OneOf(one_of.build()))
}

/// `POST /v1/messages`: one SMS, or one email with its subject.
pub(crate) fn create_message() -> RefOr<Schema> {
    one_of(
        "One SMS to an E.164 number (`channel` `sms`, the default), or one plain-text \
         email with its `subject` (`channel` `email`).",
        [
            (
                Channel::Sms,
                object(vec![
                    ("channel", channel(Channel::Sms).into(), false),
                    ("to", named("PhoneNumber"), true),
                    ("body", named("SmsText"), true),
                ]),
            ),
            (
                Channel::Email,
                object(vec![
                    ("channel", channel(Channel::Email).into(), true),
                    ("to", named("EmailAddress"), true),
                    ("subject", named("Subject"), true),
                    ("body", named("EmailText"), true),
                ]),
            ),
        ],
    )
}

fn recipients(address: &str) -> RefOr<Schema> {
    let recipient = object(vec![
        ("to", named(address), true),
        ("variables", named("Variables"), false),
    ]);
    RefOr::T(Schema::Array(
        ArrayBuilder::new()
            .items(recipient)
            .min_items(Some(1))
            .max_items(Some(herald::config::DEFAULT_MAX_RECIPIENTS))
            .description(Some(
                "Each address at most once (email addresses compared without regard to \
                 case); the maximum is the deployment's (10,000 unless configured).",
            ))
            .build(),
    ))
}

/// `POST /v1/batches`: one template to many recipients by SMS, or by email with a
/// subject template.
pub(crate) fn create_batch() -> RefOr<Schema> {
    one_of(
        "One template to many recipients. Rules across fields, which JSON Schema cannot \
         state: every placeholder of the template (and subject) has a value in each \
         recipient's `variables`; each rendered text is at most the channel's length (1600 \
         characters for SMS, 10,000 for email) and each rendered subject follows the \
         subject rules; no address appears twice.",
        [
            (
                Channel::Sms,
                object(vec![
                    ("channel", channel(Channel::Sms).into(), false),
                    ("template", named("SmsTemplate"), true),
                    ("recipients", recipients("PhoneNumber"), true),
                ]),
            ),
            (
                Channel::Email,
                object(vec![
                    ("channel", channel(Channel::Email).into(), true),
                    ("subject", named("SubjectTemplate"), true),
                    ("template", named("EmailTemplate"), true),
                    ("recipients", recipients("EmailAddress"), true),
                ]),
            ),
        ],
    )
}

/// A request body documented by one of the functions above, under its own name.
macro_rules! documented_body {
    ($type:ty, $name:literal, $schema:path) => {
        impl PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                $schema()
            }
        }

        impl ToSchema for $type {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

documented_body!(
    crate::messages::CreateMessage,
    "CreateMessage",
    create_message
);
documented_body!(
    crate::batches::validate::CreateBatch,
    "CreateBatch",
    create_batch
);
