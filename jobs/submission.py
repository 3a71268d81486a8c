"""Accepting a job: write its `accepted` row, then hand back the queue message to send.

With an Idempotency-Key (scoped to the customer), a repeat of the same request answers with
the first job instead of making a second. The job row is written first, under a new id;
then the key row is pointed at it: created, or, if the key names a job that was purged,
replaced on the ETag it was read with. Only one request can do that, so racing requests
make exactly one job; each loser deletes the row it wrote, which no client was told of,
and replays the winner's job. A row the key may name is never deleted: once the key names
it, a replay may already have answered with it. That includes a key write whose answer was
lost, which may still be held in the network and land later: the request decides only once
the key row shows that write can no longer apply (`_point_key`).

The message goes out through the queue output binding after `submit` returns, and the host
answers the request only after it flushed that binding: WebJobs' FunctionExecutor
(Azure/azure-webjobs-sdk, src/Microsoft.Azure.WebJobs.Host/Executors/FunctionExecutor.cs,
ExecuteWithWatchersAsync) runs ProcessOutputParameters after the function returns, a flush
that throws fails the invocation, and the host's FunctionInvocationMiddleware
(Azure/azure-functions-host, src/WebJobs.Script.WebHost/Middleware/) writes the HTTP response
only after that invocation completed: a failed flush is a 500, never a 202. So a 202, first
or replayed, means the job's message was queued after its row existed.

A job row is only ever written under a new id, never from a key, so a purged job can never
come back. And a key is written only after its job row exists, so a key whose job row is
gone names a purged job: the key is free. That is read from the table, never guessed from
the clock or the retention setting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

from jobs import telemetry
from jobs.errors import IdempotencyKeyReused, JobNotFound, StorageUnavailable
from jobs.lifecycle import Clock, utcnow
from jobs.logs import job_fields
from jobs.messages import encode_message, new_job_message
from jobs.models import JOB_QUEUE, JobMessage, JobRecord, JobStatus, JobSubmissionRequest
from jobs.store import Decide, IdempotencyKey, JobStore, Versioned

log = logging.getLogger(__name__)
# How many times a key write is sent, at most, while its outcome stays unknown.
KEY_WRITE_TRIES = 3
# Each round is decided on a key row that changed since the last; past this many the
# request answers 503 and its client retries.
MAX_ROUNDS = 5
# A replay keeps a `queued_at` stamp this recent instead of writing its own, so the sweep's
# week may start this much before the last replay's send.
STAMP_KEPT_FOR = timedelta(minutes=1)


@dataclass(frozen=True)
class Submitted:
    """The job a submit answers with, and the message to queue (None: queue nothing)."""

    record: JobRecord
    message: str | None
    replayed: bool = False


def submit(
    store: JobStore,
    request: JobSubmissionRequest,
    *,
    correlation_id: str,
    idempotency_key: str | None = None,
    clock: Clock = utcnow,
    invocation: Context | None = None,
) -> Submitted:
    """Store a new accepted job, or replay the job an earlier request with this key made.

    The message is encoded before any write, so a message too large for the queue leaves
    no row behind; the caller sends the message only after the rows exist. It all happens
    in a `send` span under `invocation` (the host's trace context), whose own context the
    new job's message and row carry.
    """
    with telemetry.span(f"send {JOB_QUEUE}", kind=SpanKind.PRODUCER, parent=invocation,
                        attributes=telemetry.messaging_attributes("send")) as span:
        submitted = _submit(store, request, correlation_id=correlation_id,
                            idempotency_key=idempotency_key, clock=clock)
        _trace_submitted(submitted, span)
    return submitted


def _trace_submitted(submitted: Submitted, span: Span) -> None:
    """Name the job on the submit's span and count it; a replay links to the job's trace."""
    record = submitted.record
    span.set_attributes(telemetry.job_attributes(record))
    span.set_attribute("job.replayed", submitted.replayed)
    telemetry.submitted.add(1, {"job.type": record.job_type, "jobs.replayed": submitted.replayed})
    if not submitted.replayed:
        return
    stored = telemetry.job_context(record)
    if stored is not None:
        span.add_link(trace.get_current_span(stored).get_span_context())
    span.set_attribute("job.resent", submitted.message is not None)
    if submitted.message is not None:
        telemetry.resent.add(1, {"job.type": record.job_type})


def _submit(store: JobStore, request: JobSubmissionRequest, *, correlation_id: str,
            idempotency_key: str | None, clock: Clock) -> Submitted:
    now = clock()
    job = _new_job(request, correlation_id=correlation_id, now=now)
    message = encode_message(job)
    if idempotency_key is None:
        record = _insert_job(store, job, key_row=None).record
        log.info("job accepted", extra=job_fields(record))
        return Submitted(record, message)
    key_row = idempotency_row(request.customer_id, idempotency_key)
    fingerprint = request_fingerprint(request)
    for round_ in range(MAX_ROUNDS):
        if round_:
            # A new id each round: a delete of the last round's row that lands late (a
            # request held in the network) can never meet this round's row.
            job = _new_job(request, correlation_id=correlation_id, now=now)
            message = encode_message(job)
        fresh = IdempotencyKey(row=key_row, job_id=job.job_id, fingerprint=fingerprint,
                               message=message, created_at=now)
        submitted = _submit_keyed(store, job, fresh, now=now)
        if submitted is not None:
            return submitted
    raise StorageUnavailable("the Idempotency-Key row could not be settled; retry")


def _new_job(request: JobSubmissionRequest, *, correlation_id: str, now: datetime
             ) -> JobMessage:
    """A new job's message: a fresh nonce, the id its content names, the current span's
    trace context."""
    job = new_job_message(job_type=request.job_type, customer_id=request.customer_id,
                          payload=request.payload, submitted_at=now,
                          correlation_id=correlation_id, nonce=uuid.uuid4().hex)
    traceparent, tracestate = telemetry.current_headers()
    return replace(job, traceparent=traceparent, tracestate=tracestate)


def _submit_keyed(store: JobStore, job: JobMessage, fresh: IdempotencyKey, *, now: datetime
                  ) -> Submitted | None:
    """One round: replay the key's job, or make ours and point the key at it.

    None if the key changed meanwhile, or its job was purged: the next round decides again.
    """
    key = store.read_key(fresh.row)
    found = None if key is None else store.read(key.job_id)
    if key is not None and found is not None:
        try:
            return _replay(store, key, found, fresh=fresh, now=now)
        except JobNotFound:
            return None
    written = _insert_job(store, job, key_row=fresh.row)
    ours = _point_key(store, key, fresh)
    if ours is None:
        # The key may name our job, and a replay may have answered with it: keep the row.
        raise StorageUnavailable("could not tell whether the Idempotency-Key names the new job")
    if not ours:
        store.discard(job.job_id)  # the key names another job: no client knows this one
        return None
    log.info("job accepted", extra=job_fields(written.record))
    return Submitted(written.record, fresh.message)


def _insert_job(store: JobStore, job: JobMessage, *, key_row: str | None) -> Versioned:
    """Write a new job's row; on an unknown outcome, try to take it back, then raise."""
    record = accepted_record(job, key_row=key_row)
    try:
        # None: a retry of an insert that was applied found the row; the id is new, so ours.
        written = store.insert(record) or Versioned(record, "")
    except StorageUnavailable:
        store.discard(record.job_id)
        raise
    return written


def _point_key(store: JobStore, key: IdempotencyKey | None, fresh: IdempotencyKey
               ) -> bool | None:
    """Create the key row, or replace the free one read; whether it now names our job.

    None when that cannot be told. A write whose answer was lost may have been applied, or
    may still be held in the network and land later. So the key row read again decides only
    once our write can no longer apply: it names our job, or it moved past what our write
    expects (a row where we inserted, another ETag where we replaced). While it is still as
    our write expects, the same write is sent again, and its own answer settles it.
    """
    for _ in range(KEY_WRITE_TRIES):
        try:
            if (store.insert_key(fresh) if key is None else store.replace_key(key, fresh)):
                return True
        except StorageUnavailable:
            pass  # applied, refused or on its way: the key row says
        try:
            now_key = store.read_key(fresh.row)
        except StorageUnavailable:
            return None
        if now_key is not None and now_key.job_id == fresh.job_id:
            return True
        if not _as_read(key, now_key):
            return False
    return None


def _as_read(key: IdempotencyKey | None, now_key: IdempotencyKey | None) -> bool:
    """Whether the key row is still as it was read: a write based on that read may apply."""
    if key is None or now_key is None:
        return key is None and now_key is None
    return now_key.etag == key.etag


def _replay(store: JobStore, key: IdempotencyKey, found: Versioned, *, fresh: IdempotencyKey,
            now: datetime) -> Submitted:
    """The key's job again, and its message again while the job is still accepted.

    The host answers 202 only after it has flushed the queue output (see the module
    docstring), so a replay that is answered 202 has queued the message: an accepted job a
    client was told of always has a message on its way, however the earlier sends ended.
    A duplicate costs one message per request and nothing else: the worker's claim is
    conditional, so only one delivery runs the job.

    Before it queues the message, it stamps the row's `queued_at`, on the ETag it read: the
    sweep gives up an accepted job only once its last message has outlived the queue's time
    to live, so a replay days after a message was lost is not swept before it runs. The
    stamp is written before the send, so it can only delay a sweep, never hasten one. If
    the job left `accepted` meanwhile, the stamp is refused and nothing is queued.
    """
    if key.fingerprint != fresh.fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
    found = store.update(found.record.job_id, _stamp_queued(now), known=found)
    resend = key.message if found.record.status is JobStatus.ACCEPTED else None
    log.info("idempotent replay", extra={**job_fields(found.record), "resent": bool(resend)})
    return Submitted(found.record, resend, replayed=True)


def _stamp_queued(now: datetime) -> Decide:
    """The change that stamps an accepted job's `queued_at`; refused once the job left
    `accepted`. A stamp from the last `STAMP_KEPT_FOR` (or ahead, on another instance's
    clock) is kept as it is: racing replays then write once, not once each."""
    def decide(record: JobRecord) -> JobRecord | None:
        if record.status is not JobStatus.ACCEPTED:
            return None
        if record.queued_at is not None and record.queued_at >= now - STAMP_KEPT_FOR:
            return record
        return replace(record, queued_at=now)
    return decide


def accepted_record(message: JobMessage, *, key_row: str | None) -> JobRecord:
    """The `accepted` row of a job, built from its queue message."""
    return JobRecord(
        job_id=message.job_id,
        status=JobStatus.ACCEPTED,
        job_type=message.job_type,
        customer_id=message.customer_id,
        submitted_at=message.submitted_at,
        updated_at=message.submitted_at,
        correlation_id=message.correlation_id,
        idempotency_row=key_row,
        traceparent=message.traceparent,
        tracestate=message.tracestate,
    )


def idempotency_row(customer_id: str, key: str) -> str:
    """The partition key of a customer's idempotency key; hashed, as keys may hold any text."""
    digest = hashlib.sha256(f"{customer_id}\n{key}".encode()).hexdigest()
    return f"key-{digest}"


def request_fingerprint(request: JobSubmissionRequest) -> str:
    """A hash of the request body's meaning: the same JSON in any key order or spacing."""
    canonical = json.dumps(request.model_dump(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
