//! Tables of bad requests: each case says what its answer must be, and a run reports
//! every case that answered otherwise, so one wrong rule does not hide the next.

use serde_json::Value;

use crate::{Answer, TestCloud};

/// One bad request and what its answer must say.
pub struct Case {
    pub name: &'static str,
    pub route: &'static str,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
    pub status: u16,
    /// A field the problem must name.
    pub field: Option<&'static str>,
    /// Whether `field` must be the only field named.
    pub only: bool,
}

impl Case {
    /// Any body and content type; the answer must name `field` when one is given.
    pub fn raw(
        name: &'static str,
        route: &'static str,
        content_type: Option<&'static str>,
        body: Vec<u8>,
        status: u16,
        field: Option<&'static str>,
    ) -> Self {
        Self {
            name,
            route,
            content_type,
            body,
            status,
            field,
            only: false,
        }
    }

    /// A JSON body with exactly one thing wrong: a 400 naming `field` and nothing else.
    pub fn only_field(
        name: &'static str,
        route: &'static str,
        body: &Value,
        field: &'static str,
    ) -> Self {
        Self {
            only: true,
            ..Self::raw(
                name,
                route,
                Some("application/json"),
                body.to_string().into_bytes(),
                400,
                Some(field),
            )
        }
    }

    /// What is wrong with `answer` for this case, if anything.
    fn mismatch(&self, answer: &Answer) -> Option<String> {
        if answer.status != self.status {
            return Some(format!("status {} (wanted {})", answer.status, self.status));
        }
        if answer.content_type != "application/problem+json" {
            return Some(format!("content type {:?}", answer.content_type));
        }
        if answer.body["status"] != self.status {
            return Some(format!("problem status {}", answer.body["status"]));
        }
        if answer.body["detail"].as_str().is_none_or(str::is_empty) {
            return Some("no detail".to_owned());
        }
        let field = self.field?;
        let named: Vec<&str> = answer.body["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default();
        if !named.contains(&field) {
            return Some(format!("names {named:?}, not {field}"));
        }
        if self.only && named.iter().any(|f| *f != field) {
            return Some(format!("only {field} is wrong, yet it names {named:?}"));
        }
        None
    }
}

impl TestCloud {
    /// Sends every case with `token` and fails listing each case answered wrongly.
    pub async fn refuses_all(&self, token: &str, cases: Vec<Case>) {
        let total = cases.len();
        let mut wrong = Vec::new();
        for case in cases {
            let answer = self
                .request(
                    "POST",
                    case.route,
                    Some(token),
                    case.content_type,
                    Some(case.body.clone()),
                )
                .await;
            if let Some(why) = case.mismatch(&answer) {
                wrong.push(format!("{}: {why}; answer {}", case.name, answer.body));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {total} bad requests were answered wrongly:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }
}
