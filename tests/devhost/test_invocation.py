"""The invocation rules, in process: outputs only after success, context, async functions.

The outputs here go to a recording sink; the tests over Azurite show the same rules with
real queues.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devhost.catalog import Binding, FunctionSpec, discover
from devhost.invocation import InvocationFailed, Invoker

REQUEST = func.HttpRequest("POST", "http://localhost/api/x", body=b"payload")


class RecordingSink:
    """An output sink that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def send(self, binding: Binding, value: Any) -> None:
        self.sent.append((str(binding.get("queueName")), value))


def only_spec(app: func.FunctionApp) -> FunctionSpec:
    [spec] = discover(app, {}, directory=Path("/app"))
    return spec


def test_output_is_sent_after_the_function_returns() -> None:
    app = func.FunctionApp()

    @app.route(route="x")
    @app.queue_output(arg_name="msg", queue_name="out", connection="AzureWebJobsStorage")
    def handler(req: func.HttpRequest, msg: func.Out[str]) -> func.HttpResponse:
        msg.set(req.get_body().decode())
        return func.HttpResponse("ok")

    sink = RecordingSink()
    result = Invoker(sinks={"queue": sink}).invoke(only_spec(app), REQUEST, reason="test")
    assert result.get_body() == b"ok"
    assert sink.sent == [("out", "payload")]


def test_output_is_not_sent_when_the_function_raises() -> None:
    app = func.FunctionApp()

    @app.route(route="x")
    @app.queue_output(arg_name="msg", queue_name="out", connection="AzureWebJobsStorage")
    def handler(req: func.HttpRequest, msg: func.Out[str]) -> func.HttpResponse:
        msg.set("half done")
        raise ValueError("broken")

    sink = RecordingSink()
    with pytest.raises(InvocationFailed) as raised:
        Invoker(sinks={"queue": sink}).invoke(only_spec(app), REQUEST, reason="test")
    assert sink.sent == []
    assert isinstance(raised.value.__cause__, ValueError)


def test_return_value_goes_to_a_queue_output_named_return() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="m", queue_name="in", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="$return", queue_name="out", connection="AzureWebJobsStorage")
    def handler(m: func.QueueMessage) -> list[str]:
        return ["a", "b"]

    sink = RecordingSink()
    message = func.QueueMessage(body=b"x")
    Invoker(sinks={"queue": sink}).invoke(only_spec(app), message, reason="test")
    assert sink.sent == [("out", ["a", "b"])]


def test_context_is_passed_when_declared() -> None:
    app = func.FunctionApp()
    seen: list[func.Context] = []

    @app.route(route="x")
    def handler(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        seen.append(context)
        return func.HttpResponse("ok")

    invoker = Invoker(sinks={})
    invoker.invoke(only_spec(app), REQUEST, reason="test")
    invoker.invoke(only_spec(app), REQUEST, reason="test")
    first, second = seen
    assert first.function_name == "handler"
    assert first.function_directory == "/app"
    assert uuid.UUID(first.invocation_id).version == 4
    assert first.invocation_id != second.invocation_id
    assert first.retry_context.retry_count == 0
    assert first.trace_context.trace_parent.startswith("00-")


def test_async_function_runs_to_completion() -> None:
    app = func.FunctionApp()

    @app.route(route="x")
    async def handler(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("from a coroutine")

    result = Invoker(sinks={}).invoke(only_spec(app), REQUEST, reason="test")
    assert result.get_body() == b"from a coroutine"
