"""What one queue delivery of a job does: claim the job, run its handler, record the outcome.

Delivery is at least once. The claim and every later write are conditional updates, so a
repeated or overlapping delivery can neither run a claimed job again nor move a finished
job back. A transient handler error re-raises so the host retries the message; on the last
allowed delivery the job is marked failed first.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jobs import lifecycle
from jobs.errors import InvalidMessage, JobFailed, JobNotFound
from jobs.handlers import find_handler
from jobs.lifecycle import Clock, utcnow
from jobs.logs import job_fields
from jobs.messages import decode_job_id, decode_message
from jobs.models import Claim, JobError, JobMessage, JobRecord
from jobs.store import MAX_TEXT_PROPERTY, JobStore, Versioned

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One delivery of a queue message, as the host hands it over."""

    message_id: str
    body: bytes
    dequeue_count: int


class Outcome(StrEnum):
    """How a delivery ended, for logs and tests."""

    #: The handler ran and its result was stored.
    COMPLETED = "completed"
    #: The job was marked failed.
    FAILED = "failed"
    #: The job is finished or another delivery runs it; nothing was done.
    SKIPPED = "skipped"
    #: The message names no job; it is dropped.
    DROPPED = "dropped"


def process(
    store: JobStore, delivery: Delivery, *, max_dequeue_count: int, clock: Clock = utcnow
) -> Outcome:
    """Run one delivery of a job message; see the module docstring for the rules."""
    try:
        message = decode_message(delivery.body)
    except InvalidMessage as e:
        log.warning("dropped a malformed message", extra=_delivery_fields(delivery, e))
        return Outcome.DROPPED
    claim = Claim(delivery.message_id, delivery.dequeue_count)
    claimed = _claim(store, message, claim, clock)
    if claimed is None:
        return Outcome.SKIPPED
    last_try = delivery.dequeue_count >= max_dequeue_count
    return _run(store, message, claimed, last_try=last_try, clock=clock)


def fail_poisoned(store: JobStore, body: bytes, *, clock: Clock = utcnow) -> Outcome:
    """Mark the job of a poisoned message failed, unless it already finished."""
    try:
        job_id = decode_job_id(body)
    except InvalidMessage as e:
        log.warning("dropped a malformed poison message", extra={"reason": str(e)})
        return Outcome.DROPPED
    error = JobError("poisoned", "the job message failed every delivery and was poisoned")

    def decide(record: JobRecord) -> JobRecord | None:
        return None if record.status.terminal else lifecycle.fail(record, error, now=clock())

    try:
        final = store.update(job_id, decide)
    except JobNotFound:
        log.warning("poison message names no job", extra={"job_id": job_id})
        return Outcome.DROPPED
    fields = {**job_fields(final.record), "status": final.record.status.value}
    if not final.written:
        log.info("poison message for a finished job", extra=fields)
        return Outcome.SKIPPED
    log.info("job failed: poisoned", extra=fields)
    return Outcome.FAILED


def _claim(store: JobStore, message: JobMessage, claim: Claim, clock: Clock) -> Versioned | None:
    def decide(record: JobRecord) -> JobRecord | None:
        if not lifecycle.may_claim(record, claim):
            return None
        return lifecycle.start(record, claim, now=clock())

    try:
        current = store.update(message.job_id, decide)
    except JobNotFound:
        log.warning("message names no job", extra=job_fields(message))
        return None
    if not current.written:
        fields = {**job_fields(message), "status": current.record.status.value}
        log.info("skipped: job is finished or claimed by another delivery", extra=fields)
        return None
    log.info("job running", extra={**job_fields(message), "attempt": current.record.attempts})
    return current


def _run(
    store: JobStore, message: JobMessage, claimed: Versioned, *, last_try: bool, clock: Clock
) -> Outcome:
    handler = find_handler(message.job_type)
    try:
        if handler is None:
            raise JobFailed("unknown_job_type", f"no handler for job type {message.job_type!r}")
        result = _checked_result(handler(message))
    except JobFailed as e:
        return _finish(store, claimed, JobError(e.code, e.message), clock)
    except Exception as e:
        if not last_try:
            log.warning("handler failed; the queue retries", extra=job_fields(message))
            raise
        error = JobError("retries_exhausted", f"{type(e).__name__} on every delivery")
        _finish(store, claimed, error, clock)
        raise
    return _finish(store, claimed, result, clock)


def _finish(
    store: JobStore, claimed: Versioned, outcome: dict[str, Any] | JobError, clock: Clock
) -> Outcome:
    """Write the terminal state, unless the job stopped being this delivery's meanwhile."""
    claim = claimed.record.claim

    def decide(record: JobRecord) -> JobRecord | None:
        if record.claim != claim or record.status.terminal:
            return None
        if isinstance(outcome, JobError):
            return lifecycle.fail(record, outcome, now=clock())
        return lifecycle.complete(record, outcome, now=clock())

    final = store.update(claimed.record.job_id, decide, known=claimed)
    fields = {**job_fields(final.record), "status": final.record.status.value}
    if not final.written:
        log.warning("outcome dropped: the job changed under this delivery", extra=fields)
        return Outcome.SKIPPED
    log.info("job %s", final.record.status.value, extra=fields)
    return Outcome.FAILED if isinstance(outcome, JobError) else Outcome.COMPLETED


def _checked_result(result: Any) -> dict[str, Any]:
    """A handler's result must be a JSON object small enough for one table property."""
    if not isinstance(result, dict):
        raise JobFailed("invalid_result", "the handler did not return a JSON object")
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise JobFailed("invalid_result", "the handler's result is not JSON") from e
    if len(text) > MAX_TEXT_PROPERTY:
        raise JobFailed("result_too_large", "the handler's result is too large to store")
    return result


def _delivery_fields(delivery: Delivery, reason: Exception) -> dict[str, Any]:
    return {
        "message_id": delivery.message_id,
        "dequeue_count": delivery.dequeue_count,
        "reason": str(reason),
    }
