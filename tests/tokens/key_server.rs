//! A JWKS endpoint of the tests' own, with RSA keys generated per test: it publishes
//! whichever keys a test names, counts every fetch it answers, and can be made slow
//! or failing. Also a clock the tests move by hand.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use herald::clock::Clock;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

#[derive(Default)]
struct Served {
    keys: Mutex<Vec<Jwk>>,
    fetches: AtomicUsize,
    failing: Mutex<bool>,
    delay: Mutex<Duration>,
}

pub struct KeyServer {
    url: String,
    served: Arc<Served>,
}

impl KeyServer {
    pub async fn start() -> Self {
        let served = Arc::new(Served::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/jwks.json", axum::routing::get(jwks))
            .with_state(served.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, served }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Publishes exactly these keys from now on.
    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.served.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// Answers 500 from now on (or again the keys).
    pub fn fail(&self, failing: bool) {
        *self.served.failing.lock().unwrap() = failing;
    }

    /// Holds each answer this long, so concurrent callers overlap one fetch.
    pub fn delay_answers(&self, delay: Duration) {
        *self.served.delay.lock().unwrap() = delay;
    }

    /// Requests answered (or failed) so far.
    pub fn fetches(&self) -> usize {
        self.served.fetches.load(Ordering::SeqCst)
    }
}

async fn jwks(State(served): State<Arc<Served>>) -> Response {
    served.fetches.fetch_add(1, Ordering::SeqCst);
    let delay = *served.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    if *served.failing.lock().unwrap() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let keys = served.keys.lock().unwrap().clone();
    axum::Json(json!({ "keys": keys })).into_response()
}

/// An RSA key with its JWK (under `kid`) and its public key as PEM.
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
    /// What the "HS256 with the public key as the secret" attack signs with.
    pub public_pem: String,
}

impl SigningKey {
    pub fn generate(kid: &str) -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("an RSA key");
        let private: Pkcs8V1Der = pair.as_der().expect("PKCS#8");
        let encoding = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", private.as_ref()).as_bytes())
            .expect("jsonwebtoken reads the key");
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("a JWK");
        jwk.common.key_id = Some(kid.to_owned());
        let public: PublicKeyX509Der = pair.public_key().as_der().expect("SPKI");
        Self {
            kid: kid.to_owned(),
            encoding,
            jwk,
            public_pem: pem("PUBLIC KEY", public.as_ref()),
        }
    }

    /// As Cognito signs: RS256 under this key's kid.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(Algorithm::RS256, Some(&self.kid), claims)
    }

    pub fn sign_as(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        sign_with(&self.encoding, alg, kid, claims)
    }
}

pub fn sign_with(key: &EncodingKey, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("signed")
}

/// `{"alg":"none"}` and no signature.
pub fn unsigned(claims: &Value) -> String {
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(claims)
    )
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A clock that stands still until a test moves it.
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn at(epoch_seconds: u64) -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(epoch_seconds)))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}
