"""Job types only the end-to-end tests register, through the JOB_HANDLER_MODULES setting."""

from __future__ import annotations

import time
from typing import Any

from jobs.handlers import ReportProgress, register
from jobs.models import JobMessage


@register("always_fails")
def always_fails(job: JobMessage, progress: ReportProgress) -> dict[str, Any]:
    """A transient failure on every delivery: the job must end failed and poisoned."""
    raise ConnectionError("the downstream service is down")


@register("slow")
def slow(job: JobMessage, progress: ReportProgress) -> dict[str, Any]:
    """Takes a while, so a test can kill the host while it runs."""
    time.sleep(float(job.payload.get("seconds", 0.5)))
    return {"slept": True}
