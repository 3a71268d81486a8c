"""App settings, read once from the environment (local.settings.json `Values` locally)."""

from __future__ import annotations

import json
import math
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
# Ten years: any longer window would push the app's date arithmetic past the year 9999.
MAX_HOURS = 87_600


class MissingSetting(RuntimeError):
    """A required app setting is not set."""


class InvalidSetting(ValueError):
    """An app setting holds a value the app cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything the job package reads from its environment."""

    storage_connection: str
    table_name: str = "jobs"
    artifact_base_url: str = "https://example.invalid"
    max_dequeue_count: int = DEFAULT_MAX_DEQUEUE_COUNT
    handler_modules: tuple[str, ...] = ()
    #: How long a finished job stays readable.
    retention: timedelta = timedelta(hours=168)
    #: How long a running job may go without an update before the sweep fails it.
    abandon_after: timedelta = timedelta(hours=24)
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
            retention=_hours(env, "JOB_RETENTION_HOURS", "168"),
            abandon_after=_hours(env, "JOB_ABANDON_AFTER_HOURS", "24"),
            auth_level=_auth_level(env.get("JOBS_AUTH_LEVEL", "ANONYMOUS")),
        )


@cache
def get_settings() -> Settings:
    """The process's settings, read on first use."""
    return Settings.from_env(os.environ)


def _hours(env: Mapping[str, str], name: str, default: str) -> timedelta:
    """A number of hours, fractions allowed, from 0 to MAX_HOURS; else start-up stops."""
    value = env.get(name, default)
    try:
        hours = float(value)
    except ValueError:
        hours = math.nan
    if not 0 <= hours <= MAX_HOURS:  # also refuses NaN
        raise InvalidSetting(
            f"{name} must be a number of hours from 0 to {MAX_HOURS}, not {value!r}")
    return timedelta(hours=hours)


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
