"""Host configuration: host.json, local.settings.json, %SETTING% expressions and connections.

Everything here is pure or reads files once at start-up; nothing talks to storage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost.errors import SettingsError
from jobs.connection import MissingSetting, StorageConnection, read_connection

DEFAULT_CONNECTION = "AzureWebJobsStorage"
DEFAULT_ROUTE_PREFIX = "api"
LEASE_ENV_VAR = "DEVHOST_MESSAGE_LEASE_SECONDS"
# The real host receives queue messages with a 10-minute visibility and renews it.
DEFAULT_LEASE_SECONDS = 600.0
MESSAGE_ENCODINGS = ("base64", "none")

# The emulator's well-known account: public, and only ever valid against Azurite.
DEV_ACCOUNT = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
DEVELOPMENT_STORAGE = (
    "DefaultEndpointsProtocol=http;"
    f"AccountName={DEV_ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{DEV_ACCOUNT};"
    f"QueueEndpoint=http://127.0.0.1:10001/{DEV_ACCOUNT};"
    f"TableEndpoint=http://127.0.0.1:10002/{DEV_ACCOUNT};"
)

_SETTING_EXPR = re.compile(r"%([^%\s]+)%")
# .NET TimeSpan text as host.json uses it: [d.]hh:mm[:ss[.fffffff]]
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$")


@dataclass(frozen=True)
class QueueOptions:
    """The `extensions.queues` section of host.json, with the host's documented defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    visibility_timeout: float = 0.0  #: seconds before a failed message is visible again
    max_dequeue_count: int = 5
    max_polling_interval: float = 2.0  #: seconds; the documented local default
    message_encoding: str = "base64"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return `base` with `override` merged in; nested objects merge, other values replace."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def read_json_object(path: Path) -> dict[str, Any]:
    """Read a JSON file that must hold an object; a missing file reads as empty."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as e:
        raise SettingsError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise SettingsError(f"{path} must hold a JSON object")
    return data


def load_host_json(script_root: Path, override: Path | None = None) -> dict[str, Any]:
    """Read `<script_root>/host.json` and deep-merge the override file over it."""
    host_json = read_json_object(script_root / "host.json")
    if override is not None:
        if not override.is_file():
            raise SettingsError(f"host.json override {override} does not exist")
        host_json = deep_merge(host_json, read_json_object(override))
    return host_json


def load_local_settings(script_root: Path) -> dict[str, Any]:
    """Read `<script_root>/local.settings.json` (empty when there is none)."""
    return read_json_object(script_root / "local.settings.json")


def apply_local_values(
    local_settings: Mapping[str, Any], environ: MutableMapping[str, str]
) -> None:
    """Copy `Values` into the environment; a variable that is already set wins."""
    values = local_settings.get("Values") or {}
    if not isinstance(values, Mapping):
        raise SettingsError("local.settings.json: Values must be an object")
    for name, value in values.items():
        if name not in environ:
            # Values are strings in the real file; keep JSON spelling (true, 5) for others.
            environ[name] = value if isinstance(value, str) else json.dumps(value)


def local_http_port(local_settings: Mapping[str, Any]) -> int | None:
    """Return `Host.LocalHttpPort` from local.settings.json, as `func start` honours it."""
    host = local_settings.get("Host") or {}
    port = host.get("LocalHttpPort") if isinstance(host, Mapping) else None
    return int(port) if port is not None else None


def resolve_expression(value: str, environ: Mapping[str, str]) -> str:
    """Replace each `%NAME%` in a binding property with the app setting NAME."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise SettingsError(f"'%{name}%' does not resolve to a value: app setting {name} "
                                "is not set (environment or local.settings.json)")
        return environ[name]

    return _SETTING_EXPR.sub(lookup, value)


def storage_connection(setting: str | None, environ: Mapping[str, str]) -> StorageConnection:
    """Return the storage connection a binding's `connection` setting names.

    A connection string when one is set; otherwise the identity-based settings
    (`<name>__accountName` or `<name>__queueServiceUri`, ...), read as the host reads them.
    """
    name = setting or DEFAULT_CONNECTION
    if environ.get(name) or environ.get(f"AzureWebJobs{name}"):
        return StorageConnection(connection_string=connection_string(setting, environ))
    try:
        return read_connection(environ, name)
    except MissingSetting as e:
        raise SettingsError(str(e)) from e


def connection_string(setting: str | None, environ: Mapping[str, str]) -> str:
    """Return the storage connection string a binding's `connection` setting names."""
    name = setting or DEFAULT_CONNECTION
    # The host also accepts the name with its AzureWebJobs prefix left off.
    value = environ.get(name) or environ.get(f"AzureWebJobs{name}")
    if not value:
        raise SettingsError(f"connection setting {name!r} is not set")
    return expand_development_storage(value)


def expand_development_storage(value: str) -> str:
    """Map `UseDevelopmentStorage=true` to Azurite on its default local ports."""
    parts = dict(_connection_parts(value))
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return DEVELOPMENT_STORAGE
    return value


def _connection_parts(value: str) -> list[tuple[str, str]]:
    pairs = (part.split("=", 1) for part in value.split(";") if "=" in part)
    return [(key.strip().lower(), val.strip()) for key, val in pairs]


def parse_timespan(value: Any, *, number_unit: float, field: str) -> float:
    """Return seconds from a TimeSpan string ("00:00:05") or a number in `number_unit` seconds."""
    if isinstance(value, bool):
        raise SettingsError(f"{field}: expected a TimeSpan or a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value) * number_unit
    match = _TIMESPAN.match(str(value).strip())
    if match is None:
        raise SettingsError(f"{field}: {value!r} is not a TimeSpan like 00:00:05")
    days, hours, minutes, seconds, fraction = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)
    return total + (float(f"0.{fraction}") if fraction else 0.0)


def route_prefix(host_json: Mapping[str, Any]) -> str:
    """Return `extensions.http.routePrefix` without surrounding slashes (default `api`)."""
    http = host_json.get("extensions", {}).get("http", {})
    prefix = http.get("routePrefix", DEFAULT_ROUTE_PREFIX)
    return str(prefix).strip("/")


def queue_options(host_json: Mapping[str, Any]) -> QueueOptions:
    """Read `extensions.queues` from host.json, filling in the host's defaults."""
    section = host_json.get("extensions", {}).get("queues", {})
    batch_size = _int_in_range(section.get("batchSize", 16), "batchSize", 1, 32)
    threshold = section.get("newBatchThreshold", batch_size // 2)
    defaults = QueueOptions()
    return QueueOptions(
        batch_size=batch_size,
        new_batch_threshold=_int_in_range(threshold, "newBatchThreshold", 0, 1000),
        visibility_timeout=parse_timespan(
            section.get("visibilityTimeout", 0), number_unit=1.0, field="visibilityTimeout"
        ),
        max_dequeue_count=_int_in_range(
            section.get("maxDequeueCount", defaults.max_dequeue_count), "maxDequeueCount", 1, 1000
        ),
        # host.json v1 gave this in milliseconds; a TimeSpan string is the current form.
        max_polling_interval=parse_timespan(
            section.get("maxPollingInterval", 2000), number_unit=0.001, field="maxPollingInterval"
        ),
        message_encoding=_message_encoding(section.get("messageEncoding", "base64")),
    )


def message_lease_seconds(environ: Mapping[str, str]) -> float:
    """Return how long a received message stays invisible before the host renews it."""
    raw = environ.get(LEASE_ENV_VAR)
    if raw is None or raw == "":
        return DEFAULT_LEASE_SECONDS
    try:
        seconds = float(raw)
    except ValueError as e:
        raise SettingsError(f"{LEASE_ENV_VAR}={raw!r} is not a number of seconds") from e
    if seconds < 1:
        raise SettingsError(f"{LEASE_ENV_VAR} must be at least 1 second")
    return seconds


def _int_in_range(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(f"extensions.queues.{field} must be an integer in {low}..{high}")
    return value


def _message_encoding(value: Any) -> str:
    encoding = str(value).lower()
    if encoding not in MESSAGE_ENCODINGS:
        raise SettingsError(f"extensions.queues.messageEncoding must be one of {MESSAGE_ENCODINGS}")
    return encoding
