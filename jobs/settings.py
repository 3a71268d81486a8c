"""App settings, read once from the environment (local.settings.json `Values` locally)."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from storage_connection import MissingSetting, StorageConnection, read_connection

__all__ = ["InvalidSetting", "MissingSetting", "Settings", "get_settings"]

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
# The Functions host lets an app setting override any host.json value under this name.
MAX_DEQUEUE_OVERRIDE = "AzureFunctionsJobHost__extensions__queues__maxDequeueCount"
DEFAULT_MAX_DEQUEUE_COUNT = 5
# Ten years: any longer window would push the app's date arithmetic past the year 9999.
MAX_HOURS = 87_600
PUBLIC_BASE_URL = "JOBS_PUBLIC_BASE_URL"
_DNS_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
                       r"(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
# RFC 3986 path characters, with %XX escapes only.
_URL_PATH = re.compile(r"(/([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})*)*")
# The sweep fails a running job not updated for JOB_ABANDON_AFTER_HOURS. At 0 it would fail
# every running job, even one that reported progress a second before: start-up refuses less
# than three minutes, far more than any clock skew between instances.
MIN_ABANDON_HOURS = 0.05


class InvalidSetting(ValueError):
    """An app setting holds a value the app cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything the job package reads from its environment."""

    #: The `AzureWebJobsStorage` connection: a connection string or an identity-based one.
    storage: StorageConnection
    table_name: str = "jobs"
    artifact_base_url: str = "https://example.invalid"
    max_dequeue_count: int = DEFAULT_MAX_DEQUEUE_COUNT
    handler_modules: tuple[str, ...] = ()
    #: How long a finished job stays readable.
    retention: timedelta = timedelta(hours=168)
    #: How long a running job may go without an update before the sweep fails it.
    abandon_after: timedelta = timedelta(hours=24)
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
            retention=_hours(env, "JOB_RETENTION_HOURS", "168"),
            abandon_after=_hours(env, "JOB_ABANDON_AFTER_HOURS", "24",
                                 minimum=MIN_ABANDON_HOURS),
            auth_level=_auth_level(env.get("JOBS_AUTH_LEVEL", "FUNCTION")),
            public_base_url=_public_base_url(env.get(PUBLIC_BASE_URL, "")),
        )


@cache
def get_settings() -> Settings:
    """The process's settings, read on first use."""
    return Settings.from_env(os.environ)


def _hours(env: Mapping[str, str], name: str, default: str, *, minimum: float = 0
           ) -> timedelta:
    """A number of hours, fractions allowed, from `minimum` to MAX_HOURS; else start-up
    stops."""
    value = env.get(name, default)
    try:
        hours = float(value)
    except ValueError:
        hours = math.nan
    if not minimum <= hours <= MAX_HOURS:  # also refuses NaN
        raise InvalidSetting(
            f"{name} must be a number of hours from {minimum:g} to {MAX_HOURS}, not {value!r}")
    return timedelta(hours=hours)


def _auth_level(value: str) -> str:
    level = value.strip().upper()
    if level not in {"ANONYMOUS", "FUNCTION"}:
        raise ValueError(f"JOBS_AUTH_LEVEL must be ANONYMOUS or FUNCTION, not {value!r}")
    return level


def _public_base_url(value: str) -> str | None:
    """The one URL Location and status_url are built on, rebuilt from its checked parts.

    https, or http for a loopback host only; a DNS name or IP address; an optional port and
    path; no credentials, query, fragment, whitespace or control characters. None when unset.
    """
    if not value.strip():
        return None
    if any(c.isspace() or not c.isprintable() for c in value) or "?" in value or "#" in value:
        raise _bad_base_url(value, "whitespace, control characters, '?' and '#' are not allowed")
    parts = urlsplit(value)
    if "@" in parts.netloc:
        raise _bad_base_url(value, "credentials (user@) are not allowed")
    host = _base_url_host(value, parts)
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and _is_loopback(host)):
        raise _bad_base_url(value, "the scheme must be https (http only for a loopback host)")
    try:
        port = parts.port
    except ValueError as e:
        raise _bad_base_url(value, "the port must be a number from 1 to 65535") from e
    if port == 0 or (port is None and parts.netloc.endswith(":")):
        raise _bad_base_url(value, "the port must be a number from 1 to 65535")
    if not _URL_PATH.fullmatch(parts.path):
        raise _bad_base_url(value, "the path may hold only URL path characters and %XX escapes")
    netloc = f"[{host}]" if ":" in host else host
    return f"{scheme}://{netloc}{'' if port is None else f':{port}'}{parts.path.rstrip('/')}"


def _base_url_host(value: str, parts: SplitResult) -> str:
    host = (parts.hostname or "").lower()
    if host and (_DNS_NAME.fullmatch(host) or _is_ip(host)):
        return host
    raise _bad_base_url(value, "it needs a host: a DNS name (ASCII; punycode for others) or an "
                               "IP address")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    return _is_ip(host) and ipaddress.ip_address(host).is_loopback


def _bad_base_url(value: str, reason: str) -> InvalidSetting:
    return InvalidSetting(f"{PUBLIC_BASE_URL} must be an absolute URL such as "
                          f"https://api.example.com/jobs-api: {reason}; got {value!r}")


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
