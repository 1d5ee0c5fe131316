//! Message templates: text with `{{name}}` placeholders filled from each recipient's
//! variables. The API parses and renders every recipient before accepting a batch, so
//! the sender's render (of the same stored text) cannot fail on a well-formed chunk.

use std::collections::BTreeMap;

/// Longest variable name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Variable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("placeholder opened at character {0} is never closed with }}}}")]
    Unclosed(usize),
    #[error(
        "placeholder at character {0} must be a name of 1 to {MAX_NAME_CHARS} letters, digits or _, starting with a letter or _"
    )]
    BadName(usize),
}

pub type Variables = BTreeMap<String, String>;

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                segments.push(Segment::Text(rest[..open].to_owned()));
            }
            let at = text[..text.len() - rest.len() + open].chars().count();
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError::Unclosed(at))?;
            let name = after[..close].trim();
            if !is_name(name) {
                return Err(TemplateError::BadName(at));
            }
            segments.push(Segment::Variable(name.to_owned()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_owned()));
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

    /// The text for one recipient, or the first variable it lacks.
    pub fn render(&self, variables: &Variables) -> Result<String, MissingVariable> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Variable(name) => out.push_str(
                    variables
                        .get(name)
                        .ok_or_else(|| MissingVariable(name.clone()))?,
                ),
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variable {0:?} is used by the template but not given")]
pub struct MissingVariable(pub String);

pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME_CHARS
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
}
