//! The only place DynamoDB keys are built. Every tenant-owned key takes a `TenantId`,
//! so no item can be read or written without naming its tenant.

use crate::address::Address;
use crate::clock::{Day, Timestamp};
use crate::ids::{BatchId, MessageId, TenantId};

pub const SCHEMA_VERSION: u32 = 1;

/// Recipients per chunk: one SQS message and one DynamoDB item each.
pub const CHUNK_SIZE: u32 = 100;

/// Number of gsi1 shards per batch, so a large batch's listing does not pile onto one
/// partition.
pub const BATCH_INDEX_SHARDS: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

pub fn idempotency(tenant: &TenantId, key: &str) -> Key {
    Key {
        pk: format!("TENANT#{tenant}#IDEM#{key}"),
        sk: "IDEM".into(),
    }
}

/// Shards of the index of batches not yet on the queue (the sweeper's work list).
pub const UNQUEUED_SHARDS: u32 = 4;

/// gsi1 partition listing a batch while it is written but not yet enqueued. A
/// platform-level key: only the sweeper reads it.
pub fn unqueued_partition(batch: BatchId) -> String {
    let shard = u128::from(batch.ulid()) % u128::from(UNQUEUED_SHARDS);
    format!("UNQUEUED#{shard}")
}

pub fn unqueued_shards() -> impl Iterator<Item = String> {
    (0..UNQUEUED_SHARDS).map(|shard| format!("UNQUEUED#{shard}"))
}

pub fn tenant_profile(tenant: &TenantId) -> Key {
    Key {
        pk: format!("TENANT#{tenant}"),
        sk: "PROFILE".into(),
    }
}

/// One second of a tenant's API requests.
pub fn rate_window(tenant: &TenantId, epoch_second: u64) -> Key {
    Key {
        pk: format!("TENANT#{tenant}#RATE#{epoch_second}"),
        sk: "RATE".into(),
    }
}

/// One UTC day of a tenant's sends.
pub fn quota_day(tenant: &TenantId, day: Day) -> Key {
    Key {
        pk: format!("TENANT#{tenant}#QUOTA#{day}"),
        sk: "QUOTA".into(),
    }
}

/// Marks that a batch's sends were counted against the quota, so a retry of the
/// request that created it does not count them twice.
pub fn quota_reservation(tenant: &TenantId, batch: BatchId) -> Key {
    Key {
        pk: batch_pk(tenant, batch),
        sk: "QUOTA".into(),
    }
}

/// One audit entry; a day of a tenant's entries shares a partition, newest last.
pub fn audit(tenant: &TenantId, at: Timestamp, id: &str) -> Key {
    Key {
        pk: audit_partition(tenant, at.day()),
        sk: format!("{at}#{id}"),
    }
}

pub fn audit_partition(tenant: &TenantId, day: Day) -> String {
    format!("TENANT#{tenant}#AUDIT#{day}")
}

pub fn batch_meta(tenant: &TenantId, batch: BatchId) -> Key {
    Key {
        pk: batch_pk(tenant, batch),
        sk: "META".into(),
    }
}

pub fn chunk(tenant: &TenantId, batch: BatchId, chunk: u32) -> Key {
    Key {
        pk: batch_pk(tenant, batch),
        sk: format!("CHUNK#{chunk:05}"),
    }
}

pub fn message(tenant: &TenantId, message: MessageId) -> Key {
    Key {
        pk: format!("TENANT#{tenant}#MSG#{message}"),
        sk: "MSG".into(),
    }
}

/// gsi1 partition for a message's listing within its batch.
pub fn batch_messages_partition(tenant: &TenantId, message: MessageId) -> String {
    let shard = message.index() % BATCH_INDEX_SHARDS;
    format!("{}#S#{shard}", batch_pk(tenant, message.batch()))
}

pub fn chunk_of(message: MessageId) -> u32 {
    message.index() / CHUNK_SIZE
}

/// A machine client, keyed by its Cognito client id alone: a token names only its
/// client, so this is how a request finds its tenant. The item holds the tenant, and
/// every read checks it.
pub fn machine_client(client_id: &str) -> Key {
    Key {
        pk: format!("CLIENT#{client_id}"),
        sk: "CLIENT".into(),
    }
}

/// gsi1 partition listing a tenant's machine clients.
pub fn machine_clients_partition(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}#CLIENTS")
}

/// How many of a tenant's machine clients are active (not revoked).
pub fn machine_client_count(tenant: &TenantId) -> Key {
    Key {
        pk: format!("TENANT#{tenant}"),
        sk: "CLIENTS".into(),
    }
}

/// Shards of a batch's receipt counters. Receipts come one message at a time, up to
/// thousands a second for one batch; each goes to the shard of its message's index, so
/// no one item takes more than a sixteenth of them (DynamoDB allows about 1,000 writes
/// a second per partition, and a transaction conflicts with another on the same item).
pub const RECEIPT_SHARDS: u32 = 16;

/// One shard of a batch's receipt counters: its own partition, so the shards of one
/// batch do not share a partition's write capacity.
pub fn receipt_shard(tenant: &TenantId, batch: BatchId, shard: u32) -> Key {
    Key {
        pk: format!("{}#RECEIPTS#{shard}", batch_pk(tenant, batch)),
        sk: "RECEIPTS".into(),
    }
}

/// The receipt shard a message's receipts count on.
pub fn receipt_shard_of(tenant: &TenantId, message: MessageId) -> Key {
    receipt_shard(tenant, message.batch(), message.index() % RECEIPT_SHARDS)
}

/// The record that a provider's event was seen (deduplication), by the provider's
/// own identity of it: a platform-level key, as an event names its tenant only once
/// it is parsed (an inbound text names none).
pub fn provider_event(source: &str, event_id: &str) -> Key {
    Key {
        pk: format!("EVENT#{source}#{event_id}"),
        sk: "EVENT".into(),
    }
}

/// An event Herald could not match to a message, kept for people to look at: a
/// platform-level partition per UTC day, oldest first.
pub fn orphan(at: Timestamp, source: &str, event_id: &str) -> Key {
    Key {
        pk: orphan_partition(at.day()),
        sk: format!("{at}#{source}#{event_id}"),
    }
}

pub fn orphan_partition(day: Day) -> String {
    format!("ORPHAN#{day}")
}

/// A tenant's suppression entry for one address (email addresses folded to lower
/// case, so one entry stands for every spelling).
pub fn suppression(tenant: &TenantId, address: &Address) -> Key {
    Key {
        pk: format!("TENANT#{tenant}#SUPPRESSION#{}", address.folded()),
        sk: "SUPPRESSION".into(),
    }
}

/// gsi1 partition listing a tenant's active suppressions; the sort key
/// (`suppression_listing`) orders them by channel, then reason, then address.
pub fn suppressions_partition(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}#SUPPRESSIONS")
}

pub fn suppression_listing(channel: &str, reason: &str, address: &Address) -> String {
    format!("{channel}#{reason}#{}", address.folded())
}

/// gsi1 partition listing the tenants whose texts go out from `sender`; `None` is the
/// platform's own sender, shared by every tenant without one.
pub fn sms_sender_partition(sender: Option<&str>) -> String {
    format!("SMS_SENDER#{}", sender.unwrap_or("platform"))
}

fn batch_pk(tenant: &TenantId, batch: BatchId) -> String {
    format!("TENANT#{tenant}#BATCH#{batch}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_with_the_tenant() {
        let t = TenantId::parse("acme").unwrap();
        let b: BatchId = "01JQ0000000000000000000000".parse().unwrap();
        let m = MessageId::new(b, 205);
        assert_eq!(message(&t, m).pk, format!("TENANT#acme#MSG#{b}.205"));
        assert_eq!(chunk(&t, b, chunk_of(m)).sk, "CHUNK#00002");
        assert_eq!(batch_meta(&t, b).pk, format!("TENANT#acme#BATCH#{b}"));
        assert_eq!(
            batch_messages_partition(&t, m),
            format!("TENANT#acme#BATCH#{b}#S#5")
        );
        assert_eq!(
            receipt_shard_of(&t, m).pk,
            format!("TENANT#acme#BATCH#{b}#RECEIPTS#13")
        );
        let email = Address::Email(crate::address::EmailAddress::parse("Ada@Example.com").unwrap());
        assert_eq!(
            suppression(&t, &email).pk,
            "TENANT#acme#SUPPRESSION#ada@example.com"
        );
    }
}
