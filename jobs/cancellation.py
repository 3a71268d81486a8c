"""Cancelling a job on a client's request."""

from __future__ import annotations

import logging

from jobs import lifecycle
from jobs.lifecycle import Clock, utcnow
from jobs.logs import job_fields
from jobs.models import JobRecord, JobStatus
from jobs.settings import Settings
from jobs.store import JobStore

log = logging.getLogger(__name__)


def cancel(store: JobStore, job_id: str, *, settings: Settings, clock: Clock = utcnow
           ) -> JobRecord:
    """Cancel an accepted or running job and return it.

    Idempotent: a job that is cancelled already is returned as it is, so a client's retry,
    or the SDK's retry of a cancel that was applied but answered with an error, succeeds.
    Raises JobNotFound for an unknown id and InvalidTransition for a completed or failed
    job. A worker never starts a cancelled job, and one that finishes after the cancel
    drops its result.
    """
    def decide(record: JobRecord) -> JobRecord:
        if record.status is JobStatus.CANCELLED:
            return record
        return lifecycle.cancel(record, now=clock(), retention=settings.retention)

    final = store.update(job_id, decide).record
    log.info("job cancelled", extra=job_fields(final))
    return final


