"""Accepting a job: write its `accepted` row, then hand back the queue message to send.

With an Idempotency-Key (scoped to the customer), a repeat of the same request answers with
the first job instead of making a second. The job row is written before the key row, so a
key always points at a job; two racing requests both write a job, but only one key row can
be created, and the loser deletes its own job and replays the winner's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass

from jobs.errors import IdempotencyKeyReused
from jobs.lifecycle import Clock, utcnow
from jobs.logs import job_fields
from jobs.messages import encode_message
from jobs.models import JobMessage, JobRecord, JobStatus, JobSubmissionRequest
from jobs.store import IdempotencyKey, JobStore

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
    idempotency_key: str | None = None,
    clock: Clock = utcnow,
) -> Submitted:
    """Store a new accepted job, or replay the job an earlier request with this key made.

    The message is encoded before any write, so a message too large for the queue leaves
    no row behind; the caller sends the message only after the rows exist.
    """
    key_row = idempotency_row(request.customer_id, idempotency_key) if idempotency_key else None
    fingerprint = request_fingerprint(request)
    if key_row is not None:
        earlier = _replay(store, key_row, fingerprint)
        if earlier is not None:
            return earlier
    record, message = _new_job(request, correlation_id, key_row, clock)
    store.insert(record)
    if key_row is not None and not store.insert_key(
        IdempotencyKey(key_row, record.job_id, fingerprint, message)
    ):
        store.delete(record.job_id)
        return _replay(store, key_row, fingerprint) or submit(
            store, request, correlation_id=correlation_id, idempotency_key=idempotency_key,
            clock=clock)
    log.info("job accepted", extra=job_fields(record))
    return Submitted(record, message)


def _new_job(
    request: JobSubmissionRequest, correlation_id: str, key_row: str | None, clock: Clock
) -> tuple[JobRecord, str]:
    now = clock()
    job_id = str(uuid.uuid4())
    message = encode_message(JobMessage(
        job_id, request.job_type, request.customer_id, request.payload, now, correlation_id))
    record = JobRecord(
        job_id=job_id,
        status=JobStatus.ACCEPTED,
        job_type=request.job_type,
        customer_id=request.customer_id,
        submitted_at=now,
        updated_at=now,
        correlation_id=correlation_id,
        idempotency_row=key_row,
    )
    return record, message


def _replay(store: JobStore, key_row: str, fingerprint: str) -> Submitted | None:
    """The earlier job of this key; its message again while it is still only accepted."""
    key = store.read_key(key_row)
    if key is None:
        return None
    if key.fingerprint != fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
    found = store.read(key.job_id)
    if found is None:
        # The job was purged but its key row not yet: the key is free again.
        store.delete_key(key_row)
        return None
    # The first send may have been lost between the row write and the queue; the worker
    # treats a second message for the same job as a duplicate.
    resend = key.message if found.record.status is JobStatus.ACCEPTED else None
    log.info("idempotent replay", extra={**job_fields(found.record), "resent": bool(resend)})
    return Submitted(found.record, resend, replayed=True)


def idempotency_row(customer_id: str, key: str) -> str:
    """The partition key of a customer's idempotency key; hashed, as keys may hold any text."""
    digest = hashlib.sha256(f"{customer_id}\n{key}".encode()).hexdigest()
    return f"key-{digest}"


def request_fingerprint(request: JobSubmissionRequest) -> str:
    """A hash of the request body's meaning: the same JSON in any key order or spacing."""
    canonical = json.dumps(request.model_dump(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
