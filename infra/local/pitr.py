"""Point-in-time recovery for the emulator's DynamoDB, the way AWS documents it.

moto's RestoreTableToPointInTime copies the source table's *current* items whatever
time is asked for, its LatestRestorableDateTime is fixed when recovery is switched on,
and the restored table is ACTIVE at once. A restore drill run against that proves
nothing: a canary written after the point would be "restored", a deleted item would
be gone. This module makes the emulator honour the point in time:

- a journal of item versions for every table with point-in-time recovery on: each
  write (PutItem, UpdateItem, DeleteItem, BatchWriteItem, a TransactWriteItems that
  succeeded) records the item as it now is, at the time it was written; a cancelled
  transaction records nothing. Switching recovery on records every item as it is;
  switching it off forgets the journal (AWS deletes the recovery history too);
- EarliestRestorableDateTime and LatestRestorableDateTime advance: the latest is now
  minus a lag (AWS's is about five minutes behind; `--pitr-lag-seconds` here), the
  earliest is when recovery was switched on or the start of the recovery window,
  whichever is later (AWS keeps RecoveryPeriodInDays; the local window is
  `--pitr-window-seconds`, so the journal of a long `make dev` session stays bounded);
- a restore at time T holds every item as the journal had it at T (an item written
  after T is absent, one deleted after T is present, an update shows its value at T),
  refuses a time outside the window (InvalidRestoreTimeException), a source without
  recovery (PointInTimeRecoveryUnavailableException) and a taken name
  (TableAlreadyExistsException), honours the SSE and billing-mode overrides, and, as
  AWS's does, carries over keys and indexes but not TTL, streams, tags, deletion
  protection or point-in-time recovery;
- the restored table is CREATING for `--restore-seconds` before it is ACTIVE. Until
  then reads and writes answer ResourceNotFoundException and DeleteTable answers
  ResourceInUseException, as DynamoDB does for a table that is not ACTIVE.

PartiQL writes bypass the methods journalled here, so they are refused on tables with
recovery on rather than left out of the journal silently (Herald does not use PartiQL).
"""

import copy
import datetime
import json
import time

from moto.core.exceptions import JsonRESTError
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.exceptions import (
    ERROR_TYPE_PREFIX,
    MockValidationException,
    PointInTimeRecoveryUnavailable,
    ResourceInUseException,
    ResourceNotFoundException,
    SourceTableNotFoundException,
    TableAlreadyExistsException,
)
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing import partiql
from moto.dynamodb.responses import DynamoHandler, DynamoResult

Backend = dynamodb_models.DynamoDBBackend


class Settings:
    """Set once by the launcher from its command line."""

    lag_seconds = 1.0
    window_seconds = 3600.0
    restore_seconds = 5.0


class InvalidRestoreTime(JsonRESTError):
    def __init__(self, at, earliest, latest):
        super().__init__(
            ERROR_TYPE_PREFIX + "InvalidRestoreTimeException",
            f"Restore time {at:.3f} is outside the restorable window "
            f"{earliest:.3f} to {latest:.3f}",
        )


class Journal:
    """Every version of every item of one table since recovery was switched on (or
    since the start of the window), oldest first. A version is the item's attributes
    as sorted JSON, or None for a deletion."""

    def __init__(self, table, now):
        self.enabled_at = now
        self.versions = {}
        for item in table.all_items():
            self.record((item.hash_key, item.range_key), now, _dump(item))

    def window(self, now):
        earliest = max(self.enabled_at, now - Settings.window_seconds)
        return earliest, max(earliest, now - Settings.lag_seconds)

    def record(self, key, at, dumped):
        versions = self.versions.setdefault(key, [])
        if versions and versions[-1][1] == dumped:
            return
        versions.append((at, dumped))
        self._forget_before(key, versions, at)

    def _forget_before(self, key, versions, now):
        """Versions older than the window are dropped, except the last of them: it is
        what the item was at the window's start."""
        earliest, _ = self.window(now)
        kept_from = 0
        for index, (at, _) in enumerate(versions):
            if at <= earliest:
                kept_from = index
        del versions[:kept_from]
        if len(versions) == 1 and versions[0][1] is None and versions[0][0] <= earliest:
            del self.versions[key]

    def items_at(self, at):
        """Each item as it was at `at`, as attributes."""
        for versions in self.versions.values():
            state = None
            for written, dumped in versions:
                if written > at:
                    break
                state = dumped
            if state is not None:
                yield json.loads(state)


def _dump(item):
    return None if item is None else json.dumps(item.to_json()["Attributes"], sort_keys=True)


def _journal(table):
    return getattr(table, "_herald_journal", None)


# Writes inside a TransactWriteItems wait here until it succeeds: a cancelled
# transaction is rolled back and must leave no version behind. DynamoDB requests are
# serialised by the launcher, so one pending list is enough.
_pending = None


def _record(table, hash_value, range_value):
    journal = _journal(table)
    if journal is None:
        return
    entry = (journal, (hash_value, range_value), time.time(), _dump(table.get_item(hash_value, range_value)))
    if _pending is None:
        entry[0].record(*entry[1:])
    else:
        _pending.append(entry)


def _key_values(table, attributes):
    hash_value = DynamoType(attributes[table.hash_key_attr])
    range_value = DynamoType(attributes[table.range_key_attr]) if table.has_range_key else None
    return hash_value, range_value


def _restoring(table):
    return time.time() < getattr(table, "_herald_ready_at", 0.0)


def _journal_writes():
    put_item, update_item, delete_item = Backend.put_item, Backend.update_item, Backend.delete_item

    def journalled_put(self, table_name, item_attrs, *args, **kwargs):
        answer = put_item(self, table_name, item_attrs, *args, **kwargs)
        table = self.get_table(table_name)
        _record(table, *_key_values(table, item_attrs))
        return answer

    def journalled_update(self, table_name, key, *args, **kwargs):
        answer = update_item(self, table_name, key, *args, **kwargs)
        table = self.get_table(table_name)
        _record(table, *_key_values(table, key))
        return answer

    def journalled_delete(self, table_name, key, *args, **kwargs):
        answer = delete_item(self, table_name, key, *args, **kwargs)
        table = self.get_table(table_name)
        _record(table, *_key_values(table, key))
        return answer

    Backend.put_item = journalled_put
    Backend.update_item = journalled_update
    Backend.delete_item = journalled_delete

    transact = Backend.transact_write_items

    def journalled_transaction(self, transact_items):
        global _pending
        _pending = []
        try:
            answer = transact(self, transact_items)
            for journal, *version in _pending:
                journal.record(*version)
            return answer
        finally:
            _pending = None

    Backend.transact_write_items = journalled_transaction


def _refuse_partiql_writes():
    def refuse_if_writing(self, statements):
        for statement in statements:
            metadata = partiql.get_query_metadata(statement)
            if metadata.is_select_query():
                continue
            for name in metadata.get_table_names():
                table = self.tables.get(name)
                if table is not None and _journal(table) is not None:
                    raise MockValidationException(
                        "Herald's emulator does not journal PartiQL writes for "
                        f"point-in-time recovery; table {name} has it on"
                    )

    execute, batch_execute = Backend.execute_statement, Backend.batch_execute_statement

    def execute_statement(self, statement, parameters):
        refuse_if_writing(self, [statement])
        return execute(self, statement, parameters)

    def batch_execute_statement(self, statements):
        refuse_if_writing(self, [s["Statement"] for s in statements])
        return batch_execute(self, statements)

    Backend.execute_statement = execute_statement
    Backend.batch_execute_statement = batch_execute_statement


def _switch_recovery():
    update, describe = Backend.update_continuous_backups, Backend.describe_continuous_backups

    def update_continuous_backups(self, table_name, point_in_time_spec):
        answer = update(self, table_name, point_in_time_spec)
        table = self.get_table(table_name)
        if not point_in_time_spec["PointInTimeRecoveryEnabled"]:
            table._herald_journal = None
        elif _journal(table) is None:
            table._herald_journal = Journal(table, time.time())
        return _with_window(table, answer)

    def describe_continuous_backups(self, table_name):
        answer = describe(self, table_name)
        return _with_window(self.get_table(table_name), answer)

    Backend.update_continuous_backups = update_continuous_backups
    Backend.describe_continuous_backups = describe_continuous_backups


def _with_window(table, description):
    journal = _journal(table)
    if journal is None:
        return description
    answer = copy.deepcopy(description)
    earliest, latest = journal.window(time.time())
    recovery = answer["PointInTimeRecoveryDescription"]
    recovery["EarliestRestorableDateTime"] = earliest
    recovery["LatestRestorableDateTime"] = latest
    return answer


def _epoch_seconds(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    return float(value)


UNSUPPORTED_OVERRIDES = (
    "GlobalSecondaryIndexOverride",
    "LocalSecondaryIndexOverride",
    "ProvisionedThroughputOverride",
    "OnDemandThroughputOverride",
)


def restore_table_to_point_in_time(self):
    body = self.body
    backend = self.dynamodb_backend
    for name in UNSUPPORTED_OVERRIDES:
        if body.get(name):
            raise MockValidationException(f"Herald's emulator does not restore with {name}")
    source_name = body.get("SourceTableName") or (body.get("SourceTableArn") or "").split("/")[-1]
    source = backend.tables.get(source_name)
    if source is None or _restoring(source):
        raise SourceTableNotFoundException(source_name)
    journal = _journal(source)
    if journal is None:
        raise PointInTimeRecoveryUnavailable(source_name)
    target_name = body.get("TargetTableName")
    if target_name in backend.tables:
        raise TableAlreadyExistsException(target_name)
    earliest, latest = journal.window(time.time())
    if body.get("UseLatestRestorableTime"):
        at = latest
    else:
        if body.get("RestoreDateTime") is None:
            raise MockValidationException("RestoreDateTime or UseLatestRestorableTime is required")
        at = _epoch_seconds(body["RestoreDateTime"])
        if not earliest <= at <= latest:
            raise InvalidRestoreTime(at, earliest, latest)

    billing_mode = body.get("BillingModeOverride") or source.billing_mode
    sse = body.get("SSESpecificationOverride")
    target = Table(
        target_name,
        account_id=backend.account_id,
        region=backend.region_name,
        schema=copy.deepcopy(source.schema),
        attr=copy.deepcopy(source.attr),
        throughput=None if billing_mode == "PAY_PER_REQUEST" else copy.deepcopy(source.throughput),
        billing_mode=billing_mode,
        sse_specification=copy.deepcopy(sse if sse is not None else source.sse_specification),
    )
    target.indexes = copy.deepcopy(source.indexes)
    target.global_indexes = copy.deepcopy(source.global_indexes)
    for attributes in journal.items_at(at):
        hash_value, range_value = _key_values(target, attributes)
        item = Item(hash_value, range_value, attributes)
        if target.has_range_key:
            target.items[hash_value][range_value] = item
        else:
            target.items[hash_value] = item
    target._herald_restore = {
        "SourceTableArn": source.table_arn,
        "RestoreDateTime": at,
    }
    target._herald_ready_at = time.time() + Settings.restore_seconds
    backend.tables[target_name] = target
    return DynamoResult(target.describe())


def _restored_tables_wait():
    describe = Table.describe

    def describe_with_restore(self, base_key="TableDescription"):
        answer = describe(self, base_key)
        restore = getattr(self, "_herald_restore", None)
        if restore is not None:
            in_progress = _restoring(self)
            answer[base_key]["TableStatus"] = "CREATING" if in_progress else "ACTIVE"
            answer[base_key]["RestoreSummary"] = dict(restore, RestoreInProgress=in_progress)
        return answer

    Table.describe = describe_with_restore

    get_table, delete_table = Backend.get_table, Backend.delete_table

    def get_active_table(self, table_name):
        table = get_table(self, table_name)
        if _restoring(table):
            raise ResourceNotFoundException(table_name=table_name)
        return table

    def describe_table(self, name):
        try:
            table = get_table(self, name)
        except ResourceNotFoundException:
            raise ResourceNotFoundException(table_name=name)
        return table.describe(base_key="Table")

    def delete_restored_table(self, name):
        table = get_table(self, name)
        if _restoring(table):
            raise ResourceInUseException(
                f"Attempt to change a resource which is still in use: Table is being created: {name}"
            )
        return delete_table(self, name)

    Backend.get_table = get_active_table
    Backend.describe_table = describe_table
    Backend.delete_table = delete_restored_table


def install(lag_seconds, window_seconds, restore_seconds):
    Settings.lag_seconds = lag_seconds
    Settings.window_seconds = window_seconds
    Settings.restore_seconds = restore_seconds
    _journal_writes()
    _refuse_partiql_writes()
    _switch_recovery()
    _restored_tables_wait()
    DynamoHandler.restore_table_to_point_in_time = restore_table_to_point_in_time
