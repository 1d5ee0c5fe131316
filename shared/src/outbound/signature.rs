//! The Standard Webhooks signature (<https://www.standardwebhooks.com>, symmetric
//! `v1`): `webhook-signature` is `v1,` and the base64 of HMAC-SHA256, keyed with the
//! secret's bytes, over `{webhook-id}.{webhook-timestamp}.{body}`: the exact bytes
//! sent. While a secret is rotated, the header carries one signature per secret,
//! separated by spaces, and a receiver accepts the delivery if any of them verifies.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::secret::SigningSecret;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The `v1,...` signature of one delivery under one secret.
pub fn sign(secret: &SigningSecret, id: &str, timestamp: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
}

/// The `webhook-signature` header: one signature per secret (the current one first,
/// then the one being rotated out while it still signs), space-separated.
pub fn signature_header(
    secrets: &[&SigningSecret],
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    //! The spec's own test vectors, from the reference libraries' tests
    //! (standard-webhooks/standard-webhooks, `libraries/*/`).
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: u64 = 1_614_265_330;
    const PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn the_specs_vector_signs_as_the_reference_libraries_do() {
        let secret = SigningSecret::parse(SECRET).unwrap();
        assert_eq!(
            sign(&secret, MSG_ID, TIMESTAMP, PAYLOAD),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn any_changed_part_changes_the_signature() {
        let secret = SigningSecret::parse(SECRET).unwrap();
        let good = sign(&secret, MSG_ID, TIMESTAMP, PAYLOAD);
        assert_ne!(sign(&secret, "msg_other", TIMESTAMP, PAYLOAD), good);
        assert_ne!(sign(&secret, MSG_ID, TIMESTAMP + 1, PAYLOAD), good);
        assert_ne!(
            sign(&secret, MSG_ID, TIMESTAMP, br#"{"test": 2432232315}"#),
            good
        );
        let other = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx").unwrap();
        assert_ne!(sign(&other, MSG_ID, TIMESTAMP, PAYLOAD), good);
    }

    #[test]
    fn a_rotation_signs_with_both_secrets_current_first() {
        let new = SigningSecret::generate();
        let old = SigningSecret::parse(SECRET).unwrap();
        let header = signature_header(&[&new, &old], MSG_ID, TIMESTAMP, PAYLOAD);
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&new, MSG_ID, TIMESTAMP, PAYLOAD));
        assert_eq!(parts[1], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
