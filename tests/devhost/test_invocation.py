"""The invocation rules, in process: outputs only after success, context, async functions,
the worker's return rule and its shared thread pool.

The outputs here go to a recording sink; the tests over Azurite show the same rules with
real queues.
"""

from __future__ import annotations

import re
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
from devhost.host import http_routes
from devhost.http import HttpFrontDoor, IncomingRequest
from devhost.invocation import InvocationFailed, Invoker, WorkerPool
from devhost.routing import Router

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


def _traced_front_door(pool: WorkerPool, seen: list[func.Context]) -> HttpFrontDoor:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="x", methods=["POST"])
    def handler(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        seen.append(context)
        return func.HttpResponse("ok")

    return HttpFrontDoor(Router(http_routes([only_spec(app)], "api")),
                         Invoker(sinks={}, pool=pool))


def _post(door: HttpFrontDoor, headers: list[tuple[str, str]]) -> None:
    reply = door.handle(IncomingRequest("POST", "/api/x", headers, b"", "http://localhost"))
    assert reply.status == 200


CLIENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
W3C = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01")


def test_trace_context_of_http_is_a_child_of_the_request_traceparent(pool: WorkerPool) -> None:
    """ASP.NET Core's request activity is a child of a valid incoming traceparent, and the
    host passes Activity.Current's Id and TraceStateString to the worker
    (WorkerFunctionInvoker.cs, ScriptInvocationContextExtensions.GetRpcTraceContext in
    Azure/azure-functions-host)."""
    seen: list[func.Context] = []
    door = _traced_front_door(pool, seen)
    _post(door, [("traceparent", CLIENT), ("tracestate", "vendor=abc")])
    _post(door, [("Traceparent", CLIENT.replace("-01", "-00"))])
    first, second = (c.trace_context for c in seen)
    version, trace_id, span_id, flags = first.trace_parent.split("-")
    assert (version, trace_id, flags) == ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01")
    assert span_id != "00f067aa0ba902b7" and re.fullmatch("[0-9a-f]{16}", span_id)
    assert first.trace_state == "vendor=abc"
    # The child keeps the client's sampling decision.
    assert second.trace_parent.split("-")[1::2] == ["4bf92f3577b34da6a3ce929d0e0e4736", "00"]
    assert second.trace_state == "" and first.attributes == {}


@pytest.mark.parametrize("headers", [
    pytest.param([], id="none"),
    pytest.param([("traceparent", "not-a-traceparent")], id="malformed"),
    pytest.param([("traceparent", CLIENT.upper())], id="upper-case"),
    pytest.param([("traceparent", "00-" + "0" * 32 + "-00f067aa0ba902b7-01")], id="zero-trace"),
    pytest.param([("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01")],
                 id="zero-span"),
    pytest.param([("traceparent", "ff" + CLIENT[2:])], id="version-ff"),
    pytest.param([("traceparent", CLIENT), ("traceparent", CLIENT)], id="repeated"),
])
def test_trace_context_of_http_without_a_valid_traceparent_is_a_new_root(
    pool: WorkerPool, headers: list[tuple[str, str]]
) -> None:
    seen: list[func.Context] = []
    _post(_traced_front_door(pool, seen), [*headers, ("tracestate", "vendor=abc")])
    [context] = seen
    assert W3C.fullmatch(context.trace_context.trace_parent)
    assert "4bf92f3577b34da6a3ce929d0e0e4736" not in context.trace_context.trace_parent
    assert context.trace_context.trace_state == ""


def test_trace_context_of_other_triggers_is_a_new_root_each_time(pool: WorkerPool) -> None:
    """A queue or timer invocation has no current activity: the host starts a new operation
    (StartTelemetryIfFunctionInvocation in ApplicationInsightsLogger.cs, Azure/azure-webjobs-sdk),
    a new trace per invocation."""
    app = func.FunctionApp()
    seen: list[func.Context] = []

    @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    def handler(msg: func.QueueMessage, context: func.Context) -> None:
        seen.append(context)

    invoker = Invoker(sinks={}, pool=pool)
    for _ in range(3):
        invoker.invoke(only_spec(app), func.QueueMessage(body=b"x"), reason="test")
    parents = [c.trace_context.trace_parent for c in seen]
    assert all(W3C.fullmatch(p) for p in parents)
    assert len({p.split("-")[1] for p in parents}) == 3
    assert [c.trace_context.trace_state for c in seen] == ["", "", ""]
