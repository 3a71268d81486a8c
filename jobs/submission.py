"""Accepting a job: write its `accepted` row, then hand back the queue message to send."""

from __future__ import annotations

import logging
import uuid

from jobs.lifecycle import Clock, utcnow
from jobs.logs import job_fields
from jobs.messages import encode_message
from jobs.models import JobMessage, JobRecord, JobStatus, JobSubmissionRequest
from jobs.store import JobStore

log = logging.getLogger(__name__)


def submit(
    store: JobStore, request: JobSubmissionRequest, *, clock: Clock = utcnow
) -> tuple[JobRecord, str]:
    """Store a new accepted job and return it with its queue message text.

    The message is encoded before the row is written, so a message too large for the
    queue leaves no row behind; the caller sends the message only after the row exists.
    """
    now = clock()
    job_id = str(uuid.uuid4())
    message = JobMessage(job_id, request.job_type, request.customer_id, request.payload, now)
    text = encode_message(message)
    record = JobRecord(
        job_id=job_id,
        status=JobStatus.ACCEPTED,
        job_type=request.job_type,
        customer_id=request.customer_id,
        submitted_at=now,
        updated_at=now,
    )
    store.insert(record)
    log.info("job accepted", extra=job_fields(record))
    return record, text
