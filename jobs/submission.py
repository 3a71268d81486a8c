"""Accepting a job: write its `accepted` row, then hand back the queue message to send.

With an Idempotency-Key (scoped to the customer), a repeat of the same request answers with
the first job instead of making a second. The key row is written first, as a reservation
that holds the job's id, the request's fingerprint and its queue message; the job row comes
second. Only one request can create a key row, so racing requests make exactly one job.

A request that finds the key but not its job row writes the job row from the reservation:
the first request is between its two writes, or an outage cut it off there. It can tell
that from a purged job, because the purge retires the key before it deletes the job, and
every key change is conditional on the ETag it was decided from. A retired key is free: the
next request with it makes a new job once the purged job's row is gone, and the purged job
is never written again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from jobs.errors import IdempotencyKeyReused, StorageUnavailable
from jobs.lifecycle import Clock, utcnow
from jobs.logs import job_fields
from jobs.messages import decode_message, encode_message
from jobs.models import JobMessage, JobRecord, JobStatus, JobSubmissionRequest
from jobs.store import IdempotencyKey, JobStore

log = logging.getLogger(__name__)
#: A replay queues the message of a still-accepted job again at most this often: the first
#: send may have been lost, but a client retrying in a loop must not flood the queue.
RESEND_INTERVAL = timedelta(seconds=30)
# Each round is decided on a key row that changed since the last; past this many the
# request answers 503 and its client retries.
MAX_ROUNDS = 5


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
    now = clock()
    job = JobMessage(job_id=str(uuid.uuid4()), job_type=request.job_type,
                     customer_id=request.customer_id, payload=request.payload,
                     submitted_at=now, correlation_id=correlation_id,
                     token=secrets.token_urlsafe(16))
    message = encode_message(job)
    if idempotency_key is None:
        return Submitted(_insert_unkeyed(store, job), message)
    fresh = IdempotencyKey(row=idempotency_row(request.customer_id, idempotency_key),
                           job_id=job.job_id, fingerprint=request_fingerprint(request),
                           message=message, created_at=now, sent_at=now)
    for _ in range(MAX_ROUNDS):
        submitted = _submit_keyed(store, fresh, now=now)
        if submitted is not None:
            return submitted
    raise StorageUnavailable("the Idempotency-Key row kept changing under this request")


def _insert_unkeyed(store: JobStore, job: JobMessage) -> JobRecord:
    """Write the row of a job without a key; on an unknown outcome, try to take it back."""
    record = accepted_record(job, key_row=None)
    try:
        # None: a retry of an insert that was applied found the row; the id is new, so ours.
        store.insert(record)
    except StorageUnavailable:
        store.discard(record.job_id)
        raise
    log.info("job accepted", extra=job_fields(record))
    return record


def _submit_keyed(store: JobStore, fresh: IdempotencyKey, *, now: datetime
                  ) -> Submitted | None:
    """One round: reserve the key, or replay what it holds; None if it changed meanwhile."""
    key = store.insert_key(fresh)
    if key is not None:
        return _write_reserved(store, key, replayed=False)
    key = store.read_key(fresh.row)
    if key is None:
        return None
    found = store.read(key.job_id)
    if key.retired and found is None:
        reserved = store.replace_key(key, fresh)
        return None if reserved is None else _write_reserved(store, reserved, replayed=False)
    # A retired key whose job is still stored: a purge was cut short; the key names it still.
    if key.fingerprint != fresh.fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
    if found is None:
        # Not purged: the purge retires the key first, and this stamp fails if it did since.
        stamped = store.replace_key(key, replace(key, sent_at=now))
        return None if stamped is None else _write_reserved(store, stamped, replayed=True)
    resend = None
    if found.record.status is JobStatus.ACCEPTED and now - key.sent_at >= RESEND_INTERVAL:
        # The first send may have been lost between the row write and the queue.
        if store.replace_key(key, replace(key, sent_at=now)) is not None:
            resend = key.message
    log.info("idempotent replay", extra={**job_fields(found.record), "resent": bool(resend)})
    return Submitted(found.record, resend, replayed=True)


def _write_reserved(store: JobStore, key: IdempotencyKey, *, replayed: bool
                    ) -> Submitted | None:
    """Write the job row a live key reserves, and answer with it and its message.

    None if the job is gone, or if the key stopped naming it while the row was written:
    a purge may have retired the key between our read and our write, so the row we wrote
    is taken back.
    """
    record = accepted_record(decode_message(key.message.encode()), key_row=key.row)
    written = store.insert(record)
    now_key = store.read_key(key.row)
    if now_key is None or now_key.retired or now_key.job_id != key.job_id:
        if written is not None:
            store.delete(record.job_id, etag=written.etag)
        return None
    if written is None:  # another request wrote it first, or our own retried insert did
        found = store.read(record.job_id)
        if found is None:
            return None
        record = found.record
    else:
        log.info("job accepted", extra=job_fields(record))
    message = key.message if record.status is JobStatus.ACCEPTED else None
    return Submitted(record, message, replayed=replayed)


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
        token=message.token,
    )


def idempotency_row(customer_id: str, key: str) -> str:
    """The partition key of a customer's idempotency key; hashed, as keys may hold any text."""
    digest = hashlib.sha256(f"{customer_id}\n{key}".encode()).hexdigest()
    return f"key-{digest}"


def request_fingerprint(request: JobSubmissionRequest) -> str:
    """A hash of the request body's meaning: the same JSON in any key order or spacing."""
    canonical = json.dumps(request.model_dump(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
