"""Host configuration: host.json, local.settings.json, %SETTING% expressions and connections.

Everything here is pure or reads files once at start-up; nothing talks to storage.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost.errors import SettingsError
from storage_connection import MissingSetting, StorageConnection, read_connection

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

# App settings under this prefix override host.json, `__` separating the path segments.
HOST_SETTINGS_PREFIX = "AzureFunctionsJobHost__"
THREAD_COUNT_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"
PROCESS_COUNT_SETTING = "FUNCTIONS_WORKER_PROCESS_COUNT"
BODY_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
#: The host's request body limit unless the app setting above changes it: 100 MB (Azure
#: Functions app settings reference, FUNCTIONS_REQUEST_BODY_SIZE_LIMIT).
DEFAULT_BODY_LIMIT = 104_857_600

_SETTING_EXPR = re.compile(r"%([^%\s]+)%")
# .NET TimeSpan text as host.json uses it: [d.]hh:mm[:ss[.fffffff]]
TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$")


@dataclass(frozen=True)
class QueueOptions:
    """The `extensions.queues` section of host.json, with the host's documented defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8  #: the host's default is (batch_size // 2) * processor count
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


def load_host_json(script_root: Path, override: Path | None = None,
                   environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read `<script_root>/host.json`, deep-merge the override file, then the app settings.

    As in the real host, an app setting `AzureFunctionsJobHost__extensions__queues__batchSize`
    wins over host.json's `extensions.queues.batchSize`.
    """
    host_json = read_json_object(script_root / "host.json")
    if override is not None:
        if not override.is_file():
            raise SettingsError(f"host.json override {override} does not exist")
        host_json = deep_merge(host_json, read_json_object(override))
    return apply_host_setting_overrides(host_json, environ or {})


def apply_host_setting_overrides(host_json: Mapping[str, Any],
                                 environ: Mapping[str, str]) -> dict[str, Any]:
    """Return host.json with each `AzureFunctionsJobHost__a__b` app setting written to `a.b`.

    .NET configuration keys are case-insensitive: an override lands on the key host.json
    already spells that way, and its value stays a string (the readers below accept both).
    """
    merged = deep_merge({}, host_json)
    for name, value in sorted(environ.items()):
        if name.lower().startswith(HOST_SETTINGS_PREFIX.lower()):
            path = [p for p in name[len(HOST_SETTINGS_PREFIX):].split("__") if p]
            if path:
                _set_path(merged, path, value)
    return merged


def _set_path(target: dict[str, Any], path: list[str], value: str) -> None:
    for segment in path[:-1]:
        key = _existing_key(target, segment)
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[_existing_key(target, path[-1])] = value


def _existing_key(target: Mapping[str, Any], segment: str) -> str:
    return next((k for k in target if k.lower() == segment.lower()), segment)


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
    try:
        connection = read_connection(environ, setting or DEFAULT_CONNECTION)
        if connection.connection_string is None:
            connection.service_uri("queue")  # the only service the local host's bindings use
            return connection
    except MissingSetting as e:
        raise SettingsError(str(e)) from e
    return StorageConnection(
        connection_string=expand_development_storage(connection.connection_string))


def connection_string(setting: str | None, environ: Mapping[str, str]) -> str:
    """Return the storage connection string a binding's `connection` setting names."""
    name = setting or DEFAULT_CONNECTION
    # As the host's GetWebJobsConnectionStringSection: `AzureWebJobs<name>` first, then `<name>`.
    value = environ.get(f"AzureWebJobs{name}") or environ.get(name)
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


def parse_timespan(value: Any, *, field: str) -> float:
    """Return seconds from a .NET TimeSpan string such as "00:00:05" or "1.00:00:00".

    host.json binds time spans through .NET configuration, which reads a bare number as
    days ("200" is 200 days), never as milliseconds. Rather than guess, a number is refused.
    """
    text = str(value).strip()
    if isinstance(value, bool | int | float) or re.fullmatch(r"[+-]?\d+(\.\d+)?", text):
        raise SettingsError(
            f"{field}: {value!r} is a bare number; host.json time spans are .NET TimeSpan "
            f"strings like \"00:00:02\" (2 s) or \"00:00:00.200\" (200 ms). The Functions host "
            f"would read {text} as {text} days.")
    match = TIMESPAN.match(text)
    if match is None:
        raise SettingsError(f"{field}: {value!r} is not a TimeSpan like 00:00:05")
    return timespan_seconds(match)


def timespan_seconds(match: re.Match[str]) -> float:
    """Seconds in a `TIMESPAN` match: [d.]hh:mm[:ss[.fffffff]]."""
    days, hours, minutes, seconds, fraction = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)
    return total + (float(f"0.{fraction}") if fraction else 0.0)


def route_prefix(host_json: Mapping[str, Any]) -> str:
    """Return `extensions.http.routePrefix` without surrounding slashes (default `api`)."""
    http = _section(host_json, "extensions", "http")
    prefix = _get(http, "routePrefix", DEFAULT_ROUTE_PREFIX)
    return str(prefix).strip("/")


def queue_options(host_json: Mapping[str, Any], *, processors: int | None = None) -> QueueOptions:
    """Read `extensions.queues` from host.json, filling in the host's defaults.

    `maxPollingInterval` defaults to 2 s, the default `func start` uses locally; in Azure the
    default is 1 minute (QueuePollingIntervals.DefaultMaximum).
    """
    section = _section(host_json, "extensions", "queues")
    batch_size = _int_in_range(_get(section, "batchSize", 16), "batchSize", 1, 32)
    # QueuesOptions.NewBatchThreshold: (BatchSize / 2) * ProcessorCount unless set.
    default_threshold = (batch_size // 2) * (processors or os.cpu_count() or 1)
    threshold = _get(section, "newBatchThreshold", default_threshold)
    defaults = QueueOptions()
    return QueueOptions(
        batch_size=batch_size,
        new_batch_threshold=_int_in_range(threshold, "newBatchThreshold", 0, 100_000),
        visibility_timeout=parse_timespan(_get(section, "visibilityTimeout", "00:00:00"),
                                          field="visibilityTimeout"),
        max_dequeue_count=_int_in_range(
            _get(section, "maxDequeueCount", defaults.max_dequeue_count), "maxDequeueCount", 1, 1000
        ),
        max_polling_interval=_polling_interval(_get(section, "maxPollingInterval", "00:00:02")),
        message_encoding=_message_encoding(_get(section, "messageEncoding", "base64")),
    )


def _polling_interval(value: Any) -> float:
    seconds = parse_timespan(value, field="maxPollingInterval")
    if seconds < 0.1:  # QueuesOptions.MaxPollingInterval refuses less than the 100 ms minimum
        raise SettingsError("extensions.queues.maxPollingInterval must be at least 00:00:00.100")
    return seconds


def worker_thread_count(environ: Mapping[str, str]) -> int:
    """PYTHON_THREADPOOL_THREAD_COUNT, or the worker's default: ThreadPoolExecutor's own,
    min(32, cpu_count + 4)."""
    raw = environ.get(THREAD_COUNT_SETTING, "").strip()
    if not raw:
        return min(32, (os.cpu_count() or 1) + 4)
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{THREAD_COUNT_SETTING}={raw!r} must be a whole number of at least 1")
    return int(raw)


def worker_process_count(environ: Mapping[str, str]) -> int:
    """FUNCTIONS_WORKER_PROCESS_COUNT (default 1, at most 10, as the host allows)."""
    raw = environ.get(PROCESS_COUNT_SETTING, "").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 10:
        raise SettingsError(f"{PROCESS_COUNT_SETTING}={raw!r} must be a whole number in 1..10")
    return int(raw)


def request_body_limit(environ: Mapping[str, str]) -> int:
    """The largest request body the host takes, in bytes: FUNCTIONS_REQUEST_BODY_SIZE_LIMIT
    or its default; a larger one is answered 413 before it is read."""
    raw = environ.get(BODY_LIMIT_SETTING, "").strip()
    if not raw:
        return DEFAULT_BODY_LIMIT
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{BODY_LIMIT_SETTING}={raw!r} must be a whole number of bytes")
    return int(raw)


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


def _section(config: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    # .NET configuration keys are case-insensitive, host.json's and app settings' alike.
    for key in path:
        found = _get(config, key, {})
        config = found if isinstance(found, Mapping) else {}
    return config


def _get(section: Mapping[str, Any], key: str, default: Any) -> Any:
    return next((v for k, v in section.items() if k.lower() == key.lower()), default)


def _int_in_range(value: Any, field: str, low: int, high: int) -> int:
    # An AzureFunctionsJobHost__ app setting arrives as a string, as .NET configuration has it.
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(f"extensions.queues.{field} must be an integer in {low}..{high}")
    return value


def _message_encoding(value: Any) -> str:
    encoding = str(value).lower()
    if encoding not in MESSAGE_ENCODINGS:
        raise SettingsError(f"extensions.queues.messageEncoding must be one of {MESSAGE_ENCODINGS}")
    return encoding
