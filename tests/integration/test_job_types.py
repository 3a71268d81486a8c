"""The handler contract: typed and free-form payloads, and what a bad progress call does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from azure.data.tables import TableClient
from pydantic import BaseModel, ConfigDict, Field

from jobs.models import JobMessage
from tests.support.functions import queue_message, response_json
from tests.support.jobs_api import EXAMPLE, Functions, rows, status, submit

Register = Callable[..., None]


class Sized(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(ge=1)


def done(job: JobMessage, progress: Any) -> dict[str, Any]:
    return {"payload": job.payload}


def test_typed_payload_is_refused_at_submit_before_any_write(
    functions: Functions, table: TableClient, register: Register
) -> None:
    register("sized", done, payload=Sized)
    response, out = submit(functions, {**EXAMPLE, "job_type": "sized", "payload": {"size": -1}})
    assert response.status_code == 422
    assert [d["loc"] for d in response_json(response)["detail"]] == [["body", "payload", "size"]]
    assert out.get() is None and rows(table) == []


def test_untyped_job_type_keeps_a_free_form_payload(
    functions: Functions, table: TableClient, register: Register
) -> None:
    register("sized", done, payload=Sized)
    register("loose", done)
    anything = {"size": -1, "nested": {"list": [1, "two"]}}
    response, out = submit(functions, {**EXAMPLE, "job_type": "loose", "payload": anything})
    assert response.status_code == 202
    functions["process_job"](queue_message(out.get() or ""))
    record = status(functions, response_json(response)["job_id"])[1]
    assert record["result"] == {"payload": anything}


def test_progress_outside_0_100_fails_the_job_at_once(
    functions: Functions, table: TableClient, register: Register
) -> None:
    def overshoot(job: JobMessage, progress: Any) -> dict[str, Any]:
        progress(150, "too far")
        return {}

    register("overshoot", overshoot)
    response, out = submit(functions, {**EXAMPLE, "job_type": "overshoot"})
    # The first delivery, not the last: no retry is left to the queue.
    functions["process_job"](queue_message(out.get() or "", dequeue_count=1))
    record = status(functions, response_json(response)["job_id"])[1]
    assert record["status"] == "failed" and record["attempts"] == 1
    assert record["error"]["code"] == "bad_progress" and "150" in record["error"]["message"]
    assert "completed_at" in record


def test_queued_payload_that_no_longer_fits_its_model_fails_at_once(
    functions: Functions, table: TableClient, register: Register
) -> None:
    register("sized", done)
    response, out = submit(functions, {**EXAMPLE, "job_type": "sized", "payload": {"size": 0}})
    register("sized", done, payload=Sized)  # the model arrives with a deploy, after the submit
    functions["process_job"](queue_message(out.get() or "", dequeue_count=1))
    record = status(functions, response_json(response)["job_id"])[1]
    assert record["status"] == "failed" and record["error"]["code"] == "invalid_payload"
