"""Queue clients built once per connection, and the message codec the Functions host uses.

The host base64-encodes queue messages by default (`extensions.queues.messageEncoding`);
the codec here is the one place that knows it, for triggers, outputs and poison messages.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Iterable
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import LinearRetry, QueueClient, QueueServiceClient

from devhost.errors import MessageDecodeError
from jobs.connection import StorageConnection, service_client


class QueueStore:
    """Queue clients cached per connection and queue name; safe to share across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: dict[StorageConnection, QueueServiceClient] = {}
        self._queues: dict[tuple[StorageConnection, str], QueueClient] = {}
        self._created: set[tuple[StorageConnection, str]] = set()

    def queue(self, connection: StorageConnection, name: str) -> QueueClient:
        """Return the client for queue `name` on the account `connection` points at."""
        with self._lock:
            key = (connection, name)
            if key not in self._queues:
                self._queues[key] = self._service(connection).get_queue_client(name)
            return self._queues[key]

    def ensure_exists(self, connection: StorageConnection, name: str) -> QueueClient:
        """Return the queue's client, creating the queue first if this process has not yet."""
        client = self.queue(connection, name)
        if (connection, name) not in self._created:
            create_queue(client)
            with self._lock:
                self._created.add((connection, name))
        return client

    def forget(self, connection: StorageConnection, name: str) -> None:
        """Forget that the queue exists (it was deleted, or the emulator restarted)."""
        with self._lock:
            self._created.discard((connection, name))

    def _service(self, connection: StorageConnection) -> QueueServiceClient:
        if connection not in self._services:
            # Storage is local: fail fast and let the callers' own back-off do the waiting.
            # An identity-based connection signs in with the app's own credential code.
            self._services[connection] = service_client(
                QueueServiceClient, connection, "queue",
                retry_policy=LinearRetry(backoff=1, retry_total=2, random_jitter_range=1),
                connection_timeout=5,
                read_timeout=30,
            )
        return self._services[connection]


def create_queue(client: QueueClient) -> None:
    """Create the queue unless it already exists."""
    try:
        client.create_queue()
    except ResourceExistsError:
        pass


def encode_message(body: bytes, encoding: str) -> str:
    """Return the queue message text for `body` under `encoding` (`base64` or `none`)."""
    if encoding == "base64":
        return base64.b64encode(body).decode("ascii")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError("binary output needs messageEncoding base64") from e


def decode_message(text: str, encoding: str) -> bytes:
    """Return the body of a queue message's text; raise MessageDecodeError if it is invalid."""
    if encoding != "base64":
        return text.encode("utf-8")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise MessageDecodeError(f"message is not valid base64: {e}") from e


def message_bodies(value: Any) -> list[bytes]:
    """Return the message bodies an output value stands for: one, or one per list item."""
    items: Iterable[Any] = value if isinstance(value, list | tuple) else [value]
    return [_body(item) for item in items]


def _body(item: Any) -> bytes:
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, bytes | bytearray):
        return bytes(item)
    if isinstance(item, func.QueueMessage):
        return item.get_body()
    raise TypeError(f"a queue output takes str, bytes or a list of them, not {type(item).__name__}")
