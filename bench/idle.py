"""Idle latency through the local host: single jobs, submitted 3 s apart, 202 to `completed`.

With nothing else queued, the queue poller has backed off towards `maxPollingInterval`
(host.json: 2 s) between jobs. What brings each job to the worker at once is the host's
enqueue notification: the submit function's queue output wakes the poller of that queue in
the same host. The time is from the client seeing 202 to the row's `completed_at`, both on
this machine's clock.
"""

from __future__ import annotations

import time
from typing import Any

import requests
from azure.data.tables import TableClient

from bench.endtoend import ENV, EXAMPLE, ROOT, TABLE
from bench.handlers import NOOP
from bench.stats import ms, summary
from tests.support import devhost_process
from tests.support.azurite import Azurite

JOBS = 20
GAP_SECONDS = 3.0
TARGET_P50_MS = 250.0
WAIT_TIMEOUT = 30.0


def run(jobs: int = JOBS, gap: float = GAP_SECONDS) -> dict[str, Any]:
    """Submit `jobs` single jobs `gap` seconds apart to a fresh host; the latency figures."""
    azurite = Azurite()
    azurite.start()
    try:
        env = {**ENV, "AzureWebJobsStorage": azurite.connection_string}
        host = devhost_process.start(ROOT, env=env)
        try:
            host.wait_ready()
            table = TableClient.from_connection_string(azurite.connection_string, TABLE)
            samples = [_one_job(f"{host.base_url}/api/jobs", table, gap) for _ in range(jobs)]
        finally:
            host.stop()
            host.cleanup()
    finally:
        azurite.stop()
    figures = summary(samples)
    return {"jobs": jobs, "gap_seconds": gap, "accepted_to_completed": figures,
            "target_p50_ms": TARGET_P50_MS,
            "within_target": figures["p50_ms"] <= TARGET_P50_MS,
            "samples_ms": [ms(s) for s in samples]}


def _one_job(url: str, table: TableClient, gap: float) -> float:
    """Sleep out the gap, submit one job, wait for it; seconds from 202 to completed_at."""
    time.sleep(gap)
    response = requests.post(url, json={**EXAMPLE, "job_type": NOOP}, timeout=30)
    answered = time.time()
    if response.status_code != 202:
        raise RuntimeError(f"submit answered {response.status_code}: {response.text}")
    job_id = response.json()["job_id"]
    deadline = time.monotonic() + WAIT_TIMEOUT
    while time.monotonic() < deadline:
        row = table.get_entity(job_id, "job", select=["status", "completed_at"])
        if row.get("status") == "completed":
            return float(row["completed_at"].timestamp() - answered)
        time.sleep(0.02)
    raise RuntimeError(f"job {job_id} not completed after {WAIT_TIMEOUT:.0f}s")
