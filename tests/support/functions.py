"""Call the app's functions the way the Functions host does, for tests."""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage

from devhost.invocation import TraceContext


class CapturingOut(func.Out[str]):
    """The queue output binding: holds what the function set, for the test to send or inspect."""

    def __init__(self) -> None:
        self.value: str | None = None

    def set(self, val: str) -> None:
        self.value = val

    def get(self) -> str | None:
        return self.value


# The local host's own: the same context the app gets under `make run`.
new_root = TraceContext.new_root


class InvocationContext(func.Context):
    """The `context` argument the host passes: its invocation id and, if given, its trace
    context (else None, which the app must take too)."""

    def __init__(self, function_name: str = "test", trace: TraceContext | None = None) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._trace = trace

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return "."

    @property
    def trace_context(self) -> Any:
        return self._trace

    @property
    def retry_context(self) -> Any:
        return None

    @property
    def thread_local_storage(self) -> Any:
        return None


class Timer(func.TimerRequest):
    """The timer argument the host passes to a timer-triggered function."""

    @property
    def past_due(self) -> bool:
        return False


def user_functions(app: func.FunctionApp) -> dict[str, Callable[..., Any]]:
    """Each function's name and a callable that invokes it as the host would, with `context`."""
    built = [builder.build(app.auth_level) for builder in app._function_builders]
    return {f.get_function_name(): _with_context(f.get_user_function()) for f in built}


def _with_context(function: Callable[..., Any]) -> Callable[..., Any]:
    if "context" not in inspect.signature(function).parameters:
        return function

    def invoke(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("context", InvocationContext(function.__name__))
        return function(*args, **kwargs)

    return invoke


def post_json(url: str, body: Any, *, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> func.HttpRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type, "Content-Length": str(len(raw)), **(headers or {})}
    return func.HttpRequest("POST", url, headers=headers, body=raw)


def get(url: str, *, method: str = "GET", **route_params: str) -> func.HttpRequest:
    return func.HttpRequest(method, url, route_params=route_params, body=b"")


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
