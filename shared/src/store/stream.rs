//! The table's change stream read as domain changes (issue 15): a stream record's old
//! and new images, mapped by the same item mappings the repositories use, into the
//! changes tenants hear of: a message's status, a batch's status, an endpoint's
//! status. Items of other kinds (chunks, counters, audit entries...) are no change
//! here. Only the key says what an item is (`keys::tenant_item_kind`).

use super::StoreError;
use super::batch::parse_batch;
use super::message::parse_message;
use super::webhook_endpoints::parse_endpoint;
use crate::domain::ItemKind;
use crate::domain::{
    BatchStatus, BatchView, EndpointStatus, MessageStatus, MessageView, WebhookEndpoint,
};
use crate::ids::{BatchId, MessageId, TenantId};
use crate::item::{Item, get_named, get_s};
use crate::keys::{self, Key};

/// What one stream record changed, as far as tenants' events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamChange {
    /// A message item written; `old` its status before (none: the item is new).
    Message {
        tenant: TenantId,
        old: Option<MessageStatus>,
        view: MessageView,
    },
    Batch {
        tenant: TenantId,
        old: Option<BatchStatus>,
        view: BatchView,
    },
    Endpoint {
        old: Option<EndpointStatus>,
        endpoint: WebhookEndpoint,
    },
}

/// The change a record's images describe; `None` for a removal or an item of a kind
/// no event follows.
pub fn stream_change(
    old: Option<&Item>,
    new: Option<&Item>,
) -> Result<Option<StreamChange>, StoreError> {
    let Some(new) = new else { return Ok(None) };
    let (Some(pk), Some(sk)) = (get_s(new, "pk"), get_s(new, "sk")) else {
        return Ok(None);
    };
    let Some(tenant) = tenant_of(pk) else {
        return Ok(None);
    };
    let key = Key {
        pk: pk.to_owned(),
        sk: sk.to_owned(),
    };
    let corrupt = |reason: &str| StoreError::Corrupt {
        pk: pk.to_owned(),
        sk: sk.to_owned(),
        reason: reason.to_owned(),
    };
    // The id after the kind: `TENANT#{t}#MSG#{id}`, `TENANT#{t}#BATCH#{id}`.
    let id_in_pk = || pk.rsplit_once('#').map(|(_, id)| id).unwrap_or_default();
    Ok(match keys::tenant_item_kind(&tenant, pk, sk) {
        Some(ItemKind::Message) => {
            let id: MessageId = id_in_pk().parse().map_err(|_| corrupt("no message id"))?;
            Some(StreamChange::Message {
                old: old.and_then(|o| get_named(o, "status")),
                view: parse_message(&key, id, new)?,
                tenant,
            })
        }
        Some(ItemKind::Batch) => {
            let id: BatchId = id_in_pk().parse().map_err(|_| corrupt("no batch id"))?;
            Some(StreamChange::Batch {
                old: old.and_then(|o| get_named(o, "status")),
                view: parse_batch(&tenant, id, new)?,
                tenant,
            })
        }
        Some(ItemKind::WebhookEndpoint) => Some(StreamChange::Endpoint {
            old: old.and_then(|o| get_named(o, "status")),
            endpoint: parse_endpoint(new)?,
        }),
        _ => None,
    })
}

/// The tenant a `TENANT#{t}...` partition key names.
fn tenant_of(pk: &str) -> Option<TenantId> {
    let rest = pk.strip_prefix("TENANT#")?;
    let tenant = rest.split('#').next()?;
    TenantId::parse(tenant).ok()
}
