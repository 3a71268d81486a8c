"""A Python client generated with openapi-python-client from the document the app serves.

It is what a new user does first: generate, then call. The generator must not warn about the
document, and the client it makes must drive the recipe: submit, poll until completed,
cancel (409 once finished), and a 404 for an unknown id.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from tests.e2e.conftest import JobApp, serve

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
PACKAGE = "jobs_api_client"


@pytest.fixture(scope="module")
def served_app() -> Iterator[JobApp]:
    # JOBS_AUTH_LEVEL is left at its default, FUNCTION: the client is an authenticated one.
    yield from serve(JOB_HANDLER_MODULES="")


@pytest.fixture(scope="module")
def generated(served_app: JobApp, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[ModuleType, str]]:
    folder = tmp_path_factory.mktemp("client")
    document = folder / "openapi.json"
    document.write_bytes(requests.get(f"{served_app.url[:-len('/jobs')]}/openapi.json",
                                      timeout=10).content)
    env = {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}
    done = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--path", str(document),
         "--meta", "none", "--output-path", str(folder / PACKAGE)],
        env=env, cwd=folder, capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # Only a missing formatter may be mentioned; anything else is about the document.
    complaints = [line for line in output.splitlines()
                  if any(w in line.lower() for w in ("warning", "error", "unable", "invalid"))
                  and "ruff" not in line.lower()]
    assert complaints == [], output
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE), output
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def test_generated_client_names_operations_and_models_after_the_contract(
    generated: tuple[ModuleType, str]
) -> None:
    package, _ = generated
    jobs = importlib.import_module(f"{PACKAGE}.api.jobs")
    modules = {p.stem for p in Path(jobs.__file__ or "").parent.glob("*.py")}
    assert {"submit_job", "get_job", "cancel_job"} <= modules
    models = importlib.import_module(f"{PACKAGE}.models")
    assert hasattr(models, "JobSubmission") and hasattr(models, "JobView")
    assert not [name for name in dir(models) if name.startswith(("Post", "Get", "Delete"))]
    assert package is not None


def test_generated_client_drives_submit_poll_cancel_and_unknown_id(
    served_app: JobApp, generated: tuple[ModuleType, str]
) -> None:
    package, _ = generated
    api = _modules(f"{PACKAGE}.api.jobs", "submit_job", "get_job", "cancel_job")
    models = importlib.import_module(f"{PACKAGE}.models")
    assert served_app.host is not None
    # Neither func start nor devhost checks function keys: any value stands for one here.
    client = package.AuthenticatedClient(
        base_url=served_app.host.base_url, token=uuid.uuid4().hex, prefix="",
        auth_header_name="x-functions-key", raise_on_unexpected_status=True)
    body = models.JobSubmission.from_dict(
        {"job_type": "thumbnail", "customer_id": "cust-123", "payload": {"size": 128}})
    accepted = api["submit_job"].sync_detailed(client=client, body=body,
                                               idempotency_key=f"gen-{uuid.uuid4()}")
    assert accepted.status_code == 202
    assert isinstance(accepted.parsed, models.JobAccepted)
    assert accepted.headers["cache-control"] == "no-store"
    job_id = accepted.parsed.job_id

    record = _poll(lambda: api["get_job"].sync(job_id, client=client), "completed")
    assert isinstance(record, models.JobView) and record.job_id == job_id

    conflict = api["cancel_job"].sync_detailed(job_id, client=client)
    assert conflict.status_code == 409 and isinstance(conflict.parsed, models.ErrorBody)

    unknown = api["get_job"].sync_detailed(str(uuid.uuid4()), client=client)
    assert unknown.status_code == 404 and isinstance(unknown.parsed, models.ErrorBody)
    assert unknown.parsed.detail[0].type_ == "not_found"


def _modules(package: str, *names: str) -> dict[str, Any]:
    return {name: importlib.import_module(f"{package}.{name}") for name in names}


def _poll(read: Any, status: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        record = read()
        if str(getattr(record, "status", "")) == status:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"job not {status} in {timeout}s: {record}")
        time.sleep(0.1)
