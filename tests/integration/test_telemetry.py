"""One trace per job, and the job metrics, read with the real OpenTelemetry SDK in memory.

The functions are called as the host calls them, each with a host trace context of its own
(a child of the request for HTTP, a new root per queue and timer invocation, as
devhost/invocation.py makes them), and the job's message crosses a real Azurite queue,
encoded as the host encodes it; a failed delivery stays on the queue and comes back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from jobs.models import JobMessage
from tests.conftest import unique_name
from tests.support.functions import (
    CapturingOut,
    InvocationContext,
    Timer,
    TraceContext,
    get,
    new_root,
    post_json,
    queue_message,
    response_json,
)
from tests.support.jobs_api import EXAMPLE, URL, Functions
from tests.support.telemetry import Recorded, readers

Register = Callable[..., None]


@pytest.fixture
def recorded() -> Recorded:
    spans, reader = readers()
    return Recorded(spans, reader).start()


@pytest.fixture
def job_queue(storage_connection: str, table: TableClient) -> Iterator[QueueClient]:
    """The job queue of this test, base64-encoded as the host's."""
    queue = QueueClient.from_connection_string(
        storage_connection, unique_name("jobs"), message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy())
    queue.create_queue()
    yield queue
    queue.delete_queue()


class Host:
    """Calls the functions as the host does, each invocation with its own trace context."""

    def __init__(self, functions: Functions, queue: QueueClient) -> None:
        self.functions, self.queue = functions, queue
        self.invocations: list[TraceContext] = []

    def _context(self, name: str, trace_context: TraceContext) -> InvocationContext:
        self.invocations.append(trace_context)
        return InvocationContext(name, trace_context)

    def post(self, body: Any = None, *, key: str | None = None
             ) -> tuple[str, TraceContext, CapturingOut]:
        """POST a job; the host's context is a child of the client's traceparent."""
        client = new_root()
        request_context = TraceContext(child_of(client.trace_parent))
        out = CapturingOut()
        headers = {"traceparent": client.trace_parent}
        if key is not None:
            headers["Idempotency-Key"] = key
        response = self.functions["submit_job"](
            post_json(URL, body or EXAMPLE, headers=headers), job_message=out,
            context=self._context("submit_job", request_context))
        assert response.status_code == 202
        if out.get() is not None:
            self.queue.send_message(out.get())
        return response_json(response)["job_id"], request_context, out

    def deliver(self, *, visibility: int = 1) -> tuple[TraceContext, BaseException | None]:
        """Receive the next message and run the worker on it; a failed one stays queued."""
        message = self.queue.receive_message(visibility_timeout=visibility)
        assert message is not None
        invocation = new_root()
        delivery = queue_message(message.content, dequeue_count=message.dequeue_count,
                                 message_id=message.id)
        try:
            self.functions["process_job"](delivery, context=self._context("process_job",
                                                                          invocation))
        except Exception as e:
            return invocation, e
        self.queue.delete_message(message)
        return invocation, None

    def cancel(self, job_id: str) -> TraceContext:
        invocation = TraceContext(child_of(new_root().trace_parent))
        response = self.functions["cancel_job"](
            get(f"{URL}/{job_id}", method="DELETE", job_id=job_id),
            context=self._context("cancel_job", invocation))
        assert response.status_code == 200
        return invocation

    def poison(self, body: str) -> TraceContext:
        invocation = new_root()
        self.functions["fail_poisoned_job"](queue_message(body, message_id="poisoned-1"),
                                            context=self._context("fail_poisoned_job",
                                                                  invocation))
        return invocation

    def timer(self) -> TraceContext:
        invocation = new_root()
        self.functions["purge_expired_jobs"](Timer(), context=self._context(
            "purge_expired_jobs", invocation))
        return invocation


@pytest.fixture
def host(functions: Functions, job_queue: QueueClient, recorded: Recorded) -> Host:
    return Host(functions, job_queue)


def child_of(traceparent: str) -> str:
    """A new span id in the same trace: what the host's request activity is to its client."""
    import uuid

    version, trace_id, _, flags = traceparent.split("-")
    return f"{version}-{trace_id}-{uuid.uuid4().hex[:16]}-{flags}"


def ids(traceparent: str) -> tuple[int, int]:
    """The trace id and span id a traceparent names."""
    _, trace_id, span_id, _ = traceparent.split("-")
    return int(trace_id, 16), int(span_id, 16)


def the(spans: list[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def parent_of(span: ReadableSpan) -> tuple[int, int]:
    assert span.parent is not None, span.name
    return span.parent.trace_id, span.parent.span_id


def own(span: ReadableSpan) -> tuple[int, int]:
    context = span.get_span_context()
    assert context is not None
    return context.trace_id, context.span_id


def links(span: ReadableSpan) -> list[tuple[int, int]]:
    return [(link.context.trace_id, link.context.span_id) for link in span.links]


def traceparent_of(span: ReadableSpan) -> str:
    trace_id, span_id = own(span)
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def test_telemetry_one_trace_from_post_across_the_queue_to_completion(
    host: Host, recorded: Recorded, table: TableClient, register: Register,
) -> None:
    inner: list[int] = []

    def instrumented(job: JobMessage, progress: Any) -> dict[str, Any]:
        # A library the handler calls makes its own span with the global tracer.
        with trace.get_tracer("some.library").start_as_current_span("library call") as s:
            inner.append(s.get_span_context().span_id)
        return {"ok": True}

    register("traced", instrumented)
    job_id, request_context, out = host.post({**EXAMPLE, "job_type": "traced"})
    send = the(recorded.named("send job-requests"))
    assert send.kind is SpanKind.PRODUCER
    assert parent_of(send) == ids(request_context.trace_parent)
    # The job's context, on its message and its row, is the send span's.
    message = json.loads(out.get() or "")
    assert message["traceparent"] == traceparent_of(send)
    assert table.get_entity(job_id, "job")["traceparent"] == traceparent_of(send)
    attributes = dict(send.attributes or {})
    assert attributes["job.id"] == job_id and attributes["job.type"] == "traced"
    assert attributes["messaging.operation.type"] == "send"
    assert attributes["messaging.destination.name"] == "job-requests"
    assert attributes["job.customer.hash"] == _sha16(EXAMPLE["customer_id"])
    assert EXAMPLE["customer_id"] not in json.dumps(attributes)

    delivery, failed = host.deliver()
    assert failed is None
    process = the(recorded.named("process job-requests"))
    assert process.kind is SpanKind.CONSUMER
    assert parent_of(process) == own(send)  # the job's trace, across the queue
    assert links(process) == [ids(delivery.trace_parent)]  # and its own invocation
    attributes = dict(process.attributes or {})
    assert attributes["messaging.azure.queue.dequeue_count"] == 1
    assert attributes["messaging.message.id"]
    assert (attributes["job.id"], attributes["job.status"]) == (job_id, "completed")
    assert process.status.status_code is StatusCode.UNSET
    claim, run, finish = (the(recorded.named(n)) for n in ("claim", "run traced", "finish"))
    assert {parent_of(s) for s in (claim, run, finish)} == {own(process)}
    library = the(recorded.named("library call"))
    assert parent_of(library) == own(run) and inner == [own(library)[1]]
    # Every span of the job is in one trace, the trace of the client's request.
    trace_id = ids(request_context.trace_parent)[0]
    assert {s.context.trace_id for s in recorded.spans()} == {trace_id}


def _sha16(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_telemetry_redelivery_is_a_second_process_span_in_the_job_trace(
    host: Host, recorded: Recorded, register: Register,
) -> None:
    crashes = [RuntimeError("the handler's dependency timed out")]

    def flaky(job: JobMessage, progress: Any) -> dict[str, Any]:
        if crashes:
            raise crashes.pop()
        return {}

    register("flaky", flaky)
    host.post({**EXAMPLE, "job_type": "flaky"})
    first_invocation, failed = host.deliver()
    assert isinstance(failed, RuntimeError)
    time.sleep(1.2)  # the visibility timeout: the message comes back
    second_invocation, failed = host.deliver()
    assert failed is None
    send = the(recorded.named("send job-requests"))
    first, second = sorted(recorded.named("process job-requests"),
                           key=lambda s: s.start_time or 0)
    for span, invocation, count in ((first, first_invocation, 1), (second, second_invocation, 2)):
        assert parent_of(span) == own(send)
        assert links(span) == [ids(invocation.trace_parent)]
        assert (span.attributes or {})["messaging.azure.queue.dequeue_count"] == count
    assert (first.attributes or {})["messaging.message.id"] == (
        second.attributes or {})["messaging.message.id"]
    assert first.status.status_code is StatusCode.ERROR
    assert (first.attributes or {})["error.type"] == "RuntimeError"
    assert (first.attributes or {})["job.status"] == "running"
    assert second.status.status_code is StatusCode.UNSET
    assert (second.attributes or {})["job.status"] == "completed"
    runs = recorded.named("run flaky")
    assert sorted(parent_of(r) for r in runs) == sorted([own(first), own(second)])
    assert [e.name for e in first.events] == ["exception"]
