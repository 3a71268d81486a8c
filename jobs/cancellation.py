"""Cancelling a job on a client's request."""

from __future__ import annotations

import logging

from opentelemetry.context import Context

from jobs import lifecycle, telemetry
from jobs.errors import InvalidTransition, JobNotFound
from jobs.lifecycle import Clock, utcnow
from jobs.logs import job_fields
from jobs.models import JobRecord, JobStatus
from jobs.settings import Settings
from jobs.store import JobStore

log = logging.getLogger(__name__)


def cancel(store: JobStore, job_id: str, *, settings: Settings, clock: Clock = utcnow,
           invocation: Context | None = None) -> JobRecord:
    """Cancel an accepted or running job and return it.

    Idempotent: a job that is cancelled already is returned as it is, so a client's retry,
    or the SDK's retry of a cancel that was applied but answered with an error, succeeds.
    Raises JobNotFound for an unknown id and InvalidTransition for a completed or failed
    job. A worker never starts a cancelled job, and one that finishes after the cancel
    drops its result.

    The row is read first (the read `update` would make anyway), so that the `cancel job`
    span joins the job's trace, linked to `invocation`.
    """
    found = store.read(job_id)
    if found is None:
        raise JobNotFound(job_id)
    changed = False

    def decide(record: JobRecord) -> JobRecord:
        nonlocal changed
        changed = False
        if record.status is JobStatus.CANCELLED:
            return record
        changed = True
        return lifecycle.cancel(record, now=clock(), retention=settings.retention)

    parent, links = telemetry.joined(found.record, invocation)
    # A finished job refused (409 to the client) is the client's error, not the span's.
    with telemetry.span("cancel job", parent=parent, links=links,
                        attributes=telemetry.job_attributes(found.record),
                        benign=(InvalidTransition,)) as span:
        final = store.update(job_id, decide, known=found).record
        span.set_attribute("job.status", final.status.value)
        if changed:
            telemetry.record_finished(final)
        log.info("job cancelled", extra=job_fields(final))
    return final


