"""Job types the reliability suite counts: every completed handler run is written down.

RELIABILITY_RUNS names a file; each run that returns appends `<job_id> <run_id>` to it with
O_APPEND, so runs in several host processes (before and after a crash) land in one file.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from jobs.handlers import ReportProgress, register
from jobs.models import JobMessage


@register("counted")
def counted(job: JobMessage, progress: ReportProgress) -> dict[str, Any]:
    """Sleep for payload.seconds, write the run down, and return its run id."""
    time.sleep(float(job.payload.get("seconds", 0)))
    run_id = uuid.uuid4().hex
    with open(os.environ["RELIABILITY_RUNS"], "a", encoding="utf-8") as runs:
        runs.write(f"{job.job_id} {run_id}\n")
    return {"run_id": run_id}


@register("always_raises")
def always_raises(job: JobMessage, progress: ReportProgress) -> dict[str, Any]:
    """A transient error on every delivery."""
    raise RuntimeError("this handler always fails")
