"""Retention: fail abandoned jobs, then purge finished jobs past their expiry with their keys.

Tables have no built-in expiry, so a timer runs this, on every instance at once: each
step is a conditional write, decided again after a conflict, so runs may overlap. Each job
is its own partition, so the queries scan the whole table; see the README for when a table
per period is the better design.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from opentelemetry.context import Context

from jobs import lifecycle, telemetry
from jobs.errors import JobNotFound
from jobs.lifecycle import Clock, utcnow
from jobs.logs import job_fields
from jobs.models import JobError, JobRecord, JobStatus
from jobs.settings import Settings
from jobs.store import JobStore, Versioned

log = logging.getLogger(__name__)
# How long a queue message lives by default: an accepted job older than this has lost its
# message for good.
MESSAGE_TIME_TO_LIVE = timedelta(days=7)
ABANDONED = JobError("abandoned", "the job stopped making progress and was given up")


def purge_expired(store: JobStore, *, settings: Settings, clock: Clock = utcnow,
                  invocation: Context | None = None) -> int:
    """Sweep abandoned jobs, then delete expired ones with their keys; return how many went.

    Between the two it measures the age of the oldest accepted job. The span of each job
    swept or purged joins that job's trace, linked to `invocation`.
    """
    now = clock()
    sweep_abandoned(store, settings=settings, now=now, invocation=invocation)
    measure_oldest_accepted(store, now=now)
    purged = sum(_purge(store, found, invocation=invocation) for found in store.expired(now))
    # A run cut short between a job's delete and its key's leaves the key behind. It is
    # free already (its job is gone); delete it once it is older than any live job's key.
    for key in store.old_keys(now - settings.retention - settings.abandon_after
                              - MESSAGE_TIME_TO_LIVE):
        if store.read(key.job_id) is None:
            store.delete_key(key)
    return purged


def measure_oldest_accepted(store: JobStore, *, now: datetime) -> float:
    """Set the `jobs.accepted.oldest_age` gauge: seconds since the oldest accepted job's
    submit, 0 when none waits. A queue that stops delivering makes it grow."""
    oldest = store.oldest_accepted()
    age = 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0)
    telemetry.oldest_accepted_age.set(age)
    return age


def sweep_abandoned(store: JobStore, *, settings: Settings, now: datetime,
                    invocation: Context | None = None) -> None:
    """Fail the jobs that can no longer finish, so that no job stays unfinished forever.

    A running job not updated for `abandon_after` (a live handler reports progress), and an
    accepted job whose message, queued last at its submit or by a replay, has outlived a
    queue message's time to live.
    """
    running_before = now - settings.abandon_after
    accepted_before = now - MESSAGE_TIME_TO_LIVE

    def decide(record: JobRecord) -> JobRecord | None:
        stalled = (
            (record.status is JobStatus.RUNNING and record.updated_at <= running_before)
            or (record.status is JobStatus.ACCEPTED and _queued_last(record) <= accepted_before)
        )
        if not stalled:
            return None
        return lifecycle.fail(record, ABANDONED, now=now, retention=settings.retention)

    for found in store.stalled(running_before=running_before, accepted_before=accepted_before):
        parent, links = telemetry.joined(found.record, invocation)
        with telemetry.span("sweep job", parent=parent, links=links,
                            attributes=telemetry.job_attributes(found.record)) as span:
            try:
                final = store.update(found.record.job_id, decide, known=found)
            except JobNotFound:
                continue
            if final.applied:
                log.warning("job abandoned", extra=job_fields(final.record))
                telemetry.swept.add(1, {"from_status": found.record.status.value})
                telemetry.record_finished(final.record, span)


def _queued_last(record: JobRecord) -> datetime:
    """When the job's message was queued last: at its submit, or a replay's later stamp
    (the later of the two, as instances' clocks differ)."""
    return max(record.submitted_at, record.queued_at or record.submitted_at)


def _purge(store: JobStore, found: Versioned, *, invocation: Context | None = None) -> bool:
    """Purge one expired job in a `purge job` span in its trace."""
    parent, links = telemetry.joined(found.record, invocation)
    with telemetry.span("purge job", parent=parent, links=links,
                        attributes=telemetry.job_attributes(found.record)) as span:
        span.set_attribute("job.status", found.record.status.value)
        gone = _purge_job(store, found)
        span.set_attribute("job.purged", gone)
    if gone:
        telemetry.purged.add(1)
    return gone


def _purge_job(store: JobStore, found: Versioned) -> bool:
    """Delete one expired job as it was found, then its key if the key still names it.

    The job row goes first: a key whose job row is gone is free, so the next request with
    it makes a new job, and the key's own delete, on the ETag read before, can never take
    a key that names that new job.
    """
    record = found.record
    key = None if record.idempotency_row is None else store.read_key(record.idempotency_row)
    if not store.delete(record.job_id, etag=found.etag):
        return False
    if key is not None and key.job_id == record.job_id:
        store.delete_key(key)
    log.info("job purged", extra={**job_fields(record), "status": record.status.value})
    return True
