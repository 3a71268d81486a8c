"""The recipe end to end over HTTP: the local host, its queue poller, and a real Azurite."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.core.exceptions import ResourceNotFoundError

from tests.e2e.conftest import EXAMPLE, MAX_DEQUEUE, JobApp, wait_until

pytestmark = pytest.mark.e2e


def test_e2e_recipe_flow(job_app: JobApp) -> None:
    response = job_app.submit()
    assert response.status_code == 202
    body = response.json()
    job_id = body["job_id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", job_id)
    assert body == {"status": "accepted", "job_id": job_id, "status_url": f"{job_app.url}/{job_id}"}
    assert response.headers["Location"] == body["status_url"]
    first = job_app.session.get(body["status_url"]).json()
    assert first["status"] in {"accepted", "running", "completed"}
    done = job_app.wait_for(job_id, {"completed"})
    assert done["result"] == {"artifactUrl": f"https://example.invalid/jobs/{job_id}.json"}
    assert done["attempts"] == 1


@pytest.mark.parametrize(("data", "headers", "expected"), [
    (b"{not json", {"Content-Type": "application/json"}, 400),
    (json.dumps({**EXAMPLE, "job_type": "nope"}), {"Content-Type": "application/json"}, 422),
    (json.dumps(EXAMPLE), {"Content-Type": "text/plain"}, 415),
    (json.dumps({**EXAMPLE, "payload": {"b": "x" * 50_000}}),
     {"Content-Type": "application/json"}, 413),
])
def test_e2e_bad_input_leaves_no_row_and_no_message(
    job_app: JobApp, data: bytes | str, headers: dict[str, str], expected: int
) -> None:
    response = job_app.session.post(job_app.url, data=data, headers=headers)
    assert response.status_code == expected
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["detail"]
    table = job_app.table()
    table.create_table()  # nothing made it: the table may not even exist yet
    assert list(table.list_entities()) == []
    queue = job_app.queue("job-requests")
    # The queue listener never creates its queue (nor does the real host's): only a sent
    # message does, so a missing queue means nothing was sent.
    try:
        assert queue.peek_messages(max_messages=32) == []
    except ResourceNotFoundError:
        pass


def test_e2e_handler_always_failing_ends_failed_and_poisoned(job_app: JobApp) -> None:
    job_id = job_app.submit({**EXAMPLE, "job_type": "always_fails"}).json()["job_id"]
    failed = job_app.wait_for(job_id, {"failed"}, timeout=40)
    assert failed["attempts"] == MAX_DEQUEUE
    assert failed["error"]["code"] == "retries_exhausted"
    assert job_app.host is not None
    # The host moved the message to job-requests-poison, where fail_poisoned_job read it.
    wait_until(lambda: "poison message for a finished job" in job_app.host.stderr(), 20)
    assert job_id in job_app.host.stderr()


def test_e2e_host_killed_mid_run_loses_no_job(job_app: JobApp) -> None:
    assert job_app.host is not None
    ids = [job_app.submit({**EXAMPLE, "job_type": "slow", "payload": {"seconds": 0.3}}
                          ).json()["job_id"] for _ in range(40)]
    # One table query per probe, not a GET per job: GETs share the worker's thread pool with
    # the running jobs, as under the real Python worker, and would see them only once done.
    running = "RowKey eq 'job' and status eq 'running'"
    wait_until(lambda: next(iter(job_app.table().query_entities(running)), None), 20)
    job_app.host.kill()
    job_app.host.cleanup()
    job_app.start()
    for job_id in ids:
        assert job_app.wait_for(job_id, {"completed"}, timeout=60)["status"] == "completed"


def test_e2e_200_concurrent_submits_all_complete(job_app: JobApp) -> None:
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda _: job_app.submit(), range(200)))
    assert {r.status_code for r in responses} == {202}
    ids = {r.json()["job_id"] for r in responses}
    assert len(ids) == 200

    def all_done() -> bool:
        rows = job_app.table().query_entities("RowKey eq 'job' and status eq 'completed'")
        return sum(1 for _ in rows) == 200

    wait_until(all_done, 90)
