"""Draw one job's trace as a waterfall, from a real local run.

    .venv/bin/python scripts/job_trace.py [--out docs/job-trace.png]
    .venv/bin/python scripts/job_trace.py --poisoned --out docs/job-trace-poisoned.png

Starts Azurite, an OTLP/HTTP receiver (tests/support/receivers.py) and the app on the local
host with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at the receiver, submits one thumbnail job
with a client's `traceparent`, waits for it to finish, stops the host (which flushes the
exporter), and draws every span of that trace. Prints each span: its start after the trace's
first span, its length and its name. With `--poisoned` the job is one that fails on every
delivery (the end-to-end tests' `always_fails`), with 3 deliveries a second apart.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import requests
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import devhost_process  # noqa: E402
from tests.support.azurite import Azurite  # noqa: E402
from tests.support.receivers import OtlpReceiver  # noqa: E402

JOB = {"job_type": "thumbnail", "customer_id": "cust-123",
       "payload": {"asset_url": "https://example.invalid/image.png"}}
POISONED_JOB = {"job_type": "always_fails", "customer_id": "cust-123"}
# Retries a second apart, three deliveries, as the end-to-end tests run them.
RETRY_FAST = {"extensions": {"queues": {"maxPollingInterval": "00:00:00.200",
                                        "visibilityTimeout": "00:00:01",
                                        "maxDequeueCount": 3}}}
POISONED_ENV = {"JOB_HANDLER_MODULES": "tests.e2e.handlers",
                "AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "3",
                "DEVHOST_MESSAGE_LEASE_SECONDS": "3"}
KIND_NAMES = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
KIND_COLOURS = {"internal": "#8da0cb", "producer": "#fc8d62", "consumer": "#66c2a5"}


def run_one_job(trace_id: str, *, poisoned: bool = False) -> list[dict[str, Any]]:
    """Every span of the trace `trace_id` that one job made on a local run."""
    azurite = Azurite()
    azurite.start()
    try:
        with OtlpReceiver() as otlp:
            env = {"AzureWebJobsStorage": azurite.connection_string, "JOBS_TABLE_NAME": "jobs",
                   "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "100",
                   "OTEL_SERVICE_NAME": "queue-backed-job", **(POISONED_ENV if poisoned else {})}
            with devhost_process.start(ROOT, env=env,
                                       host_json_override=RETRY_FAST if poisoned else None
                                       ) as host:
                host.wait_ready()
                submit(f"{host.base_url}/api/jobs", trace_id,
                       POISONED_JOB if poisoned else JOB)
            return [s for s in otlp.spans() if s["trace_id"] == trace_id]
    finally:
        azurite.stop()


def submit(url: str, trace_id: str, job: dict[str, Any]) -> None:
    """POST `job` as a client in trace `trace_id` would, and wait until it finished."""
    parent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    answer = requests.post(url, json=job, headers={"traceparent": parent}, timeout=10)
    answer.raise_for_status()
    status_url = answer.headers["Location"]
    for _ in range(600):
        if requests.get(status_url, timeout=10).json()["status"] in ("completed", "failed"):
            time.sleep(0.5)  # the last delivery's spans end after its write
            return
        time.sleep(0.1)
    raise RuntimeError("the job did not finish in 60 s")


def draw(spans: list[dict[str, Any]], path: Path) -> None:
    """A waterfall: one bar per span, ordered by start, milliseconds after the first."""
    spans = sorted(spans, key=lambda s: s["start_ns"])
    origin = spans[0]["start_ns"]
    total = max((s["end_ns"] - origin) / 1e6 for s in spans)
    figure = Figure(figsize=(11, 0.45 * len(spans) + 1.6))
    axis = figure.add_subplot()
    for row, span in enumerate(spans):
        start = (span["start_ns"] - origin) / 1e6
        length = (span["end_ns"] - span["start_ns"]) / 1e6
        kind = KIND_NAMES.get(span["kind"], "internal")
        failed = span["status"] == STATUS_ERROR
        axis.barh(row, max(length, total / 250), left=start,
                  color=KIND_COLOURS.get(kind, "#8da0cb"),
                  edgecolor="#d62728" if failed else "none", linewidth=2)
        axis.text(start + max(length, total / 250) + total / 200, row,
                  f"{span['name']} [{kind}{', error' if failed else ''}] {length:.1f} ms",
                  va="center", fontsize=9)
    _mark_the_queue(axis, spans, origin)
    axis.set_yticks([])
    axis.invert_yaxis()
    axis.set_xlabel("milliseconds after the submit's send span started")
    axis.set_xlim(0, total * 1.45)
    axis.set_title(f"One job's trace, one trace id across the queue: {spans[0]['trace_id']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _mark_the_queue(axis: Any, spans: list[dict[str, Any]], origin: int) -> None:
    """A dotted span from the end of the first send to the start of the first process."""
    send = next((s for s in spans if s["name"] == "send job-requests"), None)
    process = next((s for s in spans if s["name"] == "process job-requests"), None)
    if send is None or process is None:
        return
    start, end = (send["end_ns"] - origin) / 1e6, (process["start_ns"] - origin) / 1e6
    row = spans.index(send)
    axis.plot([start, end], [row + 0.5, row + 0.5], linestyle=":", color="grey")
    axis.text(start, row + 0.45, f"  in the queue {end - start:.1f} ms",
              ha="left", va="bottom", fontsize=8, color="grey")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "job-trace.png")
    parser.add_argument("--poisoned", action="store_true",
                        help="a job that fails on every delivery and is poisoned")
    args = parser.parse_args(argv)
    spans = run_one_job(secrets.token_hex(16), poisoned=args.poisoned)
    if not spans:
        print("no span arrived: is the local host's trace context sampled?", file=sys.stderr)
        return 1
    origin = min(s["start_ns"] for s in spans)
    print(f"trace {spans[0]['trace_id']}: {len(spans)} spans")
    for span in sorted(spans, key=lambda s: s["start_ns"]):
        print(f"{(span['start_ns'] - origin) / 1e6:8.1f} ms  "
              f"{(span['end_ns'] - span['start_ns']) / 1e6:7.1f} ms  {span['name']}")
    draw(spans, args.out)
    print(f"wrote {args.out.resolve().relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
