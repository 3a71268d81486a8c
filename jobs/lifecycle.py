"""The allowed status transitions, and the one function that performs them.

Nothing else assigns a status. The store makes each transition atomic with a conditional
update on the row's ETag, and on a conflict re-reads the row and decides again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jobs.errors import InvalidTransition
from jobs.models import Claim, JobError, JobRecord, JobStatus

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time in UTC; the default clock of every transition."""
    return datetime.now(UTC)


ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    # Straight to failed when the message is poisoned before any delivery ran the handler.
    JobStatus.ACCEPTED: frozenset({JobStatus.RUNNING, JobStatus.FAILED}),
    # Running to running: a later delivery of the same message takes over a crashed attempt.
    JobStatus.RUNNING: frozenset({JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
}


def advance(record: JobRecord, to: JobStatus, *, now: datetime, **changes: Any) -> JobRecord:
    """Return `record` moved to status `to`; raises InvalidTransition if the move is not allowed."""
    if to not in ALLOWED[record.status]:
        raise InvalidTransition(f"job {record.job_id}: {record.status.value} -> {to.value}")
    return dataclasses.replace(record, status=to, updated_at=now, **changes)


def may_claim(record: JobRecord, claim: Claim) -> bool:
    """Whether a delivery may run the job now.

    An accepted job is free. A running job belongs to the delivery that claimed it, so an
    overlapping duplicate never runs the handler too; only a later delivery of the same
    message (a higher dequeue count, so the earlier attempt crashed or failed) takes it over.
    """
    if record.status is JobStatus.ACCEPTED:
        return True
    owner = record.claim
    return (
        record.status is JobStatus.RUNNING
        and owner is not None
        and owner.message_id == claim.message_id
        and claim.dequeue_count > owner.dequeue_count
    )


def start(record: JobRecord, claim: Claim, *, now: datetime) -> JobRecord:
    """Claim the job for a delivery and count the attempt."""
    return advance(
        record,
        JobStatus.RUNNING,
        now=now,
        started_at=record.started_at or now,
        attempts=record.attempts + 1,
        claim=claim,
    )


def complete(record: JobRecord, result: dict[str, Any], *, now: datetime) -> JobRecord:
    """The handler returned `result`."""
    return advance(record, JobStatus.COMPLETED, now=now, completed_at=now, result=result)


def fail(record: JobRecord, error: JobError, *, now: datetime) -> JobRecord:
    """The job failed for good with `error`."""
    return advance(record, JobStatus.FAILED, now=now, completed_at=now, error=error)
