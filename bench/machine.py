"""What the figures were measured on: CPUs, memory, Python and the key package versions."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

PACKAGES = ("azure-functions", "azure-functions-validation", "azure-data-tables",
            "azure-storage-queue", "azure-core", "pydantic", "opentelemetry-api",
            "opentelemetry-sdk")


def describe() -> dict[str, Any]:
    """The machine and software the benchmark ran on."""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "azurite": _azurite_version(),
        "packages": {name: version(name) for name in PACKAGES},
        #: 1-, 5- and 15-minute load averages: above nproc, other work shared the CPUs.
        "load": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _azurite_version() -> str | None:
    package = Path(__file__).resolve().parents[1] / "node_modules" / "azurite" / "package.json"
    try:
        return str(json.loads(_read(str(package)))["version"])
    except (ValueError, KeyError):
        return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""
