"""Export set-up and log fields: what is imported with export off, what is refused, and how a
record's context fields reach an OpenTelemetry log handler (one attribute each)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

from jobs.exporters import configure_telemetry
from jobs.logs import ContextFields, ContextLogRecord, JsonFormatter, is_export_handler, log_context

ROOT = Path(__file__).resolve().parents[2]
EXPORT_SETTINGS = ("APPLICATIONINSIGHTS_CONNECTION_STRING", "OTEL_EXPORTER_OTLP_ENDPOINT")


def test_exporters_off_imports_neither_the_sdk_nor_an_exporter() -> None:
    env = {k: v for k, v in os.environ.items() if k not in EXPORT_SETTINGS}
    env["AzureWebJobsStorage"] = "UseDevelopmentStorage=true"
    script = ("import sys, function_app\n"
              "print([m for m in sys.modules if m.startswith(('opentelemetry.sdk', "
              "'opentelemetry.exporter', 'azure.monitor', 'opentelemetry.instrumentation'))])")
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert json.loads(out.replace("'", '"')) == []


def test_exporters_off_without_either_setting() -> None:
    assert configure_telemetry({"OTEL_SERVICE_NAME": "x"}) == "off"


@pytest.mark.parametrize("name", ["OTEL_EXPORTER_OTLP_PROTOCOL",
                                  "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"])
def test_exporters_refuse_an_otlp_protocol_they_do_not_ship(name: str) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", name: "grpc"}
    with pytest.raises(ValueError, match=f"{name}='grpc' is not supported"):
        configure_telemetry(env)
    assert "OTEL_SERVICE_NAME" not in env  # refused before anything was set up


def _configure_in_a_new_process(env: dict[str, str], script: str) -> list[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_"))}
    done = subprocess.run([sys.executable, "-c", script], env={**base, **env}, cwd=ROOT,
                          check=True, capture_output=True, text=True, timeout=60)
    return done.stdout.split()


def test_exporters_otlp_sets_the_app_defaults_and_leaves_a_configured_sdk_alone() -> None:
    script = ("import os, logging\n"
              "from opentelemetry import trace\n"
              "from jobs.exporters import configure_telemetry\n"
              "env = os.environ\n"
              "print(configure_telemetry(), env['OTEL_SERVICE_NAME'], env['OTEL_TRACES_SAMPLER'],\n"
              "      type(trace.get_tracer_provider()).__name__)\n"
              "handlers = len(logging.getLogger().handlers)\n"
              "print(configure_telemetry(), len(logging.getLogger().handlers) - handlers)\n")
    out = _configure_in_a_new_process({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
                                      script)
    assert out == ["otlp", "queue-backed-job", "parentbased_always_on", "TracerProvider",
                   "already-configured", "0"]


def test_exporters_keep_a_service_name_and_sampler_the_settings_give() -> None:
    script = ("import os\n"
              "from jobs.exporters import configure_telemetry\n"
              "configure_telemetry()\n"
              "env = os.environ\n"
              "print(env.get('OTEL_SERVICE_NAME', '-'), env['OTEL_TRACES_SAMPLER'])\n")
    out = _configure_in_a_new_process({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                                       "OTEL_RESOURCE_ATTRIBUTES": "service.name=mine",
                                       "OTEL_TRACES_SAMPLER": "traceidratio"}, script)
    assert out == ["-", "traceidratio"]


@pytest.fixture
def exported() -> Iterator[tuple[logging.Logger, InMemoryLogRecordExporter]]:
    """A logger whose one handler is the SDK's OpenTelemetry handler, with ContextFields."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(logger_provider=provider)
    handler.addFilter(ContextFields())
    logger = logging.getLogger("tests.exported")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(ContextLogRecord)
    try:
        yield logger, exporter
    finally:
        logging.setLogRecordFactory(factory)
        logger.removeHandler(handler)
        provider.shutdown()


def test_logs_context_fields_reach_an_otel_handler_as_attributes_of_their_own(
        exported: tuple[logging.Logger, InMemoryLogRecordExporter]) -> None:
    logger, exporter = exported
    span = TracerProvider().get_tracer("tests").start_span("job")
    with trace.use_span(span, end_on_exit=True), \
            log_context(job_id="j-1", customer_id="cust-1", message_id="from-context"):
        logger.info("job completed", extra={"status": "completed", "message_id": "from-extra"})
    [data] = exporter.get_finished_logs()
    record = data.log_record
    attributes = dict(record.attributes or {})
    assert record.body == "job completed"
    assert attributes["job_id"] == "j-1" and attributes["customer_id"] == "cust-1"
    assert attributes["status"] == "completed"
    assert attributes["message_id"] == "from-extra"  # an explicit extra= wins
    assert "log_context" not in attributes
    context = span.get_span_context()
    assert attributes["trace_id"] == trace.format_trace_id(context.trace_id)
    assert attributes["span_id"] == trace.format_span_id(context.span_id)
    assert record.trace_id == context.trace_id


def test_logs_json_line_after_the_filter_is_the_line_before_it() -> None:
    with log_context(correlation_id="c-1", job_id="from-context"):
        record = ContextLogRecord("jobs.x", logging.INFO, __file__, 1, "job %s", ("done",), None)
    before = json.loads(JsonFormatter().format(record))
    ContextFields().filter(record)
    after = json.loads(JsonFormatter().format(record))
    assert before == after
    assert after["job_id"] == "from-context" and after["correlation_id"] == "c-1"
    assert "trace_id" not in after  # no span was active


def test_logs_export_handlers_are_told_apart_from_the_json_ones() -> None:
    assert is_export_handler(LoggingHandler(logger_provider=LoggerProvider()))
    assert not is_export_handler(logging.StreamHandler())
