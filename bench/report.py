"""Writing the figures: bench/results.json, bench/results.md and bench/latency.png."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from bench.handlers import NOOP

HERE = Path(__file__).resolve().parent
TARGET_RATIO = 1.15
TELEMETRY_GOAL = 1.10
# Why a job costs more transactions than the minimum, for the rows that can.
EXTRAS = {
    "first use": "once per process, when the store is first used (create_table_if_not_exists)",
    "thumbnail": "+1 conditional merge: the thumbnail handler reports progress once",
    "naive": "+1 create table per call (answered 409 Conflict), and a new TCP connection",
}


def write(results: Mapping[str, Any], samples: Mapping[str, Mapping[str, list[float]]],
          out: Path = HERE) -> str:
    """Write the three files into `out`; return the Markdown text."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    text = markdown(results)
    (out / "results.md").write_text(text, encoding="utf-8")
    overflows = any(run["tcp"].get("listen_overflows") for run in results["latency"].values())
    plot(samples, out / "latency.png", subtitle=machine_line(results["machine"]),
         mark_retry_step=overflows)
    return text


def markdown(results: Mapping[str, Any]) -> str:
    """The short human-readable table of every figure."""
    kind = "`python -m bench --quick`" if results.get("quick") else "`make bench`"
    parts = [
        f"# Benchmark results ({kind})\n",
        f"{machine_line(results['machine'])}; load average {results['machine'].get('load')} "
        f"at the start; {results['generated_at']}; {kind} took "
        f"{results['runtime_seconds']:.0f} s.\n",
        _overhead_table(results["overhead"], results["settings"]),
        _reuse_table(results["client_reuse"]),
        _transactions_table(results["transactions"]),
        telemetry_table(results["telemetry"], results["settings"]),
        _thread_time_table(results["thread_time"]),
        _latency_table(results["latency"], results["thread_time"], results["settings"],
                       results["machine"]),
        _io_wait_table(results["io_wait"]),
        _pool_table(results["pool"]),
        _cold_start_table(results["cold_start"]),
        _idle_table(results["idle"]),
    ]
    return "\n".join(parts)


def machine_line(machine: Mapping[str, Any]) -> str:
    return (f"{machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB, "
            f"Python {machine['python']}, Azurite {machine['azurite']}")


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _overhead_table(overhead: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    rows = []
    labels = {"submit": "submit: `submit_job` + host's queue send vs create_entity + send_message",
              "worker": "worker: `process_job` (no progress) vs a bare claim transaction + merge"}
    for name, label in labels.items():
        app, bare, ratio = overhead[name]["app"], overhead[name]["bare"], overhead[name]["ratio"]
        verdict = "ok" if ratio <= TARGET_RATIO else "above"
        cpu = f"{app['cpu_p50_ms']} / {bare['cpu_p50_ms']}"
        rows.append([label, app["p50_ms"], bare["p50_ms"], f"**{ratio:.3f}**",
                     f"{verdict} (<= {TARGET_RATIO})", cpu])
    return (f"## App overhead, in process ({settings['samples']} interleaved samples each, "
            f"after {settings['warmup']} warm-up)\n\n"
            + _table(["path", "app p50 ms", "bare SDK p50 ms", "ratio", "target",
                      "Python CPU p50 ms app / bare"], rows))


def _reuse_table(reuse: Mapping[str, Any]) -> str:
    rows = [[name, figure["naive"]["p50_ms"], figure["reused"]["p50_ms"],
             f"**{figure['ratio']:.2f}x**"] for name, figure in reuse.items()]
    return ("## Client per call (naive) vs one client per process, in process\n\n"
            + _table(["path", "naive p50 ms", "reused p50 ms", "speed-up of reuse"], rows)
            + f"\nNaive: {EXTRAS['naive']}.\n")


def _transactions_table(counts: Mapping[str, Any]) -> str:
    batch = counts["batch"]
    noop, thumb = counts[NOOP], counts["thumbnail"]
    rows = []
    for step, ops in noop.items():
        for op, count in ops.items():
            rows.append([step, op, _per_job(count, batch), thumb.get(step, {}).get(op, 0)])
    for step, ops in thumb.items():
        rows += [[step, op, 0, count] for op, count in ops.items() if op not in noop.get(step, {})]
    totals = [sum(sum(ops.values()) for ops in job.values()) for job in (noop, thumb)]
    rows.append(["**total**", "", _per_job(totals[0], batch), totals[1]])
    notes = [f"- Not per job: {_ops(counts['first_use'])}, {EXTRAS['first use']}.",
             f"- Thumbnail: {EXTRAS['thumbnail']}.",
             f"- A naive submit (client per call): {_ops(counts['naive_submit'])}.",
             "- Each client status poll (GET) is 1 table read; each empty queue poll is "
             "1 receive per queue-triggered function (the job queue and its poison queue)."]
    return ("## Storage transactions per job (counted on the clients; one receive per batch)"
            "\n\n" + _table(["step", "operation", f"no-progress job (batch of {batch})",
                             "thumbnail job (batch of 1)"], rows)
            + "\n" + "\n".join(notes) + "\n")


def _per_job(count: int, batch: int) -> str:
    if count % batch == 0:
        return str(count // batch)
    if batch % count == 0:
        return f"{count / batch:.4g} (1/{batch // count})"
    return f"{count / batch:.3f}"


def _ops(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {op}" for op, count in counts.items())


def telemetry_table(figures: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    rows = []
    for side, label in (("off", "off: the API alone, no SDK"),
                        ("on", "on: SDK, in-memory span exporter and metric reader")):
        run = figures[side]
        rows.append([label, run["jobs"], run["jobs_per_s"], run["latency"]["p50_ms"],
                     run["latency"]["p95_ms"], run["cpu_ms_per_job"]])
    ratios = (f"on / off, medians over the rounds: throughput **{figures['throughput_ratio']:.3f}"
              f"x** (off jobs/s over on), p50 latency **{figures['p50_ratio']:.3f}x**, p95 "
              f"{figures['p95_ratio']:.3f}x, CPU per job **{figures['cpu_ratio']:.3f}x**; "
              f"{figures['spans_per_job']} spans per job; goal at most {TELEMETRY_GOAL:.2f}x.")
    return (f"## Telemetry overhead, in process ({settings['telemetry_rounds']} rounds of two "
            f"child processes, off and on, {settings['telemetry_jobs']} sequential jobs each, "
            "POST to delete)\n\n"
            + _table(["telemetry", "jobs", "jobs/s", "p50 ms", "p95 ms", "CPU ms/job"], rows)
            + "\n" + ratios + "\n")


def _thread_time_table(thread_time: Mapping[str, Any]) -> str:
    rows = []
    for delay, t in thread_time.items():
        rows.append([f"{float(delay):g}", t["submit_job"]["p50_ms"], t["process_job"]["p50_ms"],
                     t["thread_ms_per_job"], t["cpu_ms_per_job"],
                     f"**{t['storage_wait_ms_per_job']}**", t["read_round_trip"]["p50_ms"]])
    samples = next(iter(thread_time.values()))["samples"] if thread_time else 0
    return (f"## What one no-progress job holds a worker thread for, in process ({samples} jobs "
            "one at a time, through the latency proxy)\n\n"
            + _table(["storage delay ms", "submit_job p50 ms", "process_job p50 ms",
                      "thread ms per job (mean)", "CPU ms per job", "storage wait ms per job",
                      "one read p50 ms (what a claim without a read saves)"], rows)
            + "\nStorage wait is wall-clock minus CPU: the round trips a thread sits out.\n")


def bounds(run: Mapping[str, Any], thread_time: Mapping[str, Any]) -> dict[str, float]:
    """The concurrency bound, the CPU bound and the measured share of the smaller one."""
    wait = thread_time[str(run["delay_ms"])]["storage_wait_ms_per_job"]
    concurrency = run["worker"]["threads"] * 1000 / wait
    cpu = 1000 / run["host_cpu_ms_per_job"]
    return {"concurrency": round(concurrency, 1), "cpu": round(cpu, 1),
            "share": round(run["jobs_per_s"] / min(concurrency, cpu), 3)}


def _latency_table(runs: Mapping[str, Any], thread_time: Mapping[str, Any],
                   settings: Mapping[str, Any], machine: Mapping[str, Any]) -> str:
    rows = []
    for run in runs.values():
        submit, done, cpu = run["submit_latency"], run["accepted_to_completed"], run["cpu_seconds"]
        b = bounds(run, thread_time)
        per_job = "/".join(f"{cpu[name] / run['jobs'] * 1000:.1f}"
                           for name in ("host", "azurite", "proxy"))
        queues = run["queues"]
        rows.append([f"{run['delay_ms']:g}", run["worker"]["threads"],
                     f"{queues['batchSize']}/{queues['newBatchThreshold']}", run["jobs"],
                     f"{submit['p50_ms']:.0f} / {submit['p95_ms']:.0f}",
                     f"**{run['jobs_per_s']}**", f"{done['p50_ms']:.0f} / {done['p95_ms']:.0f}",
                     per_job, b["concurrency"], b["cpu"], f"**{b['share']:.0%}**",
                     f"{run['host_core_share']:.0%}", f"{run['machine_busy']:.0%}",
                     f"{cpu['other_work']:.1f}",
                     f"{run['tcp'].get('listen_overflows', 'n/a')} / {run['connection_retries']}"])
    header = ["storage delay ms", "worker threads", "batchSize/ newBatchThreshold", "jobs",
              "submit p50 / p95 ms",
              "jobs/s completed (one process)", "202 to completed p50 / p95 ms",
              "CPU ms per job host / Azurite / proxy", "concurrency bound jobs/s",
              "CPU bound jobs/s", "measured / smaller bound", "host's share of one core",
              "machine CPUs busy", "CPU s of other work", "listen overflows / retries"]
    return (f"## Under storage latency: end to end through the local host ({settings['clients']}"
            f" concurrent HTTP clients, no-progress jobs, one worker process, other queue "
            f"settings {json.dumps(settings['host_json'])})\n\n" + _table(header, rows)
            + f"\njobs/s runs from the first submit to the last `completed_at`. Concurrency "
            "bound: worker threads / storage wait per job (the table above, same delay). CPU "
            "bound: 1 / the host process's CPU per job (the local host runs the Functions "
            "host's queue and HTTP work in the same process; in Azure that is a separate .NET "
            f"process). All processes share the machine's {machine['nproc']} CPUs: the host's "
            "share of one core is its CPU over the run's wall-clock, and machine CPUs busy "
            "counts every process on the machine; other work is the machine's busy CPU time "
            "during the run less this run's processes (host, Azurite, proxy, clients).\n")


def _io_wait_table(runs: list[Mapping[str, Any]]) -> str:
    base = {run["delay_ms"]: run["jobs_per_s"] for run in runs
            if run["design"] == "sync" and run["threads"] == 6}
    rows = []
    for run in runs:
        speed = run["jobs_per_s"] / base[run["delay_ms"]] if run["delay_ms"] in base else None
        rows.append([f"{run['delay_ms']:g}", run["design"], run["threads"], run["jobs"],
                     f"**{run['jobs_per_s']}**", run["cpu_ms_per_job"], run["most_at_once"],
                     "" if speed is None else f"{speed:.2f}x"])
    return ("## Handlers that wait 100-500 ms on I/O: sync in a thread pool vs async "
            "(in process, through the latency proxy; at most 24 jobs leased at once)\n\n"
            + _table(["storage delay ms", "design", "threads", "jobs", "jobs/s",
                      "CPU ms per job", "most jobs at once", "vs sync, 6 threads"], rows))


def _pool_table(runs: list[Mapping[str, Any]]) -> str:
    rows = [[r["threads"], r["calls"], f"**{r['opened']}**", r["discarded"]] for r in runs]
    delay = runs[0]["delay_ms"] if runs else 0
    return (f"## Threads sharing one table client (warm, {delay:g} ms per request)\n\n"
            + _table(["threads", "reads", "connections opened", "connections discarded"], rows)
            + "\nazure-core's requests transport keeps 10 connections per host; past that, "
            "urllib3 opens a connection per call and closes it after.\n")


def _cold_start_table(cold: Mapping[str, Any]) -> str:
    rows = [[cold["runs"], cold["interpreter_ms"], f"**{cold['import_function_app_ms']}**",
             cold["import_function_app_min_ms"], cold["first_request_ms"],
             cold["start_to_first_answer_ms"], ", ".join(cold["optional_imported"]) or "none"]]
    parts = ", ".join(f"{name} {ms_}" for name, ms_ in cold["import_breakdown_ms"].items())
    return ("## Cold start: process start to the first answered request (medians)\n\n"
            + _table(["runs", "interpreter ms", "import function_app ms", "min ms",
                      "first GET ms (store built, one read)", "start to first answer ms",
                      "optional packages imported"], rows)
            + f"\n`python -X importtime`, ms by package imported by function_app: {parts}. "
            f"Goal for the import: <= {cold['goal_import_ms']:.0f} ms.\n")


def _idle_table(idle: Mapping[str, Any]) -> str:
    done = idle["accepted_to_completed"]
    verdict = "ok" if idle["within_target"] else "above"
    rows = [[idle["jobs"], idle["gap_seconds"], f"**{done['p50_ms']:.0f}**",
             f"{done['p95_ms']:.0f}", f"{verdict} (p50 <= {idle['target_p50_ms']:.0f} ms)"]]
    return ("## Idle latency: single jobs through the local host, enqueue notification on\n\n"
            + _table(["jobs", "seconds apart", "202 to completed p50 ms", "p95 ms", "target"],
                     rows)
            + "\nEach job is submitted alone after the poller has backed off; the host's "
            "enqueue notification wakes it when submit_job's queue output adds the message.\n")


def plot(samples: Mapping[str, Mapping[str, list[float]]], path: Path, *, subtitle: str,
         mark_retry_step: bool = False) -> None:
    """Latency distributions (ECDFs, log scale) of submit and of 202-to-completed, per size."""
    panels = [("submit_latency", "POST /api/jobs latency (client side)"),
              ("accepted_to_completed", "202 Accepted to completed_at")]
    # A bare Figure, not pyplot: no GUI backend and no global state.
    figure = Figure(figsize=(12, 4.8))
    axes = figure.subplots(1, 2)
    for axis, (key, title) in zip(axes, panels, strict=True):
        for label, runs in samples.items():  # e.g. "20 ms, 6 threads"
            values = sorted(runs[key])
            fractions = [(i + 1) / len(values) for i in range(len(values))]
            axis.step(values, fractions, where="post", label=f"storage +{label}")
        _decorate(axis, title)
    if mark_retry_step:
        axes[0].annotate("step at 1 s: connections the\nhost's listen queue refused,\n"
                         "retried by the client's kernel", (1000, 0.93), xytext=(230, 0.45),
                         textcoords="data", fontsize=8, arrowprops={"arrowstyle": "->"})
    figure.suptitle("End to end through the local host, 16 concurrent clients, storage "
                    f"delay added by the latency proxy\n{subtitle}",
                    fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _decorate(axis: Any, title: str) -> None:
    axis.set_xscale("log")
    # Plain numbers on the major ticks; minor labels would overlap on a short log range.
    axis.xaxis.set_major_formatter(ScalarFormatter())
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("milliseconds (log scale)")
    axis.set_ylabel("fraction of jobs at or below")
    axis.set_title(title)
    for level, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        axis.axhline(level, color="grey", linewidth=0.5, linestyle=":")
        axis.annotate(label, (0, level), xycoords=("axes fraction", "data"),
                      xytext=(3, 2), textcoords="offset points", fontsize=7, color="grey")
    axis.grid(True, which="both", linewidth=0.3)
    axis.legend(loc="upper left", fontsize=7, framealpha=0.8)
