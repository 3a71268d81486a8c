"""App settings, read once from the environment (local.settings.json `Values` locally)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
# The Functions host lets an app setting override any host.json value under this name.
MAX_DEQUEUE_OVERRIDE = "AzureFunctionsJobHost__extensions__queues__maxDequeueCount"
DEFAULT_MAX_DEQUEUE_COUNT = 5


class MissingSetting(RuntimeError):
    """A required app setting is not set."""


@dataclass(frozen=True)
class Settings:
    """Everything the job package reads from its environment."""

    storage_connection: str
    table_name: str = "jobs"
    artifact_base_url: str = "https://example.invalid"
    max_dequeue_count: int = DEFAULT_MAX_DEQUEUE_COUNT
    handler_modules: tuple[str, ...] = ()
    #: How long a finished job stays readable, and how long an accepted job may wait.
    retention: timedelta = timedelta(hours=168)
    #: The auth level of every HTTP route: ANONYMOUS or FUNCTION.
    auth_level: str = "ANONYMOUS"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read the settings from `env`; fail loudly if the storage connection is missing."""
        connection = env.get("AzureWebJobsStorage")
        if not connection:
            raise MissingSetting("AzureWebJobsStorage is not set")
        modules = env.get("JOB_HANDLER_MODULES", "")
        return cls(
            storage_connection=connection,
            table_name=env.get("JOBS_TABLE_NAME", "jobs"),
            artifact_base_url=env.get("ARTIFACT_BASE_URL", "https://example.invalid").rstrip("/"),
            max_dequeue_count=_max_dequeue_count(env),
            handler_modules=tuple(m.strip() for m in modules.split(",") if m.strip()),
            retention=timedelta(hours=float(env.get("JOB_RETENTION_HOURS", "168"))),
            auth_level=_auth_level(env.get("JOBS_AUTH_LEVEL", "ANONYMOUS")),
        )


@cache
def get_settings() -> Settings:
    """The process's settings, read on first use."""
    return Settings.from_env(os.environ)


def _auth_level(value: str) -> str:
    level = value.strip().upper()
    if level not in {"ANONYMOUS", "FUNCTION"}:
        raise ValueError(f"JOBS_AUTH_LEVEL must be ANONYMOUS or FUNCTION, not {value!r}")
    return level


def _max_dequeue_count(env: Mapping[str, str]) -> int:
    """The host's maxDequeueCount: the worker needs it to know a delivery is the last."""
    override = env.get(MAX_DEQUEUE_OVERRIDE)
    if override:
        return int(override)
    try:
        queues = json.loads(HOST_JSON.read_text())["extensions"]["queues"]
    except (OSError, KeyError, ValueError):
        return DEFAULT_MAX_DEQUEUE_COUNT
    return int(queues.get("maxDequeueCount", DEFAULT_MAX_DEQUEUE_COUNT))
