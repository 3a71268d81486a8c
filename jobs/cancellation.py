"""Cancelling a job on a client's request."""

from __future__ import annotations

import logging

from jobs import lifecycle
from jobs.lifecycle import Clock, utcnow
from jobs.logs import job_fields
from jobs.models import JobRecord
from jobs.settings import Settings
from jobs.store import JobStore

log = logging.getLogger(__name__)


def cancel(store: JobStore, job_id: str, *, settings: Settings, clock: Clock = utcnow
           ) -> JobRecord:
    """Cancel an accepted or running job and return it.

    Raises JobNotFound for an unknown id and InvalidTransition for a finished job. A worker
    never starts a cancelled job, and one that finishes after the cancel drops its result.
    """
    def decide(record: JobRecord) -> JobRecord:
        return lifecycle.cancel(record, now=clock(), retention=settings.retention)

    final = store.update(job_id, decide).record
    log.info("job cancelled", extra=job_fields(final))
    return final


