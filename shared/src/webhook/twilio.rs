//! Twilio's webhooks: the `X-Twilio-Signature` check (HMAC-SHA1 over the full URL the
//! provider called and the POST parameters sorted by name, base64), the strict reading
//! of the form, the per-message `StatusCallback` URL the sender gives, and the parsing
//! of status callbacks and inbound texts into `ProviderEvent`s.
//!
//! The signature has no timestamp: a replayed callback verifies, and is stopped by the
//! events function's deduplication, not by a clock window.
//!
//! One room on purpose: the signature, the strict form and the parsing are one provider's
//! rules; about 200 of its lines are tests against Twilio's documented examples.

use std::collections::BTreeMap;

use aws_lc_rs::hmac;
use base64::Engine as _;

use super::EventError;
use crate::clock::Timestamp;
use crate::domain::{
    EventSource, InboundText, MessageStatus, OptKeyword, ProviderEvent, Receipt, SuppressionReason,
};
use crate::ids::{CorrelationId, MessageId, TenantId};
use crate::phone::PhoneNumber;

pub const SIGNATURE_HEADER: &str = "x-twilio-signature";
/// The receiver's paths: a message's status callbacks, and texts to a sender number.
pub const STATUS_PATH: &str = "/webhooks/twilio/status";
pub const INBOUND_PATH: &str = "/webhooks/twilio/inbound";

/// The callback URL the sender gives Twilio for one message: the status path with the
/// tenant and message id, which Twilio calls back exactly (so the signature covers
/// them, and a receipt names its message without a lookup), and the correlation id of
/// the request that sent it, so the receipt's log lines carry the request's id.
/// (A correlation id is URL-safe by its own rule: letters, digits, `-_.:`.)
pub fn status_callback(
    public_base: &str,
    tenant: &TenantId,
    message: MessageId,
    correlation: &CorrelationId,
) -> String {
    format!(
        "{}{STATUS_PATH}?tenant={tenant}&message={message}&{CORRELATION_PARAMETER}={correlation}",
        public_base.trim_end_matches('/')
    )
}

/// The status callback's query parameter naming the sending request's correlation id.
pub const CORRELATION_PARAMETER: &str = "correlation_id";

/// Twilio's signature of a POST to `url` with `params`.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    let tag = hmac::sign(&key, &signed_text(url, params));
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// The text Twilio signs: the URL, then each parameter's name and value, sorted by
/// name (and by value for a repeated name, which the receiver refuses anyway).
fn signed_text(url: &str, params: &[(String, String)]) -> Vec<u8> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut text = url.as_bytes().to_vec();
    for (name, value) in sorted {
        text.extend_from_slice(name.as_bytes());
        text.extend_from_slice(value.as_bytes());
    }
    text
}

/// Whether `given` is Twilio's signature of this request under any of `tokens` (the
/// current auth token, and the previous one while it is being rotated), for the URL
/// with or without its scheme's default port, as Twilio's own validators accept. The
/// comparison is constant-time.
pub fn verify(tokens: &[&str], url: &str, params: &[(String, String)], given: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(given.trim()) else {
        return false;
    };
    let mut valid = false;
    for url in url_variants(url) {
        let text = signed_text(&url, params);
        for token in tokens.iter().filter(|t| !t.is_empty()) {
            let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, token.as_bytes());
            // Every candidate is checked, so the time taken does not say which matched.
            valid |= hmac::verify(&key, &text, &given).is_ok();
        }
    }
    valid
}

/// `url` as given, and with its scheme's default port added (when it has no port) or
/// removed (when it names the default port).
pub fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return variants;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return variants,
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    // An IPv6 host has colons of its own; the port comes after its `]`.
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    match authority[host_end..].rsplit_once(':').map(|(_, port)| port) {
        Some(port) if port == default => {
            let host = &authority[..authority.len() - port.len() - 1];
            variants.push(format!("{scheme}://{host}{tail}"));
        }
        Some(_) => {}
        None => variants.push(format!("{scheme}://{authority}:{default}{tail}")),
    }
    variants
}

/// Why a form was refused before its signature was checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the body is not UTF-8 form data")]
    NotForm,
    #[error("parameter {0:?} is repeated")]
    Repeated(String),
    #[error("a parameter has no name")]
    Unnamed,
}

/// A `application/x-www-form-urlencoded` body, read strictly: every name once, none
/// empty, nothing but UTF-8. Twilio never sends otherwise, so anything else is not
/// Twilio's.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    if std::str::from_utf8(body).is_err() {
        return Err(FormError::NotForm);
    }
    let mut seen = std::collections::HashSet::new();
    let mut params = Vec::new();
    for (name, value) in form_urlencoded::parse(body) {
        if name.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
            return Err(FormError::NotForm);
        }
        if name.is_empty() {
            return Err(FormError::Unnamed);
        }
        if !seen.insert(name.to_string()) {
            return Err(FormError::Repeated(name.into_owned()));
        }
        params.push((name.into_owned(), value.into_owned()));
    }
    Ok(params)
}

/// Parses a status callback: `query` is the callback URL's query (Herald's tenant and
/// message id), `form` Twilio's parameters.
pub fn parse_status(
    query: &BTreeMap<String, String>,
    form: &BTreeMap<String, String>,
    received_at: Timestamp,
) -> Result<ProviderEvent, EventError> {
    let tenant = TenantId::parse(required(query, "tenant")?)
        .map_err(|e| EventError::Invalid(format!("tenant: {e}")))?;
    let message: MessageId = required(query, "message")?
        .parse()
        .map_err(|_| EventError::Invalid("message: not a message id".into()))?;
    let sid = either(form, "MessageSid", "SmsSid")?;
    let reported = either(form, "MessageStatus", "SmsStatus")?;
    required(form, "AccountSid")?;
    let error_code = form.get("ErrorCode").filter(|c| !c.is_empty()).cloned();
    let status = match reported {
        "sent" => MessageStatus::Sent,
        "delivered" => MessageStatus::Delivered,
        "undelivered" | "failed" => MessageStatus::Undelivered,
        other => {
            return Ok(ProviderEvent::Ignored {
                what: format!("status {other:?} of {sid}"),
            });
        }
    };
    let (error_code, error_reason) = match status {
        MessageStatus::Undelivered => {
            let reason = error_code
                .as_deref()
                .map(describe_error)
                .unwrap_or_else(|| format!("the carrier reported it {reported}"));
            (error_code.or(Some(reported.to_owned())), Some(reason))
        }
        _ => (None, None),
    };
    Ok(ProviderEvent::Receipt(Receipt {
        source: EventSource::Twilio,
        event_id: format!("{sid}:{reported}"),
        tenant,
        message,
        provider_ref: sid.to_owned(),
        status,
        suppress: (error_code.as_deref() == Some(UNSUBSCRIBED))
            .then_some(SuppressionReason::OptOut),
        error_code,
        error_reason,
        received_at,
    }))
}

/// Parses a text a recipient sent to a sender number.
pub fn parse_inbound(
    form: &BTreeMap<String, String>,
    received_at: Timestamp,
) -> Result<ProviderEvent, EventError> {
    let sid = either(form, "MessageSid", "SmsSid")?;
    let to = required(form, "To")?;
    let from = required(form, "From")?;
    required(form, "AccountSid")?;
    let body = form.get("Body").map(String::as_str).unwrap_or_default();
    // A short code or an alphanumeric sender cannot opt out of anything Herald sends.
    let Ok(from) = PhoneNumber::parse(from) else {
        return Ok(ProviderEvent::Ignored {
            what: format!("a text {sid} from {from:?}, not a phone number"),
        });
    };
    Ok(ProviderEvent::Inbound(InboundText {
        source: EventSource::Twilio,
        event_id: sid.to_owned(),
        from,
        to: to.to_owned(),
        messaging_service: form
            .get("MessagingServiceSid")
            .filter(|s| !s.is_empty())
            .cloned(),
        keyword: OptKeyword::of(body),
        received_at,
    }))
}

/// Twilio's error when the recipient has opted out (texted STOP to Twilio itself).
const UNSUBSCRIBED: &str = "21610";

/// Twilio's delivery error codes, in words (the callback carries only the code).
fn describe_error(code: &str) -> String {
    let known = match code {
        "30001" => "queue overflow at the provider",
        "30002" => "the provider account is suspended",
        "30003" => "the handset is unreachable",
        "30004" => "the message was blocked",
        "30005" => "the number is unknown or no longer exists",
        "30006" => "a landline, or a carrier that cannot take texts",
        "30007" => "the carrier filtered it as spam",
        "30008" => "the carrier reported an unknown error",
        UNSUBSCRIBED => "the recipient has opted out of texts from this sender",
        _ => return format!("the carrier reported error {code}"),
    };
    known.to_owned()
}

fn required<'a>(params: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, EventError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| EventError::Invalid(format!("{name} is missing or empty")))
}

/// `name`, or its older alias Twilio still sends beside it.
fn either<'a>(
    params: &'a BTreeMap<String, String>,
    name: &str,
    alias: &str,
) -> Result<&'a str, EventError> {
    required(params, name).or_else(|_| required(params, alias))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The example from Twilio's security documentation.
    #[test]
    fn the_signature_matches_twilios_documented_example() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let token = "12345";
        assert_eq!(
            signature(token, url, &params),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
        assert!(verify(
            &[token],
            url,
            &params,
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        ));
    }

    #[test]
    fn a_signature_over_other_params_another_url_or_token_is_refused() {
        let params = pairs(&[("MessageSid", "SM1"), ("MessageStatus", "delivered")]);
        let url = "https://hooks.example.com/webhooks/twilio/status?tenant=acme&message=X.1";
        let good = signature("current", url, &params);
        assert!(verify(&["current"], url, &params, &good));
        let other = pairs(&[("MessageSid", "SM1"), ("MessageStatus", "undelivered")]);
        assert!(!verify(&["current"], url, &other, &good));
        let altered = url.replace("X.1", "X.2");
        assert!(!verify(&["current"], &altered, &params, &good));
        assert!(!verify(&["other"], url, &params, &good));
        assert!(!verify(&["current"], url, &params, ""));
        assert!(!verify(&["current"], url, &params, "not base64!"));
        assert!(!verify(&[""], url, &params, &signature("", url, &params)));
    }

    #[test]
    fn during_rotation_the_previous_token_is_accepted_too() {
        let params = pairs(&[("MessageSid", "SM1")]);
        let url = "https://hooks.example.com/webhooks/twilio/status";
        let by_old = signature("old", url, &params);
        assert!(verify(&["new", "old"], url, &params, &by_old));
        assert!(!verify(&["new"], url, &params, &by_old));
    }

    #[test]
    fn the_url_is_accepted_with_and_without_its_default_port() {
        assert_eq!(
            url_variants("https://h.example.com/a?b=1"),
            [
                "https://h.example.com/a?b=1",
                "https://h.example.com:443/a?b=1"
            ]
        );
        assert_eq!(
            url_variants("https://h.example.com:443/a"),
            ["https://h.example.com:443/a", "https://h.example.com/a"]
        );
        assert_eq!(
            url_variants("http://127.0.0.1:3000/a"),
            ["http://127.0.0.1:3000/a"]
        );
        assert_eq!(
            url_variants("http://[::1]/a"),
            ["http://[::1]/a", "http://[::1]:80/a"]
        );
        let params = pairs(&[("MessageSid", "SM1")]);
        let signed_with_port = signature("t", "https://h.example.com:443/a", &params);
        assert!(verify(
            &["t"],
            "https://h.example.com/a",
            &params,
            &signed_with_port
        ));
        let signed_without = signature("t", "https://h.example.com/a", &params);
        assert!(verify(
            &["t"],
            "https://h.example.com:443/a",
            &params,
            &signed_without
        ));
    }

    #[test]
    fn forms_are_read_strictly() {
        assert_eq!(
            parse_form(b"To=%2B14155550100&Body=hi+there").unwrap(),
            pairs(&[("To", "+14155550100"), ("Body", "hi there")])
        );
        assert_eq!(parse_form(b"A=1&A=2"), Err(FormError::Repeated("A".into())));
        assert_eq!(parse_form(b"=1"), Err(FormError::Unnamed));
        assert_eq!(parse_form(b"A=%FF"), Err(FormError::NotForm));
        assert_eq!(parse_form(&[0x41, 0x3d, 0xff]), Err(FormError::NotForm));
        assert_eq!(parse_form(b"").unwrap(), vec![]);
    }

    fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs(items).into_iter().collect()
    }

    #[test]
    fn status_callbacks_become_receipts_and_intermediate_statuses_are_ignored() {
        let at = Timestamp::from_epoch_millis(1_000);
        let message = MessageId::new(crate::ids::BatchId::new(), 3);
        let query = map(&[("tenant", "acme"), ("message", &message.to_string())]);
        let form = |status: &str, code: &str| {
            map(&[
                ("MessageSid", "SM9"),
                ("MessageStatus", status),
                ("AccountSid", "AC1"),
                ("ErrorCode", code),
            ])
        };
        let ProviderEvent::Receipt(delivered) =
            parse_status(&query, &form("delivered", ""), at).unwrap()
        else {
            panic!("a receipt")
        };
        assert_eq!(delivered.status, MessageStatus::Delivered);
        assert_eq!(delivered.event_id, "SM9:delivered");
        assert_eq!(delivered.message, message);
        assert_eq!((delivered.error_code, delivered.suppress), (None, None));
        let ProviderEvent::Receipt(lost) =
            parse_status(&query, &form("undelivered", "30003"), at).unwrap()
        else {
            panic!("a receipt")
        };
        assert_eq!(lost.status, MessageStatus::Undelivered);
        assert_eq!(lost.error_code.as_deref(), Some("30003"));
        assert_eq!(
            lost.error_reason.as_deref(),
            Some("the handset is unreachable")
        );
        let ProviderEvent::Receipt(opted_out) =
            parse_status(&query, &form("failed", "21610"), at).unwrap()
        else {
            panic!("a receipt")
        };
        assert_eq!(opted_out.suppress, Some(SuppressionReason::OptOut));
        for status in ["queued", "sending", "accepted", "read"] {
            assert!(matches!(
                parse_status(&query, &form(status, ""), at),
                Ok(ProviderEvent::Ignored { .. })
            ));
        }
        let no_sid = map(&[("MessageStatus", "sent"), ("AccountSid", "AC1")]);
        assert!(parse_status(&query, &no_sid, at).is_err());
        let empty_sid = map(&[
            ("MessageSid", ""),
            ("MessageStatus", "sent"),
            ("AccountSid", "AC1"),
        ]);
        assert!(parse_status(&query, &empty_sid, at).is_err());
        let bad_message = map(&[("tenant", "acme"), ("message", "nope")]);
        assert!(parse_status(&bad_message, &form("sent", ""), at).is_err());
    }

    #[test]
    fn inbound_texts_carry_their_keyword() {
        let at = Timestamp::from_epoch_millis(1_000);
        let form = |body: &str, from: &str| {
            map(&[
                ("MessageSid", "SM7"),
                ("From", from),
                ("To", "+15005550006"),
                ("Body", body),
                ("AccountSid", "AC1"),
                ("FromCity", ""),
            ])
        };
        let ProviderEvent::Inbound(stop) =
            parse_inbound(&form(" Stop ", "+14155550100"), at).unwrap()
        else {
            panic!("an inbound text")
        };
        assert_eq!(stop.keyword, Some(OptKeyword::OptOut));
        assert_eq!(stop.from.as_str(), "+14155550100");
        assert_eq!(stop.senders().collect::<Vec<_>>(), ["+15005550006"]);
        let ProviderEvent::Inbound(chat) =
            parse_inbound(&form("thanks!", "+14155550100"), at).unwrap()
        else {
            panic!("an inbound text")
        };
        assert_eq!(chat.keyword, None);
        assert!(matches!(
            parse_inbound(&form("STOP", "12345"), at),
            Ok(ProviderEvent::Ignored { .. })
        ));
    }
}
