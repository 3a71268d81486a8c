"""Telemetry overhead: whole jobs in process with the OpenTelemetry SDK on, against off.

A job here is what the app and the host do for it, one after the other: submit_job (under
an HTTP invocation's trace context), the host's send of its message, a receive, process_job
with the no-progress handler (under a queue invocation's own root context), the delete.
Its latency runs from the POST to the delete; jobs/s is jobs over the side's wall time, and
CPU per job is this process's alone (Azurite's is left out).

- off: the API alone, with no SDK: what the app runs with when no export is configured.
- on: the SDK with every span exported at its end to an in-memory exporter (a
  SimpleSpanProcessor: the export cost is paid inside the job, an upper bound on a batching
  processor's) and every instrument recorded into an in-memory metric reader.

A process can set its global providers only once, so each side runs in a child process of
its own (`python -m bench.telemetry SIDE CONNECTION JOBS`), and the sides alternate (off
then on, then on then off) in many short rounds, so that Azurite's drift as its table grows
and the other work of a shared machine hit both alike.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from time import perf_counter, process_time
from typing import Any

from bench.stats import ms, percentile, summary

SIDES = ("off", "on")
WARMUP = 10


def run(connection: str, *, jobs: int, rounds: int) -> dict[str, Any]:
    """Both sides, `rounds` child processes each of `jobs` jobs; their figures and ratios.

    The ratios are medians over the rounds, each round's two children run back to back:
    other work on a shared machine slows the children it overlaps, and a median of
    pairs leaves those rounds out where totals would count them against one side.
    """
    latencies: dict[str, list[float]] = {side: [] for side in SIDES}
    walls, cpus = dict.fromkeys(SIDES, 0.0), dict.fromkeys(SIDES, 0.0)
    spans = 0
    pairs: list[dict[str, dict[str, Any]]] = []
    for round_ in range(rounds):
        pair = {}
        for side in SIDES if round_ % 2 == 0 else SIDES[::-1]:
            child = pair[side] = _child(side, connection, jobs)
            latencies[side] += child["latencies"]
            walls[side] += child["wall"]
            cpus[side] += child["cpu"]
            spans += child["spans"]
        pairs.append(pair)
    figures = {side: {"jobs": len(latencies[side]),
                      "jobs_per_s": round(len(latencies[side]) / walls[side], 1),
                      "cpu_ms_per_job": ms(cpus[side] / len(latencies[side])),
                      "latency": summary(latencies[side])} for side in SIDES}
    return {
        **figures,
        "spans_per_job": round(spans / len(latencies["on"]), 1),
        "throughput_ratio": _median_ratio(pairs, lambda c: c["wall"]),
        "cpu_ratio": _median_ratio(pairs, lambda c: c["cpu"]),
        "p50_ratio": _median_ratio(pairs, lambda c: statistics.median(c["latencies"])),
        "p95_ratio": _median_ratio(pairs, lambda c: percentile(c["latencies"], 95)),
    }


def _median_ratio(pairs: list[dict[str, dict[str, Any]]],
                  cost: Callable[[dict[str, Any]], float]) -> float:
    """The median over rounds of on's cost over off's (for equal job counts, wall time
    over wall time is off's jobs/s over on's)."""
    return round(statistics.median(cost(p["on"]) / cost(p["off"]) for p in pairs), 3)


def _child(side: str, connection: str, jobs: int) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - our own module, with our own arguments
        [sys.executable, "-m", "bench.telemetry", side, connection, str(jobs)],
        capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {side} side failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def measure(side: str, connection: str, jobs: int) -> dict[str, Any]:
    """One side in this process: WARMUP jobs untimed, then `jobs` timed ones."""
    spans = _install_sdk() if side == "on" else None
    from bench import inprocess  # after the SDK: nothing of the app may run before it

    rig = inprocess.open_rig(connection)
    queue = inprocess.host_queue(connection, f"telemetry{side}{uuid.uuid4().hex[:8]}")
    for _ in range(WARMUP):
        _job(rig, queue)
    if spans is not None:
        spans.clear()
    latencies = []
    started, cpu = perf_counter(), process_time()
    for _ in range(jobs):
        latencies.append(_job(rig, queue))
    wall, cpu = perf_counter() - started, process_time() - cpu
    queue.delete_queue()
    recorded = 0 if spans is None else len(spans.get_finished_spans())
    if side == "on" and recorded < jobs * 2:
        raise RuntimeError(f"telemetry on recorded {recorded} spans for {jobs} jobs")
    return {"latencies": latencies, "wall": wall, "cpu": cpu, "spans": recorded}


def _job(rig: Any, queue: Any) -> float:
    """One job, POST to delete; its seconds."""
    from bench.handlers import NOOP
    from bench.inprocess import CUSTOMER, PAYLOAD, URL
    from tests.support.functions import (
        CapturingOut,
        InvocationContext,
        TraceContext,
        new_root,
        post_json,
        queue_message,
    )

    client = new_root().trace_parent
    request = post_json(URL, {"job_type": NOOP, "customer_id": CUSTOMER, "payload": PAYLOAD},
                        headers={"traceparent": client})
    out = CapturingOut()
    http = InvocationContext("submit_job", TraceContext(_child_of(client)))
    started = perf_counter()
    response = rig.functions["submit_job"](request, job_message=out, context=http)
    queue.send_message(out.get())
    message = queue.receive_message()
    delivery = queue_message(message.content, dequeue_count=message.dequeue_count,
                             message_id=message.id)
    rig.functions["process_job"](delivery, context=InvocationContext("process_job", new_root()))
    queue.delete_message(message)
    elapsed = perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"submit_job answered {response.status_code}")
    return elapsed


def _child_of(traceparent: str) -> str:
    version, trace_id, _, flags = traceparent.split("-")
    return f"{version}-{trace_id}-{uuid.uuid4().hex[:16]}-{flags}"


def _install_sdk() -> Any:
    """The SDK as the global providers, with in-memory readers; returns the span exporter."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    return exporter


def main(argv: Sequence[str]) -> None:
    side, connection, jobs = argv
    print(json.dumps(measure(side, connection, int(jobs))))


if __name__ == "__main__":
    main(sys.argv[1:])
