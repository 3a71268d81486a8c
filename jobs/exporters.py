"""Where telemetry goes, chosen once at start-up by the environment.

- `APPLICATIONINSIGHTS_CONNECTION_STRING`: Microsoft's Azure Monitor distro
  (`azure-monitor-opentelemetry`) exports traces, metrics and logs to Application Insights.
- `OTEL_EXPORTER_OTLP_ENDPOINT`: the OpenTelemetry SDK exports them over OTLP/HTTP with protobuf
  bodies, the OTLP default; the standard `OTEL_*` variables (headers, timeouts, export intervals,
  service name, resource attributes) are read by the SDK itself.
- Both: both, as the Functions host does with both settings; the distro's pipeline carries the
  OTLP exporters as extra processors and readers, so each span, metric and log goes to both.
- Neither: nothing is imported or set up; the OpenTelemetry API's calls stay no-ops.

The SDK and the exporters are imported inside the functions: an app without export pays
nothing for them at cold start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
#: The only OTLP protocol this app ships an exporter for (the OTLP specification's default).
OTLP_PROTOCOL = "http/protobuf"
_PROTOCOL_SETTINGS = ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                      "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL")
DEFAULT_SERVICE_NAME = "queue-backed-job"
DEFAULT_SAMPLER = "parentbased_always_on"
# Resource detectors for where this app runs; the distro's default list also has the Azure VM
# detector, which asks the instance metadata endpoint on every start outside App Service.
_RESOURCE_DETECTORS = "azure_app_service,azure_functions"

Export = Literal["azure-monitor", "otlp", "azure-monitor+otlp", "already-configured", "off"]

log = logging.getLogger(__name__)


def configure_telemetry(environ: MutableMapping[str, str] | None = None) -> Export:
    """Set up export from the environment (see the module docstring); returns what was set up.

    Raises ValueError for an OTLP protocol other than http/protobuf, before anything is set
    up. A process whose tracer provider is already an SDK one (the Python worker configures
    the distro itself when PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY is true) is left as it
    is, so no span is exported twice.
    """
    env = os.environ if environ is None else environ
    azure, otlp = bool(env.get(CONNECTION_STRING)), bool(env.get(OTLP_ENDPOINT))
    if not (azure or otlp):
        return "off"
    if otlp:
        _check_protocol(env)
    if _sdk_already_configured():
        log.info("telemetry export already configured in this process; left as it is")
        return "already-configured"
    _defaults(env)
    if azure:
        _configure_azure_monitor(env, with_otlp=otlp)
        return "azure-monitor+otlp" if otlp else "azure-monitor"
    _configure_otlp()
    return "otlp"


def _check_protocol(env: MutableMapping[str, str]) -> None:
    for name in _PROTOCOL_SETTINGS:
        value = env.get(name, OTLP_PROTOCOL).strip().lower()
        if value != OTLP_PROTOCOL:
            raise ValueError(f"{name}={value!r} is not supported: this app exports OTLP over "
                             f"HTTP with protobuf bodies only ({OTLP_PROTOCOL!r}, the default)")


def _sdk_already_configured() -> bool:
    from opentelemetry import trace

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _defaults(env: MutableMapping[str, str]) -> None:
    """The app's defaults for what the OTEL_* settings leave open.

    - `service.name` (cloud_RoleName in Application Insights): the app's name.
    - The sampler: parent-based, so every span of a job follows the decision its submit made
      (carried in the stored traceparent's sampled flag). The distro's own default samples
      each span with a remote parent by an estimate of the last 0.1 s's span rate, so a job's
      send span could be kept and its process span, under a burst, dropped.
    """
    if "service.name=" not in env.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        env.setdefault("OTEL_SERVICE_NAME", env.get("WEBSITE_SITE_NAME") or DEFAULT_SERVICE_NAME)
    env.setdefault("OTEL_TRACES_SAMPLER", DEFAULT_SAMPLER)
    env.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", _RESOURCE_DETECTORS)


def _configure_azure_monitor(env: MutableMapping[str, str], *, with_otlp: bool) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor

    extra: dict[str, Any] = {}
    if with_otlp:
        extra = {"span_processors": [_otlp_span_processor()],
                 "log_record_processors": [_otlp_log_processor()],
                 "metric_readers": [_otlp_metric_reader()]}
    # The root logger: every record of the app and its libraries, as with OTLP below.
    configure_azure_monitor(connection_string=env[CONNECTION_STRING], logger_name="", **extra)


def _configure_otlp() -> None:
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(_otlp_span_processor())
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource,
                                             metric_readers=[_otlp_metric_reader()]))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(_otlp_log_processor())
    _logs.set_logger_provider(logger_provider)
    logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))


# Each exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (adding /v1/traces, /v1/metrics, /v1/logs),
# the per-signal endpoints, headers, timeout and compression; each batch processor and reader
# reads its own interval (OTEL_BSP_SCHEDULE_DELAY, OTEL_BLRP_SCHEDULE_DELAY,
# OTEL_METRIC_EXPORT_INTERVAL).
def _otlp_span_processor() -> BatchSpanProcessor:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(OTLPSpanExporter())


def _otlp_log_processor() -> BatchLogRecordProcessor:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    return BatchLogRecordProcessor(OTLPLogExporter())


def _otlp_metric_reader() -> PeriodicExportingMetricReader:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    return PeriodicExportingMetricReader(OTLPMetricExporter())
