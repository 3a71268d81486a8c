"""The admin invoke endpoint on the recipe's own app: `func start`'s way to run the purge timer."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from tests.e2e.conftest import JobApp, serve

pytestmark = pytest.mark.e2e


@pytest.fixture
def short_retention_app() -> Iterator[JobApp]:
    """The shipped app with finished jobs expiring about a second after they finish."""
    yield from serve(JOB_HANDLER_MODULES="", JOB_RETENTION_HOURS="0.0003")


def test_admin_endpoint_runs_purge_expired_jobs(short_retention_app: JobApp) -> None:
    # POST /admin/functions/{name} with {"input": ""}: 202, then the timer function runs now
    # (the host's admin Invoke in azure-functions-host), with no key under `func start`.
    app = short_retention_app
    assert app.host is not None
    job_id = app.submit().json()["job_id"]
    app.wait_for(job_id, {"completed"})
    time.sleep(1.5)  # past its expires_at
    answer = requests.post(f"{app.host.base_url}/admin/functions/purge_expired_jobs",
                           json={"input": ""}, timeout=10)
    assert answer.status_code == 202
    deadline = time.monotonic() + 15
    while app.session.get(f"{app.url}/{job_id}").status_code != 404:
        assert time.monotonic() < deadline, "the purge did not delete the expired job"
        time.sleep(0.2)
    # The purge logs once it has deleted the job's rows, a moment after GET answers 404.
    while '"message": "job purged"' not in app.host.stderr():
        assert time.monotonic() < deadline, "the purge did not log the job it deleted"
        time.sleep(0.2)
