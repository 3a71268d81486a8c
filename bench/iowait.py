"""Handlers that wait on I/O (100-500 ms): sync functions in a thread pool vs coroutines.

Both designs drain the same kind of jobs, made by the app's own submit beforehand, through the
latency proxy. As in Azure, the queue's receive and delete are the host's work (a separate
process there), so neither side does them; what is timed is the Python worker's share:
read, claim, handler, complete. The host leases at most batchSize + newBatchThreshold
messages at once per queue (24 with host.json's 16 and 8), so neither design gets more jobs
at once than that.

- sync: `jobs.worker.process` with the `bench_io` handler (time.sleep), in a pool of N
  threads, as the Python worker runs sync functions;
- async: bench/async_worker.py (aio table client, asyncio.sleep) on one event loop.

Figures per run: jobs/s, CPU per job (this process), and the most jobs in a handler at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench import async_worker
from bench.handlers import IO_WAIT
from bench.latency_proxy import Proxy
from jobs import submission, worker
from jobs.models import JobSubmissionRequest
from jobs.settings import Settings, get_settings
from jobs.store import JobStore
from tests.support.azurite import Azurite

#: What the host leases at once per queue with host.json's batchSize 16 + newBatchThreshold 8.
HOST_IN_FLIGHT = 24
TABLE = "iowait"


@dataclass
class Gauge:
    """How many jobs are in their handler now, and the most at once; thread-safe."""

    now: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def inside(self) -> Any:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            yield
        finally:
            with self.lock:
                self.now -= 1


def make_jobs(store: JobStore, count: int) -> list[bytes]:
    """`count` accepted bench_io jobs, made by the app's submit; their message bodies."""
    request = JobSubmissionRequest(job_type=IO_WAIT, customer_id="cust-123", payload={})
    bodies = []
    for _ in range(count):
        message = submission.submit(store, request, correlation_id=uuid.uuid4().hex).message
        bodies.append(str(message).encode())
    return bodies


def run_sync(store: JobStore, bodies: list[bytes], *, threads: int,
             settings: Settings) -> dict[str, Any]:
    """Drain `bodies` with `jobs.worker.process` in a pool of `threads`."""
    gauge = Gauge()
    limit = threading.Semaphore(HOST_IN_FLIGHT)

    def one(body: bytes) -> str:
        with limit, gauge.inside():
            delivery = worker.Delivery(uuid.uuid4().hex, body, 1)
            return str(worker.process(store, delivery, settings=settings))

    with _timed() as timing, ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(one, bodies))
    return _figures(outcomes, timing, gauge) | {"design": "sync", "threads": threads}


def run_async(connection: str, bodies: list[bytes], *, settings: Settings) -> dict[str, Any]:
    """Drain `bodies` with the coroutine prototype, at most HOST_IN_FLIGHT at once."""
    gauge = Gauge()

    async def drain() -> list[str]:
        limit = asyncio.Semaphore(HOST_IN_FLIGHT)
        async with async_worker.table_client(connection, TABLE) as table:
            async def one(body: bytes) -> str:
                async with limit:
                    with gauge.inside():
                        return await async_worker.process(
                            table, body, message_id=uuid.uuid4().hex,
                            retention=settings.retention)

            return list(await asyncio.gather(*(one(body) for body in bodies)))

    with _timed() as timing:
        outcomes = asyncio.run(drain())
    return _figures(outcomes, timing, gauge) | {"design": "async", "threads": 1}


@dataclass
class _Timing:
    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def _timed() -> Any:
    timing = _Timing()
    wall, cpu = time.perf_counter(), time.process_time()
    yield timing
    timing.wall, timing.cpu = time.perf_counter() - wall, time.process_time() - cpu


def _figures(outcomes: list[str], timing: _Timing, gauge: Gauge) -> dict[str, Any]:
    done = outcomes.count("completed")
    if done != len(outcomes):
        raise RuntimeError(f"benchmark sanity check failed: {done} of {len(outcomes)} completed")
    return {"jobs": done, "jobs_per_s": round(done / timing.wall, 1),
            "cpu_ms_per_job": round(timing.cpu / done * 1000, 2),
            "most_at_once": gauge.peak, "wall_seconds": round(timing.wall, 2)}


def run(*, delays_ms: tuple[float, ...], jobs: int,
        threads: tuple[int, ...]) -> list[dict[str, Any]]:
    """Each design at each delay, on one Azurite; sync once per thread count."""
    azurite = Azurite()
    azurite.start()
    try:
        maker = JobStore.connect(azurite.connection_string, TABLE)
        settings = get_settings()
        runs = []
        for delay in delays_ms:
            proxy = Proxy(azurite.connection_string, delay)
            try:
                proxied = proxy.start()
                store = JobStore.connect(proxied, TABLE)
                for count in threads:
                    figures = run_sync(store, make_jobs(maker, jobs), threads=count,
                                       settings=settings)
                    runs.append(figures | {"delay_ms": delay})
                figures = run_async(proxied, make_jobs(maker, jobs), settings=settings)
                runs.append(figures | {"delay_ms": delay})
            finally:
                proxy.stop()
        return runs
    finally:
        azurite.stop()
