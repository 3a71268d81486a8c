"""The OpenTelemetry SDK with in-memory readers, installed once per test process.

The API lets a process set its global tracer and meter providers once, so every test that
reads spans or metrics shares these two readers: `Recorded.start()` forgets what earlier
tests left, and metrics are read as deltas since then.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
    _Gauge,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

DELTA = AggregationTemporality.DELTA


@cache
def readers() -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    """Install the SDK with in-memory readers as the global providers (once)."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(tracer_provider)
    reader = InMemoryMetricReader(preferred_temporality={
        kind: DELTA for kind in (Counter, UpDownCounter, Histogram, ObservableCounter,
                                 ObservableUpDownCounter, ObservableGauge, _Gauge)})
    meter_provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(meter_provider)
    if trace.get_tracer_provider() is not tracer_provider or \
            metrics.get_meter_provider() is not meter_provider:
        raise RuntimeError("another OpenTelemetry provider was installed in this process first")
    return spans, reader


@dataclass
class Point:
    """One metric data point: its attributes and its value (a sum, a gauge or a histogram)."""

    attributes: dict[str, Any]
    value: float = 0.0
    count: int = 0
    total: float = 0.0


@dataclass
class Recorded:
    """What the app recorded since `start()`."""

    spans_exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    _metrics: dict[str, list[Point]] = field(default_factory=dict)

    def start(self) -> Recorded:
        self.spans_exporter.clear()
        self.reader.get_metrics_data()  # drain: the next read holds only what comes after
        return self

    def spans(self) -> list[ReadableSpan]:
        return list(self.spans_exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]

    def metrics(self) -> dict[str, list[Point]]:
        """Each metric's points since the last read (they add up over the reads)."""
        for name, point in _points(self.reader):
            self._metrics.setdefault(name, []).append(point)
        return self._metrics

    def total(self, name: str, **attributes: Any) -> float:
        """The sum of a counter's points whose attributes include `attributes`."""
        return sum(p.value for p in self.metrics().get(name, [])
                   if attributes.items() <= p.attributes.items())


def _points(reader: InMemoryMetricReader) -> Iterator[tuple[str, Point]]:
    data = reader.get_metrics_data()
    if data is None:
        return
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for p in metric.data.data_points:
                    attributes = dict(p.attributes or {})
                    if hasattr(p, "bucket_counts"):
                        yield metric.name, Point(attributes, count=p.count, total=p.sum)
                    else:
                        yield metric.name, Point(attributes, value=p.value)
