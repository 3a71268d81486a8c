"""The real exporters against local receivers: the app on the local host with real Azurite,
export turned on only by its environment, as `make run` does it.

- OTLP/HTTP: `OTEL_EXPORTER_OTLP_ENDPOINT` points at a receiver the test starts, which decodes
  `/v1/traces`, `/v1/metrics` and `/v1/logs` with opentelemetry-proto.
- Azure Monitor: the connection string's `IngestionEndpoint` (and `LiveEndpoint`) point at a
  stand-in of the ingestion service (tests/support/receivers.py says what it answers, from the
  exporter's source). Statsbeat and the control plane, which would call fixed Microsoft hosts,
  are turned off with the distro's own settings.

Export intervals are short (OTEL_BSP_SCHEDULE_DELAY, OTEL_BLRP_SCHEDULE_DELAY,
OTEL_METRIC_EXPORT_INTERVAL), and the host is stopped gracefully, so the SDK's exit handlers
flush what is left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.e2e.conftest import JobApp, serve, wait_until
from tests.support.receivers import IngestionStandIn, OtlpReceiver

pytestmark = pytest.mark.e2e

FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_BLRP_SCHEDULE_DELAY": "200",
               "OTEL_METRIC_EXPORT_INTERVAL": "500", "OTEL_SERVICE_NAME": "jobs-under-test"}
QUIET_AZURE = {"APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
               "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true"}
# The client's trace: the real host makes its invocation a child of an incoming traceparent.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
JOB_SPANS = {"send job-requests", "process job-requests"}


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def ingestion() -> Iterator[IngestionStandIn]:
    with IngestionStandIn() as stand_in:
        yield stand_in


@contextmanager
def run_job(env: dict[str, str]) -> Iterator[str]:
    """Serve the app with `env`, run one thumbnail job to its end, and give its id; on the way
    out, stop the host gracefully (its exit handlers flush the exporters) and Azurite."""
    served = serve(**env)
    app: JobApp = next(served)
    try:
        answer = app.submit(headers={"traceparent": TRACEPARENT})
        assert answer.status_code == 202, answer.text
        job_id: str = answer.json()["job_id"]
        app.wait_for(job_id, {"completed"})
        yield job_id
    finally:
        next(served, None)


def eventually(probe: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    try:
        return wait_until(probe, timeout)
    except AssertionError:
        raise AssertionError(f"never arrived: {what}") from None


def test_export_otlp_one_trace_per_job_metrics_and_log_attributes(otlp: OtlpReceiver) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_EXPORTER_OTLP_HEADERS": "api-key=k-1",
           **FAST_EXPORT}
    with run_job(env) as job_id:
        spans = eventually(lambda: _job_spans(otlp.spans(), job_id), "the job's send and "
                           "process spans")
        assert {s["name"] for s in spans} >= JOB_SPANS
        assert {s["trace_id"] for s in spans} == {TRACE_ID}  # one trace across the queue hop
        assert {s["resource"]["service.name"] for s in spans} == {"jobs-under-test"}
        finished = {"job.type": "thumbnail", "job.status": "completed"}
        eventually(lambda: _metric(otlp.metrics(), "jobs.finished", finished),
                   "jobs.finished{thumbnail, completed}")
        eventually(lambda: _metric(otlp.metrics(), "jobs.submitted", {"job.type": "thumbnail"}),
                   "jobs.submitted{thumbnail}")
        logs = eventually(lambda: [r for r in otlp.logs() if r["body"] == "job completed"
                                   and r["attributes"].get("job_id") == job_id],
                          "the job's 'job completed' log record")
        [record] = logs
        assert record["attributes"]["job_type"] == "thumbnail"
        assert record["attributes"]["customer_id"] == "cust-123"
        assert record["attributes"]["correlation_id"] == TRACE_ID
        assert record["trace_id"] == TRACE_ID  # logged inside the job's process span
        process = next(s for s in spans if s["name"] == "process job-requests")
        assert record["attributes"]["trace_id"] == TRACE_ID
        assert record["span_id"] in {s["span_id"] for s in otlp.spans()
                                     if s["trace_id"] == TRACE_ID}
        assert process["attributes"]["job.id"] == job_id
    # Every export carried the header the standard setting names, as protobuf.
    assert {(h.get("api-key"), h.get("content-type")) for h in otlp.headers} == {
        ("k-1", "application/x-protobuf")}


def test_export_azure_monitor_operation_id_and_custom_dimensions(
        ingestion: IngestionStandIn) -> None:
    env = {"APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.connection_string(),
           **QUIET_AZURE, **FAST_EXPORT}
    with run_job(env) as job_id:
        requests = eventually(lambda: ingestion.envelopes(
            "Request", lambda e: _properties(e).get("job.id") == job_id),
            "the job's process span as a request")
        assert {_tags(e)["ai.operation.id"] for e in requests} == {TRACE_ID}
        sends = eventually(lambda: ingestion.envelopes(
            "RemoteDependency", lambda e: _base(e)["name"] == "send job-requests"
            and _properties(e).get("job.id") == job_id), "the job's send span as a dependency")
        assert {_tags(e)["ai.operation.id"] for e in sends} == {TRACE_ID}
        messages = eventually(lambda: ingestion.envelopes(
            "Message", lambda e: _base(e)["message"] == "job completed"
            and _properties(e).get("job_id") == job_id), "the job's 'job completed' message")
        [message] = messages
        assert _tags(message)["ai.operation.id"] == TRACE_ID
        assert _properties(message)["customer_id"] == "cust-123"
        assert _properties(message)["job_type"] == "thumbnail"
        eventually(lambda: ingestion.envelopes(
            "Metric", lambda e: any(m["name"] == "jobs.finished" for m in _base(e)["metrics"])),
            "jobs.finished as a custom metric")
        # Live metrics (pinged every 5 s while nobody watches) asks the stand-in, not a
        # Microsoft host.
        eventually(lambda: ingestion.live_metrics_requests > 0, "a live metrics ping")


def test_export_both_settings_send_the_same_trace_to_both(
        otlp: OtlpReceiver, ingestion: IngestionStandIn) -> None:
    env = {"APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.connection_string(),
           "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, **QUIET_AZURE, **FAST_EXPORT}
    with run_job(env) as job_id:
        spans = eventually(lambda: _job_spans(otlp.spans(), job_id), "OTLP job spans")
        assert {s["trace_id"] for s in spans} == {TRACE_ID}
        eventually(lambda: ingestion.envelopes(
            "Request", lambda e: _properties(e).get("job.id") == job_id
            and _tags(e)["ai.operation.id"] == TRACE_ID), "the same trace in the stand-in")
        eventually(lambda: [r for r in otlp.logs() if r["attributes"].get("job_id") == job_id],
                   "the job's log records over OTLP")
        eventually(lambda: ingestion.envelopes(
            "Message", lambda e: _properties(e).get("job_id") == job_id),
            "the job's log records in the stand-in")


def _job_spans(spans: list[dict[str, Any]], job_id: str) -> list[dict[str, Any]] | None:
    """The spans naming `job_id`, once both the send and the process span are there."""
    mine = [s for s in spans if s["attributes"].get("job.id") == job_id]
    return mine if JOB_SPANS <= {s["name"] for s in mine} else None


def _metric(metrics: list[dict[str, Any]], name: str, dims: dict[str, str]) -> bool:
    """Whether some data point of metric `name` has the attributes `dims`."""
    for metric in metrics:
        if metric["name"] != name:
            continue
        data = metric.get("sum") or metric.get("histogram") or metric.get("gauge") or {}
        for point in data.get("dataPoints", []):
            found = {a["key"]: next(iter(a["value"].values())) for a in point["attributes"]}
            if all(found.get(k) == v for k, v in dims.items()):
                return True
    return False


def _base(envelope: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = envelope["data"]["baseData"]
    return base


def _properties(envelope: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = _base(envelope).get("properties") or {}
    return properties


def _tags(envelope: dict[str, Any]) -> dict[str, str]:
    tags: dict[str, str] = envelope["tags"]
    return tags
