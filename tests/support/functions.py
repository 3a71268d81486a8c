"""Call the app's functions the way the Functions host does, for tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage


class CapturingOut(func.Out[str]):
    """The queue output binding: holds what the function set, for the test to send or inspect."""

    def __init__(self) -> None:
        self.value: str | None = None

    def set(self, val: str) -> None:
        self.value = val

    def get(self) -> str | None:
        return self.value


def user_functions(app: func.FunctionApp) -> dict[str, Callable[..., Any]]:
    """Each function's name and the callable the host would invoke."""
    built = [builder.build(app.auth_level) for builder in app._function_builders]
    return {f.get_function_name(): f.get_user_function() for f in built}


def post_json(url: str, body: Any, *, content_type: str = "application/json") -> func.HttpRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type, "Content-Length": str(len(raw))}
    return func.HttpRequest("POST", url, headers=headers, body=raw)


def get(url: str, **route_params: str) -> func.HttpRequest:
    return func.HttpRequest("GET", url, route_params=route_params, body=b"")


def queue_message(body: str | bytes, *, dequeue_count: int = 1, message_id: str | None = None
                  ) -> QueueMessage:
    """A queue delivery as the host hands it to a queue-triggered function."""
    now = datetime.now(UTC)
    return QueueMessage(
        id=message_id or str(uuid.uuid4()),
        body=body if isinstance(body, bytes) else body.encode(),
        dequeue_count=dequeue_count,
        expiration_time=None,
        insertion_time=now,
        time_next_visible=now,
        pop_receipt="pop",
    )


def response_json(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())
