"""End to end through the local host: N jobs from 16 concurrent HTTP clients.

The host runs the app as one Python worker process would: every invocation, HTTP and queue
alike, in one pool of PYTHON_THREADPOOL_THREAD_COUNT threads (default min(32, cpu + 4)).

Each size gets a fresh in-memory Azurite and a fresh `python -m devhost`, so the sizes do not
share a warm table or a grown heap. Clients time each POST; completion is read from the
table (one cheap probe a quarter second, then one query for every row's completed_at), not
by a GET per job, which would add load of its own. The host's peak RSS is VmHWM from /proc.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from azure.data.tables import TableClient

from bench.handlers import NOOP
from bench.latency_proxy import Proxy
from bench.stats import cpu_seconds, ms, summary
from devhost.settings import worker_thread_count
from tests.support import devhost_process
from tests.support.azurite import Azurite

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 16
TABLE = "jobs"
# host.json as shipped (batchSize 16, newBatchThreshold 8, maxPollingInterval 2 s): the host's
# enqueue notification wakes the poller, so no shorter polling interval is needed.
HOST_JSON: dict[str, Any] = {}
ENV = {"JOBS_TABLE_NAME": TABLE, "JOB_HANDLER_MODULES": "bench.handlers"}
EXAMPLE = {"job_type": "thumbnail", "customer_id": "cust-123",
           "payload": {"asset_url": "https://example.invalid/image.png"}}
UNFINISHED = "RowKey eq 'job' and (status eq 'accepted' or status eq 'running')"
DRAIN_TIMEOUT = 300.0
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Submitted:
    """One POST as a client saw it: when it started and answered, in wall-clock seconds."""

    job_id: str
    started: float
    answered: float
    #: 1 unless the connection was dropped and the POST sent again.
    attempts: int = 1

    @property
    def latency(self) -> float:
        return self.answered - self.started


def run(size: int, *, threads: int | None = None, delay_ms: float = 0.0,
        job_type: str = NOOP, queues: dict[str, Any] | None = None) -> dict[str, Any]:
    """Submit `size` jobs to a fresh host and wait for all of them; the figures of the run.

    `threads` sets PYTHON_THREADPOOL_THREAD_COUNT (None keeps the worker's default); the
    host reaches Azurite through the latency proxy, which adds `delay_ms` to each request;
    `queues` overrides host.json's queue settings.
    """
    azurite = Azurite()
    azurite.start()
    proxy = Proxy(azurite.connection_string, delay_ms)
    try:
        env = {**ENV, "AzureWebJobsStorage": proxy.start()}
        if threads is not None:
            env["PYTHON_THREADPOOL_THREAD_COUNT"] = str(threads)
        override = {"extensions": {"queues": queues}} if queues else HOST_JSON
        host = devhost_process.start(ROOT, env=env, host_json_override=override or None)
        try:
            host.wait_ready()
            figures = _measure(host, azurite, proxy, size, job_type)
            return figures | {"worker": worker_setup(env), "delay_ms": delay_ms,
                              "job_type": job_type, "queues": host_queue_settings(queues)}
        finally:
            host.stop()
            host.cleanup()
    finally:
        proxy.stop()
        azurite.stop()


def _measure(host: devhost_process.DevHostProcess, azurite: Azurite, proxy: Proxy, size: int,
             job_type: str) -> dict[str, Any]:
    pid = host.process.pid
    idle_rss = _proc_kib(pid, "VmRSS")
    processes = {"host": lambda: cpu_seconds(pid), "azurite": lambda: cpu_seconds(_pid(azurite)),
                 "proxy": proxy.cpu_seconds}
    cpu_before = {name: read() for name, read in processes.items()}
    machine_before, own_before = machine_cpu(), time.process_time()
    tcp_before = tcp_counters()
    submits = submit_all(f"{host.base_url}/api/jobs", size, {**EXAMPLE, "job_type": job_type})
    submit_end = max(s.answered for s in submits)
    rows = wait_for_jobs(TableClient.from_connection_string(azurite.connection_string, TABLE))
    cpu = {name: round(read() - cpu_before[name], 2) for name, read in processes.items()}
    busy, elapsed = (after - before for after, before in zip(machine_cpu(), machine_before,
                                                              strict=True))
    cpu["clients"] = round(time.process_time() - own_before, 2)
    cpu["other_work"] = round(busy - sum(cpu.values()), 2)
    tcp = {name: count - tcp_before.get(name, 0) for name, count in tcp_counters().items()}
    peak = _proc_kib(pid, "VmHWM")
    return figures(size, submits, rows, submit_end=submit_end) | {
        "host_idle_rss_mib": round(idle_rss / 1024, 1),
        "host_peak_rss_mib": round(peak / 1024, 1),
        "cpu_seconds": cpu,
        "host_cpu_ms_per_job": round(cpu["host"] / size * 1000, 2),
        #: Busy share of all the machine's CPUs during the run, this run's processes and others'.
        "machine_busy": round(busy / elapsed, 3),
        #: The host's CPU over the run's wall-clock: the share of one core it got.
        "host_core_share": round(cpu["host"] / (time.time() - min(s.started for s in submits)),
                                 3),
        "tcp": tcp,
    }


def submit_all(url: str, size: int, body: dict[str, Any]) -> list[Submitted]:
    """POST `size` jobs from CLIENTS threads, each with its own session; raise on a non-202."""
    local = threading.local()

    def post(_: int) -> Submitted:
        session = getattr(local, "session", None) or _new_session(local)
        started = time.time()
        response, attempts = _post(session, url, body)
        answered = time.time()
        if response.status_code != 202:
            raise RuntimeError(f"submit answered {response.status_code}: {response.text}")
        return Submitted(response.json()["job_id"], started, answered, attempts)

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(post, range(size)))


def _post(session: requests.Session, url: str,
          body: dict[str, Any]) -> tuple[requests.Response, int]:
    """POST the example job, retrying a dropped connection as a client would; and the tries.

    The local host's listen queue is short: under 16 clients a connection is now and then
    reset before the host accepted it. A retried request that did reach the host leaves a
    job no client saw; `figures` counts those as orphans.
    """
    for attempt in range(1, MAX_ATTEMPTS):
        try:
            return session.post(url, json=body, timeout=60), attempt
        except requests.ConnectionError:
            continue
    return session.post(url, json=body, timeout=60), MAX_ATTEMPTS


def _new_session(local: threading.local) -> requests.Session:
    local.session = requests.Session()
    return local.session


def wait_for_jobs(table: TableClient) -> list[dict[str, Any]]:
    """Wait until no job is accepted or running, then every job row."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while _any_unfinished(table):
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs still unfinished after {DRAIN_TIMEOUT:.0f}s")
        time.sleep(0.25)
    fields = ["PartitionKey", "status", "submitted_at", "completed_at"]
    return list(table.query_entities("RowKey eq 'job'", select=fields))


def _any_unfinished(table: TableClient) -> bool:
    """Whether any job is still accepted or running: one request for at most one row."""
    page = next(table.query_entities(UNFINISHED, results_per_page=1).by_page(), iter(()))
    return next(iter(page), None) is not None


def figures(size: int, submits: list[Submitted], rows: list[dict[str, Any]], *,
            submit_end: float) -> dict[str, Any]:
    """Throughput and latency of one run, from the clients' timings and the table's rows."""
    answered = {s.job_id: s.answered for s in submits}
    completed = [r for r in rows if r["status"] == "completed"]
    done_at = {r["PartitionKey"]: r["completed_at"].timestamp() for r in completed}
    first = min(s.started for s in submits)
    last_done = max(done_at.values())
    to_done = [done_at[job] - answered[job] for job in done_at if job in answered]
    in_host = [r["completed_at"].timestamp() - r["submitted_at"].timestamp() for r in completed]
    return {
        "jobs": size,
        "completed": len(completed),
        "not_completed": len(rows) - len(completed),
        "clients": CLIENTS,
        "connection_retries": sum(s.attempts - 1 for s in submits),
        "orphan_jobs": len(set(done_at) - set(answered)),
        "submit_requests_per_s": round(size / (submit_end - first), 1),
        "submit_latency": summary([s.latency for s in submits]),
        "jobs_per_s": round(len(completed) / (last_done - first), 1),
        "wall_seconds": round(last_done - first, 2),
        "accepted_to_completed": summary(to_done) | {"max_ms": ms(max(to_done))},
        "submitted_at_to_completed_at_p50_ms": ms(statistics.median(in_host)),
        "samples_ms": {
            "submit_latency": [ms(s.latency) for s in submits],
            "accepted_to_completed": [ms(t) for t in to_done],
        },
    }


def _pid(azurite: Azurite) -> int:
    if azurite.process is None:
        raise RuntimeError("Azurite is not running")
    return azurite.process.pid


def _proc_kib(pid: int, field: str) -> int:
    """A `kB` field of /proc/<pid>/status, e.g. VmHWM (peak resident set)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def tcp_counters() -> dict[str, int]:
    """The machine's listen-queue overflows and SYN retransmissions so far (/proc/net/netstat).

    A connection refused by a full listen queue is retried by the client's kernel after a
    second, which shows as a one-second step in the submit latency.
    """
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            counters = dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
            return {"listen_overflows": counters.get("ListenOverflows", 0),
                    "syn_retransmits": counters.get("TCPSynRetrans", 0)}
    return {}


def host_queue_settings(queues: dict[str, Any] | None = None) -> dict[str, Any]:
    """The queue trigger's settings a run uses: host.json's, with `queues` over them."""
    shipped = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    return {**shipped, **HOST_JSON.get("extensions", {}).get("queues", {}), **(queues or {})}


def machine_cpu() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine so far, all CPUs (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


def worker_setup(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The worker processes and threads the host runs invocations on, as it computes them."""
    settings = {**os.environ, **(env or {})}
    return {"processes": 1, "threads": worker_thread_count(settings),
            "thread_count_setting": settings.get("PYTHON_THREADPOOL_THREAD_COUNT", "(unset)")}
