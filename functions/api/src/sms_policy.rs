//! Where a tenant may send texts, and to what kinds of number: the policy as operators
//! give it (on `POST /v1/tenants`, and replaced whole by `PUT
//! /v1/tenants/{id}/sms-policy`, audited) and as the tenant's answers show it. A part
//! left out or `null` follows the platform's default.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use herald::domain::{Country, NumberType, SmsPolicy, one_of};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::{Caller, JsonBody};
use crate::intake;
use crate::openapi::SmsPolicyProblems;
use crate::tenants::{TenantBody, path_tenant};
use crate::{ApiError, App, FieldErrors};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SmsPolicyRequest)]
pub(crate) struct SmsPolicyField {
    /// The countries the tenant may text, as ISO 3166-1 alpha-2 codes (`US`, `GB`).
    /// Absent or `null`: the platform's default. An empty list: it texts nowhere.
    #[serde(default)]
    #[schema(schema_with = countries_schema)]
    countries: Option<Vec<String>>,
    /// The kinds of number it may text. Absent or `null`: `mobile` and
    /// `fixed_line_or_mobile`.
    #[serde(default)]
    #[schema(schema_with = number_types_schema)]
    number_types: Option<Vec<String>>,
}

fn countries_schema() -> utoipa::openapi::schema::Array {
    set_of::<Country>(
        "The countries the tenant may text. Absent or `null`: the platform's default. An \
         empty list: it texts nowhere.",
    )
}

fn number_types_schema() -> utoipa::openapi::schema::Array {
    set_of::<NumberType>(
        "The kinds of number it may text. Absent or `null`: `mobile` and \
         `fixed_line_or_mobile`.",
    )
}

/// A list without repeats, or `null`.
fn set_of<T: utoipa::PartialSchema>(description: &str) -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(T::schema())
        .unique_items(true)
        .description(Some(description))
        .build()
}

impl SmsPolicyField {
    /// The policy asked for, each bad entry added to `errors` under `at`
    /// (`/sms_policy`, or the body itself).
    pub(crate) fn parse(&self, at: &str, errors: &mut FieldErrors) -> SmsPolicy {
        SmsPolicy {
            countries: self.countries.as_ref().map(|codes| {
                entries(codes, &format!("{at}/countries"), errors, |raw| {
                    Country::parse(raw).map_err(|e| e.to_string())
                })
            }),
            number_types: self.number_types.as_ref().map(|kinds| {
                entries(kinds, &format!("{at}/number_types"), errors, |raw| {
                    raw.parse::<NumberType>()
                        .map_err(|_| one_of::<NumberType>())
                })
            }),
        }
    }
}

/// Each entry of a list read through `parse`; a bad or repeated one is named by index.
fn entries<T: Ord>(
    raw: &[String],
    at: &str,
    errors: &mut FieldErrors,
    parse: impl Fn(&str) -> Result<T, String>,
) -> BTreeSet<T> {
    let mut parsed = BTreeSet::new();
    for (i, entry) in raw.iter().enumerate() {
        match parse(entry) {
            Ok(value) => {
                if !parsed.insert(value) {
                    errors.add(format!("{at}/{i}"), "is listed twice");
                }
            }
            Err(message) => errors.add(format!("{at}/{i}"), message),
        }
    }
    parsed
}

/// The policy in the canonical form an idempotency key's request hash reads.
pub(crate) fn canonical(policy: &SmsPolicy) -> serde_json::Value {
    serde_json::json!({
        "countries": policy.countries.as_ref().map(|c| c.iter().map(Country::to_string).collect::<Vec<_>>()),
        "number_types": policy.number_types,
    })
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SmsPolicy)]
pub(crate) struct SmsPolicyBody {
    /// The countries the tenant may text, in force.
    #[schema(value_type = Vec<String>, example = json!(["CA", "US"]))]
    countries: BTreeSet<Country>,
    /// The kinds of number it may text, in force.
    number_types: BTreeSet<NumberType>,
    /// Whether `countries` is the platform's default (the tenant has no list of its own).
    countries_from_default: bool,
    /// Whether `number_types` is the platform's default.
    number_types_from_default: bool,
}

impl SmsPolicyBody {
    pub(crate) fn new(policy: &SmsPolicy, default_countries: &BTreeSet<Country>) -> Self {
        let rules = policy.rules(default_countries);
        Self {
            countries: rules.countries,
            number_types: rules.number_types,
            countries_from_default: policy.countries.is_none(),
            number_types_from_default: policy.number_types.is_none(),
        }
    }
}

#[utoipa::path(
    put,
    path = "/v1/tenants/{id}/sms-policy",
    tag = "operator",
    operation_id = "setTenantSmsPolicy",
    summary = "Set where a tenant may send texts",
    description = "Replaces the tenant's SMS policy whole: the countries and the kinds of \
        number it may text. A part left out or `null` goes back to the platform's default. \
        Texts already accepted are not affected; new requests are checked against it at \
        once. Audited as `tenant.sms_policy_changed`.",
    params(("id" = herald::TenantId, Path, description = "The tenant id.")),
    request_body = SmsPolicyField,
    responses(
        (status = 200, description = "The tenant, with its policy.", body = TenantBody),
        SmsPolicyProblems,
    ),
)]
pub async fn set(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<SmsPolicyField>,
) -> Result<Json<TenantBody>, ApiError> {
    let tenant = path_tenant(&id)?;
    let mut errors = FieldErrors::default();
    let policy = request.parse("", &mut errors);
    errors.check()?;
    let profile = app
        .store
        .set_sms_policy(&tenant, &policy, app.clock.timestamp())
        .await?
        .ok_or(ApiError::NotFound("No such tenant."))?;
    tracing::info!(target_tenant = %tenant, policy = %canonical(&policy), "SMS policy set");
    intake::audit(
        &app,
        &tenant,
        &caller,
        "tenant.sms_policy_changed",
        tenant.as_str(),
    )
    .await?;
    Ok(Json(TenantBody::new(
        profile,
        &app.config.default_sms_countries,
    )))
}
