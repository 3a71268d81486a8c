"""The example job type `resize`: its payload is checked at submit, it reports progress, and a
source it cannot read fails the job with its own code. Importing the module registers it."""

from __future__ import annotations

from typing import Any

import pytest
from azure.data.tables import TableClient

import examples.resize  # noqa: F401 - registers the `resize` job type
from jobs.messages import decode_message
from tests.support.functions import queue_message, response_json
from tests.support.jobs_api import Functions, rows, status, submit

RESIZE = {"job_type": "resize", "customer_id": "cust-123",
          "payload": {"asset_url": "https://example.invalid/image.png", "width": 320,
                      "height": 200}}


def run(functions: Functions, body: dict[str, Any]) -> dict[str, Any]:
    """Submit `body`, deliver its queue message once, and return the job's record."""
    response, out = submit(functions, body)
    assert response.status_code == 202, response_json(response)
    functions["process_job"](queue_message(out.get() or ""))
    record: dict[str, Any] = status(functions, response_json(response)["job_id"])[1]
    return record


def test_resize_completes_with_its_result_and_last_progress(
    functions: Functions, table: TableClient
) -> None:
    record = run(functions, RESIZE)
    assert record["status"] == "completed"
    assert record["result"]["artifactUrl"].endswith(f"/jobs/{record['job_id']}.png")
    assert (record["result"]["width"], record["result"]["height"]) == (320, 200)
    assert record["progress"] == {"percent": 60, "message": "resizing to 320x200"}


@pytest.mark.parametrize(("payload", "loc"), [
    pytest.param({"width": 0}, ["body", "payload", "width"], id="width-zero"),
    pytest.param({"width": "wide"}, ["body", "payload", "width"], id="width-not-int"),
    # Strict as JSON: no string, float or boolean passes for an int.
    pytest.param({"width": "10"}, ["body", "payload", "width"], id="width-numeric-string"),
    pytest.param({"width": 10.0}, ["body", "payload", "width"], id="width-float"),
    pytest.param({"width": True}, ["body", "payload", "width"], id="width-true"),
    pytest.param({"format": "gif"}, ["body", "payload", "format"], id="unknown-format"),
    pytest.param({"colour": "red"}, ["body", "payload", "colour"], id="unknown-field"),
])
def test_resize_bad_payload_is_refused_at_submit_with_the_fields_loc(
    functions: Functions, table: TableClient, payload: dict[str, Any], loc: list[str]
) -> None:
    response, out = submit(functions, {**RESIZE, "payload": {**RESIZE["payload"], **payload}})
    assert response.status_code == 422
    assert [d["loc"] for d in response_json(response)["detail"]] == [loc]
    assert out.get() is None and rows(table) == []


def test_resize_missing_payload_names_each_required_field(
    functions: Functions, table: TableClient
) -> None:
    response, _ = submit(functions, {**RESIZE, "payload": {}})
    assert response.status_code == 422
    assert {tuple(d["loc"]) for d in response_json(response)["detail"]} == {
        ("body", "payload", name) for name in ("asset_url", "width", "height")}


def test_resize_unreadable_source_fails_at_once_with_its_code(
    functions: Functions, table: TableClient
) -> None:
    payload = {**RESIZE["payload"], "asset_url": "https://example.invalid/image.tiff"}
    record = run(functions, {**RESIZE, "payload": payload})
    assert record["status"] == "failed" and record["attempts"] == 1
    assert record["error"]["code"] == "unsupported_source"
    assert record["progress"] == {"percent": 10, "message": "reading source"}
    assert "completed_at" in record


def test_resize_payload_reaches_the_handler_with_defaults_filled_in(
    functions: Functions, table: TableClient
) -> None:
    response, out = submit(functions, RESIZE)
    assert decode_message((out.get() or "").encode()).payload == {**RESIZE["payload"],
                                                                   "format": "png"}
