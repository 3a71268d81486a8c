"""Queue clients built once per connection, and the message codec the Functions host uses.

The host base64-encodes queue messages by default (`extensions.queues.messageEncoding`);
the codec here is the one place that knows it, for triggers, outputs and poison messages.
"""

from __future__ import annotations

import base64
import binascii
import threading

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import LinearRetry, QueueClient, QueueServiceClient

from devhost.errors import MessageDecodeError
from storage_connection import StorageConnection, service_client


class QueueStore:
    """Queue clients cached per connection and queue name; safe to share across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: dict[StorageConnection, QueueServiceClient] = {}
        self._queues: dict[tuple[StorageConnection, str], QueueClient] = {}

    def queue(self, connection: StorageConnection, name: str) -> QueueClient:
        """Return the client for queue `name` on the account `connection` points at."""
        with self._lock:
            key = (connection, name)
            if key not in self._queues:
                if connection not in self._services:
                    self._services[connection] = build_queue_service(connection)
                self._queues[key] = self._services[connection].get_queue_client(name)
            return self._queues[key]

    def send(self, connection: StorageConnection, name: str, text: str) -> None:
        """Add a message, creating the queue when it does not exist (the extension's
        AddMessageAndCreateIfNotExistsAsync). `text` is sent as is: encode it first."""
        client = self.queue(connection, name)
        try:
            client.send_message(text)
        except ResourceNotFoundError:
            create_queue(client)
            client.send_message(text)


def build_queue_service(connection: StorageConnection) -> QueueServiceClient:
    """The one place a queue service client is built. It encodes nothing: callers encode
    message text themselves, so the same client can copy a raw message to poison."""
    # Storage is local: fail fast and let the callers' own back-off do the waiting.
    # An identity-based connection signs in with the app's own credential code.
    return service_client(
        QueueServiceClient, connection, "queue",
        retry_policy=LinearRetry(backoff=1, retry_total=2, random_jitter_range=1),
        connection_timeout=5,
        read_timeout=30,
    )


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
