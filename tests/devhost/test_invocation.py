"""The invocation rules, in process: outputs only after success, context, async functions,
the worker's return rule and its shared thread pool.

The outputs here go to a recording sink; the tests over Azurite show the same rules with
real queues.
"""

from __future__ import annotations

import threading
import time
import typing
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devhost.catalog import Binding, FunctionSpec, discover
from devhost.invocation import InvocationFailed, Invoker, WorkerPool

REQUEST = func.HttpRequest("POST", "http://localhost/api/x", body=b"payload")


class RecordingSink:
    """An output sink that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def send(self, binding: Binding, value: Any, *, converter: str) -> None:
        self.sent.append((str(binding.get("queueName")), value))


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(4)
    yield workers
    workers.shutdown()


def only_spec(app: func.FunctionApp) -> FunctionSpec:
    [spec] = discover(app, {}, directory=Path("/app"))
    return spec


def test_output_is_sent_after_the_function_returns(pool: WorkerPool) -> None:
    app = func.FunctionApp()

    @app.route(route="x")
    @app.queue_output(arg_name="msg", queue_name="out", connection="AzureWebJobsStorage")
    def handler(req: func.HttpRequest, msg: func.Out[str]) -> func.HttpResponse:
        msg.set(req.get_body().decode())
        return func.HttpResponse("ok")

    sink = RecordingSink()
    invoker = Invoker(sinks={"queue": sink}, pool=pool)
    result = invoker.invoke(only_spec(app), REQUEST, reason="test")
    assert result.get_body() == b"ok"
    assert sink.sent == [("out", "payload")]


def test_output_is_not_sent_when_the_function_raises(pool: WorkerPool) -> None:
    app = func.FunctionApp()

    @app.route(route="x")
    @app.queue_output(arg_name="msg", queue_name="out", connection="AzureWebJobsStorage")
    def handler(req: func.HttpRequest, msg: func.Out[str]) -> func.HttpResponse:
        msg.set("half done")
        raise ValueError("broken")

    sink = RecordingSink()
    with pytest.raises(InvocationFailed) as raised:
        Invoker(sinks={"queue": sink}, pool=pool).invoke(only_spec(app), REQUEST, reason="test")
    assert sink.sent == []
    assert isinstance(raised.value.__cause__, ValueError)


def test_return_value_goes_to_a_queue_output_named_return(pool: WorkerPool) -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="m", queue_name="in", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="$return", queue_name="out", connection="AzureWebJobsStorage")
    def handler(m: func.QueueMessage) -> typing.List[str]:  # noqa: UP006 - the library's check
        return ["a", "b"]

    sink = RecordingSink()
    message = func.QueueMessage(body=b"x")
    Invoker(sinks={"queue": sink}, pool=pool).invoke(only_spec(app), message, reason="test")
    assert sink.sent == [("out", ["a", "b"])]


def test_context_is_passed_when_declared(pool: WorkerPool) -> None:
    app = func.FunctionApp()
    seen: list[func.Context] = []

    @app.route(route="x")
    def handler(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        seen.append(context)
        return func.HttpResponse("ok")

    invoker = Invoker(sinks={}, pool=pool)
    invoker.invoke(only_spec(app), REQUEST, reason="test")
    invoker.invoke(only_spec(app), REQUEST, reason="test")
    first, second = seen
    assert first.function_name == "handler"
    assert first.function_directory == "/app"
    assert uuid.UUID(first.invocation_id).version == 4
    assert first.invocation_id != second.invocation_id
    assert first.retry_context.retry_count == 0
    assert first.trace_context.trace_parent.startswith("00-")


def test_async_function_runs_to_completion(pool: WorkerPool) -> None:
    app = func.FunctionApp()

    @app.route(route="x")
    async def handler(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("from a coroutine")

    result = Invoker(sinks={}, pool=pool).invoke(only_spec(app), REQUEST, reason="test")
    assert result.get_body() == b"from a coroutine"


def test_non_none_return_without_return_binding_fails_the_invocation(pool: WorkerPool) -> None:
    # azure_functions_worker: "function ... without a $return binding returned a non-None
    # value" is raised after the call, so the invocation fails and its outputs are not sent.
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="m", queue_name="in", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="out", queue_name="out", connection="AzureWebJobsStorage")
    def handler(m: func.QueueMessage, out: func.Out[str]) -> None:
        out.set("would be sent")
        return "oops"  # type: ignore[return-value]

    sink = RecordingSink()
    with pytest.raises(InvocationFailed) as raised:
        Invoker(sinks={"queue": sink}, pool=pool).invoke(
            only_spec(app), func.QueueMessage(body=b"x"), reason="test")
    assert "without a $return binding returned a non-None value" in str(raised.value.__cause__)
    assert sink.sent == []


@pytest.mark.parametrize(("annotation", "expected"), [(str, "héllo"), (bytes, "héllo".encode())])
def test_queue_message_reaches_str_or_bytes_parameter_as_its_body(
        pool: WorkerPool, annotation: type, expected: object) -> None:
    # functions.py: a str/bytes annotation binds through the worker's "generic" binding,
    # which passes the message body rather than a QueueMessage.
    app = func.FunctionApp()
    seen: list[object] = []

    def handler(msg: Any) -> None:
        seen.append(msg)

    handler.__annotations__["msg"] = annotation
    app.queue_trigger(arg_name="msg", queue_name="in", connection="AzureWebJobsStorage")(handler)
    Invoker(sinks={}, pool=pool).invoke(
        only_spec(app), func.QueueMessage(body="héllo".encode()), reason="test")
    assert seen == [expected]


def test_sync_invocations_share_one_pool_of_the_configured_size() -> None:
    # Dispatcher (azure_functions_worker/dispatcher.py) runs every sync invocation, whatever
    # its trigger, in one ThreadPoolExecutor of PYTHON_THREADPOOL_THREAD_COUNT threads.
    app = func.FunctionApp()
    running, peak, lock = [0], [0], threading.Lock()

    @app.route(route="x")
    def handler(req: func.HttpRequest) -> func.HttpResponse:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return func.HttpResponse("ok")

    workers = WorkerPool(2)
    invoker = Invoker(sinks={}, pool=workers)
    spec = only_spec(app)
    callers = [threading.Thread(target=invoker.invoke, args=(spec, REQUEST),
                                kwargs={"reason": "test"}) for _ in range(6)]
    started = time.monotonic()
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    workers.shutdown()
    assert peak[0] == 2
    assert time.monotonic() - started >= 0.55  # six 0.2 s calls, two at a time: three rounds
