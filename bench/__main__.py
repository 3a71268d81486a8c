"""Run every measurement and write bench/results.json, bench/results.md, bench/latency.png.

    python -m bench            (make bench)

In-process figures first, on one private Azurite; then the end-to-end runs and the idle
latency, each on a fresh Azurite and a fresh local host. Nothing here asserts on speed: it
measures and reports.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from bench import endtoend, idle, inprocess, machine, report
from tests.support.azurite import Azurite

SAMPLES = 400
WARMUP = 40
NAIVE_SAMPLES = 300
TRANSACTION_BATCH = 16
# (jobs, PYTHON_THREADPOOL_THREAD_COUNT): None is the worker's default, min(32, cpu + 4).
RUNS: tuple[tuple[int, int | None], ...] = ((200, None), (2000, None), (2000, 24))


def main() -> None:
    """Measure, write the three files, and print the Markdown table."""
    started = time.monotonic()
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine.describe(),
        "settings": {"samples": SAMPLES, "warmup": WARMUP, "naive_samples": NAIVE_SAMPLES,
                     "transaction_batch": TRANSACTION_BATCH, "runs": [list(r) for r in RUNS],
                     "clients": endtoend.CLIENTS, "host_json": endtoend.HOST_JSON,
                     "worker": endtoend.worker_setup(endtoend.ENV)},
    }
    print(f"machine: {results['machine']}", flush=True)
    results |= in_process()
    samples: dict[str, dict[str, list[float]]] = {}
    results["end_to_end"] = {}
    for size, threads in RUNS:
        label = str(size) if threads is None else f"{size}, {threads} threads"
        print(f"end to end: {label} through the local host ...", flush=True)
        run = endtoend.run(size, threads=threads)
        samples[label] = run.pop("samples_ms")
        results["end_to_end"][label] = run
    print(f"idle latency: {idle.JOBS} single jobs {idle.GAP_SECONDS:.0f} s apart ...", flush=True)
    results["idle"] = idle.run()
    results["runtime_seconds"] = round(time.monotonic() - started, 1)
    print(report.write(results, samples))
    print(f"wrote {report.HERE}/results.json, results.md and latency.png")


def in_process() -> dict[str, Any]:
    """The overhead ratios, the client-reuse speed-up and the transaction counts."""
    azurite = Azurite()
    azurite.start()
    try:
        rig = inprocess.open_rig(azurite.connection_string)
        print("in process: app vs bare SDK calls ...", flush=True)
        overhead = inprocess.overhead(rig, samples=SAMPLES, warmup=WARMUP)
        print("in process: a client per call vs a reused client ...", flush=True)
        reuse = inprocess.client_reuse(rig, samples=NAIVE_SAMPLES, warmup=WARMUP // 2)
        print("in process: storage transactions per job ...", flush=True)
        counts = inprocess.count_transactions(rig, batch=TRANSACTION_BATCH)
    finally:
        azurite.stop()
    return {"overhead": overhead, "client_reuse": reuse, "transactions": counts}


if __name__ == "__main__":
    main()
