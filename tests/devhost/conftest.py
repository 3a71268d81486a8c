"""Fixtures for the local host's tests: the sample app run by a real host process on Azurite."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import (
    LinearRetry,
    QueueClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from tests.support import devhost_process
from tests.support.devhost_process import DevHostProcess

SAMPLE_APP = Path(__file__).parent / "sample_app"
# Short intervals so retries, visibility delays and polling show within a second or two.
FAST_QUEUES: dict[str, Any] = {
    "extensions": {
        "queues": {
            "maxPollingInterval": "00:00:00.200",
            "visibilityTimeout": "00:00:01",
            "maxDequeueCount": 3,
        }
    }
}
# Once a year: timer tests opt in to a fast schedule.
RARE_SCHEDULE = "0 0 0 1 1 *"


@dataclass
class SampleHost:
    """A running host for the sample app, with the unique queue names its settings hold."""

    process: DevHostProcess
    connection: str
    queues: dict[str, str]
    script_root: Path

    @property
    def url(self) -> str:
        """The base URL with the default route prefix, e.g. http://127.0.0.1:1234/api."""
        return self.process.base_url + "/api"

    def queue(self, setting: str, *, base64: bool = True) -> QueueClient:
        """A client for the queue the app setting names (base64 like the host by default)."""
        return queue_client(self.connection, self.queues[setting], base64=base64)


@dataclass
class HostFactory:
    """Starts sample hosts and stops every one of them at teardown."""

    connection: str
    base_dir: Path
    started: list[SampleHost] = field(default_factory=list)

    def __call__(self, *, settings: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None,
                 host_json: Mapping[str, Any] | None = None,
                 queues: Mapping[str, str] | None = None,
                 connection: str | None = None) -> SampleHost:
        """Start a host; pass `queues` (another host's) to share its queues."""
        root = copy_sample_app(self.base_dir / f"app{len(self.started)}")
        queue_names = dict(queues or unique_queue_names())
        connection = connection or self.connection
        write_local_settings(root, {**queue_names, **(settings or {})})
        process = devhost_process.start(
            root,
            env={"AzureWebJobsStorage": connection, **(env or {})},
            host_json_override=merge(FAST_QUEUES, host_json or {}),
        )
        host = SampleHost(process, connection, queue_names, root)
        self.started.append(host)
        process.wait_ready()
        return host

    def stop_all(self) -> None:
        """Stop every host still running and drop its logs."""
        for host in self.started:
            try:
                host.process.stop()
            finally:
                host.process.cleanup()


# The shared HTTP host's request body limit: small, so a test can pass it cheaply.
HTTP_BODY_LIMIT = 1024


@pytest.fixture
def start_host(storage_connection: str, tmp_path: Path) -> Iterator[HostFactory]:
    """A factory: `start_host(settings=..., env=..., host_json=...)` runs the sample app."""
    factory = HostFactory(storage_connection, tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def http_host(storage_connection: str, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[SampleHost]:
    """One sample host shared by a module's HTTP tests (they use no shared queue state)."""
    factory = HostFactory(storage_connection, tmp_path_factory.mktemp("http-host"))
    yield factory(settings={"BOTH_PLACES": "from-local-settings",
                            "ONLY_LOCAL": "from-local-settings"},
                  env={"BOTH_PLACES": "from-environment",
                       "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": str(HTTP_BODY_LIMIT)})
    factory.stop_all()


def copy_sample_app(target: Path) -> Path:
    """Copy the sample app's code and host.json (not caches) into `target`."""
    target.mkdir(parents=True)
    for name in ("function_app.py", "host.json"):
        shutil.copy(SAMPLE_APP / name, target / name)
    return target


def unique_queue_names() -> dict[str, str]:
    """Fresh queue names for every queue setting the sample app reads."""
    tag = uuid.uuid4().hex[:10]
    settings = ("WORK_QUEUE", "RESULTS_QUEUE", "ATTEMPTS_QUEUE", "OUTPUT_QUEUE", "TIMER_QUEUE")
    names = {s: f"t{tag}-{s.split('_')[0].lower()}" for s in settings}
    return names | {"POISONED_QUEUE": f"t{tag}-dead-poison"}


def write_local_settings(root: Path, values: Mapping[str, str]) -> None:
    """Write local.settings.json; AzureWebJobsStorage there is overridden by the environment."""
    all_values = {"AzureWebJobsStorage": "UseDevelopmentStorage=true",
                  "TIMER_SCHEDULE": RARE_SCHEDULE, **values}
    text = json.dumps({"IsEncrypted": False, "Values": all_values}, indent=2)
    (root / "local.settings.json").write_text(text, encoding="utf-8")


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two JSON objects (test-side copy, so tests do not lean on the code under test)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def queue_client(connection: str, name: str, *, base64: bool = True) -> QueueClient:
    """A queue client; base64 matches the host's default message encoding."""
    codec: dict[str, Any] = {}
    if base64:
        codec = {"message_encode_policy": TextBase64EncodePolicy(),
                 "message_decode_policy": TextBase64DecodePolicy()}
    # The SDK's default retries wait up to a minute: a dead emulator should fail a test fast.
    retry = LinearRetry(backoff=1, retry_total=2, random_jitter_range=0)
    return QueueClient.from_connection_string(connection, name, retry_policy=retry, **codec)


def ensure_queue(client: QueueClient) -> QueueClient:
    """Create the queue if needed and return the client."""
    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    return client


def peek_all(client: QueueClient) -> list[str]:
    """The messages now visible in the queue, without taking them (a missing queue is empty)."""
    try:
        return [str(m.content) for m in client.peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []


def collect(client: QueueClient, *, count: int, timeout: float = 10.0) -> list[str]:
    """Take messages off the queue until `count` arrived or `timeout` passed."""
    found: list[str] = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        try:
            batch = list(client.receive_messages(max_messages=32, visibility_timeout=30))
        except ResourceNotFoundError:
            batch = []
        for message in batch:
            found.append(str(message.content))
            client.delete_message(message)
        if len(found) < count:
            time.sleep(0.1)
    return found


def collect_json(client: QueueClient, *, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Like `collect`, for messages holding JSON objects."""
    return [json.loads(text) for text in collect(client, count=count, timeout=timeout)]


def wait_for(condition: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout` passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
