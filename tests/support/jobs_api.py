"""Drive the job functions in-process, as the host would, and read what they stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from azure.data.tables import TableClient

from tests.support.functions import CapturingOut, get, post_json, response_json

Functions = dict[str, Callable[..., Any]]
URL = "http://localhost:7071/api/jobs"
EXAMPLE = {
    "job_type": "thumbnail",
    "customer_id": "cust-123",
    "payload": {"asset_url": "https://example.invalid/image.png"},
}


def submit(functions: Functions, body: Any = None, **kwargs: Any) -> tuple[Any, CapturingOut]:
    """POST a job (the recipe's example by default); returns the response and the output."""
    out = CapturingOut()
    request = post_json(URL, EXAMPLE if body is None else body, **kwargs)
    return functions["submit_job"](request, job_message=out), out


def status(functions: Functions, job_id: str) -> tuple[int, Any]:
    response = functions["get_job_status"](get(f"{URL}/{job_id}", job_id=job_id))
    return response.status_code, response_json(response)


def cancel(functions: Functions, job_id: str) -> tuple[int, Any]:
    response = functions["cancel_job"](get(f"{URL}/{job_id}", method="DELETE", job_id=job_id))
    return response.status_code, response_json(response)


def rows(table: TableClient) -> list[dict[str, Any]]:
    return list(table.list_entities())
