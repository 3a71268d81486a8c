"""The app's functions called as the host calls them, against a real Azurite."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from azure.data.tables import TableClient

from jobs import handlers
from jobs.errors import JobFailed
from jobs.models import JobMessage
from tests.support.functions import queue_message, response_json
from tests.support.jobs_api import EXAMPLE, URL, Functions, rows, status, submit


def test_recipe_flow_submit_running_completed(functions: Functions, table: TableClient) -> None:
    response, out = submit(functions)
    assert response.status_code == 202
    body = response_json(response)
    job_id = body["job_id"]
    assert body == {"status": "accepted", "job_id": job_id, "status_url": f"{URL}/{job_id}"}
    assert response.headers["Location"] == body["status_url"]
    assert int(response.headers["Retry-After"]) > 0
    message = json.loads(out.get() or "")
    assert message["job_id"] == job_id and message["payload"] == EXAMPLE["payload"]
    assert {"job_type", "customer_id", "submitted_at"} <= message.keys()
    assert status(functions, job_id)[1]["status"] == "accepted"

    seen: list[str] = []
    handlers_before = handlers.find_handler("thumbnail")
    assert handlers_before is not None

    def spy(job: JobMessage, progress: Any) -> dict[str, Any]:
        seen.append(status(functions, job.job_id)[1]["status"])
        return handlers_before(job, progress)

    handlers.register("thumbnail")(spy)
    try:
        functions["process_job"](queue_message(out.get() or ""))
    finally:
        handlers.register("thumbnail")(handlers_before)
    assert seen == ["running"]
    code, record = status(functions, job_id)
    assert code == 200
    assert record["status"] == "completed"
    assert record["result"] == {"artifactUrl": f"https://example.invalid/jobs/{job_id}.json"}
    assert record["attempts"] == 1
    assert record["started_at"] <= record["completed_at"] == record["updated_at"]


BAD_INPUTS = [
    pytest.param(b"{not json", {}, 400, id="invalid-json"),
    pytest.param({**EXAMPLE, "job_type": "nope"}, {}, 422, id="unknown-job-type"),
    pytest.param({"job_type": "thumbnail"}, {}, 422, id="missing-customer"),
    pytest.param({**EXAMPLE, "customer_id": "a/b"}, {}, 422, id="customer-slash"),
    pytest.param({**EXAMPLE, "customer_id": "a\x01b"}, {}, 422, id="customer-control"),
    pytest.param({**EXAMPLE, "customer_id": "x" * 129}, {}, 422, id="customer-too-long"),
    pytest.param({**EXAMPLE, "customer_id": ""}, {}, 422, id="customer-empty"),
    pytest.param({**EXAMPLE, "payload": [1]}, {}, 422, id="payload-not-object"),
    pytest.param({**EXAMPLE, "extra": 1}, {}, 422, id="unknown-field"),
    pytest.param(b'{"job_type":"thumbnail","customer_id":"c","payload":{"n":NaN}}', {}, 422,
                 id="payload-nan"),
    pytest.param(b"", {}, 422, id="empty-body"),
    pytest.param(b"[" * 40_000, {}, 400, id="json-nested-too-deep"),
    pytest.param(b'{"job_type":"thumbnail","customer_id":"c","payload":{"n":' + b"9" * 4_301
                 + b"}}", {}, 400, id="integer-too-long"),
    pytest.param(b'{"job_type":"thumbnail","customer_id":"c","payload":{"s":"\\ud800"}}', {},
                 422, id="payload-unpaired-surrogate"),
    pytest.param(b'{"job_type":"thumbnail","customer_id":"c","payload":' + b'{"a":' * 5_000
                 + b"1" + b"}" * 5_001, {}, 400, id="payload-nested-too-deep"),
    pytest.param(EXAMPLE, {"content_type": "text/plain"}, 415, id="text-plain"),
    pytest.param({**EXAMPLE, "payload": {"blob": "x" * 49_000}}, {}, 413, id="body-too-large"),
    pytest.param(b'{"job_type":"thumbnail","customer_id":"c","payload":{"n":[' +
                 b",".join([b"1e15"] * 6000) + b"]}}", {}, 413, id="message-too-large"),
]


@pytest.mark.parametrize(("body", "kwargs", "expected"), BAD_INPUTS)
def test_submit_bad_input_leaves_nothing(
    functions: Functions, table: TableClient, body: Any, kwargs: dict[str, str], expected: int
) -> None:
    response, out = submit(functions, body, **kwargs)
    assert response.status_code == expected
    assert response.headers["Content-Type"] == "application/json"
    error = response_json(response)
    assert error["detail"] and all(d["msg"] for d in error["detail"])
    assert out.get() is None
    assert rows(table) == []


def test_submit_largest_body_fits_a_real_queue_message(
    functions: Functions, table: TableClient, storage_connection: str
) -> None:
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    from function_app import MAX_BODY_BYTES
    from tests.conftest import unique_name

    skeleton = json.dumps({**EXAMPLE, "payload": {"blob": ""}}).encode()
    body = {**EXAMPLE, "payload": {"blob": "\u00e9" * ((MAX_BODY_BYTES - len(skeleton)) // 2)}}
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert MAX_BODY_BYTES - 2 <= len(raw) <= MAX_BODY_BYTES
    response, out = submit(functions, raw)
    assert response.status_code == 202
    queue = QueueClient.from_connection_string(
        storage_connection, unique_name("q"), message_encode_policy=TextBase64EncodePolicy())
    queue.create_queue()
    queue.send_message(out.get())  # Azure and Azurite refuse a message over 64 KiB encoded
    assert queue.get_queue_properties().approximate_message_count == 1


def test_submit_unknown_job_type_lists_known_types(functions: Functions, table: TableClient
                                                   ) -> None:
    response, _ = submit(functions, {**EXAMPLE, "job_type": "no-such-type"})
    known = ", ".join(handlers.known_job_types())
    assert f"known types: {known}" in response_json(response)["detail"][0]["msg"]


def test_submit_storage_down_gives_503_and_no_message(
    functions: Functions, storage_down: None
) -> None:
    response, out = submit(functions)
    assert response.status_code == 503
    assert response_json(response)["detail"][0]["type"] == "unavailable"
    assert out.get() is None


@pytest.mark.parametrize("job_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000",
                                    "A0B1C2D3-0000-4000-8000-000000000000", "..", "a'b"])
def test_status_unknown_or_malformed_id_is_404(functions: Functions, table: TableClient,
                                               job_id: str) -> None:
    code, body = status(functions, job_id)
    assert code == 404
    assert body["detail"][0]["type"] == "not_found"


def test_worker_duplicate_after_completion_does_nothing(
    functions: Functions, table: TableClient
) -> None:
    _, out = submit(functions)
    message = out.get() or ""
    functions["process_job"](queue_message(message))
    done = rows(table)[0]
    functions["process_job"](queue_message(message))
    functions["process_job"](queue_message(message, dequeue_count=3))
    again = rows(table)[0]
    assert again["status"] == "completed"
    assert again.metadata["etag"] == done.metadata["etag"]
    assert again["attempts"] == 1


def test_worker_overlapping_deliveries_run_handler_once(
    functions: Functions, table: TableClient, register: Callable[..., None]
) -> None:
    entered = threading.Event()
    release = threading.Event()
    runs: list[str] = []

    def slow(job: JobMessage, progress: Any) -> dict[str, Any]:
        runs.append(job.job_id)
        entered.set()
        assert release.wait(10)
        return {"ok": True}

    register("slow", slow)
    _, out = submit(functions, {**EXAMPLE, "job_type": "slow"})
    message = out.get() or ""
    first = threading.Thread(target=functions["process_job"], args=(queue_message(message),))
    first.start()
    assert entered.wait(10)
    functions["process_job"](queue_message(message))  # a copy, while the first still runs
    release.set()
    first.join(10)
    assert len(runs) == 1
    row = rows(table)[0]
    assert row["status"] == "completed" and row["attempts"] == 1


def test_worker_retries_transient_error_then_fails_on_last_attempt(
    functions: Functions, table: TableClient, register: Callable[..., None]
) -> None:
    calls: list[int] = []

    def flaky(job: JobMessage, progress: Any) -> dict[str, Any]:
        calls.append(1)
        raise TimeoutError("downstream timed out")

    register("flaky", flaky)
    _, out = submit(functions, {**EXAMPLE, "job_type": "flaky"})
    message_id = "message-1"
    for attempt in range(1, 5):
        with pytest.raises(TimeoutError):
            functions["process_job"](
                queue_message(out.get() or "", dequeue_count=attempt, message_id=message_id))
        row = rows(table)[0]
        assert (row["status"], row["attempts"]) == ("running", attempt)
    with pytest.raises(TimeoutError):
        functions["process_job"](
            queue_message(out.get() or "", dequeue_count=5, message_id=message_id))
    row = rows(table)[0]
    assert (row["status"], row["attempts"], row["error_code"]) == ("failed", 5, "retries_exhausted")
    assert len(calls) == 5


def test_worker_permanent_error_fails_without_retry(
    functions: Functions, table: TableClient, register: Callable[..., None]
) -> None:
    def broken(job: JobMessage, progress: Any) -> dict[str, Any]:
        raise JobFailed("bad_asset", "the asset is not an image")

    register("broken", broken)
    _, out = submit(functions, {**EXAMPLE, "job_type": "broken"})
    functions["process_job"](queue_message(out.get() or ""))
    code, record = status(functions, json.loads(out.get() or "")["job_id"])
    assert record["status"] == "failed"
    assert record["error"] == {"code": "bad_asset", "message": "the asset is not an image"}


def test_poisoned_message_marks_job_failed(functions: Functions, table: TableClient) -> None:
    _, out = submit(functions)
    functions["fail_poisoned_job"](queue_message(out.get() or "", dequeue_count=1))
    job_id = json.loads(out.get() or "")["job_id"]
    code, record = status(functions, job_id)
    assert record["status"] == "failed" and record["error"]["code"] == "poisoned"
    functions["process_job"](queue_message(out.get() or ""))  # a late delivery changes nothing
    assert status(functions, job_id)[1]["status"] == "failed"


def test_poisoned_message_of_finished_job_changes_nothing(
    functions: Functions, table: TableClient
) -> None:
    _, out = submit(functions)
    functions["process_job"](queue_message(out.get() or ""))
    functions["fail_poisoned_job"](queue_message(out.get() or ""))
    assert rows(table)[0]["status"] == "completed"


@pytest.mark.parametrize("body", [b"not json", b'{"no_job": 1}', b"[]",
                                  b'{"job_id":"00000000-0000-4000-8000-000000000000",'
                                  b'"job_type":"thumbnail","customer_id":"c",'
                                  b'"submitted_at":"2026-01-01T00:00:00+00:00","token":"t"}'])
def test_worker_malformed_message_is_logged_not_raised(
    functions: Functions, table: TableClient, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    caplog.set_level(logging.INFO, logger="jobs")
    functions["process_job"](queue_message(body, message_id="msg-42"))
    functions["fail_poisoned_job"](queue_message(body, message_id="msg-43"))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert rows(table) == []
    if body.startswith(b"{\"job_id"):
        assert getattr(warnings[0], "job_id", None) == "00000000-0000-4000-8000-000000000000"
    else:
        assert getattr(warnings[0], "message_id", None) == "msg-42"


def test_log_lines_carry_job_fields(
    functions: Functions, table: TableClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobs")
    _, out = submit(functions)
    functions["process_job"](queue_message(out.get() or ""))
    job_lines = [r for r in caplog.records if r.name.startswith("jobs")]
    assert [r.getMessage() for r in job_lines] == ["job accepted", "job running", "job completed"]
    assert len({r.correlation_id for r in job_lines}) == 1  # type: ignore[attr-defined]
    for record in job_lines:
        assert record.job_type == "thumbnail"  # type: ignore[attr-defined]
        assert record.customer_id == "cust-123"  # type: ignore[attr-defined]
        assert record.job_id == json.loads(out.get() or "")["job_id"]  # type: ignore[attr-defined]


def test_worker_keeps_a_claim_whose_write_answered_with_an_error(
    functions: Functions, table: TableClient
) -> None:
    """The claim merge was stored but answered 5xx; the SDK's retry gets 412 and reads the
    row back with this delivery's own claim on it: the delivery must still run the job."""
    from jobs import lifecycle
    from jobs.models import Claim
    from jobs.store import default_store

    _, out = submit(functions)
    job_id = json.loads(out.get() or "")["job_id"]
    claim = Claim("message-7", 1)
    default_store().update(job_id, lambda r: lifecycle.start(r, claim, now=r.updated_at))
    functions["process_job"](queue_message(out.get() or "", message_id="message-7"))
    assert rows(table)[0]["status"] == "completed"
