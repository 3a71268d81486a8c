"""The allowed status transitions, and the one function that performs them.

Nothing else assigns a status. The store makes each transition atomic with a conditional
update on the row's ETag, and on a conflict re-reads the row and decides again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from jobs.errors import InvalidTransition
from jobs.models import Claim, JobError, JobRecord, JobStatus, Progress

Clock = Callable[[], datetime]
Change = Callable[[JobRecord], JobRecord]


def utcnow() -> datetime:
    """The current time in UTC; the default clock of every transition."""
    return datetime.now(UTC)


ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    # Straight to failed when the message is poisoned before any delivery ran the handler.
    JobStatus.ACCEPTED: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}),
    # Running to running: a later delivery of the same message takes over a crashed attempt.
    JobStatus.RUNNING: frozenset(
        {JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def advance(
    record: JobRecord, to: JobStatus, *, now: datetime, retention: timedelta, **changes: Any
) -> JobRecord:
    """Return `record` moved to status `to`; raises InvalidTransition if the move is not allowed.

    A terminal status also sets when the job finished and when its row expires.
    """
    if to not in ALLOWED[record.status]:
        raise InvalidTransition(f"job {record.job_id}: {record.status.value} -> {to.value}")
    if to.terminal:
        changes.update(completed_at=now, expires_at=now + retention)
    return dataclasses.replace(record, status=to, updated_at=now, **changes)


def may_claim(record: JobRecord, claim: Claim) -> bool:
    """Whether a delivery may claim the job now.

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


def holds_claim(record: JobRecord, claim: Claim) -> bool:
    """Whether the job is running under this very delivery's claim.

    Seen when a delivery decides again after its own claim was written but answered with
    an error: the claim is made already, and the attempt is not counted twice.
    """
    return record.status is JobStatus.RUNNING and record.claim == claim


def start(record: JobRecord, claim: Claim, *, now: datetime) -> JobRecord:
    """Claim the job for a delivery and count the attempt."""
    return advance(
        record,
        JobStatus.RUNNING,
        now=now,
        retention=timedelta(0),
        started_at=record.started_at or now,
        attempts=record.attempts + 1,
        claim=claim,
    )


def complete(
    record: JobRecord, result: dict[str, Any], *, now: datetime, retention: timedelta
) -> JobRecord:
    """The handler returned `result`."""
    return advance(record, JobStatus.COMPLETED, now=now, retention=retention, result=result)


def fail(record: JobRecord, error: JobError, *, now: datetime, retention: timedelta) -> JobRecord:
    """The job failed for good with `error`."""
    return advance(record, JobStatus.FAILED, now=now, retention=retention, error=error)


def cancel(record: JobRecord, *, now: datetime, retention: timedelta) -> JobRecord:
    """The client cancelled the job."""
    return advance(record, JobStatus.CANCELLED, now=now, retention=retention)


def report_progress(record: JobRecord, progress: Progress, *, now: datetime) -> JobRecord:
    """Record a running handler's progress; not a status change, so only while running."""
    if record.status is not JobStatus.RUNNING:
        raise InvalidTransition(f"job {record.job_id}: progress while {record.status.value}")
    return dataclasses.replace(record, progress=progress, updated_at=now)
