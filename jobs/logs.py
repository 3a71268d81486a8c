"""Structured logging: JSON lines, with the invocation's context fields on every record.

Values travel as data on the record (`extra=`), never formatted into the message text.
`log_context` adds fields such as the correlation id to every record logged inside it,
including those of libraries, so one invocation's lines can be found together. Each field
becomes an attribute of the record itself, with the active span's `trace_id` and `span_id`,
so an OpenTelemetry log handler exports each as an attribute of its own (customDimensions in
Application Insights) while the JSON lines stay as they were.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from opentelemetry import trace

from jobs.models import JobMessage, JobRecord

_context: ContextVar[Mapping[str, Any]] = ContextVar("log_context", default=MappingProxyType({}))
# Attributes every LogRecord has; anything else on a record is a structured field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "log_context"}


def job_fields(job: JobMessage | JobRecord) -> dict[str, str]:
    """The fields that identify a job in every log line about it."""
    return {"job_id": job.job_id, "job_type": job.job_type, "customer_id": job.customer_id}


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` to every record logged in this block (and in nested blocks)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class ContextLogRecord(logging.LogRecord):
    """A log record that also answers with the fields of the `log_context` it was made in.

    They are kept apart from the record's own attributes until a handler's `ContextFields`
    filter moves them onto it: `Logger.makeRecord` refuses an `extra=` field the new record
    already has, and an explicit `extra=` field of the same name must win instead of clashing.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log_context = {**_context.get(), **_span_ids()}

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["log_context"][name]
        except KeyError:
            raise AttributeError(name) from None


def _span_ids() -> dict[str, str]:
    """The active span's trace and span ids in W3C hex, or nothing outside a span."""
    span = trace.get_current_span().get_span_context()
    if not span.is_valid:
        return {}
    return {"trace_id": trace.format_trace_id(span.trace_id),
            "span_id": trace.format_span_id(span.span_id)}


class ContextFields(logging.Filter):
    """Moves a record's context fields onto the record as attributes of their own.

    An exporter's handler reads a record's attributes one by one: a dict of them would reach
    Application Insights as one opaque value. A field the record already has (from `extra=`)
    keeps its value.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__.pop("log_context", None) or {}
        for name, value in fields.items():
            record.__dict__.setdefault(name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and every structured field."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "log_context", {}),
        }
        line.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging() -> None:
    """Stamp context fields on every record and write every line as JSON.

    Under the Functions host the root logger already has the worker's handler, which ships
    each formatted line to the host: it gets the JSON formatter, so the fields reach the
    host's logs too. Elsewhere (the local host, scripts) a stderr handler prints the lines.
    An OpenTelemetry handler (`configure_telemetry` adds it first) keeps the message as the
    log body and gets each field as an attribute.
    """
    logging.setLogRecordFactory(ContextLogRecord)
    # The SDKs log request URLs and headers at INFO: noise, and no place for storage details.
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("jobs").setLevel(logging.INFO)
    root = logging.getLogger()
    if all(is_export_handler(handler) for handler in root.handlers):
        root.addHandler(logging.StreamHandler(sys.stderr))
    for handler in root.handlers:
        if not any(isinstance(f, ContextFields) for f in handler.filters):
            handler.addFilter(ContextFields())
        if not is_export_handler(handler):
            handler.setFormatter(JsonFormatter())


def is_export_handler(handler: logging.Handler) -> bool:
    """Whether `handler` is an OpenTelemetry log handler (the SDK's or the distro's)."""
    return type(handler).__module__.startswith("opentelemetry.")
