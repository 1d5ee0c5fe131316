//! What the OpenAPI document says of Herald's values. Each newtype that owns a rule
//! (`PhoneNumber`, `EmailAddress`, `MessageText`, `Subject`, `Template`, the ids,
//! `IdempotencyKey`) describes it here as a JSON Schema string, from the same constants
//! its parser checks, so the document states what the API enforces and a client
//! generated from it learns the rules before its first 400.

use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Object, RefOr, Schema};

/// Characters a text may hold: anything but control characters, except tab, line feed
/// and carriage return (Rust's `char::is_control`: C0, DEL and C1).
pub const PRINTABLE: &str = r"[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]";

/// Characters a one-line text (an email subject) may hold: no control character at all.
pub const ONE_LINE: &str = r"[^\u0000-\u001F\u007F-\u009F]";

/// A string of `min..=max` characters matching `pattern` (anchored here).
pub fn string(min: usize, max: usize, pattern: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(min))
        .max_length(Some(max))
        .pattern(Some(format!("^{pattern}$")))
}

/// `string` with a format the JSON Schema vocabulary does not know (`e164`): tools
/// that know it can generate values, the others still check the pattern.
pub fn custom_format(min: usize, max: usize, pattern: &str, format: &str) -> ObjectBuilder {
    string(min, max, pattern).format(Some(SchemaFormat::Custom(format.to_owned())))
}

/// A finished schema, for `#[schema(schema_with = …)]`.
pub fn done(builder: ObjectBuilder) -> RefOr<Schema> {
    RefOr::T(Schema::Object(Object::from(builder)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printable_class_is_the_parser_s_rule() {
        // Every character the class admits is one `printable` admits, and the reverse,
        // over the whole range where control characters live.
        for c in (0u32..0x200).filter_map(char::from_u32) {
            let control = c.is_control() && !matches!(c, '\n' | '\r' | '\t');
            let in_class = !matches!(c as u32, 0..=8 | 0x0B | 0x0C | 0x0E..=0x1F | 0x7F..=0x9F);
            assert_eq!(!control, in_class, "{:#x}", c as u32);
            let one_line = !matches!(c as u32, 0..=0x1F | 0x7F..=0x9F);
            assert_eq!(!c.is_control(), one_line, "{:#x}", c as u32);
        }
        assert!(PRINTABLE.contains(r"\u007F-\u009F") && ONE_LINE.contains(r"\u007F-\u009F"));
    }
}
