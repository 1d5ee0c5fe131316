//! The only place DynamoDB keys are built. Every tenant-owned key takes a `TenantId`,
//! so no item can be read or written without naming its tenant. Platform-level items
//! (restore drills and their canaries, tenant recovery jobs) belong to no tenant: their
//! keys take a `Platform` instead, which only Herald's own operations hold, and no
//! tenant key builder accepts one.
//!
//! Longer than most files on purpose: the whole key space is read in one place, so a
//! reviewer can see that no two kinds of item can share a key.

use crate::address::Address;
use crate::clock::{Day, Timestamp};
use crate::domain::ItemKind;
use crate::ids::{BatchId, MessageId, TenantId};
use crate::phone::PhoneNumber;

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

/// gsi1 partition listing a batch from its enqueue until it finishes: the sweeper's
/// list of windows to watch for a stall (issue 14). A platform-level key, as above.
pub fn window_partition(batch: BatchId) -> String {
    let shard = u128::from(batch.ulid()) % u128::from(UNQUEUED_SHARDS);
    format!("WINDOW#{shard}")
}

pub fn window_shards() -> impl Iterator<Item = String> {
    (0..UNQUEUED_SHARDS).map(|shard| format!("WINDOW#{shard}"))
}

/// The sort key prefix of a batch's chunk items (`chunk` builds each one).
pub const CHUNK_SK_PREFIX: &str = "CHUNK#";

pub fn tenant_profile(tenant: &TenantId) -> Key {
    Key {
        pk: format!("TENANT#{tenant}"),
        sk: "PROFILE".into(),
    }
}

/// The tenant's line of bulk batches: the one whose turn it is, and those waiting for
/// theirs (issue 14, `docs/concurrency.md`, "Turns").
pub fn tenant_turn(tenant: &TenantId) -> Key {
    Key {
        pk: format!("TENANT#{tenant}"),
        sk: "TURN".into(),
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
        sk: format!("{CHUNK_SK_PREFIX}{chunk:05}"),
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

/// One of the tenant's people, by their Cognito `sub`.
pub fn tenant_user(tenant: &TenantId, user_id: &str) -> Key {
    Key {
        pk: format!("TENANT#{tenant}#USER#{user_id}"),
        sk: "USER".into(),
    }
}

/// gsi1 partition listing a tenant's people.
pub fn tenant_users_partition(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}#USERS")
}

/// How many of a tenant's people are active admins: the last one cannot go.
pub fn admin_count(tenant: &TenantId) -> Key {
    Key {
        pk: format!("TENANT#{tenant}"),
        sk: "ADMINS".into(),
    }
}

/// One of the tenant's webhook endpoints (issue 15).
pub fn webhook_endpoint(tenant: &TenantId, endpoint_id: &str) -> Key {
    Key {
        pk: format!("TENANT#{tenant}#WEBHOOK#{endpoint_id}"),
        sk: "WEBHOOK".into(),
    }
}

/// gsi1 partition listing a tenant's webhook endpoints.
pub fn webhook_endpoints_partition(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}#WEBHOOKS")
}

/// One delivery attempt to one of the tenant's webhook endpoints (issue 15), in its
/// endpoint's attempts log, oldest first by time.
pub fn webhook_attempt(
    tenant: &TenantId,
    endpoint_id: &str,
    at: Timestamp,
    event_id: &str,
    attempt: u32,
) -> Key {
    Key {
        pk: webhook_attempts_partition(tenant, endpoint_id),
        sk: format!("{at}#{event_id}#{attempt:02}"),
    }
}

/// The partition of an endpoint's attempts log.
pub fn webhook_attempts_partition(tenant: &TenantId, endpoint_id: &str) -> String {
    format!("TENANT#{tenant}#WEBHOOK#{endpoint_id}#ATTEMPTS")
}

/// One second of deliveries to one of the tenant's endpoints (its rate limit).
pub fn webhook_rate_window(tenant: &TenantId, endpoint_id: &str, epoch_second: u64) -> Key {
    Key {
        pk: format!("TENANT#{tenant}#WEBHOOK#{endpoint_id}#RATE#{epoch_second}"),
        sk: "RATE".into(),
    }
}

/// One of the tenant's delivery slots (its cap on deliveries in flight).
pub fn webhook_delivery_slot(tenant: &TenantId, slot: u32) -> Key {
    Key {
        pk: format!("TENANT#{tenant}#WEBHOOKSLOT#{slot}"),
        sk: "SLOT".into(),
    }
}

/// A platform-level lease (one redrive at a time): named by the job it guards, not
/// by any tenant. Only `herald::lease`, the operator-only type, reads or writes it.
pub fn platform_lease(name: &str) -> Key {
    Key {
        pk: format!("PLATFORM#LEASE#{name}"),
        sk: "LEASE".into(),
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

/// gsi2, the provider reference index: a text SNS took, by SNS's message id (its
/// delivery status log names nothing else). Sparse: only texts sent through SNS.
/// Platform-level, as the log is: the entry (`provider_ref_entry`) names the tenant.
pub fn provider_ref_partition(provider: &str, provider_ref: &str) -> String {
    format!("REF#{provider}#{provider_ref}")
}

/// gsi2: the texts through SNS whose send answer was lost (`unknown`, so no reference
/// was stored), by number, for their delivery logs to find.
pub fn lost_text_partition(to: &PhoneNumber) -> String {
    format!("LOST#sns#{to}")
}

/// gsi2's sort key: when the entry was made (epoch milliseconds, zero-padded, so a
/// range condition orders them) and the message it is.
pub fn provider_ref_entry(tenant: &TenantId, message: MessageId, at: Timestamp) -> String {
    format!("{:015}#{tenant}#{message}", at.epoch_millis())
}

/// The message a gsi2 entry names and when it was made.
pub fn parse_provider_ref_entry(entry: &str) -> Option<(TenantId, MessageId, Timestamp)> {
    let mut parts = entry.splitn(3, '#');
    let at = parts.next()?.parse().ok()?;
    let tenant = TenantId::parse(parts.next()?).ok()?;
    let message = parts.next()?.parse().ok()?;
    Some((tenant, message, Timestamp::from_epoch_millis(at)))
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

// ---------------------------------------------------------------- platform items

/// The right to build platform-level keys. Held by Herald's own operations (the
/// scheduled backup check, the operator's tenant recovery), never built from a
/// request: no API handler creates one, so no tenant's token can reach these items.
#[derive(Debug, Clone, Copy)]
pub struct Platform(());

impl Platform {
    /// For a platform operation that no tenant asked for.
    pub fn operations() -> Self {
        Self(())
    }
}

const CANARIES: &str = "PLATFORM#CANARY";
const DRILLS: &str = "PLATFORM#DRILL";
const RECOVERIES: &str = "PLATFORM#RECOVERY";

/// One restore-drill canary; a partition of canaries sorted by when they were written.
pub fn canary(_: Platform, written_at: Timestamp, id: &str) -> Key {
    Key {
        pk: CANARIES.into(),
        sk: format!("{written_at}#{id}"),
    }
}

pub fn canary_partition(_: Platform) -> &'static str {
    CANARIES
}

/// The first sort key of canaries written at or after `at`, and (with `canaries_until`)
/// the last one written at or before it: canary ids sort below `~`.
pub fn canaries_from(_: Platform, at: Timestamp) -> String {
    format!("{at}#")
}

pub fn canaries_until(_: Platform, at: Timestamp) -> String {
    format!("{at}#~")
}

/// The provider account's shared rate (issue 14): the time its next send slot starts,
/// which every sender instance takes blocks of slots from.
pub fn provider_rate(_: Platform) -> Key {
    Key {
        pk: "PLATFORM#PROVIDER_RATE".into(),
        sk: "RATE".into(),
    }
}

/// One sender number's rate (issue 14), shared by every sender instance and every
/// tenant texting from it: carriers pace the number, whoever's texts they are.
pub fn sender_rate(_: Platform, sender: &crate::domain::SmsSender) -> Key {
    Key {
        pk: format!("PLATFORM#SENDER_RATE#{sender}"),
        sk: "RATE".into(),
    }
}

/// Which drill runs now, and when the last one started and succeeded.
pub fn drill_state(_: Platform) -> Key {
    Key {
        pk: DRILLS.into(),
        sk: "STATE".into(),
    }
}

pub fn drill(_: Platform, id: &str) -> Key {
    Key {
        pk: DRILLS.into(),
        sk: format!("DRILL#{id}"),
    }
}

pub fn recovery_job(_: Platform, id: &str) -> Key {
    Key {
        pk: RECOVERIES.into(),
        sk: format!("JOB#{id}"),
    }
}

/// Held by a tenant's running recovery: one at a time per tenant.
pub fn recovery_lock(_: Platform, tenant: &TenantId) -> Key {
    Key {
        pk: RECOVERIES.into(),
        sk: format!("{RECOVERY_LOCKS}{tenant}"),
    }
}

pub fn recoveries_partition(_: Platform) -> &'static str {
    RECOVERIES
}

/// The sort keys of the recovery locks begin with this.
pub const RECOVERY_LOCKS: &str = "LOCK#";

/// What an item of `tenant` is, read from its key; `None` when the key is not
/// `tenant`'s (another tenant's, a platform item, a machine client keyed by its id).
/// The tenant recovery counts what it finds by these kinds.
pub fn tenant_item_kind(tenant: &TenantId, pk: &str, sk: &str) -> Option<ItemKind> {
    let rest = pk.strip_prefix("TENANT#")?.strip_prefix(tenant.as_str())?;
    if rest.is_empty() {
        return Some(match sk {
            "PROFILE" => ItemKind::Tenant,
            "CLIENTS" => ItemKind::ClientCount,
            "ADMINS" => ItemKind::AdminCount,
            _ => ItemKind::Other,
        });
    }
    let (kind, _) = rest.strip_prefix('#')?.split_once('#')?;
    Some(match (kind, sk) {
        ("BATCH", "META") => ItemKind::Batch,
        ("BATCH", "QUOTA") => ItemKind::BatchQuota,
        ("BATCH", sk) if sk.starts_with("CHUNK#") => ItemKind::Chunk,
        ("BATCH", "RECEIPTS") => ItemKind::ReceiptCount,
        ("SUPPRESSION", "SUPPRESSION") => ItemKind::Suppression,
        ("MSG", "MSG") => ItemKind::Message,
        ("IDEM", "IDEM") => ItemKind::Idempotency,
        ("RATE", "RATE") => ItemKind::RateWindow,
        ("QUOTA", "QUOTA") => ItemKind::QuotaDay,
        ("AUDIT", _) => ItemKind::Audit,
        ("USER", "USER") => ItemKind::User,
        ("WEBHOOK", "WEBHOOK") => ItemKind::WebhookEndpoint,
        _ => ItemKind::Other,
    })
}

/// The start every key of `tenant` shares (also `TENANT#{tenant}2...`'s: check each
/// key with `tenant_item_kind`).
pub fn tenant_key_prefix(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ref_entries_name_their_message_and_sort_by_time() {
        let t = TenantId::parse("acme").unwrap();
        let b: BatchId = "01JQ0000000000000000000000".parse().unwrap();
        let m = MessageId::new(b, 7);
        let at = Timestamp::from_epoch_millis(1_700_000_000_123);
        let entry = provider_ref_entry(&t, m, at);
        assert_eq!(entry, format!("001700000000123#acme#{b}.7"));
        assert_eq!(parse_provider_ref_entry(&entry), Some((t.clone(), m, at)));
        let earlier = provider_ref_entry(&t, m, Timestamp::from_epoch_millis(99_999));
        assert!(earlier < entry);
        for broken in ["", "x#acme#m", "1#ACME!#m", &format!("1#acme#{b}")] {
            assert_eq!(parse_provider_ref_entry(broken), None, "{broken}");
        }
        let to = PhoneNumber::parse("+12065550100").unwrap();
        assert_eq!(lost_text_partition(&to), "LOST#sns#+12065550100");
        assert_eq!(provider_ref_partition("sns", "abc"), "REF#sns#abc");
    }

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

    #[test]
    fn a_key_names_its_kind_only_for_its_own_tenant() {
        let acme = TenantId::parse("acme").unwrap();
        let b: BatchId = "01JQ0000000000000000000000".parse().unwrap();
        let m = MessageId::new(b, 7);
        let day = Day::parse("2026-05-01").unwrap();
        let at = Timestamp::parse("2026-05-01T10:00:00Z").unwrap();
        let kind = |key: Key| tenant_item_kind(&acme, &key.pk, &key.sk);
        assert_eq!(kind(tenant_profile(&acme)), Some(ItemKind::Tenant));
        assert_eq!(kind(batch_meta(&acme, b)), Some(ItemKind::Batch));
        assert_eq!(kind(chunk(&acme, b, 0)), Some(ItemKind::Chunk));
        assert_eq!(
            kind(quota_reservation(&acme, b)),
            Some(ItemKind::BatchQuota)
        );
        assert_eq!(kind(message(&acme, m)), Some(ItemKind::Message));
        assert_eq!(kind(idempotency(&acme, "k#1")), Some(ItemKind::Idempotency));
        assert_eq!(kind(rate_window(&acme, 1)), Some(ItemKind::RateWindow));
        assert_eq!(kind(quota_day(&acme, day)), Some(ItemKind::QuotaDay));
        assert_eq!(kind(audit(&acme, at, "x")), Some(ItemKind::Audit));
        assert_eq!(kind(tenant_user(&acme, "u-1")), Some(ItemKind::User));
        assert_eq!(
            kind(webhook_endpoint(&acme, "ep_1")),
            Some(ItemKind::WebhookEndpoint)
        );
        assert_eq!(kind(admin_count(&acme)), Some(ItemKind::AdminCount));
        assert_eq!(
            kind(machine_client_count(&acme)),
            Some(ItemKind::ClientCount)
        );
        assert_eq!(
            kind(receipt_shard_of(&acme, m)),
            Some(ItemKind::ReceiptCount)
        );
        let phone = Address::Phone(crate::phone::PhoneNumber::parse("+14155550100").unwrap());
        assert_eq!(
            kind(suppression(&acme, &phone)),
            Some(ItemKind::Suppression)
        );
        // Not acme's: a longer tenant id, another tenant, a client, a platform item.
        let acme2 = TenantId::parse("acme2").unwrap();
        assert_eq!(kind(batch_meta(&acme2, b)), None);
        assert_eq!(
            kind(tenant_profile(&TenantId::parse("globex").unwrap())),
            None
        );
        assert_eq!(kind(machine_client("abc")), None);
        assert_eq!(kind(drill_state(Platform::operations())), None);
    }

    #[test]
    fn canaries_sort_by_time_between_their_bounds() {
        let platform = Platform::operations();
        let at = Timestamp::parse("2026-05-01T10:00:00Z").unwrap();
        let sk = canary(platform, at, "01JQ0000000000000000000000").sk;
        assert!(canaries_from(platform, at) <= sk && sk <= canaries_until(platform, at));
        let later = at.plus(std::time::Duration::from_millis(1));
        assert!(sk < canaries_from(platform, later));
    }
}
