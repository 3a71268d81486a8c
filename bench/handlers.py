"""The benchmark's job types.

- `bench_noop` returns a result of the thumbnail's size but reports no progress, so the
  worker's figures show the minimum: one claim and one completion per job.
- `bench_io` waits 100-500 ms, as a call to another service would, then returns the same
  result. Its wait is drawn from the job id, so a rerun waits the same.
"""

from __future__ import annotations

import random
import time
from typing import Any

from jobs.handlers import ReportProgress, register
from jobs.models import JobMessage

NOOP = "bench_noop"
IO_WAIT = "bench_io"
IO_WAIT_SECONDS = (0.1, 0.5)


@register(NOOP)
def noop(job: JobMessage, progress: ReportProgress) -> dict[str, Any]:
    """Return where a thumbnail would live; no progress, no work."""
    return result(job)


@register(IO_WAIT)
def io_wait(job: JobMessage, progress: ReportProgress) -> dict[str, Any]:
    """Wait on 'another service' for 100-500 ms, then return the noop's result."""
    time.sleep(io_wait_seconds(job.job_id))
    return result(job)


def io_wait_seconds(job_id: str) -> float:
    """The wait of a `bench_io` job: uniform in IO_WAIT_SECONDS, fixed by its id."""
    return random.Random(job_id).uniform(*IO_WAIT_SECONDS)  # noqa: S311 - not security


def result(job: JobMessage) -> dict[str, Any]:
    """The result every bench job stores: a thumbnail-sized artifact URL."""
    return {"artifactUrl": f"https://example.invalid/jobs/{job.job_id}.json"}
