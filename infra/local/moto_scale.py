"""moto's costs that grow with a queue's length, or that every request pays under one
lock, brought to what SQS's documented behaviour needs (issue 12's receipt bench).

Profiling the emulator while `herald-receipts` posted and applied 3,000 receipts
(samples of every thread's stack; docs/performance.md) found three costs that AWS does
not have and that grew until the receiver's SendMessage missed its 3 s timeout and the
events function's polls their 8 s one:

- **SendMessage computed every queue attribute.** moto reads
  `queue.attributes.get("ContentBasedDeduplication")` on each send, and `attributes`
  counts the queue's visible, in-flight and delayed messages (three scans, each reading
  the clock once per message) to answer one flag. Sending N messages to a queue cost
  O(N²). `Queue.attributes` is now a mapping that computes an attribute when it is
  read, with the same names and values; GetQueueAttributes reads what it is asked for.
- **ReceiveMessage and the counts read the clock once per message** (`visible`,
  `delayed`). They now read it once per scan: the same messages, judged at one instant.
- **DeleteMessage scanned the queue twice per receipt handle**, building each message's
  list of handles as it went. A handle now finds its message through an index kept
  when moto issues the handle; the queue's list is replaced by a copy without it, as
  moto replaces it (a receive iterating the old list is not disturbed).
- **Every request listed moto's package directory** (about 200 `stat` calls) under the
  dispatcher's one lock, to ask whether a host names a moto module. The modules do not
  change while the emulator runs: they are listed once.

Nothing here changes what a request answers; `tests/emulator_sqs.rs` checks the
answers these paths give (counts, deletes, stale and unknown handles).
"""

import functools
import json
import threading
import weakref
from collections.abc import Mapping

from moto import backends
from moto.core.utils import camelcase_to_underscores, unix_time_millis
from moto.sqs import models as sqs_models
from moto.sqs.exceptions import ReceiptHandleIsInvalid

# Receipt handle → the message it was issued for (weak: a deleted message goes).
_by_handle = weakref.WeakValueDictionary()
_by_handle_lock = threading.Lock()


class _QueueAttributes(Mapping):
    """moto's `Queue.attributes` (the same names, in the same order, and the same
    values), each computed when it is read."""

    def __init__(self, queue):
        self._queue = queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        self._names = list(dict.fromkeys(names))
        self._values = {}

    def _compute(self, name):
        queue = self._queue
        if name == "Policy" and queue.policy:
            return queue.policy
        if name == "RedrivePolicy" and queue.redrive_policy:
            return json.dumps(queue.redrive_policy)
        value = getattr(queue, camelcase_to_underscores(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __getitem__(self, name):
        if name not in self._values:
            if name not in self._names:
                raise KeyError(name)
            self._values[name] = self._compute(name)
        return self._values[name]

    def __contains__(self, name):
        return name in self._names

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)


def _lazy_attributes():
    sqs_models.Queue.attributes = property(_QueueAttributes)
    original = sqs_models.SQSBackend.get_queue_attributes

    def get_queue_attributes(self, queue_name, attribute_names):
        # A plain dict, as moto's answer was (the response serialises it).
        return dict(original(self, queue_name, attribute_names))

    sqs_models.SQSBackend.get_queue_attributes = get_queue_attributes


def _one_clock_read_per_scan():
    Queue = sqs_models.Queue

    def messages(self):
        now = unix_time_millis()
        return [
            m for m in self._messages if now > m.visible_at and now >= m.delayed_until
        ]

    def delayed(self):
        now = unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def not_visible(self):
        now = unix_time_millis()
        return sum(1 for m in self._messages if not now > m.visible_at)

    Queue.messages = property(messages)
    Queue.approximate_number_of_messages_delayed = property(delayed)
    Queue.approximate_number_of_messages_not_visible = property(not_visible)


def _indexed_receipt_handles():
    Message = sqs_models.Message
    mark_received = Message.mark_received

    def indexed_mark_received(self, visibility_timeout=None):
        mark_received(self, visibility_timeout)
        with _by_handle_lock:
            _by_handle[self.receipt_handle] = self

    def delete_message(self, receipt_handle):
        if receipt_handle in self.deleted_messages:
            # Already deleted - gracefully handle deleting it again (as moto).
            return
        message = _by_handle.get(receipt_handle)
        # `in` on a list compares identity first, in C: fast beside moto's scans.
        if message is None or message not in self._messages:
            raise ReceiptHandleIsInvalid()
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)
        remaining = list(self._messages)
        remaining.remove(message)
        self._messages = remaining

    Message.mark_received = indexed_mark_received
    sqs_models.Queue.delete_message = delete_message


def _modules_listed_once():
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = functools.lru_cache(maxsize=1)(lambda: modules)


def install():
    _lazy_attributes()
    _one_clock_read_per_scan()
    _indexed_receipt_handles()
    _modules_listed_once()
