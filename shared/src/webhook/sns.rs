//! Amazon SNS's HTTPS deliveries: the message shape, where its signing certificate may
//! come from, and its signature (version 1: RSA with SHA1; version 2: RSA with SHA256,
//! over the fields SNS documents for the message's type, in that order).
//!
//! The certificate is trusted because of where it is fetched from: an `https` URL on a
//! host `sns.<region>.amazonaws.com` (or `.amazonaws.com.cn`), whose TLS certificate
//! proves it is AWS's. Locally one more URL prefix may be trusted (the emulator's
//! certificate), only when the configuration names it; no deployment does.

use std::collections::BTreeMap;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm, alg_id,
};
use serde::Deserialize;

/// The receiver's path for SES events published through SNS.
pub const SES_PATH: &str = "/webhooks/ses";
/// The header SNS names the message's type in.
pub const MESSAGE_TYPE_HEADER: &str = "x-amz-sns-message-type";

/// One message SNS posts to an HTTPS subscription, read strictly: every field SNS
/// documents, each once, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsMessage {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "MessageId")]
    pub message_id: String,
    #[serde(rename = "TopicArn")]
    pub topic_arn: String,
    #[serde(rename = "Subject", default)]
    pub subject: Option<String>,
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    #[serde(rename = "SignatureVersion")]
    pub signature_version: String,
    #[serde(rename = "Signature")]
    pub signature: String,
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    #[serde(rename = "UnsubscribeURL", default)]
    pub unsubscribe_url: Option<String>,
    #[serde(rename = "SubscribeURL", default)]
    pub subscribe_url: Option<String>,
    #[serde(rename = "Token", default)]
    pub token: Option<String>,
    /// Only when the subscription asks for raw delivery, which Herald's does not; kept
    /// so such a message is read (and refused for its type) rather than unreadable.
    #[serde(rename = "MessageAttributes", default)]
    pub message_attributes: Option<serde_json::Value>,
}

/// The message types SNS posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnsType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    #[error("the body is not an SNS message: {0}")]
    Malformed(String),
    #[error("SNS message type {0:?} is not one SNS sends")]
    UnknownType(String),
    #[error("a {0} lacks its {1}")]
    Missing(&'static str, &'static str),
    #[error("signature version {0:?} is not 1 or 2")]
    SignatureVersion(String),
    #[error("the signing certificate URL is not SNS's")]
    CertificateUrl,
    #[error("the signing certificate cannot be read")]
    Certificate,
    #[error("the signature does not verify")]
    Signature,
}

impl SnsMessage {
    pub fn parse(body: &[u8]) -> Result<Self, SnsError> {
        serde_json::from_slice(body).map_err(|e| SnsError::Malformed(e.to_string()))
    }

    pub fn message_type(&self) -> Result<SnsType, SnsError> {
        match self.kind.as_str() {
            "Notification" => Ok(SnsType::Notification),
            "SubscriptionConfirmation" => Ok(SnsType::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Ok(SnsType::UnsubscribeConfirmation),
            other => Err(SnsError::UnknownType(other.to_owned())),
        }
    }

    /// The text SNS signs: each field's name and value on lines of their own, in the
    /// documented order; `Subject` only when the notification has one.
    pub fn string_to_sign(&self) -> Result<String, SnsError> {
        let kind = self.message_type()?;
        let mut fields: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match kind {
            SnsType::Notification => {
                if let Some(subject) = &self.subject {
                    fields.push(("Subject", subject));
                }
            }
            SnsType::SubscriptionConfirmation | SnsType::UnsubscribeConfirmation => {
                let url = self
                    .subscribe_url
                    .as_deref()
                    .ok_or(SnsError::Missing("confirmation", "SubscribeURL"))?;
                fields.push(("SubscribeURL", url));
            }
        }
        fields.push(("Timestamp", &self.timestamp));
        if kind != SnsType::Notification {
            let token = self
                .token
                .as_deref()
                .ok_or(SnsError::Missing("confirmation", "Token"))?;
            fields.push(("Token", token));
        }
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", &self.kind));
        Ok(fields
            .into_iter()
            .map(|(name, value)| format!("{name}\n{value}\n"))
            .collect())
    }

    /// Checks the signature against `certificate` (PEM, as SNS serves it).
    pub fn verify(&self, certificate_pem: &[u8]) -> Result<(), SnsError> {
        let algorithm: &dyn SignatureVerificationAlgorithm = match self.signature_version.as_str() {
            "1" => &RSA_SHA1,
            "2" => &RSA_SHA256,
            other => return Err(SnsError::SignatureVersion(other.to_owned())),
        };
        let text = self.string_to_sign()?;
        let signature = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            self.signature.trim(),
        )
        .map_err(|_| SnsError::Signature)?;
        let der =
            CertificateDer::from_pem_slice(certificate_pem).map_err(|_| SnsError::Certificate)?;
        let certificate =
            webpki::EndEntityCert::try_from(&der).map_err(|_| SnsError::Certificate)?;
        certificate
            .verify_signature(algorithm, text.as_bytes(), &signature)
            .map_err(|_| SnsError::Signature)
    }

    /// The message's own fields as the events queue keeps them (`EventEnvelope::form`),
    /// as they were signed.
    pub fn signed_fields(&self) -> BTreeMap<String, String> {
        let mut fields = BTreeMap::from([
            ("Type".to_owned(), self.kind.clone()),
            ("MessageId".to_owned(), self.message_id.clone()),
            ("TopicArn".to_owned(), self.topic_arn.clone()),
            ("Message".to_owned(), self.message.clone()),
            ("Timestamp".to_owned(), self.timestamp.clone()),
        ]);
        if let Some(subject) = &self.subject {
            fields.insert("Subject".to_owned(), subject.clone());
        }
        fields
    }
}

/// Whether SNS's certificate may be fetched from `url`: `https`, on the default port,
/// on a host `sns.<region>.amazonaws.com` (or `.amazonaws.com.cn`), with no user info,
/// query or fragment; or, when `trusted_local` is set, a URL starting with it.
pub fn certificate_url_allowed(url: &str, trusted_local: Option<&str>) -> bool {
    if let Some(prefix) = trusted_local.filter(|p| !p.is_empty())
        && url.starts_with(prefix)
    {
        return true;
    }
    sns_host_url(url)
}

/// Whether `url` is an `https` URL on an SNS host: where a certificate and a
/// subscription confirmation may come from.
pub fn sns_host_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..end];
    let Some(region) = host.strip_prefix("sns.").and_then(|h| {
        h.strip_suffix(".amazonaws.com")
            .or_else(|| h.strip_suffix(".amazonaws.com.cn"))
    }) else {
        return false;
    };
    // A region is lower-case words and digits joined by dashes (`us-west-2`,
    // `us-gov-east-1`): no dots, so `sns.evil.example.amazonaws.com` is not one.
    !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && region.contains('-')
}

/// RSA PKCS#1 v1.5 signatures with SHA1 (version 1) and SHA256 (version 2), by a key
/// of 2048 to 8192 bits, as webpki checks them against a certificate's key.
#[derive(Debug)]
struct RsaPkcs1 {
    signature_alg_id: AlgorithmIdentifier,
    verification: &'static aws_lc_rs::signature::RsaParameters,
}

/// `sha1WithRSAEncryption` (1.2.840.113549.1.1.5) with NULL parameters, as DER inside
/// its SEQUENCE (webpki's constants have no SHA1).
const RSA_PKCS1_SHA1: AlgorithmIdentifier = AlgorithmIdentifier::from_slice(&[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
]);

static RSA_SHA1: RsaPkcs1 = RsaPkcs1 {
    signature_alg_id: RSA_PKCS1_SHA1,
    verification: &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
};

static RSA_SHA256: RsaPkcs1 = RsaPkcs1 {
    signature_alg_id: alg_id::RSA_PKCS1_SHA256,
    verification: &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
};

impl SignatureVerificationAlgorithm for RsaPkcs1 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        aws_lc_rs::signature::UnparsedPublicKey::new(self.verification, public_key)
            .verify(message, signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.signature_alg_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's documented example messages, signed by a test key whose certificate is
    /// `testdata/test-signing-cert.crt` (AWS's own examples carry placeholder
    /// signatures, and the real certificate is not reachable from the tests).
    const CERT: &[u8] = include_bytes!("testdata/test-signing-cert.crt");
    const NOTIFICATION_V1: &str = include_str!("testdata/notification-v1.json");
    const NOTIFICATION_V2: &str = include_str!("testdata/notification-v2.json");
    const CONFIRMATION_V1: &str = include_str!("testdata/subscription-confirmation-v1.json");

    fn message(json: &str) -> SnsMessage {
        SnsMessage::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn the_documented_string_to_sign() {
        let notification = message(NOTIFICATION_V1);
        assert_eq!(
            notification.string_to_sign().unwrap(),
            "Message\nHello world!\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n\
             Subject\nMy First Message\nTimestamp\n2012-05-02T00:54:06.655Z\n\
             TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nNotification\n"
        );
        let c = message(CONFIRMATION_V1);
        assert_eq!(
            c.string_to_sign().unwrap(),
            format!(
                "Message\n{}\nMessageId\n{}\nSubscribeURL\n{}\nTimestamp\n{}\nToken\n{}\n\
                 TopicArn\n{}\nType\nSubscriptionConfirmation\n",
                c.message,
                c.message_id,
                c.subscribe_url.as_deref().unwrap(),
                c.timestamp,
                c.token.as_deref().unwrap(),
                c.topic_arn
            )
        );
    }

    #[test]
    fn versions_1_and_2_verify_and_any_change_does_not() {
        for json in [NOTIFICATION_V1, NOTIFICATION_V2, CONFIRMATION_V1] {
            let good = message(json);
            assert_eq!(good.verify(CERT), Ok(()), "{json}");
            let mut altered = good.clone();
            altered.message.push(' ');
            assert_eq!(altered.verify(CERT), Err(SnsError::Signature));
            let mut altered = good.clone();
            altered.topic_arn = "arn:aws:sns:us-west-2:123456789012:Other".into();
            assert_eq!(altered.verify(CERT), Err(SnsError::Signature));
            // The same signature read as the other version's hash.
            let mut other = good.clone();
            other.signature_version = match good.signature_version.as_str() {
                "1" => "2".into(),
                _ => "1".into(),
            };
            assert_eq!(other.verify(CERT), Err(SnsError::Signature));
            let mut unknown = good.clone();
            unknown.signature_version = "3".into();
            assert!(matches!(
                unknown.verify(CERT),
                Err(SnsError::SignatureVersion(_))
            ));
            let mut garbled = good;
            garbled.signature = "not base64!".into();
            assert_eq!(garbled.verify(CERT), Err(SnsError::Signature));
        }
        assert_eq!(
            message(NOTIFICATION_V1)
                .verify(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(SnsError::Certificate)
        );
    }

    #[test]
    fn a_subject_added_or_removed_breaks_the_signature() {
        let mut without = message(NOTIFICATION_V2);
        without.subject = None;
        assert_eq!(without.verify(CERT), Err(SnsError::Signature));
    }

    #[test]
    fn only_sns_hosts_over_https_serve_the_certificate() {
        for url in [
            "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
            "https://sns.us-gov-east-1.amazonaws.com/SimpleNotificationService-1.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem",
        ] {
            assert!(certificate_url_allowed(url, None), "{url}");
        }
        for url in [
            "http://sns.us-west-2.amazonaws.com/cert.pem",
            "https://sns.us-west-2.amazonaws.com.evil.example/cert.pem",
            "https://sns.us-west-2.amazonaws.com:8443/cert.pem",
            "https://evil.example/sns.us-west-2.amazonaws.com/cert.pem",
            "https://user@sns.us-west-2.amazonaws.com/cert.pem",
            "https://sns.evil.example.amazonaws.com/cert.pem",
            "https://s3.us-west-2.amazonaws.com/cert.pem",
            "https://sns..amazonaws.com/cert.pem",
            "https://snsXus-west-2.amazonaws.com/cert.pem",
            "https://sns.US-WEST-2.amazonaws.com/cert.pem",
            "file:///etc/passwd",
            "",
        ] {
            assert!(!certificate_url_allowed(url, None), "{url}");
        }
        let local = "http://127.0.0.1:4566/_herald/sns/";
        assert!(certificate_url_allowed(
            "http://127.0.0.1:4566/_herald/sns/cert.pem",
            Some(local)
        ));
        assert!(!certificate_url_allowed(
            "http://127.0.0.1:4566/_herald/sns/cert.pem",
            None
        ));
        assert!(!certificate_url_allowed(
            "http://127.0.0.1:4567/_herald/sns/cert.pem",
            Some(local)
        ));
        // An empty prefix trusts nothing extra.
        assert!(!certificate_url_allowed("http://anything/", Some("")));
    }

    #[test]
    fn messages_are_read_strictly() {
        assert!(SnsMessage::parse(b"{}").is_err());
        assert!(SnsMessage::parse(b"not json").is_err());
        let extra = NOTIFICATION_V1.replacen('{', "{\"Extra\": 1,", 1);
        assert!(SnsMessage::parse(extra.as_bytes()).is_err());
        let mut odd = message(NOTIFICATION_V1);
        odd.kind = "Other".into();
        assert!(matches!(
            odd.string_to_sign(),
            Err(SnsError::UnknownType(_))
        ));
        let mut unsigned_token = message(CONFIRMATION_V1);
        unsigned_token.token = None;
        assert!(matches!(
            unsigned_token.string_to_sign(),
            Err(SnsError::Missing(..))
        ));
    }
}
