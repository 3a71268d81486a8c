"""The benchmark's job type: the thumbnail's work without its progress report.

`bench_noop` returns a result of the thumbnail's size but reports no progress, so the
worker's figures show the minimum: one read and two conditional merges per job.
"""

from __future__ import annotations

from typing import Any

from jobs.handlers import ReportProgress, register
from jobs.models import JobMessage

NOOP = "bench_noop"


@register(NOOP)
def noop(job: JobMessage, progress: ReportProgress) -> dict[str, Any]:
    """Return where a thumbnail would live; no progress, no work."""
    return {"artifactUrl": f"https://example.invalid/jobs/{job.job_id}.json"}
