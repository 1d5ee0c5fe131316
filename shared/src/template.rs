//! Message templates: text with `{{name}}` placeholders filled from each recipient's
//! variables. The API parses and renders every recipient before accepting a batch, so
//! the sender's render (of the same stored text) cannot fail on a well-formed chunk.
//!
//! Everything here runs in time linear in its input, because the API runs it on
//! whatever a client sends: a template is measured against its limit before it is
//! scanned (`parse_within`), the scan counts characters as it goes, and a render can
//! be bounded (`render_within`) so it stops at the first missing variable or as soon
//! as its output would pass the limit.

use std::collections::BTreeMap;

/// Longest variable name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A variable name, as `is_name` checks it.
pub const NAME_PATTERN: &str = "[A-Za-z_][A-Za-z0-9_]{0,63}";

/// A template's source whose literal text is made of `text_class` characters (one
/// character class, `schema::PRINTABLE` or `schema::ONE_LINE`): text with `{{name}}`
/// placeholders, spaces or tabs allowed inside the braces, every `{{` closed.
pub fn pattern(text_class: &str) -> String {
    // `[^{…` is the class without `{`: a literal, a lone `{` before another literal,
    // a placeholder, or a lone `{` at the very end.
    let literal = text_class.replacen("[^", "[^{", 1);
    format!(r"(?:{literal}|\{{{literal}|\{{\{{[ \t]*{NAME_PATTERN}[ \t]*\}}\}})*\{{?")
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Literal text and its length in characters (counted once, at parse time).
    Text {
        text: String,
        chars: usize,
    },
    Variable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the template may be at most {max_chars} characters")]
    TooLong { max_chars: usize },
    #[error("placeholder opened at character {0} is never closed with }}}}")]
    Unclosed(usize),
    #[error(
        "placeholder at character {0} must be a name of 1 to {MAX_NAME_CHARS} letters, digits or _, starting with a letter or _"
    )]
    BadName(usize),
}

/// Why a bounded render stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Missing(#[from] MissingVariable),
    #[error("the text for this recipient is more than {max_chars} characters")]
    TooLong { max_chars: usize },
}

pub type Variables = BTreeMap<String, String>;

impl Template {
    /// Parses `text` if it is at most `max_chars` characters long. The length is
    /// checked first, reading at most `max_chars + 1` characters, so an over-long
    /// template costs no more than one at the limit.
    pub fn parse_within(text: &str, max_chars: usize) -> Result<Self, TemplateError> {
        // A UTF-8 string has at most as many characters as bytes.
        if text.len() > max_chars && text.chars().nth(max_chars).is_some() {
            return Err(TemplateError::TooLong { max_chars });
        }
        Self::parse(text)
    }

    /// Parses `text` of any length in one pass (positions in errors are counted in
    /// characters as the scan goes, never from the start again).
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut rest = text;
        // Characters of `text` before `rest`.
        let mut consumed = 0;
        while let Some(open) = rest.find("{{") {
            let literal = &rest[..open];
            let literal_chars = literal.chars().count();
            if !literal.is_empty() {
                segments.push(Segment::Text {
                    text: literal.to_owned(),
                    chars: literal_chars,
                });
            }
            let at = consumed + literal_chars;
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError::Unclosed(at))?;
            let inner = &after[..close];
            // Only spaces and tabs around a name, as the document's pattern says.
            let name = inner.trim_matches([' ', '\t']);
            if !is_name(name) {
                return Err(TemplateError::BadName(at));
            }
            segments.push(Segment::Variable(name.to_owned()));
            consumed = at + 2 + inner.chars().count() + 2;
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text {
                text: rest.to_owned(),
                chars: rest.chars().count(),
            });
        }
        Ok(Self {
            source: text.to_owned(),
            segments,
        })
    }

    /// The text the template was parsed from, which is what gets stored.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables the template uses, each once.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut seen = std::collections::BTreeSet::new();
        self.segments.iter().filter_map(move |s| match s {
            Segment::Variable(name) if seen.insert(name.as_str()) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The text for one recipient, or the first variable it lacks. Unbounded: for
    /// templates and variables already validated (the sender's stored chunks).
    pub fn render(&self, variables: &Variables) -> Result<String, MissingVariable> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text { text, .. } => out.push_str(text),
                Segment::Variable(name) => out.push_str(
                    variables
                        .get(name)
                        .ok_or_else(|| MissingVariable(name.clone()))?,
                ),
            }
        }
        Ok(out)
    }

    /// The text for one recipient if it is at most `max_chars` characters. Stops at
    /// the first variable missing, or before the first piece that would take the
    /// text past `max_chars`: the work done is bounded by `max_chars`, whatever the
    /// template and the values.
    pub fn render_within(
        &self,
        variables: &Variables,
        max_chars: usize,
    ) -> Result<String, RenderError> {
        let mut out = String::new();
        let mut chars = 0usize;
        for segment in &self.segments {
            let room = max_chars - chars;
            let (piece, piece_chars) = match segment {
                Segment::Text { text, chars } => (text.as_str(), *chars),
                Segment::Variable(name) => {
                    let value = variables
                        .get(name)
                        .ok_or_else(|| MissingVariable(name.clone()))?;
                    // Counting stops one past the room: a long value costs no more
                    // than the room left.
                    (
                        value.as_str(),
                        value.chars().take(room.saturating_add(1)).count(),
                    )
                }
            };
            if piece_chars > room {
                return Err(RenderError::TooLong { max_chars });
            }
            chars += piece_chars;
            out.push_str(piece);
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variable {0:?} is used by the template but not given")]
pub struct MissingVariable(pub String);

pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME_CHARS
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fills_placeholders_with_or_without_inner_spaces() {
        let t = Template::parse("Hi {{name}}, code {{ code }}. {{name}}!").unwrap();
        assert_eq!(t.names().collect::<Vec<_>>(), ["name", "code"]);
        let text = t.render(&vars(&[("name", "Ann"), ("code", "42")])).unwrap();
        assert_eq!(text, "Hi Ann, code 42. Ann!");
    }

    #[test]
    fn single_braces_are_text_and_values_are_not_reparsed() {
        let t = Template::parse("{a} }} {{x}}").unwrap();
        assert_eq!(t.render(&vars(&[("x", "{{y}}")])).unwrap(), "{a} }} {{y}}");
    }

    #[test]
    fn malformed_placeholders_name_their_position_in_characters() {
        assert_eq!(
            Template::parse("héllo {{name"),
            Err(TemplateError::Unclosed(6))
        );
        assert_eq!(
            Template::parse("ok {{x}} {{9lives}}"),
            Err(TemplateError::BadName(9))
        );
        assert_eq!(Template::parse("{{}}"), Err(TemplateError::BadName(0)));
        assert!(Template::parse(&format!("{{{{{}}}}}", "a".repeat(65))).is_err());
    }

    #[test]
    fn a_missing_variable_is_named() {
        let t = Template::parse("{{first}} {{last}}").unwrap();
        assert_eq!(
            t.render(&vars(&[("first", "A")])),
            Err(MissingVariable("last".into()))
        );
    }

    #[test]
    fn positions_count_characters_across_many_placeholders() {
        let text = format!("{}é {{{{9}}}}", "{{a}}ü".repeat(1000));
        // Each "{{a}}ü" is 6 characters; then "é " before the bad placeholder.
        assert_eq!(Template::parse(&text), Err(TemplateError::BadName(6002)));
    }

    #[test]
    fn an_over_long_template_is_refused_before_it_is_scanned() {
        assert!(Template::parse_within("ü".repeat(10).as_str(), 10).is_ok());
        assert_eq!(
            Template::parse_within(&"ü".repeat(11), 10),
            Err(TemplateError::TooLong { max_chars: 10 })
        );
        // Refused for its length, not for the unclosed placeholder past the limit.
        assert_eq!(
            Template::parse_within(&format!("{}{{{{a", "x".repeat(10)), 10),
            Err(TemplateError::TooLong { max_chars: 10 })
        );
    }

    #[test]
    fn a_bounded_render_stops_at_the_limit_or_the_first_missing_variable() {
        let t = Template::parse("ab{{x}}cd").unwrap();
        let x = |v: &str| vars(&[("x", v)]);
        assert_eq!(t.render_within(&x("é"), 5).unwrap(), "abécd");
        assert_eq!(
            t.render_within(&x("éé"), 5),
            Err(RenderError::TooLong { max_chars: 5 })
        );
        assert_eq!(
            t.render_within(&x(&"v".repeat(1_000_000)), 5),
            Err(RenderError::TooLong { max_chars: 5 })
        );
        assert_eq!(
            t.render_within(&vars(&[]), 5),
            Err(RenderError::Missing(MissingVariable("x".into())))
        );
        // The first failure in the text is the one reported.
        let t = Template::parse("{{a}}{{b}}").unwrap();
        assert_eq!(
            t.render_within(&vars(&[("a", "long")]), 3),
            Err(RenderError::TooLong { max_chars: 3 })
        );
    }
}
