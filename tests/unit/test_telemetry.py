"""The telemetry helpers, and what the API alone does when no SDK is installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import telemetry

ROOT = Path(__file__).resolve().parents[2]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OFF = """
import json, sys
from jobs import telemetry
from opentelemetry.trace import SpanKind
parent = telemetry.extract(sys.argv[1], "v=1")
with telemetry.span("send job-requests", kind=SpanKind.PRODUCER, parent=parent) as span:
    headers = telemetry.current_headers()
telemetry.submitted.add(1, {"job.type": "x"})
telemetry.oldest_accepted_age.set(3.0)
print(json.dumps({"headers": headers, "recording": span.is_recording(),
                  "sdk": any(m.startswith("opentelemetry.sdk") for m in sys.modules)}))
"""


def test_telemetry_off_hands_the_host_context_on_and_records_nothing() -> None:
    """With no SDK (no export set up), spans are the API's no-op: nothing is recorded, and a
    job's message and row carry the host's own trace context, so traces still join up
    wherever the host itself exports."""
    run = subprocess.run([sys.executable, "-c", OFF, TRACEPARENT], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True)
    found = json.loads(run.stdout)
    assert found == {"headers": [TRACEPARENT, "v=1"], "recording": False, "sdk": False}


@pytest.mark.parametrize("value", [None, "", "00-xyz", "00-" + "0" * 32 + "-00f067aa0ba902b7-01"])
def test_telemetry_extract_refuses_what_names_no_span(value: str | None) -> None:
    assert telemetry.extract(value) is None


def test_telemetry_customer_hash_is_stable_short_and_not_the_id() -> None:
    hashed = telemetry.customer_hash("cust-123")
    assert hashed == telemetry.customer_hash("cust-123") != telemetry.customer_hash("cust-124")
    assert len(hashed) == 16 and int(hashed, 16) >= 0 and "cust" not in hashed
