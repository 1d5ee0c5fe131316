//! The worst requests a client can send within the API's limits, in one catalogue:
//! `herald-bodies` (`make bench-bodies`) times each through the local gateway, and
//! `tests/hostile_bodies.rs` checks how each is answered (status, problem type, the
//! field named, nothing written). Keeping them in one place means the benchmark times
//! exactly the requests whose answers the tests pin down.

use serde_json::{Value, json};

/// Who sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A tenant user in the `sender` group.
    Sender,
    /// A platform operator.
    Operator,
}

/// What the API must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub status: u16,
    /// The problem type's slug (`https://herald.dev/problems/{slug}`).
    pub problem: &'static str,
    /// The first field the problem names, if it names one.
    pub field: Option<String>,
}

#[derive(Debug, Clone)]
pub struct HostileRequest {
    pub name: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub caller: Caller,
    /// Headers beyond the caller's token, `Content-Type: application/json` and a fresh
    /// `Idempotency-Key` (a header named here replaces the default one).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub expected: Expected,
}

/// The limits the catalogue is built against (the API's configuration).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_recipients: usize,
}

/// Header values of this size: under API Gateway's 10,240 bytes for the request line
/// and all headers together, so a real gateway would hand them to the function.
pub const HEADER_BYTES: usize = 8 * 1024;
/// Longest variable value the API accepts (`MAX_VALUE_CHARS` in the batches handler).
const VALUE_CHARS: usize = 1024;
const SMS_TEMPLATE_CHARS: usize = 1600;
const EMAIL_TEMPLATE_CHARS: usize = 10_000;

/// A valid, distinct US number for recipient `i` (8,000 per area code).
pub fn number(i: usize) -> String {
    const AREA_CODES: [&str; 8] = ["415", "628", "650", "510", "408", "707", "925", "209"];
    format!("+1{}555{:04}", AREA_CODES[i / 8000 % 8], 2000 + i % 8000)
}

fn recipient(i: usize, value: &str) -> Value {
    json!({ "to": number(i), "variables": { "a": value } })
}

fn batch(template: &str, recipients: Vec<Value>) -> Vec<u8> {
    json!({ "template": template, "recipients": recipients })
        .to_string()
        .into_bytes()
}

fn invalid(problem: &'static str, field: &str) -> Expected {
    Expected {
        status: 400,
        problem,
        field: Some(field.to_owned()),
    }
}

/// How many recipients of `recipient_bytes` each fit beside `fixed` bytes in a body.
fn fitting(limits: Limits, fixed: usize, recipient_bytes: usize) -> usize {
    (limits.max_body_bytes.saturating_sub(fixed) / (recipient_bytes + 1)).min(limits.max_recipients)
}

pub fn catalogue(limits: Limits) -> Vec<HostileRequest> {
    let sender = |name, body, expected| HostileRequest {
        name,
        method: "POST",
        path: "/v1/batches",
        caller: Caller::Sender,
        headers: Vec::new(),
        body,
        expected,
    };
    let placeholders = |n: usize| "{{a}}".repeat(n);
    let value = "v".repeat(VALUE_CHARS);

    // The body just under the limit: one recipient, and a template of placeholders
    // filling the rest.
    let one = batch("", vec![recipient(0, "x")]).len();
    let under_limit = placeholders((limits.max_body_bytes - 1 - one) / 5);

    // Every recipient renders to far more than the limit: SMS and email.
    let sms_template = placeholders(SMS_TEMPLATE_CHARS / 5);
    let per_recipient = recipient(0, &value).to_string().len();
    let sms_recipients = fitting(limits, sms_template.len() + 64, per_recipient);
    let email_template = placeholders(EMAIL_TEMPLATE_CHARS / 5);
    let email_recipient =
        |i: usize| json!({ "to": format!("user{i}@hostile.test"), "variables": { "a": value } });
    let email_recipients = fitting(
        limits,
        email_template.len() + 128,
        email_recipient(limits.max_recipients).to_string().len(),
    );

    // Nesting as deep as the body allows, where a recipient is expected.
    let depth = (limits.max_body_bytes - 64) / 2;
    let nested = format!(
        r#"{{"template":"x","recipients":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );

    vec![
        sender(
            "template of 190,000 placeholders (1 MB)",
            batch(&placeholders(190_000), vec![recipient(0, "x")]),
            invalid("invalid-request", "/template"),
        ),
        sender(
            "template of 100,000 placeholders, 10,000 recipients (2.4 MB)",
            batch(
                &placeholders(100_000),
                (0..limits.max_recipients.min(10_000))
                    .map(|i| recipient(i, &"x".repeat(148)))
                    .collect(),
            ),
            invalid("invalid-request", "/template"),
        ),
        sender(
            "body just under the limit, all placeholders",
            batch(&under_limit, vec![recipient(0, "x")]),
            invalid("invalid-request", "/template"),
        ),
        sender(
            "10,000 recipients, every one invalid",
            batch(
                "x",
                (0..limits.max_recipients.min(10_000))
                    .map(|_| json!({ "to": "+1" }))
                    .collect(),
            ),
            invalid("invalid-request", "/recipients/0/to"),
        ),
        sender(
            "SMS rendering 327,680 characters per recipient",
            batch(
                &sms_template,
                (0..sms_recipients).map(|i| recipient(i, &value)).collect(),
            ),
            invalid("invalid-request", "/recipients/0"),
        ),
        sender(
            "email rendering 2,048,000 characters per recipient",
            json!({
                "channel": "email",
                "subject": "s",
                "template": email_template,
                "recipients": (0..email_recipients).map(email_recipient).collect::<Vec<_>>(),
            })
            .to_string()
            .into_bytes(),
            invalid("invalid-request", "/recipients/0"),
        ),
        sender(
            "nested arrays, as deep as the body allows",
            nested.into_bytes(),
            // A recipient is an object: the first nested array is refused where it
            // stands, before any depth is read.
            invalid("malformed-json", "/recipients/0"),
        ),
        HostileRequest {
            name: "400-digit number where a count is expected",
            method: "POST",
            path: "/v1/tenants",
            caller: Caller::Operator,
            headers: Vec::new(),
            body: format!(
                r#"{{"tenant_id":"hostile","plan":"starter","limits":{{"sends_per_day":{}}}}}"#,
                "9".repeat(400)
            )
            .into_bytes(),
            expected: invalid("malformed-json", "/limits/sends_per_day"),
        },
        HostileRequest {
            headers: vec![("idempotency-key", "k".repeat(HEADER_BYTES))],
            ..sender(
                "Idempotency-Key of 8 KB",
                batch("x", vec![recipient(0, "x")]),
                invalid("idempotency-key", "Idempotency-Key"),
            )
        },
        HostileRequest {
            headers: vec![(
                "authorization",
                format!("Bearer {}", "a".repeat(HEADER_BYTES)),
            )],
            ..sender(
                "Authorization of 8 KB",
                batch("x", vec![recipient(0, "x")]),
                Expected {
                    status: 401,
                    problem: "unauthorized",
                    field: None,
                },
            )
        },
        sender(
            "body one byte over the limit",
            vec![b' '; limits.max_body_bytes + 1],
            Expected {
                status: 413,
                problem: "body-too-large",
                field: None,
            },
        ),
    ]
}

/// What the gateway answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
}

/// Sends `request` through the gateway at `gateway` as the holder of `token`.
pub async fn send(
    http: &reqwest::Client,
    gateway: &str,
    token: &str,
    request: &HostileRequest,
) -> reqwest::Result<Answer> {
    let mut built = http
        .request(
            request.method.parse().expect("a method"),
            format!("{gateway}{}", request.path),
        )
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("idempotency-key", ulid::Ulid::new().to_string())
        .body(request.body.clone())
        .build()?;
    for (name, value) in &request.headers {
        // Replaces the default of the same name.
        let value = value.parse().expect("a header value");
        built.headers_mut().insert(*name, value);
    }
    let response = http.execute(built).await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await?;
    Ok(Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    })
}

impl HostileRequest {
    /// `None` when `answer` is the expected one; otherwise what differs.
    pub fn check(&self, answer: &Answer) -> Option<String> {
        let expected = &self.expected;
        if answer.status != expected.status {
            return Some(format!(
                "status {}, expected {}",
                answer.status, expected.status
            ));
        }
        if expected.problem.is_empty() {
            return None;
        }
        let problem = format!("https://herald.dev/problems/{}", expected.problem);
        if answer.body["type"] != problem.as_str() {
            return Some(format!("type {}, expected {problem}", answer.body["type"]));
        }
        let field = answer.body["errors"][0]["field"]
            .as_str()
            .map(str::to_owned);
        (field != expected.field).then(|| format!("field {field:?}, expected {:?}", expected.field))
    }
}
