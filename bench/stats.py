"""Small statistics over latency samples, in seconds in and milliseconds out."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from pathlib import Path


def percentile(samples: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation between closest ranks."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded for reports."""
    return round(seconds * 1000, 3)


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Count, median and tail percentiles of `samples` (seconds), in milliseconds."""
    return {
        "n": len(samples),
        "p50_ms": ms(statistics.median(samples)),
        "p95_ms": ms(percentile(samples, 95)),
        "p99_ms": ms(percentile(samples, 99)),
        "mean_ms": ms(statistics.fmean(samples)),
    }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
