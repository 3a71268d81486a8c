"""Calling a user function the way the Python worker does, and writing its outputs afterwards.

One rule matters most: output bindings are written only after the function returns without
raising. A function that fails leaves no output behind.

Concurrency follows the worker (`Dispatcher` in azure_functions_worker/dispatcher.py): every
sync invocation, HTTP, queue and timer alike, runs in one shared thread pool of
PYTHON_THREADPOOL_THREAD_COUNT threads, and coroutine functions run on one event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import azure.functions as func
from azure.functions import _abc as azf_abc

from devhost.catalog import Binding, FunctionSpec
from devhost.worker import RETURN, check_return, trigger_argument

logger = logging.getLogger(__name__)


class OutputSink(Protocol):
    """Writes the value a function gave one output binding (a queue, for instance)."""

    def send(self, binding: Binding, value: Any, *, converter: str) -> None:
        """Write `value` to the binding's target; `converter` is the worker's binding type."""


class WorkerPool:
    """One worker process's execution: a shared thread pool for sync functions, one event loop
    for coroutine functions. Callers block until their invocation is done."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._sync = ThreadPoolExecutor(threads, thread_name_prefix="worker")
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                             name="worker-event-loop")
        self._loop_thread.start()

    def run(self, handler: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
        """Run the handler (a coroutine on the loop, else in the pool) and return its result."""
        if inspect.iscoroutinefunction(handler):
            return asyncio.run_coroutine_threadsafe(handler(**kwargs), self._loop).result()
        result = self._sync.submit(lambda: handler(**kwargs)).result()
        if inspect.iscoroutine(result):
            return asyncio.run_coroutine_threadsafe(result, self._loop).result()
        return result

    def shutdown(self) -> None:
        """Wait for running invocations, then stop the pool and the loop."""
        self._sync.shutdown(wait=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()


class InvocationFailed(Exception):
    """The function (or writing its outputs) raised; the traceback is already logged."""


class OutputValue(func.Out[Any]):
    """The `func.Out` the host hands a function for each output binding."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        """Set the value the host writes once the function succeeds."""
        self._value = val

    def get(self) -> Any:
        """Return the value set so far (None if none)."""
        return self._value


_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


class TraceContext(azf_abc.TraceContext):
    """The W3C trace context the host hands an invocation (`context.trace_context`).

    The host fills the invocation request's TraceContext from `Activity.Current`:
    `Traceparent = Activity.Current?.Id`, `Tracestate = Activity.Current?.TraceStateString`,
    `Attributes = Activity.Current?.Tags` (WorkerFunctionInvoker.cs in
    Azure/azure-functions-host, src/WebJobs.Script/Description/Workers/), null made ""
    (GetRpcTraceContext in src/WebJobs.Script.Grpc/Extensions/
    ScriptInvocationContextExtensions.cs); the Python worker hands the three on as they are
    (`_get_context` in azure_functions_worker/dispatcher.py). See `for_request` and
    `new_root` for where that activity comes from.
    """

    def __init__(self, trace_parent: str, trace_state: str = "") -> None:
        self._parent, self._state = trace_parent, trace_state

    @classmethod
    def new_root(cls) -> TraceContext:
        """A new trace: a queue or timer invocation, or one the admin API started.

        No activity is current there, so the host starts one with no parent: the
        Application Insights logger's StartOperation (StartTelemetryIfFunctionInvocation in
        Azure/azure-webjobs-sdk, src/Microsoft.Azure.WebJobs.Logging.ApplicationInsights/
        ApplicationInsightsLogger.cs), or, for the admin API, FunctionsController.Invoke's
        own Activity under SuppressFlow. Sampled, as the OpenTelemetry SDK's default
        sampler (parent-based, always on) decides for a root in the host's OpenTelemetry
        mode (OpenTelemetryConfigurationExtensions.cs sets no other sampler).
        """
        return cls(f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01")

    @classmethod
    def for_request(cls, traceparent: str | None, tracestate: str | None) -> TraceContext:
        """An HTTP invocation's: ASP.NET Core's request activity, a child of the request's
        `traceparent` when it is valid (same trace id and flags, a new span id, its
        `tracestate` kept), else a new root."""
        match = _TRACEPARENT.fullmatch((traceparent or "").strip())
        if (match is None or match.group(1) == "ff" or match.group(2) == "0" * 32
                or match.group(3) == "0" * 16):
            return cls.new_root()
        _, trace_id, _, flags = match.groups()
        return cls(f"00-{trace_id}-{uuid.uuid4().hex[:16]}-{flags}", (tracestate or "").strip())

    @property
    def trace_state(self) -> str:
        return self._state

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        # The activity's tags: the local host's activities carry none.
        return {}


class _NoRpcException(azf_abc.RpcException):
    @property
    def source(self) -> str:
        return ""

    @property
    def stack_trace(self) -> str:
        return ""

    @property
    def message(self) -> str:
        return ""


class _NoRetryContext(azf_abc.RetryContext):
    # The local host has no retry policies: every invocation is the first of its kind.
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> azf_abc.RpcException:
        return _NoRpcException()


class InvocationContext(func.Context):
    """The `context` argument: invocation id, function name and directory."""

    def __init__(self, *, invocation_id: str, function_name: str, directory: Path,
                 trace_context: TraceContext | None = None) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._directory = str(directory)
        self._local = threading.local()
        self._local.invocation_id = invocation_id
        self._trace_context = trace_context or TraceContext.new_root()

    @property
    def invocation_id(self) -> str:
        """A new uuid4 string per invocation."""
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        """Thread-local storage holding `invocation_id`, for threads the function starts."""
        # azure-functions types this as the class, but the worker hands out an instance.
        return self._local  # type: ignore[return-value]

    @property
    def function_name(self) -> str:
        """The function's name as the host knows it."""
        return self._function_name

    @property
    def function_directory(self) -> str:
        """The script root, where function_app.py lives."""
        return self._directory

    @property
    def trace_context(self) -> azf_abc.TraceContext:
        """The invocation's W3C trace context, as the host makes it (see TraceContext)."""
        return self._trace_context

    @property
    def retry_context(self) -> azf_abc.RetryContext:
        """Always the first try: the local host has no retry policies."""
        return _NoRetryContext()


class Invoker:
    """Runs one invocation: arguments in, user function, outputs written on success."""

    def __init__(self, *, sinks: Mapping[str, OutputSink], pool: WorkerPool) -> None:
        self._sinks = sinks
        self._pool = pool

    def invoke(self, spec: FunctionSpec, trigger_value: Any, *, reason: str,
               trace_context: TraceContext | None = None) -> Any:
        """Call the function; return its return value or raise InvocationFailed.

        `trace_context` is the invocation's (an HTTP request's); None starts a new trace.
        """
        invocation_id = str(uuid.uuid4())
        outs = {b.name: OutputValue() for b in self._out_parameters(spec)}
        kwargs: dict[str, Any] = {spec.trigger.name: _argument(spec, trigger_value), **outs}
        if spec.wants_context:
            kwargs["context"] = InvocationContext(
                invocation_id=invocation_id, function_name=spec.name, directory=spec.directory,
                trace_context=trace_context,
            )
        logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason,
                    invocation_id)
        started = time.monotonic()
        try:
            result = self._pool.run(spec.handler, kwargs)
            check_return(spec.name, spec.loaded, result)
            self._write_outputs(spec, outs, result)
        except Exception as e:
            logger.exception("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)",
                             spec.name, invocation_id, _elapsed_ms(started))
            raise InvocationFailed(spec.name) from e
        logger.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
                    spec.name, invocation_id, _elapsed_ms(started))
        return result

    def _out_parameters(self, spec: FunctionSpec) -> list[Binding]:
        return [b for b in spec.outputs if b.name != RETURN and b.type in self._sinks]

    def _write_outputs(self, spec: FunctionSpec, outs: Mapping[str, OutputValue],
                       result: Any) -> None:
        for binding in spec.outputs:
            sink = self._sinks.get(binding.type)
            if sink is None:
                continue  # the trigger's front door writes this one (the HTTP response)
            value = result if binding.name == RETURN else outs[binding.name].get()
            if value is not None:
                converter = spec.loaded.parameters.get(binding.name, (binding.type, None))[0]
                sink.send(binding, value, converter=converter)


def _argument(spec: FunctionSpec, trigger_value: Any) -> Any:
    # A queue message reaches a `msg: str` or `msg: bytes` parameter as its body.
    if spec.trigger.type != "queueTrigger" or not isinstance(trigger_value, func.QueueMessage):
        return trigger_value
    converter, pytype = spec.loaded.parameters.get(spec.trigger.name, ("queueTrigger", None))
    return trigger_argument(converter, pytype, trigger_value)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
