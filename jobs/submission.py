"""Accepting a job: write its `accepted` row, then hand back the queue message to send.

With an Idempotency-Key (scoped to the customer), a repeat of the same request answers with
the first job instead of making a second. The key row is written first, as a reservation
that holds the job's id, the request's fingerprint and its queue message; the job row comes
second. Only one request can create a key row, so racing requests make exactly one job. A
request that finds the key but not yet its job row (the first request is between its two
writes, or an outage cut it off there) writes the job row itself from the reservation, so
the loser of a race and the retry of a cut-off request both replay the one job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobs.errors import IdempotencyKeyReused
from jobs.lifecycle import Clock, utcnow
from jobs.logs import job_fields
from jobs.messages import decode_message, encode_message
from jobs.models import JobMessage, JobRecord, JobStatus, JobSubmissionRequest
from jobs.store import IdempotencyKey, JobStore, Versioned

log = logging.getLogger(__name__)


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
    retention: timedelta,
    idempotency_key: str | None = None,
    clock: Clock = utcnow,
) -> Submitted:
    """Store a new accepted job, or replay the job an earlier request with this key made.

    The message is encoded before any write, so a message too large for the queue leaves
    no row behind; the caller sends the message only after the rows exist.
    """
    now = clock()
    job = JobMessage(job_id=str(uuid.uuid4()), job_type=request.job_type,
                     customer_id=request.customer_id, payload=request.payload,
                     submitted_at=now, correlation_id=correlation_id)
    message = encode_message(job)
    if idempotency_key is None:
        record = accepted_record(job, key_row=None)
        store.insert(record)
        log.info("job accepted", extra=job_fields(record))
        return Submitted(record, message)
    key = IdempotencyKey(row=idempotency_row(request.customer_id, idempotency_key),
                         job_id=job.job_id, fingerprint=request_fingerprint(request),
                         message=message, created_at=now)
    if store.insert_key(key):
        return Submitted(_write_reserved(store, key).record, message)
    return _replay(store, key, stale_before=now - retention) or submit(
        store, request, correlation_id=correlation_id, retention=retention,
        idempotency_key=idempotency_key, clock=clock)


def _replay(store: JobStore, mine: IdempotencyKey, *, stale_before: datetime
            ) -> Submitted | None:
    """The job of an existing key; its message again while the job is still only accepted.

    None if the key is free again: its row is gone, or it is a reservation older than the
    retention window whose job row is gone (purged; a live reservation is never that old).
    """
    key = store.read_key(mine.row)
    if key is None:
        return None
    if key.fingerprint != mine.fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
    found = store.read(key.job_id)
    if found is None and key.created_at <= stale_before:
        store.delete_key(key.row)
        return None
    found = found or _write_reserved(store, key)
    # The first send may have been lost between the row write and the queue; the worker
    # treats a second message for the same job as a duplicate.
    resend = key.message if found.record.status is JobStatus.ACCEPTED else None
    log.info("idempotent replay", extra={**job_fields(found.record), "resent": bool(resend)})
    return Submitted(found.record, resend, replayed=True)


def _write_reserved(store: JobStore, key: IdempotencyKey) -> Versioned:
    """Write the job row a key row reserved, unless another request wrote it first."""
    record = accepted_record(decode_message(key.message.encode()), key_row=key.row)
    written = store.insert(record)
    if written is None:
        # Another request wrote it first; if it was purged since, answer with what it was.
        return store.read(record.job_id) or Versioned(record, "")
    log.info("job accepted", extra=job_fields(record))
    return written


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
    )


def idempotency_row(customer_id: str, key: str) -> str:
    """The partition key of a customer's idempotency key; hashed, as keys may hold any text."""
    digest = hashlib.sha256(f"{customer_id}\n{key}".encode()).hexdigest()
    return f"key-{digest}"


def request_fingerprint(request: JobSubmissionRequest) -> str:
    """A hash of the request body's meaning: the same JSON in any key order or spacing."""
    canonical = json.dumps(request.model_dump(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
