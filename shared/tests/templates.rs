//! Property tests of templates: a template built from text and placeholders parses
//! back to what it was built from and renders to the text with the values put in;
//! bounded renders agree with unbounded ones up to their limit; arbitrary text never
//! panics; malformed placeholders are refused at their position in characters.

use std::collections::BTreeMap;

use herald::template::{MAX_NAME_CHARS, MissingVariable, RenderError, Template, TemplateError};
use proptest::prelude::*;

/// Literal text: anything without `{` (so no placeholder opens by accident), with
/// multi-byte characters and stray closing braces.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .,!?éü€😀}\n]{0,12}"
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,10}"
}

/// Pieces of a template: text, then (placeholder name, spaces inside, text) repeated.
fn pieces() -> impl Strategy<Value = (String, Vec<(String, bool, String)>)> {
    (
        text(),
        prop::collection::vec((name(), any::<bool>(), text()), 0..8),
    )
}

fn source(first: &str, rest: &[(String, bool, String)]) -> String {
    let mut source = first.to_owned();
    for (name, spaced, text) in rest {
        if *spaced {
            source.push_str(&format!("{{{{ {name} }}}}{text}"));
        } else {
            source.push_str(&format!("{{{{{name}}}}}{text}"));
        }
    }
    source
}

/// What rendering must give: the text with each placeholder's value put in.
fn expected(
    first: &str,
    rest: &[(String, bool, String)],
    values: &BTreeMap<String, String>,
) -> String {
    let mut out = first.to_owned();
    for (name, _, text) in rest {
        out.push_str(&values[name]);
        out.push_str(text);
    }
    out
}

proptest! {
    #[test]
    fn built_templates_parse_and_render_as_built(
        (first, rest) in pieces(),
        value in ".{0,8}",
    ) {
        let source = source(&first, &rest);
        let template = Template::parse(&source).expect("well formed");
        prop_assert_eq!(template.source(), source.as_str());
        let mut names: Vec<&str> = Vec::new();
        for (name, _, _) in &rest {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        prop_assert_eq!(template.names().collect::<Vec<_>>(), names.clone());
        // Values are put in as they are, never parsed again (even `{{x}}`).
        let values: BTreeMap<String, String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), format!("{value}{{{{x}}}}{i}")))
            .collect();
        let rendered = template.render(&values).expect("every variable given");
        prop_assert_eq!(&rendered, &expected(&first, &rest, &values));
        prop_assert_eq!(Template::parse(template.source()), Ok(template.clone()));

        let length = rendered.chars().count();
        prop_assert_eq!(template.render_within(&values, length), Ok(rendered.clone()));
        if length > 0 {
            prop_assert_eq!(
                template.render_within(&values, length - 1),
                Err(RenderError::TooLong { max_chars: length - 1 })
            );
        }
        let chars = source.chars().count();
        prop_assert_eq!(Template::parse_within(&source, chars), Ok(template.clone()));
        if chars > 0 {
            prop_assert_eq!(
                Template::parse_within(&source, chars - 1),
                Err(TemplateError::TooLong { max_chars: chars - 1 })
            );
        }
    }

    #[test]
    fn the_first_missing_variable_is_named((first, rest) in pieces(), drop in any::<prop::sample::Index>()) {
        prop_assume!(!rest.is_empty());
        let template = Template::parse(&source(&first, &rest)).unwrap();
        let missing = rest[drop.index(rest.len())].0.clone();
        let values: BTreeMap<String, String> = rest
            .iter()
            .filter(|(name, _, _)| *name != missing)
            .map(|(name, _, _)| (name.clone(), "v".into()))
            .collect();
        prop_assert_eq!(template.render(&values), Err(MissingVariable(missing.clone())));
        prop_assert_eq!(
            template.render_within(&values, usize::MAX),
            Err(RenderError::Missing(MissingVariable(missing)))
        );
    }

    #[test]
    fn arbitrary_text_never_panics(raw in prop_oneof![any::<String>(), "[{}a ]{0,40}"], max in 0usize..64) {
        match Template::parse(&raw) {
            Ok(template) => {
                prop_assert_eq!(template.source(), raw.as_str());
                let values = template.names().map(|n| (n.to_owned(), "x".to_owned())).collect();
                let rendered = template.render(&values).unwrap();
                match template.render_within(&values, max) {
                    Ok(within) => prop_assert_eq!(within, rendered),
                    Err(e) => {
                        prop_assert_eq!(e, RenderError::TooLong { max_chars: max });
                        prop_assert!(rendered.chars().count() > max);
                    }
                }
            }
            Err(TemplateError::Unclosed(at) | TemplateError::BadName(at)) => {
                prop_assert!(at < raw.chars().count());
                let rest: String = raw.chars().skip(at).collect();
                prop_assert!(rest.starts_with("{{"), "{:?} at {}", raw, at);
            }
            Err(TemplateError::TooLong { .. }) => prop_assert!(false, "parse has no limit"),
        }
        let within = Template::parse_within(&raw, max);
        if raw.chars().count() > max {
            prop_assert_eq!(within, Err(TemplateError::TooLong { max_chars: max }));
        } else {
            prop_assert_eq!(within, Template::parse(&raw));
        }
    }

    #[test]
    fn malformed_placeholders_are_refused_where_they_open(
        first in text(),
        bad in prop_oneof![
            "[0-9-][a-z]{0,5}",
            "[a-z]{1,3}[-. ][a-z]{1,3}",
            Just(String::new()),
            Just("a".repeat(MAX_NAME_CHARS + 1)),
        ],
    ) {
        let at = first.chars().count();
        prop_assert_eq!(
            Template::parse(&format!("{first}{{{{{bad}}}}} {{{{ok}}}}")),
            Err(TemplateError::BadName(at))
        );
        prop_assert_eq!(
            Template::parse(&format!("{first}{{{{name")),
            Err(TemplateError::Unclosed(at))
        );
    }
}
