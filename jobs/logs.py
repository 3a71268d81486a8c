"""Structured log fields; values travel as data on the record, never inside the message text."""

from __future__ import annotations

from jobs.models import JobMessage, JobRecord


def job_fields(job: JobMessage | JobRecord) -> dict[str, str]:
    """The fields that identify a job in every log line about it."""
    return {"job_id": job.job_id, "job_type": job.job_type, "customer_id": job.customer_id}
