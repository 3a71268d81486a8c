"""Local stand-ins for where telemetry goes: an OTLP/HTTP receiver and the Application Insights
ingestion endpoint. Each is a small HTTP server on a free loopback port that keeps what it was
sent, decoded, for a test to assert on.

    with OtlpReceiver() as otlp:              # OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url
        ... otlp.spans(), otlp.metric_names(), otlp.logs()
    with IngestionStandIn() as ingestion:     # APPLICATIONINSIGHTS_CONNECTION_STRING=...
        ... ingestion.envelopes("Request")

From a shell, either one prints a line for each span, log record and metric it receives
(Ctrl-C stops it):

    .venv/bin/python -m tests.support.receivers otlp --port 4318
    .venv/bin/python -m tests.support.receivers ingestion --port 4319

What they answer is what the real services answer:
- OTLP/HTTP (the OTLP specification, "OTLP/HTTP Response"): 200 with a protobuf
  Export<Signal>ServiceResponse body, `Content-Type: application/x-protobuf`.
- Application Insights ingestion (`POST /v2.1/track`, the Breeze API the exporter's generated
  client calls, azure-sdk-for-python `sdk/monitor/azure-monitor-opentelemetry-exporter`,
  `_generated/exporter/_operations/_operations.py`): 200 with
  `{"itemsReceived": n, "itemsAccepted": n, "errors": []}`. Live metrics pings
  (`/QuickPulseService.svc/...`) get 200 with `x-ms-qps-subscribed: false`, which tells the
  exporter that nobody watches, so it keeps pinging and never posts.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_OTLP = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse),
}


def _body(handler: BaseHTTPRequestHandler) -> bytes:
    raw = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
    encoding = (handler.headers.get("Content-Encoding") or "").lower()
    if encoding == "gzip" or raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if encoding == "deflate":
        return zlib.decompress(raw)
    return raw


class _Server:
    """A threading HTTP server whose handler calls `self.answer(path, headers, body)`."""

    def __init__(self, port: int = 0) -> None:
        self.lock = threading.Lock()
        #: Called with a line for each item received, when given (the command line prints).
        self.echo: Callable[[str], None] | None = None
        #: The headers of every request received, in order.
        self.headers: list[dict[str, str]] = []
        answer, headers = self.answer, self.headers

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
                headers.append({k.lower(): v for k, v in self.headers.items()})
                status, sent, payload = answer(self.path, _body(self))
                self.send_response(status)
                for name, value in sent.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class OtlpReceiver(_Server):
    """Decodes the `/v1/traces`, `/v1/metrics` and `/v1/logs` bodies with opentelemetry-proto."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self.received: dict[str, list[Any]] = {path: [] for path in _OTLP}

    def answer(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if path not in _OTLP:
            return 404, {}, b""
        request_type, response_type = _OTLP[path]
        request = request_type()
        request.ParseFromString(body)
        with self.lock:
            self.received[path].append(request)
        if self.echo is not None:
            for line in _otlp_lines(path, request):
                self.echo(line)
        return 200, {"Content-Type": "application/x-protobuf"}, \
            response_type().SerializeToString()

    def __enter__(self) -> OtlpReceiver:
        super().__enter__()
        return self

    def _all(self, path: str) -> list[Any]:
        with self.lock:
            return list(self.received[path])

    def spans(self) -> list[dict[str, Any]]:
        """Every span received, as dicts: name, kind, ids in hex, times, status, attributes."""
        found = []
        for request in self._all("/v1/traces"):
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found.append({"name": span.name, "kind": span.kind,
                                      "trace_id": span.trace_id.hex(),
                                      "span_id": span.span_id.hex(),
                                      "parent_span_id": span.parent_span_id.hex(),
                                      "start_ns": span.start_time_unix_nano,
                                      "end_ns": span.end_time_unix_nano,
                                      "status": span.status.code,
                                      "links": [link.span_id.hex() for link in span.links],
                                      "scope": scope_spans.scope.name,
                                      "attributes": attributes(span.attributes),
                                      "resource": resource})
        return found

    def metrics(self) -> list[dict[str, Any]]:
        """Every metric received, as the protobuf JSON mapping (name, unit, sum/histogram/...)."""
        found = []
        for request in self._all("/v1/metrics"):
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    found += [MessageToDict(m) for m in scope_metrics.metrics]
        return found

    def logs(self) -> list[dict[str, Any]]:
        """Every log record received: body, severity, trace and span ids in hex, attributes."""
        found = []
        for request in self._all("/v1/logs"):
            for resource_logs in request.resource_logs:
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        found.append({"body": record.body.string_value,
                                      "severity": record.severity_text,
                                      "trace_id": record.trace_id.hex(),
                                      "span_id": record.span_id.hex(),
                                      "attributes": attributes(record.attributes)})
        return found


def attributes(pairs: Any) -> dict[str, Any]:
    """OTLP KeyValue pairs as a plain dict of their values."""
    found: dict[str, Any] = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        found[pair.key] = getattr(pair.value, kind) if kind else None
    return found


class IngestionStandIn(_Server):
    """Application Insights ingestion on loopback: keeps every envelope POSTed to /v2.1/track."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self.items: list[dict[str, Any]] = []
        self.live_metrics_requests = 0

    def connection_string(self) -> str:
        """A connection string whose ingestion and live metrics endpoints are this stand-in."""
        return (f"InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                f"IngestionEndpoint={self.url}/;LiveEndpoint={self.url}/")

    def answer(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/QuickPulseService.svc"):
            with self.lock:
                self.live_metrics_requests += 1
            return 200, {"x-ms-qps-subscribed": "false", "Content-Type": "application/json"}, \
                b"{}"
        if path.rstrip("/") != "/v2.1/track":
            return 404, {}, b""
        items = _envelopes(body)
        with self.lock:
            self.items += items
        if self.echo is not None:
            for item in items:
                self.echo(_envelope_line(item))
        answer = {"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()

    def __enter__(self) -> IngestionStandIn:
        super().__enter__()
        return self

    def envelopes(self, kind: str | None = None,
                  where: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """The envelopes received, of one kind ("Request", "RemoteDependency", "Message",
        "Metric", ...) if given, and for which `where` is true."""
        with self.lock:
            items = list(self.items)
        return [item for item in items
                if (kind is None or item.get("data", {}).get("baseType") == f"{kind}Data")
                and (where is None or where(item))]


def _envelopes(body: bytes) -> list[dict[str, Any]]:
    """The exporter sends a JSON array of envelopes (or, for one, a JSON object)."""
    text = body.decode("utf-8").strip()
    if text.startswith("["):
        loaded: list[dict[str, Any]] = json.loads(text)
        return loaded
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _otlp_lines(path: str, request: Any) -> list[str]:
    """One line per span, log record or metric of an OTLP request."""
    if path == "/v1/traces":
        return [f"span    {span.trace_id.hex()} {span.name}"
                for group in request.resource_spans for scope in group.scope_spans
                for span in scope.spans]
    if path == "/v1/logs":
        return [f"log     {record.trace_id.hex() or '-' * 32} {record.body.string_value} "
                f"job_id={attributes(record.attributes).get('job_id', '-')}"
                for group in request.resource_logs for scope in group.scope_logs
                for record in scope.log_records]
    return [f"metric  {metric.name}" for group in request.resource_metrics
            for scope in group.scope_metrics for metric in scope.metrics]


def _envelope_line(item: dict[str, Any]) -> str:
    """One line per Application Insights envelope: its type, operation id and name."""
    base = item.get("data", {}).get("baseData", {})
    name = base.get("name") or base.get("message") or ",".join(
        m.get("name", "") for m in base.get("metrics", []))
    kind = str(item.get("data", {}).get("baseType", "")).removesuffix("Data")
    operation = item.get("tags", {}).get("ai.operation.id", "-")
    return f"{kind:<17} {operation} {name}"


def main(argv: list[str] | None = None) -> int:
    """Serve one receiver on loopback until Ctrl-C, printing what arrives."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.receivers")
    parser.add_argument("kind", choices=["otlp", "ingestion"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    receiver: _Server = OtlpReceiver(args.port) if args.kind == "otlp" else IngestionStandIn(
        args.port)
    receiver.echo = lambda line: print(line, flush=True)
    with receiver:
        if isinstance(receiver, IngestionStandIn):
            print(f"APPLICATIONINSIGHTS_CONNECTION_STRING={receiver.connection_string()}",
                  flush=True)
        else:
            print(f"OTEL_EXPORTER_OTLP_ENDPOINT={receiver.url}", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
