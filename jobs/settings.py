"""App settings, read once from the environment (local.settings.json `Values` locally)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from jobs.connection import MissingSetting, StorageConnection, read_connection

__all__ = ["MissingSetting", "Settings", "get_settings"]

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
# The Functions host lets an app setting override any host.json value under this name.
MAX_DEQUEUE_OVERRIDE = "AzureFunctionsJobHost__extensions__queues__maxDequeueCount"
DEFAULT_MAX_DEQUEUE_COUNT = 5


@dataclass(frozen=True)
class Settings:
    """Everything the job package reads from its environment."""

    #: The `AzureWebJobsStorage` connection: a connection string or an identity-based one.
    storage: StorageConnection
    table_name: str = "jobs"
    artifact_base_url: str = "https://example.invalid"
    max_dequeue_count: int = DEFAULT_MAX_DEQUEUE_COUNT
    handler_modules: tuple[str, ...] = ()
    #: How long a finished job stays readable, and how long an accepted job may wait.
    retention: timedelta = timedelta(hours=168)
    #: The auth level of every HTTP route: FUNCTION (a function key is needed) or ANONYMOUS.
    auth_level: str = "FUNCTION"
    #: The public URL the app's `/api` prefix is reached at (behind API Management or Front
    #: Door); Location and status_url are built on it. None: on the request's own URL.
    public_base_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read the settings from `env`; fail loudly if the storage connection is missing."""
        modules = env.get("JOB_HANDLER_MODULES", "")
        return cls(
            storage=read_connection(env),
            table_name=env.get("JOBS_TABLE_NAME", "jobs"),
            artifact_base_url=env.get("ARTIFACT_BASE_URL", "https://example.invalid").rstrip("/"),
            max_dequeue_count=_max_dequeue_count(env),
            handler_modules=tuple(m.strip() for m in modules.split(",") if m.strip()),
            retention=timedelta(hours=float(env.get("JOB_RETENTION_HOURS", "168"))),
            auth_level=_auth_level(env.get("JOBS_AUTH_LEVEL", "FUNCTION")),
            public_base_url=_public_base_url(env.get("JOBS_PUBLIC_BASE_URL", "")),
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


def _public_base_url(value: str) -> str | None:
    """An absolute http(s) URL without query or fragment, or None when the setting is empty."""
    if not value.strip():
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"JOBS_PUBLIC_BASE_URL must be an absolute http(s) URL such as "
                         f"https://api.example.com, not {value!r}")
    return value.strip().rstrip("/")


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
