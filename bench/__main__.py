"""Run every measurement and write results.json, results.md and latency.png.

    python -m bench                    (make bench: the full run, into bench/)
    python -m bench --quick --out DIR  (make test runs this: a few samples, a few dozen jobs)
    python -m bench --only telemetry   (the telemetry overhead alone, printed, nothing written)

In-process figures first, on one private Azurite (the telemetry overhead among them, each
side in child processes of its own); then, through the latency proxy at each
storage delay, what a job holds a worker thread for and the end-to-end runs through a fresh
local host; then handlers that wait on I/O, sync against async; then cold start and the
idle latency. Nothing here asserts on speed: it measures and reports.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    coldstart,
    endtoend,
    idle,
    inprocess,
    iowait,
    machine,
    pool,
    report,
    telemetry,
)
from bench.latency_proxy import Proxy
from tests.support.azurite import Azurite


@dataclass(frozen=True)
class Plan:
    """How much of each measurement to take."""

    samples: int
    warmup: int
    naive_samples: int
    transaction_batch: int
    #: Storage delays (ms) the latency proxy adds to each request.
    delays_ms: tuple[float, ...]
    #: PYTHON_THREADPOOL_THREAD_COUNT values of the end-to-end runs: 6 (the worker's default
    #: on 2 cores) and the recommended count.
    threads: tuple[int, ...]
    latency_jobs: int
    #: More end-to-end runs with other queue settings: (delay ms, threads, batchSize,
    #: newBatchThreshold).
    queue_variants: tuple[tuple[float, int, int, int], ...]
    thread_time_samples: int
    io_jobs: int
    io_threads: tuple[int, ...]
    #: Threads sharing one table client, and the reads they make, in the pool measurement.
    pool_threads: tuple[int, ...]
    pool_calls: int
    cold_starts: int
    idle_jobs: int
    idle_gap_seconds: float
    #: Jobs per child process and child processes per side of the telemetry overhead.
    telemetry_jobs: int
    telemetry_rounds: int


FULL = Plan(samples=200, warmup=20, naive_samples=150, transaction_batch=16,
            delays_ms=(0.0, 5.0, 20.0), threads=(6, 10), latency_jobs=400,
            queue_variants=((20.0, 10, 8, 2), (5.0, 6, 4, 2)),
            thread_time_samples=40, io_jobs=160, io_threads=(6, 24),
            pool_threads=(6, 10, 16, 24), pool_calls=1000, cold_starts=5, idle_jobs=10,
            idle_gap_seconds=3.0, telemetry_jobs=50, telemetry_rounds=12)
QUICK = Plan(samples=10, warmup=2, naive_samples=6, transaction_batch=16, delays_ms=(5.0,),
             threads=(6,), latency_jobs=30, queue_variants=(), thread_time_samples=5,
             io_jobs=24, io_threads=(6,), pool_threads=(12,), pool_calls=48, cold_starts=1,
             idle_jobs=2, idle_gap_seconds=0.5, telemetry_jobs=10, telemetry_rounds=2)


def main(argv: Sequence[str] | None = None) -> None:
    """Measure, write the three files, and print the Markdown report."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few samples, a few dozen jobs")
    parser.add_argument("--out", type=Path, default=report.HERE, help="where to write")
    parser.add_argument("--only", choices=["telemetry"],
                        help="measure this alone and print it; write nothing")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.only == "telemetry":
        print(telemetry_only(plan))
        return
    started = time.monotonic()
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine.describe(),
        "settings": asdict(plan) | {"clients": endtoend.CLIENTS,
                                    "host_json": endtoend.host_queue_settings()},
    }
    print(f"machine: {results['machine']}", flush=True)
    results |= in_process(plan)
    results["latency"], samples = latency(plan)
    print(f"I/O-wait handlers: {plan.io_jobs} jobs per design and delay ...", flush=True)
    results["io_wait"] = iowait.run(delays_ms=plan.delays_ms, jobs=plan.io_jobs,
                                    threads=plan.io_threads)
    print("connection pool: threads sharing one table client ...", flush=True)
    results["pool"] = pool.run(threads=plan.pool_threads, calls=plan.pool_calls, delay_ms=5.0)
    print("cold start ...", flush=True)
    results["cold_start"] = coldstart.run(plan.cold_starts)
    print(f"idle latency: {plan.idle_jobs} single jobs {plan.idle_gap_seconds} s apart ...",
          flush=True)
    results["idle"] = idle.run(plan.idle_jobs, plan.idle_gap_seconds)
    results["runtime_seconds"] = round(time.monotonic() - started, 1)
    print(report.write(results, samples, args.out))
    print(f"wrote {args.out}/results.json, results.md and latency.png")


def telemetry_only(plan: Plan) -> str:
    """The telemetry overhead on a private Azurite, as its Markdown section."""
    described = machine.describe()
    azurite = Azurite()
    azurite.start()
    try:
        figures = telemetry.run(azurite.connection_string, jobs=plan.telemetry_jobs,
                                rounds=plan.telemetry_rounds)
    finally:
        azurite.stop()
    return (f"{report.machine_line(described)}; load average {described['load']} at the "
            f"start\n\n" + report.telemetry_table(figures, asdict(plan)))


def in_process(plan: Plan) -> dict[str, Any]:
    """Overheads, client reuse, transaction counts, and a job's thread time at each delay."""
    azurite = Azurite()
    azurite.start()
    try:
        rig = inprocess.open_rig(azurite.connection_string)
        print("in process: app vs bare SDK calls ...", flush=True)
        overhead = inprocess.overhead(rig, samples=plan.samples, warmup=plan.warmup)
        print("in process: a client per call vs a reused client ...", flush=True)
        reuse = inprocess.client_reuse(rig, samples=plan.naive_samples,
                                       warmup=plan.warmup // 2)
        print("in process: storage transactions per job ...", flush=True)
        counts = inprocess.count_transactions(rig, batch=plan.transaction_batch)
        print(f"in process: telemetry on vs off, {plan.telemetry_rounds} x "
              f"{plan.telemetry_jobs} jobs a side ...", flush=True)
        overhead_of_telemetry = telemetry.run(azurite.connection_string,
                                              jobs=plan.telemetry_jobs,
                                              rounds=plan.telemetry_rounds)
        thread_time = {}
        for delay in plan.delays_ms:
            print(f"in process: one job's thread time at {delay:g} ms per request ...",
                  flush=True)
            proxy = Proxy(azurite.connection_string, delay)
            try:
                thread_time[str(delay)] = inprocess.thread_time(
                    rig, proxy.start(), samples=plan.thread_time_samples)
            finally:
                proxy.stop()
    finally:
        azurite.stop()
    return {"overhead": overhead, "client_reuse": reuse, "transactions": counts,
            "thread_time": thread_time, "telemetry": overhead_of_telemetry}


def latency(plan: Plan) -> tuple[dict[str, Any], dict[str, dict[str, list[float]]]]:
    """End-to-end runs through the local host at each delay and thread count."""
    runs: dict[str, Any] = {}
    samples: dict[str, dict[str, list[float]]] = {}
    for delay in plan.delays_ms:
        for threads in plan.threads:
            label = f"{delay:g} ms, {threads} threads"
            print(f"end to end: {plan.latency_jobs} jobs, {label} ...", flush=True)
            run = endtoend.run(plan.latency_jobs, threads=threads, delay_ms=delay)
            samples[label] = run.pop("samples_ms")
            runs[label] = run
    for delay, threads, batch, threshold in plan.queue_variants:
        label = f"{delay:g} ms, {threads} threads, batch {batch}/{threshold}"
        print(f"end to end: {plan.latency_jobs} jobs, {label} ...", flush=True)
        run = endtoend.run(plan.latency_jobs, threads=threads, delay_ms=delay,
                           queues={"batchSize": batch, "newBatchThreshold": threshold})
        samples[label] = run.pop("samples_ms")
        runs[label] = run
    return runs, samples


if __name__ == "__main__":
    main()
