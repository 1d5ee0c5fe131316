//! Every answer a test gets from the API is held to the OpenAPI document: its status is
//! one the operation declares, and a problem's type is one that status lists. So every
//! test, bad-input tables included, is a witness that the document states what the
//! handlers answer (issue 21); an answer outside it fails the test that met it.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::Value;

/// The committed document (`tests/gateway.rs` holds it equal to what the API serves).
fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let path = herald_local::project_root().join("docs/openapi.json");
        let text = std::fs::read_to_string(&path).expect("docs/openapi.json");
        serde_json::from_str(&text).expect("the document is JSON")
    })
}

/// The document's path template that `path` (without its query) matches: the one
/// with the most literal segments, so `/v1/users/me` would beat `/v1/users/{id}`.
fn template_of(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    document()["paths"]
        .as_object()?
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            let fits = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(part, segment)| {
                    part == segment || (part.starts_with('{') && !segment.is_empty())
                });
            fits.then(|| {
                (
                    parts.iter().filter(|p| !p.starts_with('{')).count(),
                    template,
                )
            })
        })
        .max_by_key(|(literals, _)| *literals)
        .map(|(_, template)| template.as_str())
}

/// The problem slugs a documented answer lists, following a reference to a shared one.
fn problem_types(answer: &Value) -> BTreeSet<String> {
    let answer = match answer["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap_or_default();
            &document()["components"]["responses"][name]
        }
        None => answer,
    };
    answer["x-problem-types"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|slug| slug.as_str().map(str::to_owned))
        .collect()
}

/// Panics when the document does not declare this answer. Routes the document does
/// not describe (unknown paths and methods, the webhooks, the token endpoint) are not
/// its to judge.
pub fn assert_documented(method: &str, path: &str, status: u16, body: &Value) {
    let path = path.split('?').next().unwrap_or_default();
    let Some(template) = template_of(path) else {
        return;
    };
    let operation = &document()["paths"][template][method.to_ascii_lowercase()];
    if operation.is_null() {
        return;
    }
    let answer = &operation["responses"][status.to_string()];
    assert!(
        !answer.is_null(),
        "{method} {template} answered {status}, which the document does not declare: {body}"
    );
    let slug = body["type"]
        .as_str()
        .and_then(|kind| kind.strip_prefix("https://herald.dev/problems/"));
    if let Some(slug) = slug {
        let documented = problem_types(answer);
        assert!(
            documented.contains(slug),
            "{method} {template} answered {status} `{slug}`, but the document lists only \
             {documented:?} for it: {body}"
        );
    }
}
