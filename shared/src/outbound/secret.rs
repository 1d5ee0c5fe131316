//! An endpoint's signing secret: `whsec_` and the base64 of 32 random bytes (the
//! Standard Webhooks range is 24 to 64), shown to the tenant once and otherwise kept
//! sealed. Sealing is AES-256-GCM under a key derived from the `WebhookSecretKey`
//! secret in Secrets Manager (an envelope without a KMS call per endpoint: the key's
//! value is itself encrypted at rest by Herald's KMS key), with the tenant and the
//! endpoint id as associated data, so a sealed secret copied onto another endpoint or
//! tenant does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{digest, rand};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::ids::TenantId;

pub const PREFIX: &str = "whsec_";
/// Random bytes in a secret Herald makes.
const GENERATED_BYTES: usize = 32;
/// What the spec allows a secret to hold.
const MIN_BYTES: usize = 24;
const MAX_BYTES: usize = 64;
/// Marks the sealing scheme, so another can follow without guessing.
const SEALED_PREFIX: &str = "v1.";

/// A signing secret's bytes. Never printed: `Debug` shows only that it is one.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("is not `whsec_` and base64 of {MIN_BYTES} to {MAX_BYTES} bytes")]
    Malformed,
    #[error("the sealed secret does not open with this key for this endpoint")]
    Unsealable,
}

impl SigningSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0; GENERATED_BYTES];
        rand::fill(&mut bytes).expect("the system's random source works");
        Self(bytes)
    }

    /// A secret as tenants hold it: `whsec_` and base64.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix(PREFIX).ok_or(SecretError::Malformed)?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::Malformed)?;
        if !(MIN_BYTES..=MAX_BYTES).contains(&bytes.len()) {
            return Err(SecretError::Malformed);
        }
        Ok(Self(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The form shown to the tenant, once.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }
}

/// Seals and opens signing secrets with the key from Secrets Manager.
pub struct Sealer(LessSafeKey);

impl Sealer {
    /// The sealing key a secret value makes (any text; a SHA-256 of it is the key).
    pub fn from_key_material(material: &[u8]) -> Self {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(b"herald-webhook-secret-v1");
        context.update(material);
        let key = UnboundKey::new(&AES_256_GCM, context.finish().as_ref())
            .expect("a SHA-256 digest is an AES-256 key");
        Self(LessSafeKey::new(key))
    }

    /// The sealing key the `WebhookSecretKey` secret's value makes.
    pub fn from_secret(secret: &secrecy::SecretString) -> Self {
        use secrecy::ExposeSecret as _;
        Self::from_key_material(secret.expose_secret().as_bytes())
    }

    /// `secret` sealed for `endpoint` of `tenant`: text to store.
    pub fn seal(&self, tenant: &TenantId, endpoint: &str, secret: &SigningSecret) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).expect("the system's random source works");
        let mut sealed = secret.0.clone();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated(tenant, endpoint)),
                &mut sealed,
            )
            .expect("AES-GCM seals any length Herald stores");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(out))
    }

    pub fn open(
        &self,
        tenant: &TenantId,
        endpoint: &str,
        sealed: &str,
    ) -> Result<SigningSecret, SecretError> {
        let encoded = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SecretError::Unsealable)?;
        let raw = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::Unsealable)?;
        if raw.len() < NONCE_LEN {
            return Err(SecretError::Unsealable);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Unsealable)?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(associated(tenant, endpoint)), &mut buffer)
            .map_err(|_| SecretError::Unsealable)?;
        Ok(SigningSecret(plain.to_vec()))
    }
}

/// Length-prefixed, so no two (tenant, endpoint) pairs share associated data.
fn associated(tenant: &TenantId, endpoint: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [tenant.as_str(), endpoint] {
        out.extend((part.len() as u64).to_be_bytes());
        out.extend(part.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_reads_back_from_its_text() {
        let secret = SigningSecret::generate();
        let text = secret.reveal();
        assert!(text.starts_with("whsec_"));
        assert_eq!(SigningSecret::parse(&text).unwrap(), secret);
        assert_eq!(secret.bytes().len(), 32);
        assert_ne!(SigningSecret::generate(), secret);
        assert_eq!(format!("{secret:?}"), "SigningSecret(..)");
    }

    #[test]
    fn secrets_outside_the_specs_sizes_are_refused() {
        let of = |n: usize| format!("whsec_{}", STANDARD.encode(vec![7u8; n]));
        assert!(SigningSecret::parse(&of(24)).is_ok());
        assert!(SigningSecret::parse(&of(64)).is_ok());
        assert_eq!(SigningSecret::parse(&of(23)), Err(SecretError::Malformed));
        assert_eq!(SigningSecret::parse(&of(65)), Err(SecretError::Malformed));
        assert_eq!(
            SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SecretError::Malformed)
        );
        assert_eq!(
            SigningSecret::parse("whsec_***"),
            Err(SecretError::Malformed)
        );
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_endpoint_tenant_and_key() {
        let sealer = Sealer::from_key_material(b"key material");
        let acme = TenantId::parse("acme").unwrap();
        let globex = TenantId::parse("globex").unwrap();
        let secret = SigningSecret::generate();
        let sealed = sealer.seal(&acme, "ep_1", &secret);
        assert!(!sealed.contains(&secret.reveal()[PREFIX.len()..]));
        assert_eq!(sealer.open(&acme, "ep_1", &sealed).unwrap(), secret);
        assert_eq!(
            sealer.open(&acme, "ep_2", &sealed),
            Err(SecretError::Unsealable)
        );
        assert_eq!(
            sealer.open(&globex, "ep_1", &sealed),
            Err(SecretError::Unsealable)
        );
        let other = Sealer::from_key_material(b"other material");
        assert_eq!(
            other.open(&acme, "ep_1", &sealed),
            Err(SecretError::Unsealable)
        );
        // Two seals of one secret differ (fresh nonces) and both open.
        let again = sealer.seal(&acme, "ep_1", &secret);
        assert_ne!(again, sealed);
        assert_eq!(sealer.open(&acme, "ep_1", &again).unwrap(), secret);
    }
}
