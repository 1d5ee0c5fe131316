//! What handlers take instead of repeating the same first lines: the verified caller
//! (put there by the layers), the `Idempotency-Key` with the route it scopes, and the
//! JSON body read under the API's limits with the failing field named.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::header;
use axum::http::request::Parts;
use herald::CorrelationId;
use herald::auth::Principal;
use herald::domain::{Submitter, TenantProfile};
use herald::idempotency::{IdempotencyKey, KeyScope};
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use crate::{ApiError, App};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The request's correlation id, given by the `correlate` layer to every request.
#[derive(Clone)]
pub struct Correlation(pub CorrelationId);

/// Who is calling, verified by the layers: the principal from the token and the
/// request's correlation id.
pub struct Caller {
    pub principal: Principal,
    pub correlation: CorrelationId,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::Misrouted("a caller on a route without a token"))?;
        let Correlation(correlation) =
            parts
                .extensions
                .get::<Correlation>()
                .cloned()
                .ok_or(ApiError::Misrouted(
                    "a request the correlate layer did not see",
                ))?;
        Ok(Self {
            principal,
            correlation,
        })
    }
}

impl Caller {
    /// The caller as intake records who submitted a batch.
    pub fn submitter(&self) -> Submitter {
        Submitter {
            tenant: self.principal.tenant().clone(),
            subject: self.principal.subject().to_owned(),
            correlation_id: self.correlation.clone(),
        }
    }
}

/// The caller's tenant profile, loaded (and checked active) by the tenant layer.
pub struct Profile(pub TenantProfile);

impl<S: Send + Sync> FromRequestParts<S> for Profile {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<TenantProfile>()
            .cloned()
            .map(Profile)
            .ok_or(ApiError::Misrouted("a tenant profile on a platform route"))
    }
}

/// The `Idempotency-Key` header, and the route it is scoped to (`POST /v1/batches`, the
/// method and the path template the router matched): the same key on two routes is two
/// requests, and no handler spells its route again.
pub struct Idempotent {
    pub key: IdempotencyKey,
    pub scope: KeyScope,
}

impl<S: Send + Sync> FromRequestParts<S> for Idempotent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw = parts
            .headers
            .get(IDEMPOTENCY_KEY)
            .ok_or(ApiError::IdempotencyKeyRequired("is missing"))?
            .to_str()
            .map_err(|_| ApiError::IdempotencyKeyRequired("must be visible ASCII"))?;
        let key = IdempotencyKey::parse(raw).map_err(|_| {
            ApiError::IdempotencyKeyRequired(
                "Idempotency-Key must be 1-255 visible ASCII characters",
            )
        })?;
        let path = parts
            .extensions
            .get::<MatchedPath>()
            .ok_or(ApiError::Misrouted("an idempotent request outside a route"))?;
        Ok(Self {
            key,
            scope: KeyScope::new(parts.method.as_str(), path.as_str()),
        })
    }
}

/// The `Idempotency-Key` header as the OpenAPI document describes it; `Idempotent` is
/// what reads it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// 1–255 visible ASCII characters, unique per request and scoped to your tenant;
    /// reuse it only to retry the same request. Keys are kept for 24 hours.
    #[param(rename = "Idempotency-Key", value_type = IdempotencyKey)]
    #[expect(
        dead_code,
        reason = "described, never built: `Idempotent` reads the header"
    )]
    idempotency_key: String,
}

/// A JSON body of `T`: `application/json`, at most the configured size, one object with
/// nothing after it, unknown fields refused (by `T`'s serde attributes).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<App>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &Arc<App>) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::UnsupportedMediaType);
        }
        let max_bytes = app.config.max_body_bytes;
        // The body is already in memory (it arrives inside the Lambda event); the limit
        // is checked here so the answer is problem+json, not axum's plain text.
        let body = axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .map_err(|_| ApiError::BodyTooLarge { max_bytes })?;
        if body.len() > max_bytes {
            return Err(ApiError::BodyTooLarge { max_bytes });
        }
        parse(&body).map(JsonBody)
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let malformed =
        |detail: String, field: Option<String>| ApiError::MalformedJson { detail, field };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(malformed(
            "The request body is empty; send a JSON object.".to_owned(),
            None,
        ));
    }
    // serde reads a struct from an array of its fields in order too (`[null, null]`);
    // every body the API takes is an object, as the document says.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(malformed(
            "The request body must be a JSON object.".to_owned(),
            None,
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| malformed(e.inner().to_string(), json_pointer(e.path())))?;
    de.end().map_err(|e| malformed(e.to_string(), None))?;
    Ok(value)
}

/// serde reads a struct from an array of its fields in order too, at any depth
/// (`"limits": [5, null]`); a field declared `deserialize_with` one of these reads only
/// an object, as the document says. The error names the field like any other.
pub mod object {
    use std::marker::PhantomData;

    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};

    struct Object<T>(T);

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Only<T>(PhantomData<T>);
            impl<'de, T: Deserialize<'de>> Visitor<'de> for Only<T> {
                type Value = T;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                    T::deserialize(MapAccessDeserializer::new(map))
                }
            }
            d.deserialize_map(Only(PhantomData)).map(Object)
        }
    }

    /// An optional object (`null` or absent reads as `None`; pair with `default`).
    pub fn optional<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        Option::<Object<T>>::deserialize(d).map(|o| o.map(|Object(t)| t))
    }

    /// An array whose every item is an object.
    pub fn each<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        Vec::<Object<T>>::deserialize(d).map(|v| v.into_iter().map(|Object(t)| t).collect())
    }
}

/// A count as JSON Schema's `integer` reads it: `2721.0` is the integer 2721, as a
/// client's JSON library may well write it; `2721.5` is not an integer.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    let Some(number) = <Option<serde_json::Number> as serde::Deserialize>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => Some(n),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
            Some(f as u64)
        }
        _ => None,
    };
    whole
        .and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("must be a whole number from 1 to {}", u32::MAX)))
}

/// `recipients[3].to` as `/recipients/3/to` (RFC 6901), or `None` for the whole body.
fn json_pointer(path: &serde_path_to_error::Path) -> Option<String> {
    let mut pointer = String::new();
    for segment in path.iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } => pointer.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => pointer.push_str(variant),
            Segment::Unknown => pointer.push('?'),
        }
    }
    (!pointer.is_empty()).then_some(pointer)
}

/// Query parameters of `T`, each failure a 400 naming `query`.
pub fn query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|e| ApiError::InvalidFields(crate::FieldErrors::one("query", e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        #[serde(deserialize_with = "object::each")]
        recipients: Vec<Recipient>,
        #[serde(default, deserialize_with = "object::optional")]
        first: Option<Recipient>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Recipient {
        to: String,
    }

    fn field_of(body: &str) -> Option<String> {
        match parse::<Body>(body.as_bytes()) {
            Err(ApiError::MalformedJson { field, .. }) => field,
            other => panic!("expected malformed JSON, got {other:?}"),
        }
    }

    #[test]
    fn a_malformed_body_names_the_failing_field_as_a_json_pointer() {
        assert_eq!(
            field_of(r#"{"recipients":[{"to":"+1"},{"to":7}]}"#).as_deref(),
            Some("/recipients/1/to")
        );
        assert_eq!(
            field_of(r#"{"recipients":[{"to":"+1","cc":"x"}]}"#).as_deref(),
            Some("/recipients/0/cc")
        );
        assert_eq!(field_of("   ").as_deref(), None);
        // Would be a `Body` to serde: one field, in order.
        assert_eq!(field_of(r#"[[{"to":"+1"}]]"#).as_deref(), None);
        assert_eq!(field_of(r#" "recipients" "#).as_deref(), None);
        assert_eq!(field_of(r#"{"recipients":[]} trailing"#).as_deref(), None);
    }

    #[test]
    fn a_nested_struct_is_read_from_an_object_only_never_from_an_array_of_its_fields() {
        assert_eq!(
            field_of(r#"{"recipients":[{"to":"+1"},["+2"]]}"#).as_deref(),
            Some("/recipients/1")
        );
        assert_eq!(
            field_of(r#"{"recipients":[],"first":["+1"]}"#).as_deref(),
            Some("/first")
        );
        let read = parse::<Body>(br#"{"recipients":[{"to":"+1"}],"first":null}"#).unwrap();
        assert_eq!((read.recipients.len(), read.first.is_none()), (1, true));
        let read = parse::<Body>(br#"{"recipients":[],"first":{"to":"+2"}}"#).unwrap();
        assert_eq!(read.first.map(|r| r.to).as_deref(), Some("+2"));
    }

    #[test]
    fn a_pointer_escapes_slash_and_tilde() {
        let parsed = parse::<std::collections::BTreeMap<String, u8>>(br#"{"a/b~c": "x"}"#);
        match parsed {
            Err(ApiError::MalformedJson { field, .. }) => {
                assert_eq!(field.as_deref(), Some("/a~1b~0c"))
            }
            other => panic!("expected malformed JSON, got {other:?}"),
        }
    }
}
