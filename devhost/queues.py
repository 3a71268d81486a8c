"""Queue triggers and queue outputs with the storage queue extension's semantics.

Concurrency: one poller thread per queue-triggered function fetches up to `batchSize`
messages at a time and hands each to the invoker; it fetches again once the in-flight count
falls to `newBatchThreshold`, so at most batchSize + newBatchThreshold are leased at once
(QueueListener in Microsoft.Azure.WebJobs.Extensions.Storage.Common). The invocations
themselves queue for the worker's shared thread pool (devhost/invocation.py).

Delivery is at least once. A received message is leased (invisible) for the lease time and
the lease is renewed at half-time while the function runs, so a crashed host's messages come
back once their lease lapses. Success deletes the message. Failure makes it visible again
after `visibilityTimeout`, until its dequeue count reaches `maxDequeueCount`; then it moves
to `<queue>-poison`. A message that cannot be decoded is copied raw to poison without running.

A queue whose name ends in `-poison` has no poison queue
(QueueListenerFactory.CreatePoisonQueueReference returns null): a failed message there is not
released, so it reappears when its lease ends, and once past `maxDequeueCount` it is skipped
and left in the queue (QueueProcessor.CompleteProcessingMessageAsync and
BeginProcessingMessageAsync).

The listener never creates its queue: while it does not exist, it waits and polls again. An
output binding creates its queue on first send and then notifies a trigger on that queue in
this host, which polls at once instead of sleeping out its backoff
(`_messageEnqueuedWatcher.Notify(queueName)` in the extension).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.functions.queue import QueueMessage as TriggerMessage
from azure.storage.queue import QueueClient, QueueMessage

from devhost.catalog import Binding, FunctionSpec
from devhost.errors import MessageDecodeError
from devhost.invocation import InvocationFailed, Invoker
from devhost.settings import QueueOptions, storage_connection
from devhost.storage import QueueStore, decode_message, encode_message
from devhost.worker import queue_output_bodies
from storage_connection import StorageConnection

logger = logging.getLogger(__name__)

# QueuePollingIntervals.Minimum: the first delay after an empty poll; it doubles up to
# maxPollingInterval.
MIN_POLLING_INTERVAL = 0.1
POISON_SUFFIX = "-poison"
MAX_QUEUE_NAME = 63


def poison_queue_name(queue_name: str) -> str | None:
    """`<queue>-poison`, or None for a poison queue or a name the suffix would make too long."""
    if queue_name.endswith(POISON_SUFFIX) or len(queue_name + POISON_SUFFIX) > MAX_QUEUE_NAME:
        return None
    return queue_name + POISON_SUFFIX


class QueueWatcher:
    """The extension's SharedQueueWatcher: wakes the poller of a queue a message was added to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, list[threading.Event]] = {}

    def register(self, queue_name: str) -> threading.Event:
        """The event a poller waits on between polls of `queue_name`."""
        event = threading.Event()
        with self._lock:
            self._events.setdefault(queue_name, []).append(event)
        return event

    def notify(self, queue_name: str) -> None:
        """A message was added to `queue_name`: its pollers poll now."""
        with self._lock:
            events = list(self._events.get(queue_name, ()))
        for event in events:
            event.set()

    def wake_all(self) -> None:
        """Wake every poller (the host is stopping)."""
        with self._lock:
            events = [e for group in self._events.values() for e in group]
        for event in events:
            event.set()


class QueueOutput:
    """The `queue` output binding: creates the queue if needed, sends, then notifies."""

    def __init__(self, store: QueueStore, environ: Mapping[str, str], encoding: str,
                 watcher: QueueWatcher) -> None:
        self._store = store
        self._environ = environ
        self._encoding = encoding
        self._watcher = watcher

    def send(self, binding: Binding, value: Any, *, converter: str) -> None:
        """Send `value` as the worker encodes it: one message, or one per list item."""
        bodies = queue_output_bodies(converter, value)
        connection = storage_connection(binding.get("connection"), self._environ)
        name = str(binding.get("queueName"))
        for body in bodies:
            self._store.send(connection, name, encode_message(body, self._encoding))
        self._watcher.notify(name)


class Backoff:
    """Exponential delay between polls of an empty (or unreachable) queue."""

    def __init__(self, minimum: float, maximum: float) -> None:
        self._minimum = min(minimum, maximum)
        self._maximum = maximum
        self._current = self._minimum

    def reset(self) -> None:
        """Start again from the shortest delay (a message arrived)."""
        self._current = self._minimum

    def next_delay(self) -> float:
        """Return the delay to wait now, and double the next one up to the maximum."""
        delay = self._current
        self._current = min(self._current * 2, self._maximum)
        return delay


class Lease:
    """A received message's pop receipt, renewed while its function runs."""

    def __init__(self, client: QueueClient, message: QueueMessage, seconds: float) -> None:
        self._client = client
        self.message_id = message.id
        self._receipt = message.pop_receipt
        self._seconds = seconds

    @contextmanager
    def kept_alive(self) -> Iterator[None]:
        """Renew the lease at half its length until the block ends."""
        done = threading.Event()
        renewer = threading.Thread(target=self._renew_until, args=(done,), daemon=True,
                                   name=f"lease-{self.message_id}")
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join()  # the final delete or release needs the newest pop receipt

    def delete(self) -> None:
        """Delete the message: it was handled (or moved to poison)."""
        self._client.delete_message(self.message_id, pop_receipt=self._receipt)

    def release(self, after: float) -> None:
        """Give the message back: it becomes visible again after `after` seconds."""
        self._update(after)

    def _renew_until(self, done: threading.Event) -> None:
        while not done.wait(self._seconds / 2):
            try:
                self._update(self._seconds)
            except AzureError as e:
                logger.warning("Could not renew the lease of message %s: %s", self.message_id, e)

    def _update(self, visible_after: float) -> None:
        updated = self._client.update_message(
            self.message_id, pop_receipt=self._receipt, visibility_timeout=math.ceil(visible_after)
        )
        self._receipt = updated.pop_receipt


class QueueTriggerRunner:
    """Polls one function's queue and runs its messages with the host's retry and poison rules."""

    def __init__(self, spec: FunctionSpec, *, invoker: Invoker, store: QueueStore,
                 connection: StorageConnection, options: QueueOptions, lease_seconds: float,
                 stopping: threading.Event, watcher: QueueWatcher) -> None:
        self._spec = spec
        self._invoker = invoker
        self._store = store
        self._connection = connection
        self._queue_name = str(spec.trigger.get("queueName"))
        self._poison_name = poison_queue_name(self._queue_name)
        self._options = options
        self._lease_seconds = lease_seconds
        self._stopping = stopping
        self._wake = watcher.register(self._queue_name)
        self._watcher = watcher
        self._in_flight = 0
        self._slots = threading.Condition()
        self._outage = False
        self._missing = False
        # Host-side tasks holding leased messages; the Python runs in the worker's pool.
        self._pool = ThreadPoolExecutor(options.batch_size + options.new_batch_threshold,
                                        thread_name_prefix=f"queue-{spec.name}")
        self._thread = threading.Thread(target=self._run, name=f"poll-{spec.name}")

    def start(self) -> None:
        """Start polling in a background thread."""
        self._thread.start()

    def join(self) -> None:
        """Wait until polling has stopped and every started invocation has finished."""
        self._thread.join()

    def _run(self) -> None:
        backoff = Backoff(MIN_POLLING_INTERVAL, self._options.max_polling_interval)
        while not self._stopping.is_set():
            if not self._has_capacity():
                continue
            received = self._poll()
            if received:
                backoff.reset()
                continue
            # An output binding in this host that adds to the queue wakes the wait early.
            self._wake.wait(backoff.next_delay())
            self._wake.clear()
        self._pool.shutdown(wait=True)

    def _has_capacity(self) -> bool:
        threshold = self._options.new_batch_threshold
        with self._slots:
            # A short timeout so that a stop request is noticed while the batch runs.
            return self._slots.wait_for(lambda: self._in_flight <= threshold, timeout=0.2)

    def _poll(self) -> int:
        try:
            messages = self._receive()
        except ResourceNotFoundError:
            self._report_missing()
            return 0
        except AzureError as e:
            self._report_outage(e)
            return 0
        except Exception:
            # Whatever went wrong, a dead poller would silently stop the function: keep polling.
            logger.exception("Polling queue '%s' failed", self._queue_name)
            return 0
        self._report_recovery()
        for message in messages:
            self._dispatch(message)
        return len(messages)

    def _receive(self) -> list[QueueMessage]:
        pages = self._queue().receive_messages(
            messages_per_page=self._options.batch_size,
            visibility_timeout=math.ceil(self._lease_seconds),
        ).by_page()
        # One page is one storage call; an empty queue ends the paging at once.
        return list(next(pages, []))

    def _dispatch(self, message: QueueMessage) -> None:
        with self._slots:
            self._in_flight += 1
        self._pool.submit(self._handle, message)

    def _handle(self, message: QueueMessage) -> None:
        try:
            self._settle(message)
        except AzureError as e:
            # The message reappears when its lease lapses: delivery stays at least once.
            logger.warning("Storage call for message %s on %s failed: %s",
                           message.id, self._queue_name, e)
        except Exception:
            logger.exception("Handling message %s on %s failed", message.id, self._queue_name)
        finally:
            with self._slots:
                self._in_flight -= 1
                self._slots.notify_all()

    def _settle(self, message: QueueMessage) -> None:
        lease = Lease(self._queue(), message, self._lease_seconds)
        try:
            body = decode_message(message.content, self._options.message_encoding)
        except MessageDecodeError as e:
            # Copied through a non-encoding client: the raw text lands in poison.
            self._to_poison(lease, str(message.content), str(e))
            return
        dequeue_count = message.dequeue_count or 1
        if dequeue_count > self._options.max_dequeue_count:
            # Earlier hosts crashed or lost the lease while running it: do not run it again.
            self._to_poison(lease, encode_message(body, self._options.message_encoding),
                            f"its dequeue count exceeds MaxDequeueCount "
                            f"({self._options.max_dequeue_count})")
            return
        with lease.kept_alive():
            succeeded = self._run_function(message, body)
        if succeeded:
            lease.delete()
        elif self._poison_name is None:
            pass  # no poison queue: not released, so it comes back when its lease ends
        elif dequeue_count >= self._options.max_dequeue_count:
            self._to_poison(lease, encode_message(body, self._options.message_encoding),
                            f"it has reached MaxDequeueCount ({self._options.max_dequeue_count})")
        else:
            lease.release(after=self._options.visibility_timeout)

    def _run_function(self, message: QueueMessage, body: bytes) -> bool:
        reason = f"New queue message detected on '{self._queue_name}'."
        try:
            self._invoker.invoke(self._spec, trigger_message(message, body), reason=reason)
        except InvocationFailed:
            return False
        return True

    def _to_poison(self, lease: Lease, text: str, why: str) -> None:
        if self._poison_name is None:
            # QueueProcessor.HandlePoisonMessageAsync does nothing without a poison queue:
            # the message stays, invisible until its lease ends.
            logger.warning("Leaving message %s in queue '%s' (it has no poison queue) because %s",
                           lease.message_id, self._queue_name, why)
            return
        logger.warning("Moving message %s to queue '%s' because %s",
                       lease.message_id, self._poison_name, why)
        self._store.send(self._connection, self._poison_name, text)
        lease.delete()
        self._watcher.notify(self._poison_name)

    def _queue(self) -> QueueClient:
        return self._store.queue(self._connection, self._queue_name)

    def _report_missing(self) -> None:
        # "No such queue" is an answer: the storage account is reachable again.
        if self._outage:
            logger.info("Queue '%s' is reachable again", self._queue_name)
        if not self._missing:
            logger.info("Queue '%s' does not exist yet; the listener waits for it",
                        self._queue_name)
        self._outage, self._missing = False, True

    def _report_outage(self, error: AzureError) -> None:
        if not self._outage:
            logger.warning("Queue '%s' is unreachable; polling backs off and retries: %s",
                           self._queue_name, error)
        self._outage = True

    def _report_recovery(self) -> None:
        if self._outage:
            logger.info("Queue '%s' is reachable again", self._queue_name)
        elif self._missing:
            logger.info("Queue '%s' exists now", self._queue_name)
        self._outage = self._missing = False


def trigger_message(message: QueueMessage, body: bytes) -> TriggerMessage:
    """The `QueueMessage` the worker hands a queue-triggered function, with delivery metadata."""
    return TriggerMessage(  # type: ignore[no-untyped-call]  # untyped in azure-functions
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )
