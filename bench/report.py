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
# Why a job costs more transactions than the minimum, for the rows that can.
EXTRAS = {
    "first use": "once per process, when the store is first used (create_table_if_not_exists)",
    "thumbnail": "+1 conditional merge: the thumbnail handler reports progress once",
    "naive": "+1 create table per call (answered 409 Conflict), and a new TCP connection",
}


def write(results: Mapping[str, Any], samples: Mapping[str, Mapping[str, list[float]]]) -> str:
    """Write the three files; return the Markdown text."""
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    text = markdown(results)
    (HERE / "results.md").write_text(text, encoding="utf-8")
    overflows = any(run["tcp"].get("listen_overflows") for run in results["end_to_end"].values())
    plot(samples, HERE / "latency.png", subtitle=_machine_line(results["machine"]),
         mark_retry_step=overflows)
    return text


def markdown(results: Mapping[str, Any]) -> str:
    """The short human-readable table of every figure."""
    parts = [
        "# Benchmark results (`make bench`)\n",
        f"{_machine_line(results['machine'])}; {results['generated_at']}; "
        f"`make bench` took {results['runtime_seconds']:.0f} s.\n",
        _overhead_table(results["overhead"], results["settings"]),
        _reuse_table(results["client_reuse"]),
        _transactions_table(results["transactions"]),
        _end_to_end_table(results["end_to_end"], results["settings"]),
        _idle_table(results["idle"]),
    ]
    return "\n".join(parts)


def _machine_line(machine: Mapping[str, Any]) -> str:
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
              "worker": "worker: `process_job` (no progress) vs get_entity + 2 conditional merges"}
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


def _end_to_end_table(runs: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    rows = []
    for run in runs.values():
        submit, done = run["submit_latency"], run["accepted_to_completed"]
        rows.append([run["jobs"], run["worker"]["threads"], run["submit_requests_per_s"],
                     f"{submit['p50_ms']:.0f} / {submit['p95_ms']:.0f} / {submit['p99_ms']:.0f}",
                     run["jobs_per_s"], f"{done['p50_ms']:.0f} / {done['p95_ms']:.0f}",
                     run["host_peak_rss_mib"],
                     f"{run['cpu_seconds']['host']} / {run['cpu_seconds']['azurite']}",
                     f"{run['tcp'].get('listen_overflows', 'n/a')} / {run['connection_retries']}"])
    header = ["jobs", "worker threads", "submit req/s", "submit p50 / p95 / p99 ms",
              "jobs/s completed", "202 to completed p50 / p95 ms", "host peak RSS MiB",
              "CPU s host / Azurite", "listen overflows / client retries"]
    return (f"## End to end through the local host ({settings['clients']} concurrent HTTP "
            f"clients, thumbnail jobs, host.json override {json.dumps(settings['host_json'])}, "
            "one worker process)"
            "\n\n" + _table(header, rows)
            + "\njobs/s runs from the first submit to the last `completed_at`. A listen "
            "overflow is a connection the host's listen queue refused; the client's kernel "
            "retries it a second later, which is the one-second step in the submit tail; a "
            "client retry is a POST sent again after its connection was reset.\n")


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
        for size, runs in samples.items():  # e.g. "2000" or "2000, 24 threads"
            values = sorted(runs[key])
            fractions = [(i + 1) / len(values) for i in range(len(values))]
            label = size.replace(",", " jobs,") if "," in size else f"{size} jobs"
            axis.step(values, fractions, where="post", label=label)
        _decorate(axis, title)
    if mark_retry_step:
        axes[0].annotate("step at 1 s: connections the\nhost's listen queue refused,\n"
                         "retried by the client's kernel", (1000, 0.93), xytext=(230, 0.45),
                         textcoords="data", fontsize=8, arrowprops={"arrowstyle": "->"})
    figure.suptitle(f"End to end through the local host, 16 concurrent clients\n{subtitle}",
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
    axis.legend(loc="lower right")
