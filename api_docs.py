"""What the OpenAPI document needs beyond what the decorators generate: response headers and
the links from a submitted job to its status and cancel operations."""

from __future__ import annotations

from typing import Any

SUBMIT = ("/api/jobs", "post")
STATUS = ("/api/jobs/{job_id}", "get")
CANCEL = ("/api/jobs/{job_id}", "delete")


def _header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "string"}}


RETRY_AFTER = _header("Seconds to wait before polling again.", {"type": "string",
                                                                "pattern": "^[0-9]+$"})
HEADERS: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {
    (*SUBMIT, "202"): {
        "Location": _header("The job's status URL, the same as status_url."),
        "Retry-After": RETRY_AFTER,
        "X-Correlation-Id": _header("The correlation id stored on the job and in its logs."),
        "Idempotent-Replayed": _header("`true` when an Idempotency-Key repeat replayed the "
                                       "first job.", {"type": "string", "enum": ["true"]}),
    },
    (*STATUS, "200"): {
        "Retry-After": _header("Sent while the job is not finished.", RETRY_AFTER["schema"]),
        "Expires": _header("Sent once the job is finished: when its record is purged."),
    },
    (*CANCEL, "200"): {"Expires": _header("When the cancelled job's record is purged.")},
}
LINKS = {
    "GetJob": {"operationId": "get_get_job_status",
               "parameters": {"job_id": "$response.body#/job_id"}},
    "CancelJob": {"operationId": "delete_cancel_job",
                  "parameters": {"job_id": "$response.body#/job_id"}},
}


def complete_document(document: dict[str, Any]) -> dict[str, Any]:
    """Add the response headers and links to a generated document, in place, and return it."""
    for (path, method, status), headers in HEADERS.items():
        response = document["paths"][path][method]["responses"][status]
        response.setdefault("headers", {}).update(headers)
    submit = document["paths"][SUBMIT[0]][SUBMIT[1]]["responses"]["202"]
    submit.setdefault("links", {}).update(LINKS)
    return document
