//! Chunk items: the durable copy of up to `CHUNK_SIZE` recipients' work, written once
//! by intake and read by the sender and the listing.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::{StreamExt, TryStreamExt, stream};

use super::{Store, StoreError};
use crate::address::Address;
use crate::domain::{Channel, Chunk, Content, NewBatch, Recipient};
use crate::ids::{BatchId, TenantId};
use crate::item::{
    Item, corrupt, dynamo, get_n, get_named, get_s, get_time, n, name, s, time, with_key,
};
use crate::keys::{self, Key, SCHEMA_VERSION};
use crate::template::{Template, Variables};

/// Conditional chunk writes in flight at once: a 10,000-recipient batch is 100 chunks.
const WRITES_IN_FLIGHT: usize = 16;
/// Most writes in one BatchWriteItem.
const BATCH_WRITE_MAX: usize = 25;

impl Store {
    /// Writes every chunk of `batch` that does not exist yet, and never touches one
    /// that does: a chunk the sender has counted carries its `counted_at` marker, and
    /// rewriting it would let the sender count the chunk a second time.
    ///
    /// A batch with nothing under its key yet (every first attempt) is written in
    /// unconditional BatchWriteItems, 25 chunks a request; a batch a request already
    /// began (a retry with the same idempotency key, which pins the batch id) chunk by
    /// chunk with `attribute_not_exists`. The check and the writes are not one atomic
    /// step; they need not be: only the request holding the idempotency key's lock
    /// writes a batch's chunks, and a lock is taken over only after its holder's
    /// function timeout has passed.
    #[tracing::instrument(skip_all, fields(tenant_id = %batch.tenant, batch_id = %batch.id, chunks = batch.chunks.len()))]
    pub(super) async fn write_chunks(&self, batch: &NewBatch) -> Result<(), StoreError> {
        let items: Vec<Item> = batch.chunks.iter().map(|c| chunk_item(batch, c)).collect();
        if !self.batch_has_items(&batch.tenant, batch.id).await? {
            for group in items.chunks(BATCH_WRITE_MAX) {
                self.batch_write(group.to_vec()).await?;
            }
            return Ok(());
        }
        tracing::info!("the batch was begun before: writing only its missing chunks");
        stream::iter(items)
            // An existing chunk is left as it is.
            .map(|item| self.put_new(item))
            .buffer_unordered(WRITES_IN_FLIGHT)
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    /// Whether any chunk of the batch exists (the quota reservation, written first, is
    /// not a chunk).
    async fn batch_has_items(&self, tenant: &TenantId, batch: BatchId) -> Result<bool, StoreError> {
        let partition = keys::batch_meta(tenant, batch).pk;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :chunk)")
            .expression_attribute_values(":pk", s(partition))
            .expression_attribute_values(":chunk", s("CHUNK#"))
            .projection_expression("pk")
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        Ok(out.count > 0)
    }

    async fn batch_write(&self, items: Vec<Item>) -> Result<(), StoreError> {
        let mut writes = items
            .into_iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(dynamo)?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        for attempt in 0..5u32 {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, writes)
                .send()
                .await
                .map_err(dynamo)?;
            writes = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if writes.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
        }
        Err(StoreError::Unprocessed(writes.len()))
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, batch_id = %batch, chunk = index))]
    pub async fn load_chunk(
        &self,
        tenant: &TenantId,
        batch: BatchId,
        index: u32,
    ) -> Result<Option<Chunk>, StoreError> {
        let key = keys::chunk(tenant, batch, index);
        let out = self.get(&key, true).await?;
        out.map(|item| parse_chunk(&key, &item)).transpose()
    }
}

fn chunk_item(batch: &NewBatch, chunk: &Chunk) -> Item {
    let key = keys::chunk(&batch.tenant, batch.id, chunk.index);
    let recipients = chunk
        .recipients
        .iter()
        .map(|r| {
            let mut item = HashMap::from([("to".to_owned(), s(r.to.as_str()))]);
            if !r.variables.is_empty() {
                let variables = r
                    .variables
                    .iter()
                    .map(|(name, value)| (name.clone(), s(value)))
                    .collect();
                item.insert("variables".to_owned(), AttributeValue::M(variables));
            }
            AttributeValue::M(item)
        })
        .collect();
    let content = match &chunk.content {
        Content::Text(text) => ("body", s(text)),
        Content::Template(template) => ("template", s(template.source())),
    };
    let mut item = with_key(
        &key,
        [
            ("tenant_id", s(batch.tenant.as_str())),
            ("batch_id", s(batch.id.to_string())),
            ("chunk", n(chunk.index)),
            ("channel", name(chunk.channel)),
            content,
            ("recipients", AttributeValue::L(recipients)),
            ("created_at", time(chunk.created_at)),
            ("schema_version", n(SCHEMA_VERSION)),
        ],
    );
    match &chunk.subject {
        None => {}
        Some(Content::Text(text)) => {
            item.insert("subject".into(), s(text));
        }
        Some(Content::Template(template)) => {
            item.insert("subject_template".into(), s(template.source()));
        }
    }
    item
}

pub(super) fn parse_chunk(key: &Key, item: &Item) -> Result<Chunk, StoreError> {
    let corrupt = |reason: &str| corrupt(key, reason);
    let channel: Channel = get_named(item, "channel").ok_or_else(|| corrupt("unknown channel"))?;
    let recipients = item
        .get("recipients")
        .and_then(|v| v.as_l().ok())
        .ok_or_else(|| corrupt("no recipients"))?
        .iter()
        .map(|r| {
            let r = r.as_m().map_err(|_| corrupt("recipient is not a map"))?;
            let to = get_s(r, "to")
                .and_then(|v| Address::stored(channel, v).ok())
                .ok_or_else(|| corrupt("recipient without a valid address for its channel"))?;
            let variables = match r.get("variables") {
                None => Variables::new(),
                Some(v) => v
                    .as_m()
                    .map_err(|_| corrupt("variables are not a map"))?
                    .iter()
                    .map(|(name, value)| {
                        Ok((
                            name.clone(),
                            value
                                .as_s()
                                .map_err(|_| corrupt("variable is not a string"))?
                                .clone(),
                        ))
                    })
                    .collect::<Result<_, StoreError>>()?,
            };
            Ok(Recipient { to, variables })
        })
        .collect::<Result<_, StoreError>>()?;
    let content = match (get_s(item, "body"), get_s(item, "template")) {
        (Some(text), None) => Content::Text(text.to_owned()),
        (None, Some(source)) => Content::Template(
            Template::parse(source).map_err(|e| corrupt(&format!("template: {e}")))?,
        ),
        _ => return Err(corrupt("needs exactly one of body and template")),
    };
    let subject = match (get_s(item, "subject"), get_s(item, "subject_template")) {
        (None, None) => None,
        (Some(text), None) => Some(Content::Text(text.to_owned())),
        (None, Some(source)) => Some(Content::Template(
            Template::parse(source).map_err(|e| corrupt(&format!("subject template: {e}")))?,
        )),
        _ => return Err(corrupt("has both subject and subject_template")),
    };
    if subject.is_some() != (channel == Channel::Email) {
        return Err(corrupt(
            "an email chunk needs a subject, and only an email chunk has one",
        ));
    }
    Ok(Chunk {
        index: get_n(item, "chunk").ok_or_else(|| corrupt("no chunk index"))?,
        channel,
        content,
        subject,
        recipients,
        created_at: get_time(item, "created_at").ok_or_else(|| corrupt("no creation time"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::ids::CorrelationId;
    use crate::item::key_item;
    use crate::phone::PhoneNumber;

    #[test]
    fn chunks_read_back_as_written() {
        let tenant = TenantId::parse("acme").unwrap();
        let to = |raw: &str| Address::Phone(PhoneNumber::parse(raw).unwrap());
        let chunk = Chunk {
            index: 3,
            channel: Channel::Sms,
            content: Content::Template(Template::parse("Hi {{name}}").unwrap()),
            subject: None,
            recipients: vec![
                Recipient {
                    to: to("+14155550100"),
                    variables: Variables::from([("name".to_owned(), "Ann".to_owned())]),
                },
                Recipient {
                    to: to("+14155550101"),
                    variables: Variables::new(),
                },
            ],
            created_at: Timestamp::from_epoch_millis(1_700_000_000_123),
        };
        let batch = NewBatch {
            tenant: tenant.clone(),
            id: BatchId::new(),
            channel: Channel::Sms,
            created_by: "user-1".into(),
            correlation_id: CorrelationId::from_header(None),
            created_at: chunk.created_at,
            chunks: vec![chunk.clone()],
            window: 1,
            takes_turns: false,
        };
        let key = keys::chunk(&tenant, batch.id, 3);
        let item = chunk_item(&batch, &chunk);
        assert_eq!(get_s(&item, "created_at"), Some("2023-11-14T22:13:20.123Z"));
        assert_eq!(get_s(&item, "channel"), Some("sms"));
        assert_eq!(parse_chunk(&key, &item).unwrap(), chunk);
    }

    #[test]
    fn an_email_chunk_without_a_subject_is_refused() {
        let tenant = TenantId::parse("acme").unwrap();
        let key = keys::chunk(&tenant, BatchId::new(), 0);
        let mut item = key_item(&key);
        item.insert("channel".into(), s("email"));
        item.insert("chunk".into(), n(0));
        item.insert("body".into(), s("hi"));
        item.insert("recipients".into(), AttributeValue::L(Vec::new()));
        item.insert("created_at".into(), s("2023-11-14T22:13:20.123Z"));
        assert!(matches!(
            parse_chunk(&key, &item),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
