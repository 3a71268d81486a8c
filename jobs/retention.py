"""Retention: fail abandoned jobs, then purge finished jobs past their expiry with their keys.

Tables have no built-in expiry, so a timer runs this, on every instance at once: each
step is a conditional write, decided again after a conflict, so runs may overlap. Each job
is its own partition, so the queries scan the whole table; see the README for when a table
per period is the better design.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from jobs import lifecycle
from jobs.errors import JobNotFound
from jobs.lifecycle import Clock, utcnow
from jobs.logs import job_fields
from jobs.messages import decode_message
from jobs.models import JobError, JobRecord, JobStatus
from jobs.settings import Settings
from jobs.store import IdempotencyKey, JobStore, Versioned
from jobs.submission import accepted_record

log = logging.getLogger(__name__)
# How long a queue message lives by default: an accepted job older than this has lost its
# message for good, and so has the reservation of a request cut off before its job row.
MESSAGE_TIME_TO_LIVE = timedelta(days=7)
ABANDONED = JobError("abandoned", "the job stopped making progress and was given up")


def purge_expired(store: JobStore, *, settings: Settings, clock: Clock = utcnow) -> int:
    """Sweep abandoned jobs, then delete expired ones with their keys; return how many went."""
    now = clock()
    sweep_abandoned(store, settings=settings, now=now)
    purged = sum(_purge(store, found) for found in store.expired(now))
    # Retired keys are left behind by a run cut short; each goes once its job row has gone.
    for key in store.keys(retired=True):
        if store.read(key.job_id) is None:
            store.delete_key(key)
    return purged


def sweep_abandoned(store: JobStore, *, settings: Settings, now: datetime) -> None:
    """Fail the jobs that can no longer finish, so that no job stays unfinished forever.

    A running job not updated for `abandon_after` (a live handler reports progress), an
    accepted job older than a queue message lives, and a key reserved that long ago whose
    job row was never written.
    """
    running_before = now - settings.abandon_after
    accepted_before = now - MESSAGE_TIME_TO_LIVE

    def decide(record: JobRecord) -> JobRecord | None:
        stalled = (
            (record.status is JobStatus.RUNNING and record.updated_at <= running_before)
            or (record.status is JobStatus.ACCEPTED and record.submitted_at <= accepted_before)
        )
        if not stalled:
            return None
        return lifecycle.fail(record, ABANDONED, now=now, retention=settings.retention)

    for found in store.stalled(running_before=running_before, accepted_before=accepted_before):
        try:
            final = store.update(found.record.job_id, decide, known=found)
        except JobNotFound:
            continue
        if final.applied:
            log.warning("job abandoned", extra=job_fields(final.record))
    for key in store.keys(created_before=accepted_before):
        _fail_unwritten(store, key, settings=settings, now=now)


def _fail_unwritten(store: JobStore, key: IdempotencyKey, *, settings: Settings,
                    now: datetime) -> None:
    """Write a never-written reserved job as failed, so that its key can expire with it."""
    if store.read(key.job_id) is not None:
        return
    record = accepted_record(decode_message(key.message.encode()), key_row=key.row)
    failed = lifecycle.fail(record, ABANDONED, now=now, retention=settings.retention)
    if store.insert(failed) is not None:
        log.warning("reserved job never written; failed", extra=job_fields(failed))


def _purge(store: JobStore, found: Versioned) -> bool:
    """Delete one expired job: retire its key, delete the row as found, then the key.

    The key is retired first, so a request that finds the key without its job can tell a
    purged job (never to be written again) from one whose row is still to be written.
    """
    record = found.record
    key = _retire_key(store, record)
    if not store.delete(record.job_id, etag=found.etag):
        return False
    if key is not None:
        store.delete_key(key)
    log.info("job purged", extra={**job_fields(record), "status": record.status.value})
    return True


def _retire_key(store: JobStore, record: JobRecord) -> IdempotencyKey | None:
    """Retire the job's key while it still names the job; the retired key, if any."""
    if record.idempotency_row is None:
        return None
    while (key := store.read_key(record.idempotency_row)) is not None:
        if key.job_id != record.job_id:
            return None
        if key.retired:
            return key
        retired = store.replace_key(key, replace(key, retired=True))
        if retired is not None:
            return retired
    return None
