"""End-to-end fixtures: a fresh Azurite and the app served by the local host over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from tests.support import devhost_process
from tests.support.azurite import Azurite

ROOT = Path(__file__).resolve().parents[2]
MAX_DEQUEUE = 3
# Short intervals so retries and crash recovery take seconds, not minutes.
HOST_JSON = {"extensions": {"queues": {
    "maxPollingInterval": "00:00:00.200", "visibilityTimeout": "00:00:01",
    "maxDequeueCount": MAX_DEQUEUE,
}}}
APP_ENV = {
    "JOB_HANDLER_MODULES": "tests.e2e.handlers",
    "JOBS_TABLE_NAME": "jobs",
    # The app reads the same override the Functions host applies to host.json.
    "AzureFunctionsJobHost__extensions__queues__maxDequeueCount": str(MAX_DEQUEUE),
    "DEVHOST_MESSAGE_LEASE_SECONDS": "3",
}
EXAMPLE = {
    "job_type": "thumbnail",
    "customer_id": "cust-123",
    "payload": {"asset_url": "https://example.invalid/image.png"},
}


@dataclass
class JobApp:
    """The app on the local host, its Azurite, and helpers to call and inspect it."""

    azurite: Azurite
    env: dict[str, str] = field(default_factory=lambda: dict(APP_ENV))
    host: devhost_process.DevHostProcess | None = None
    session: requests.Session = field(default_factory=requests.Session)

    def start(self) -> None:
        env = {"AzureWebJobsStorage": self.azurite.connection_string, **self.env}
        self.host = devhost_process.start(ROOT, env=env, host_json_override=HOST_JSON)
        self.host.wait_ready()

    @property
    def url(self) -> str:
        assert self.host is not None
        return f"{self.host.base_url}/api/jobs"

    def submit(self, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url, json=EXAMPLE if body is None else body, **kwargs)

    def status(self, job_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.session.get(f"{self.url}/{job_id}").json()
        return answer

    def wait_for(self, job_id: str, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
        return wait_until(lambda: _in(self.status(job_id), statuses), timeout)

    def table(self) -> TableClient:
        return TableClient.from_connection_string(self.azurite.connection_string, "jobs")

    def queue(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(
            self.azurite.connection_string, name, message_decode_policy=TextBase64DecodePolicy())


def _in(record: dict[str, Any], statuses: set[str]) -> dict[str, Any] | None:
    return record if record.get("status") in statuses else None


def wait_until(probe: Callable[[], Any], timeout: float) -> Any:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s")
        time.sleep(0.1)


def serve(**env: str) -> Iterator[JobApp]:
    """A fresh Azurite and the app on the local host; the queue names are fixed, so no sharing."""
    azurite = Azurite()
    azurite.start()
    app = JobApp(azurite, {**APP_ENV, **env})
    app.start()
    yield app
    if app.host is not None:
        app.host.stop()
        app.host.cleanup()
    azurite.stop()


@pytest.fixture
def job_app() -> Iterator[JobApp]:
    """The app with the test job types of tests/e2e/handlers.py."""
    yield from serve()


@pytest.fixture
def recipe_app() -> Iterator[JobApp]:
    """The app exactly as shipped: only the thumbnail job type."""
    yield from serve(JOB_HANDLER_MODULES="")
