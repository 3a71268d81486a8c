"""One trace per job, and the job metrics, read with the real OpenTelemetry SDK in memory.

The functions are called as the host calls them, each with a host trace context of its own
(a child of the request for HTTP, a new root per queue and timer invocation, as
devhost/invocation.py makes them), and the job's message crosses a real Azurite queue,
encoded as the host encodes it; a failed delivery stays on the queue and comes back.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableClient, UpdateMode
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from jobs.errors import JobFailed
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
from tests.support.jobs_api import EXAMPLE, URL, Functions, status
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


def test_telemetry_idempotent_replay_sends_in_its_own_trace_linked_to_the_job(
    host: Host, recorded: Recorded, table: TableClient,
) -> None:
    job_id, first_request, first_out = host.post(key="replay-1")
    again, second_request, second_out = host.post(key="replay-1")
    assert again == job_id
    first_send, second_send = sorted(recorded.named("send job-requests"),
                                     key=lambda s: s.start_time or 0)
    assert parent_of(first_send) == ids(first_request.trace_parent)
    # The replay's send span is in the replaying request's trace, linked to the job's.
    assert parent_of(second_send) == ids(second_request.trace_parent)
    assert links(second_send) == [own(first_send)]
    attributes = dict(second_send.attributes or {})
    assert (attributes["job.id"], attributes["job.replayed"], attributes["job.resent"]) == (
        job_id, True, True)
    # The message queued again is the job's own, with the job's trace context.
    assert second_out.get() == first_out.get()
    assert table.get_entity(job_id, "job")["traceparent"] == traceparent_of(first_send)
    host.deliver()
    host.deliver()  # the resent copy finds the job finished
    processes = recorded.named("process job-requests")
    assert [parent_of(p) for p in processes] == [own(first_send)] * 2
    assert sorted((p.attributes or {})["job.outcome"] for p in processes) == [
        "completed", "skipped"]


def test_telemetry_cancel_joins_the_job_trace_and_the_late_delivery_too(
    host: Host, recorded: Recorded,
) -> None:
    job_id, _, _ = host.post()
    cancel_invocation = host.cancel(job_id)
    host.deliver()
    send = the(recorded.named("send job-requests"))
    cancel = the(recorded.named("cancel job"))
    assert cancel.kind is SpanKind.INTERNAL
    assert parent_of(cancel) == own(send)
    assert links(cancel) == [ids(cancel_invocation.trace_parent)]
    assert (cancel.attributes or {})["job.status"] == "cancelled"
    process = the(recorded.named("process job-requests"))
    assert parent_of(process) == own(send)
    assert ((process.attributes or {})["job.outcome"], (process.attributes or {})["job.status"]
            ) == ("skipped", "cancelled")
    assert recorded.named("run thumbnail") == []


def test_telemetry_poisoned_job_fails_in_its_trace(
    host: Host, recorded: Recorded, register: Register,
) -> None:
    def crashes(job: JobMessage, progress: Any) -> dict[str, Any]:
        raise RuntimeError("the worker process died")

    register("crashes", crashes)
    job_id, _, out = host.post({**EXAMPLE, "job_type": "crashes"})
    host.deliver()  # fails; the host then moves the message to the poison queue
    poison_invocation = host.poison(out.get() or "")
    send = the(recorded.named("send job-requests"))
    poison = the(recorded.named("poison job-requests"))
    assert poison.kind is SpanKind.CONSUMER
    assert parent_of(poison) == own(send)
    assert links(poison) == [ids(poison_invocation.trace_parent)]
    attributes = dict(poison.attributes or {})
    assert attributes["messaging.destination.name"] == "job-requests-poison"
    assert poison.status.status_code is StatusCode.ERROR
    assert (attributes["error.type"], attributes["job.error.code"], attributes["job.status"]
            ) == ("poisoned", "poisoned", "failed")


def test_telemetry_last_try_fails_the_process_span_with_the_job_error(
    host: Host, recorded: Recorded, register: Register, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import function_app

    monkeypatch.setattr(function_app, "settings", dataclasses.replace(
        function_app.settings, max_dequeue_count=1))

    def refuses(job: JobMessage, progress: Any) -> dict[str, Any]:
        raise JobFailed("bad_input", "the asset is not an image")

    register("refuses", refuses)
    host.post({**EXAMPLE, "job_type": "refuses"})
    host.deliver()
    process = the(recorded.named("process job-requests"))
    run = the(recorded.named("run refuses"))
    for span in (process, run):
        assert span.status.status_code is StatusCode.ERROR
        assert ((span.attributes or {})["error.type"], (span.attributes or {})["job.error.code"]
                ) == ("bad_input", "bad_input")
    assert (process.attributes or {})["job.status"] == "failed"


def test_telemetry_sweep_and_purge_join_each_job_trace(
    host: Host, recorded: Recorded, table: TableClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import function_app

    completed_id, _, _ = host.post()
    host.deliver()  # completes: purged once expired
    abandoned_id, _, _ = host.post()  # never delivered: abandoned after the message's life
    sends = {(s.attributes or {})["job.id"]: s for s in recorded.named("send job-requests")}
    later = datetime.now(UTC) + timedelta(days=30)
    monkeypatch.setattr(function_app, "clock", lambda: later)
    timer_invocation = host.timer()
    sweep = the(recorded.named("sweep job"))
    assert parent_of(sweep) == own(sends[abandoned_id])
    assert links(sweep) == [ids(timer_invocation.trace_parent)]
    assert sweep.status.status_code is StatusCode.ERROR
    assert (sweep.attributes or {})["job.error.code"] == "abandoned"
    purges = {(s.attributes or {})["job.id"]: s for s in recorded.named("purge job")}
    assert set(purges) == {completed_id}  # the swept job expires a retention later
    assert parent_of(purges[completed_id]) == own(sends[completed_id])
    assert (purges[completed_id].attributes or {})["job.purged"] is True
    # Measured after the sweep: the job it failed no longer waits.
    [age] = recorded.metrics()["jobs.accepted.oldest_age"]
    assert age.value == 0.0
    assert recorded.total("jobs.swept", from_status="accepted") == 1
    assert recorded.total("jobs.purged") == 1
    assert recorded.total("jobs.finished", **{"job.status": "failed",
                                              "job.error.code": "abandoned"}) == 1


def test_telemetry_metrics_after_a_known_set_of_jobs(
    host: Host, recorded: Recorded, register: Register, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import function_app

    def refuses(job: JobMessage, progress: Any) -> dict[str, Any]:
        raise JobFailed("bad_input", "the asset is not an image")

    register("refuses", refuses)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    now = [start]
    monkeypatch.setattr(function_app, "clock", lambda: now[0])
    first, _, _ = host.post(key="metrics-1")
    assert host.post(key="metrics-1")[0] == first  # a replay: queued again
    host.post()
    host.post({**EXAMPLE, "job_type": "refuses"})
    cancelled, _, _ = host.post()
    host.cancel(cancelled)
    now[0] = start + timedelta(seconds=10)
    host.post()  # left accepted: the oldest job waiting, younger than the finished ones
    now[0] = start + timedelta(seconds=12.5)
    for _ in range(5):  # the first job, its resent copy, the second, the refused, the cancelled
        host.deliver()
    host.functions["process_job"](queue_message("not a job message"))
    forged = json.loads(host.queue.peek_messages()[0].content)
    host.functions["process_job"](queue_message(json.dumps({**forged, "payload": {"x": 1}})))
    now[0] = start + timedelta(seconds=90)
    host.timer()

    thumbnail, refused = {"job.type": "thumbnail"}, {"job.type": "refuses"}
    assert recorded.total("jobs.submitted", **thumbnail, **{"jobs.replayed": False}) == 4
    assert recorded.total("jobs.submitted", **thumbnail, **{"jobs.replayed": True}) == 1
    assert recorded.total("jobs.submitted", **refused) == 1
    assert recorded.total("jobs.resent", **thumbnail) == 1
    # Deliveries that reached their job: the resent copy and the cancelled job's included.
    assert recorded.total("jobs.attempts", **thumbnail) == 4
    assert recorded.total("jobs.attempts", **refused) == 1
    assert recorded.total("jobs.finished", **thumbnail, **{"job.status": "completed"}) == 2
    assert recorded.total("jobs.finished", **thumbnail, **{"job.status": "cancelled"}) == 1
    assert recorded.total("jobs.finished", **refused, **{
        "job.status": "failed", "job.error.code": "bad_input"}) == 1
    assert recorded.total("jobs.finished") == 4
    assert recorded.total("jobs.messages.dropped", reason="malformed") == 1
    assert recorded.total("jobs.messages.dropped", reason="digest_mismatch") == 1
    assert recorded.total("jobs.messages.dropped") == 2
    waits = {p.attributes["job.type"]: (p.count, p.total)
             for p in recorded.metrics()["jobs.queue.wait"]}
    assert waits == {"thumbnail": (2, 25.0), "refuses": (1, 12.5)}
    runs = {(p.attributes["job.type"], p.attributes["job.status"]): p.count
            for p in recorded.metrics()["jobs.run.duration"]}
    assert runs == {("thumbnail", "completed"): 2, ("refuses", "failed"): 1}
    [age] = recorded.metrics()["jobs.accepted.oldest_age"]
    assert age.value == 80.0
    assert "jobs.swept" not in recorded.metrics() and "jobs.purged" not in recorded.metrics()
    assert all("customer" not in name for points in recorded.metrics().values()
               for p in points for name in p.attributes)


def test_telemetry_rows_and_messages_from_before_trace_context_still_work(
    host: Host, recorded: Recorded, table: TableClient,
) -> None:
    job_id, _, out = host.post()
    message = json.loads(out.get() or "")
    entity = table.get_entity(job_id, "job")
    for field in ("traceparent", "tracestate"):
        message.pop(field, None)
        entity.pop(field, None)
    table.upsert_entity(entity, mode=UpdateMode.REPLACE)
    assert "traceparent" not in table.get_entity(job_id, "job")
    host.queue.clear_messages()
    host.queue.send_message(json.dumps(message))
    invocation, failed = host.deliver()
    assert failed is None
    process = the(recorded.named("process job-requests"))
    # No stored context: the delivery's own invocation is the parent, and nothing is linked.
    assert parent_of(process) == ids(invocation.trace_parent)
    assert links(process) == []
    assert (process.attributes or {})["job.status"] == "completed"
    assert "traceparent" not in table.get_entity(job_id, "job")
    code, view = status(host.functions, job_id)  # the row is read, not only written
    assert (code, view["status"]) == (200, "completed")


def test_telemetry_a_changed_traceparent_never_reaches_the_row(
    host: Host, recorded: Recorded, table: TableClient,
) -> None:
    """The trace context is outside the job id's digest: a message whose context was
    changed still names its job, so it acts as an exact replay would, but its context is
    never written to the row; only the spans of that delivery go elsewhere."""
    job_id, _, out = host.post()
    stored = table.get_entity(job_id, "job")["traceparent"]
    elsewhere = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    host.queue.clear_messages()
    host.queue.send_message(json.dumps({**json.loads(out.get() or ""),
                                        "traceparent": elsewhere}))
    host.deliver()
    row = table.get_entity(job_id, "job")
    assert (row["status"], row["traceparent"]) == ("completed", stored)
    process = the(recorded.named("process job-requests"))
    assert parent_of(process) == ids(elsewhere)


# W3C tracestate: up to 32 list members, each value up to 256 characters.
@pytest.mark.parametrize("tracestate", [
    pytest.param("", id="none"),
    pytest.param(",".join(f"k{i:02}={'x' * 41}" for i in range(11)), id="505-characters"),
    pytest.param(",".join(f"k{i:02}={'x' * 250}" for i in range(32)), id="longer"),
])
def test_telemetry_the_largest_body_with_any_trace_context_fits_a_queue_message(
    functions: Functions, table: TableClient, job_queue: QueueClient, tracestate: str,
) -> None:
    from function_app import MAX_BODY_BYTES

    longest = {**EXAMPLE, "customer_id": "c" * 128}
    skeleton = json.dumps({**longest, "payload": {"blob": ""}}).encode()
    body = {**longest, "payload": {"blob": "\u00e9" * ((MAX_BODY_BYTES - len(skeleton)) // 2)}}
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert MAX_BODY_BYTES - 2 <= len(raw) <= MAX_BODY_BYTES
    out = CapturingOut()
    context = InvocationContext("submit_job", TraceContext(new_root().trace_parent, tracestate))
    response = functions["submit_job"](
        post_json(URL, raw, headers={"X-Correlation-Id": "x" * 128}), job_message=out,
        context=context)
    assert response.status_code == 202
    message = json.loads(out.get() or "")
    # Kept while W3C asks it to be propagated (512 characters), dropped past that.
    assert message.get("tracestate", "") == (tracestate if len(tracestate) <= 512 else "")
    job_queue.send_message(out.get())  # Azure and Azurite refuse a message over 64 KiB encoded
