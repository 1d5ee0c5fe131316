//! A batch's messages, page by page, in index order. The chunks are the list (they hold
//! every recipient, including those the sender has not reached); one BatchGetItem per
//! chunk adds the message items that exist.

use std::collections::HashMap;

use super::chunk::parse_chunk;
use super::message::parse_message;
use super::{Store, StoreError};
use crate::domain::{BatchView, MessagePage, MessageStatus};
use crate::ids::{MessageId, TenantId};
use crate::item::{Item, corrupt};
use crate::keys::{self, CHUNK_SIZE};

impl Store {
    /// Up to `limit` messages of `batch` from index `from`, only those in `status` when
    /// given. At most `max_chunks` chunks are read per call, so a filtered page may be
    /// short, even empty, while more follow: `next_cursor` says where to go on.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, batch_id = %batch.id, from = from))]
    pub async fn list_messages(
        &self,
        tenant: &TenantId,
        batch: &BatchView,
        from: u32,
        status: Option<MessageStatus>,
        limit: usize,
        max_chunks: u32,
    ) -> Result<MessagePage, StoreError> {
        let first_chunk = keys::chunk_of(MessageId::new(batch.id, from));
        let last_chunk =
            (first_chunk + max_chunks.max(1) - 1).min(batch.chunk_count.saturating_sub(1));
        let mut messages = Vec::new();
        let mut chunk_index = first_chunk;
        while chunk_index <= last_chunk && from < batch.total {
            let key = keys::chunk(tenant, batch.id, chunk_index);
            let chunk = self
                .get(&key, false)
                .await?
                .map(|item| parse_chunk(&key, &item))
                .transpose()?
                .ok_or_else(|| corrupt(&key, "chunk of an existing batch is missing"))?;
            let wanted: Vec<_> = chunk
                .messages(batch.id)
                .filter(|(id, _)| id.index() >= from)
                .collect();
            let mut items = self
                .get_messages(tenant, wanted.iter().map(|(id, _)| *id))
                .await?;
            for (id, recipient) in wanted {
                let message_key = keys::message(tenant, id);
                let view = match items.remove(&message_key.pk) {
                    Some(item) => parse_message(&message_key, id, &item)?,
                    None => chunk.unclaimed(id, recipient),
                };
                if status.is_none_or(|s| s == view.status) {
                    messages.push(view);
                }
                if messages.len() == limit {
                    let next = id.index() + 1;
                    return Ok(MessagePage {
                        messages,
                        next_cursor: (next < batch.total).then_some(next),
                    });
                }
            }
            chunk_index += 1;
        }
        let next = chunk_index * CHUNK_SIZE;
        Ok(MessagePage {
            messages,
            next_cursor: (next < batch.total).then_some(next),
        })
    }

    /// The message items that exist among `ids` (at most 100), by partition key.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    async fn get_messages(
        &self,
        tenant: &TenantId,
        ids: impl Iterator<Item = MessageId>,
    ) -> Result<HashMap<String, Item>, StoreError> {
        let keys: Vec<_> = ids.map(|id| keys::message(tenant, id)).collect();
        let mut found = HashMap::new();
        for item in self.get_many(&keys, false).await? {
            if let Some(pk) = item.get("pk").and_then(|v| v.as_s().ok()) {
                found.insert(pk.clone(), item);
            }
        }
        Ok(found)
    }
}
