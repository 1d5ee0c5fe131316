//! The operator route that sets the number a tenant's texts go out from and its pace
//! (issue 14): `PUT /v1/tenants/{id}/sms-sender`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use herald::domain::SmsSender;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::extract::{Caller, JsonBody};
use crate::intake;
use crate::openapi::SmsSenderProblems;
use crate::tenants::{TenantBody, own_sender, path_tenant};
use crate::{ApiError, App, FieldErrors};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SmsSenderSetting)]
pub(crate) struct SmsSenderField {
    /// A number in E.164 form, a short code (5 or 6 digits) or a Twilio messaging
    /// service id (`MG...`); `null` or left out: the platform's shared sender.
    #[serde(default)]
    #[schema(value_type = Option<SmsSender>)]
    sms_sender: Option<String>,
    /// Texts per second the sender may send (0.1 to 1000), across every instance; only
    /// with `sms_sender`. `null` or left out: what carriers allow its kind of number (a
    /// long code 1, a toll-free number 3, a short code 100, a messaging service no
    /// limit of its own).
    #[serde(default)]
    #[schema(minimum = 0.1, maximum = 1000)]
    sms_sender_rate_per_second: Option<f64>,
}

#[utoipa::path(
    put,
    path = "/v1/tenants/{id}/sms-sender",
    tag = "operator",
    operation_id = "setTenantSmsSender",
    summary = "Set the number a tenant texts from, and its pace",
    description = "Replaces the tenant's own SMS sender and its rate whole: a part left out \
        or `null` goes back to the platform's shared sender, or to the kind of number's \
        pace. Texts already sending keep the sender of their chunk's start; the next \
        chunk uses the new one. Inbound STOP and START to the new number reach the \
        tenant at once. Audited as `tenant.sms_sender_changed`.",
    params(("id" = herald::TenantId, Path, description = "The tenant id.")),
    request_body = SmsSenderField,
    responses(
        (status = 200, description = "The tenant, with its sender.", body = TenantBody),
        SmsSenderProblems,
    ),
)]
pub async fn set(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<SmsSenderField>,
) -> Result<Json<TenantBody>, ApiError> {
    let tenant = path_tenant(&id)?;
    let mut errors = FieldErrors::default();
    let (sender, rate) = own_sender(
        request.sms_sender.as_deref(),
        request.sms_sender_rate_per_second,
        &mut errors,
    );
    errors.check()?;
    let profile = app
        .store
        .set_sms_sender(&tenant, sender.as_ref(), rate, app.clock.timestamp())
        .await?
        .ok_or(ApiError::NotFound("No such tenant."))?;
    tracing::info!(target_tenant = %tenant, sender = ?sender.as_ref().map(SmsSender::as_str), "SMS sender set");
    intake::audit(
        &app,
        &tenant,
        &caller,
        "tenant.sms_sender_changed",
        tenant.as_str(),
    )
    .await?;
    Ok(Json(TenantBody::new(
        profile,
        &app.config.default_sms_countries,
    )))
}
