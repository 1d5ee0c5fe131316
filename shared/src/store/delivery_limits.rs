//! The limits on webhook deliveries (issue 15): an endpoint's rate (deliveries per
//! second, a counter per one-second window, as the API's request rate) and a tenant's
//! deliveries in flight (a few leased slots per tenant: a delivery holds one while it
//! runs; a delivery that dies holding one frees it when its lease ends, so a crash
//! never shrinks the tenant's share for good).

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;

use super::{Store, StoreError};
use crate::clock::Timestamp;
use crate::ids::TenantId;
use crate::item::{dynamo, key_item, n, s, time};
use crate::keys;

/// Rate windows outlive their second by two minutes, then TTL removes them.
const RATE_WINDOW_TTL_SECS: u64 = 120;

impl Store {
    /// Counts one delivery in the endpoint's current one-second window unless it
    /// holds `limit` already; whether it was counted.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, endpoint_id = endpoint_id))]
    pub async fn admit_delivery(
        &self,
        tenant: &TenantId,
        endpoint_id: &str,
        limit: u32,
        now_epoch: u64,
    ) -> Result<bool, StoreError> {
        let key = keys::webhook_rate_window(tenant, endpoint_id, now_epoch);
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression("ADD deliveries :one SET expires_at = :expires")
            .condition_expression("attribute_not_exists(deliveries) OR deliveries < :limit")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":expires", n(now_epoch + RATE_WINDOW_TTL_SECS))
            .send()
            .await;
        match counted {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(dynamo(e)),
        }
    }

    /// Takes slot `slot` of the tenant's delivery slots for `hold` under `token`,
    /// unless another delivery holds it; whether it was taken.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, slot = slot))]
    pub async fn take_delivery_slot(
        &self,
        tenant: &TenantId,
        slot: u32,
        token: &str,
        now: Timestamp,
        hold: Duration,
    ) -> Result<bool, StoreError> {
        let taken = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::webhook_delivery_slot(tenant, slot))))
            .update_expression("SET held_until = :until, holder = :holder, expires_at = :expires")
            .condition_expression("attribute_not_exists(held_until) OR held_until < :now")
            .expression_attribute_values(":until", time(now.plus(hold)))
            .expression_attribute_values(":now", time(now))
            .expression_attribute_values(":holder", s(token))
            .expression_attribute_values(
                ":expires",
                n(now.plus(hold).epoch_seconds() + RATE_WINDOW_TTL_SECS),
            )
            .send()
            .await;
        match taken {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(dynamo(e)),
        }
    }

    /// Frees the slot this delivery took (`token`); one taken over since (the lease
    /// ran out) is left to its new holder.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, slot = slot))]
    pub async fn release_delivery_slot(
        &self,
        tenant: &TenantId,
        slot: u32,
        token: &str,
    ) -> Result<(), StoreError> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::webhook_delivery_slot(tenant, slot))))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(token))
            .send()
            .await;
        match released {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(dynamo(e)),
        }
    }
}
