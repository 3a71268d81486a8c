"""Traces and metrics of jobs, with the OpenTelemetry API alone.

The app configures no SDK here: with none set up (jobs.exporters decides), every span and
instrument below is the API's no-op, and a span started under a remote parent simply hands
that parent on, so the W3C trace context still travels from the request to the worker.

The tracer and the instruments are the API's proxies, made at import: they bind to the
providers whenever an SDK is installed, before or after this module is imported.

One job, one trace: the submit's `send job-requests` span is a child of the host's
invocation context; its W3C `traceparent` and `tracestate` go in the queue message and on
the job's row; every delivery's `process job-requests` span, and the poison handler, a
cancel, the sweep and the purge where they act on one job, are children of that stored
context, each linked to its own host invocation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from jobs.models import JOB_QUEUE

if TYPE_CHECKING:
    from jobs.models import JobMessage, JobRecord

#: The instrumentation scope: the tracer's and the meter's name.
SCOPE = "jobs"
# OpenTelemetry registers no `messaging.system` value for Azure Storage Queues (it has
# `servicebus` and `eventhubs`); this name follows their pattern.
MESSAGING_SYSTEM = "azure.storage.queue"
# W3C Trace Context: a vendor SHOULD propagate at least 512 characters of tracestate and
# MAY drop it past that. Dropping a longer one keeps the message within the queue's limit.
MAX_TRACESTATE = 512

_propagator = TraceContextTextMapPropagator()
_tracer = trace.get_tracer(SCOPE)
_meter = metrics.get_meter(SCOPE)

submitted = _meter.create_counter(
    "jobs.submitted", unit="{job}", description="Jobs accepted by a submit, replays included")
finished = _meter.create_counter(
    "jobs.finished", unit="{job}", description="Jobs that reached a terminal status")
queue_wait = _meter.create_histogram(
    "jobs.queue.wait", unit="s", description="From a job's submit to its handler's first start")
run_duration = _meter.create_histogram(
    "jobs.run.duration", unit="s", description="From a handler's start to its job's write")
attempts = _meter.create_counter(
    "jobs.attempts", unit="{delivery}", description="Queue deliveries that reached their job")
resent = _meter.create_counter(
    "jobs.resent", unit="{message}", description="Job messages queued again by a replay")
dropped = _meter.create_counter(
    "jobs.messages.dropped", unit="{message}", description="Queue messages acted on by nothing")
swept = _meter.create_counter(
    "jobs.swept", unit="{job}", description="Abandoned jobs failed by the sweep")
purged = _meter.create_counter(
    "jobs.purged", unit="{job}", description="Expired jobs deleted by the purge")
oldest_accepted_age = _meter.create_gauge(
    "jobs.accepted.oldest_age", unit="s",
    description="Age of the oldest accepted job, measured by the timer (0: none)")


def extract(traceparent: str | None, tracestate: str | None = None) -> Context | None:
    """The remote context a W3C traceparent names; None when it is absent or malformed."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    context = _propagator.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def current_headers() -> tuple[str, str]:
    """The current span's W3C `traceparent` and `tracestate` ("" when there is no span)."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    tracestate = carrier.get("tracestate", "")
    return carrier.get("traceparent", ""), tracestate if len(tracestate) <= MAX_TRACESTATE else ""


def job_context(job: JobMessage | JobRecord) -> Context | None:
    """The context a job's submit stored with it (None for a job stored without one)."""
    return extract(job.traceparent, job.tracestate)


def customer_hash(customer_id: str) -> str:
    """A stable, short stand-in for a customer id on spans.

    Traces are read widely and kept by the trace store's own retention, and a customer id
    may identify a person: spans carry the first 16 hex digits of its SHA-256, enough to
    group and count by customer, while the logs keep the id itself for a lookup. Unsalted,
    it hides the id from a reader, not from someone who can guess ids and hash them.
    """
    return hashlib.sha256(customer_id.encode()).hexdigest()[:16]


def job_attributes(job: JobMessage | JobRecord) -> dict[str, AttributeValue]:
    """The attributes that name a job on a span."""
    attributes: dict[str, AttributeValue] = {
        "job.id": job.job_id, "job.type": job.job_type,
        "job.customer.hash": customer_hash(job.customer_id)}
    if job.correlation_id:
        attributes["job.correlation_id"] = job.correlation_id
    return attributes


def messaging_attributes(operation: str, *, queue: str = JOB_QUEUE, message_id: str = "",
                         dequeue_count: int | None = None) -> dict[str, AttributeValue]:
    """The messaging semantic conventions' attributes of a send or a delivery."""
    attributes: dict[str, AttributeValue] = {
        "messaging.system": MESSAGING_SYSTEM, "messaging.destination.name": queue,
        "messaging.operation.type": operation}
    if message_id:
        attributes["messaging.message.id"] = message_id
    if dequeue_count is not None:
        attributes["messaging.azure.queue.dequeue_count"] = dequeue_count
    return attributes


@contextmanager
def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, parent: Context | None = None,
         links: Sequence[Context | None] = (),
         attributes: Mapping[str, AttributeValue] | None = None,
         benign: tuple[type[BaseException], ...] = ()) -> Iterator[Span]:
    """A current span under `parent` (else the current context), linked to each of `links`.

    An exception that leaves it, unless `benign`, is recorded on it and marks it failed
    with the exception's type (unless a status was set already).
    """
    linked = [Link(trace.get_current_span(c).get_span_context()) for c in links if c is not None]
    with _tracer.start_as_current_span(
            name, context=parent, kind=kind, links=linked, attributes=attributes,
            record_exception=False, set_status_on_exception=False) as current:
        try:
            yield current
        except benign:
            raise
        except BaseException as e:
            if current.is_recording():
                current.record_exception(e)
                # The API's Span has no status getter; the SDK's has (None: not an SDK span).
                status = getattr(current, "status", None)
                if status is None or status.status_code is StatusCode.UNSET:
                    fail(current, type(e).__qualname__, description=str(e))
            raise


def joined(job: JobMessage | JobRecord, invocation: Context | None) -> tuple[
        Context | None, list[Context | None]]:
    """The parent and links of a span that acts on `job` from another invocation.

    The job's own trace is the parent, linked to the invocation; a job stored without a
    context gets the invocation as its parent.
    """
    stored = job_context(job)
    if stored is None:
        return invocation, []
    return stored, [invocation]


def fail(current: Span, error_type: str, *, code: str | None = None, description: str = ""
         ) -> None:
    """Mark a span failed: status ERROR, `error.type`, and the job's error code if any."""
    current.set_status(Status(StatusCode.ERROR, description or None))
    current.set_attribute("error.type", error_type)
    if code is not None:
        current.set_attribute("job.error.code", code)


def record_finished(record: JobRecord, current: Span | None = None) -> None:
    """Count a job that reached its terminal status; mark `current` failed if it failed."""
    labels: dict[str, AttributeValue] = {"job.type": record.job_type,
                                         "job.status": record.status.value}
    if record.error is not None:
        labels["job.error.code"] = record.error.code
        if current is not None:
            fail(current, record.error.code, code=record.error.code,
                 description=record.error.message)
    if current is not None:
        current.set_attribute("job.status", record.status.value)
    finished.add(1, labels)
