"""The secure defaults of issue 11, through the functions as the host calls them, on Azurite."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient

from jobs.headers import is_idempotency_key
from tests.support.functions import CapturingOut, get, post_json, queue_message, response_json
from tests.support.jobs_api import EXAMPLE, Functions, rows, submit

ROOT = Path(__file__).resolve().parents[2]
JOB_URL = "http://localhost:7071/api/jobs"


def _get(functions: Functions, job_id: str) -> Any:
    return functions["get_job_status"](get(f"{JOB_URL}/{job_id}", job_id=job_id))


def _cancel(functions: Functions, job_id: str) -> Any:
    return functions["cancel_job"](get(f"{JOB_URL}/{job_id}", method="DELETE", job_id=job_id))


def test_job_answers_202_200_409_are_never_stored_by_a_cache(
    functions: Functions, table: TableClient
) -> None:
    accepted, out = submit(functions)
    assert accepted.status_code == 202
    assert accepted.headers["Cache-Control"] == "no-store"
    job_id = response_json(accepted)["job_id"]
    functions["process_job"](queue_message(out.get() or ""))
    finished = _get(functions, job_id)
    assert finished.status_code == 200 and response_json(finished)["status"] == "completed"
    # The finished record's Expires must not make it cacheable: no-store overrides it.
    assert finished.headers["Cache-Control"] == "no-store" and "Expires" in finished.headers
    conflict = _cancel(functions, job_id)
    assert conflict.status_code == 409 and conflict.headers["Cache-Control"] == "no-store"


def test_storage_unavailable_503_carries_retry_after(
    functions: Functions, storage_down: None
) -> None:
    job_id = "0b7c6c1e-5b8a-4c39-9a53-3f1f4f0f3f11"
    answers = [submit(functions)[0], _get(functions, job_id),
               _cancel(functions, job_id)]
    assert [a.status_code for a in answers] == [503, 503, 503]
    assert all(int(a.headers["Retry-After"]) > 0 for a in answers)


def test_public_base_url_builds_location_whatever_the_host_header(
    functions: Functions, table: TableClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import function_app

    public = dataclasses.replace(function_app.settings,
                                 public_base_url="https://api.example.com/jobs-api")
    monkeypatch.setattr(function_app, "settings", public)
    request = post_json("http://evil.example/api/jobs", EXAMPLE,
                        headers={"Host": "evil.example"})
    response = functions["submit_job"](request, job_message=CapturingOut())
    body = response_json(response)
    expected = f"https://api.example.com/jobs-api/jobs/{body['job_id']}"
    assert body["status_url"] == expected == response.headers["Location"]


def test_without_public_base_url_location_follows_the_request(
    functions: Functions, table: TableClient
) -> None:
    response, _ = submit(functions)
    body = response_json(response)
    assert body["status_url"] == f"{JOB_URL}/{body['job_id']}" == response.headers["Location"]


@pytest.mark.parametrize("url", ["http://localhost:7071/api/Jobs", "http://localhost:7071/API/JOBS/",
                                 "http://localhost:7071/api//jobs", "http://localhost:7071/api/jobs?x=1"])
def test_location_names_the_job_whatever_case_or_slashes_the_post_route_came_in(
    functions: Functions, table: TableClient, url: str
) -> None:
    # The host matches routes in any case (ASP.NET Core routing), so each of these reached
    # submit_job; the status URL must still be the job's own route, api/jobs/{job_id}.
    response = functions["submit_job"](post_json(url, EXAMPLE), job_message=CapturingOut())
    body = response_json(response)
    status_url = body["status_url"]
    assert status_url == response.headers["Location"]
    assert status_url.lower() == f"{JOB_URL}/{body['job_id']}"


def test_get_and_cancel_take_the_job_id_in_upper_case(
    functions: Functions, table: TableClient
) -> None:
    # A UUID's hex digits may come in either case (RFC 9562); the job is the same job.
    job_id = response_json(submit(functions)[0])["job_id"]
    read = _get(functions, job_id.upper())
    assert read.status_code == 200 and response_json(read)["job_id"] == job_id
    cancelled = _cancel(functions, job_id.upper())
    assert cancelled.status_code == 200 and response_json(cancelled)["status"] == "cancelled"


@pytest.mark.parametrize("customer_id", ["cust\u200b-123", "\ufeffcust-123", "ｃｕｓｔ-123",
                                         "cust\u202e-123", "cust\u2028", "cust\ue000",
                                         "ﬁle", "cafe\u0301", "\u0441ust-123",
                                         " cust-123", "cust-123 ", " "])
def test_customer_id_lookalikes_are_refused_with_422_in_the_envelope(
    functions: Functions, table: TableClient, customer_id: str
) -> None:
    response, out = submit(functions, {**EXAMPLE, "customer_id": customer_id})
    assert response.status_code == 422
    error = response_json(response)
    assert error["error_format_version"] == 1
    assert error["detail"][0]["loc"][-1] == "customer_id" and error["detail"][0]["msg"]
    assert out.get() is None and rows(table) == []


@pytest.mark.parametrize("customer_id", ["cust-123", "Müller GmbH", "顧客-7", "café"])
def test_customer_id_plain_text_in_any_script_is_accepted(
    functions: Functions, table: TableClient, customer_id: str
) -> None:
    response, _ = submit(functions, {**EXAMPLE, "customer_id": customer_id})
    assert response.status_code == 202


def _document(level: str) -> dict[str, Any]:
    env = {**os.environ, "AzureWebJobsStorage": "UseDevelopmentStorage=true",
           "JOBS_AUTH_LEVEL": level}
    script = "import function_app as f; print(f.openapi_json())"
    out = subprocess.run([sys.executable, "-c", script],
                         env=env, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    document: dict[str, Any] = json.loads(out)
    return document


def test_document_declares_the_function_key_scheme_only_under_function() -> None:
    protected = _document("FUNCTION")
    schemes = protected["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "header", "name": "x-functions-key"} in schemes.values()
    for operation in _operations(protected):
        assert operation["security"] and set(operation["security"][0]) <= set(schemes)
    public = _document("ANONYMOUS")
    assert "securitySchemes" not in public.get("components", {})
    assert all("security" not in op for op in _operations(public))


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for path in document["paths"].values() for op in path.values()]


def test_document_is_a_contract_clients_generate_from() -> None:
    document = _document("FUNCTION")
    operations = {op["operationId"]: op for op in _operations(document)}
    assert set(operations) == {"submitJob", "getJob", "cancelJob"}
    assert "Auto-generated" not in document["info"]["description"]
    assert "Retry-After" in document["info"]["description"]
    submit = operations["submitJob"]
    body = submit["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/JobSubmission"}
    for operation in operations.values():
        assert "Retry-After" in operation["responses"]["503"]["headers"]
    headers = {p["name"]: p["schema"] for p in submit["parameters"] if p["in"] == "header"}
    assert headers["X-Correlation-Id"] == {"type": "string"}
    key = re.compile(headers["Idempotency-Key"]["pattern"])
    for value in ["a", "x" * 255, "~ !", "a b", "", " a", "a ", "x" * 256, "é", "a\tb"]:
        assert (key.fullmatch(value) is not None) == is_idempotency_key(value), value


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b"{", "application/json", 400),
    (json.dumps({**EXAMPLE, "customer_id": "cust\u200b-1"}).encode(), "application/json", 422),
    (json.dumps(EXAMPLE).encode(), "text/plain", 415),
    (b"{" + b" " * 60_000 + b"}", "application/json", 413),
])
def test_submit_errors_from_validation_are_never_stored_by_a_cache(
    functions: Functions, table: TableClient, body: bytes, content_type: str, status: int
) -> None:
    out = CapturingOut()
    response = functions["submit_job"](post_json(JOB_URL, body, content_type=content_type),
                                       job_message=out)
    assert response.status_code == status
    assert response.headers["Cache-Control"] == "no-store"
    assert out.get() is None and rows(table) == []
