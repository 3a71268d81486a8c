"""What the OpenAPI document needs beyond what the decorators generate: the API's description,
the request body as a named component, response headers, and the links from a submitted job
to its status and cancel operations."""

from __future__ import annotations

from typing import Any

from jobs.models import customer_id_pattern

SUBMIT = ("/api/jobs", "post")
STATUS = ("/api/jobs/{job_id}", "get")
CANCEL = ("/api/jobs/{job_id}", "delete")
OPERATIONS = (SUBMIT, STATUS, CANCEL)
#: The name generated clients give the submit body's model.
SUBMISSION_SCHEMA = "JobSubmission"
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
API_DESCRIPTION = """\
Runs long jobs in the background. `POST /api/jobs` checks a job and answers `202 Accepted` at
once with the job's id and status URL; a worker then runs it from a Storage Queue. Poll
`GET /api/jobs/{job_id}` (wait as long as `Retry-After` says) until the status is `completed`,
`failed` or `cancelled`, or cancel it with `DELETE /api/jobs/{job_id}`.

Send an `Idempotency-Key` so that a retried submit returns the first job instead of making a
second one. Errors share one JSON envelope: `{"detail": [{"loc", "msg", "type"}]}`. A `503`
means storage is unavailable: retry after `Retry-After` seconds. When the app runs with
`JOBS_AUTH_LEVEL=FUNCTION` (the default), every call needs a function key in the
`x-functions-key` header.
"""


def _header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "string"}}


RETRY_AFTER = _header("Seconds to wait before polling again.", {"type": "string",
                                                                "pattern": "^[0-9]+$"})
NO_STORE = _header("`no-store`: a job belongs to one customer, so no shared cache may keep it.",
                   {"type": "string", "enum": ["no-store"]})
UNAVAILABLE_RETRY_AFTER = _header("Seconds to wait before retrying.", RETRY_AFTER["schema"])
HEADERS: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {
    (*SUBMIT, "202"): {
        "Cache-Control": NO_STORE,
        "Location": _header("The job's status URL, the same as status_url."),
        "Retry-After": RETRY_AFTER,
        "X-Correlation-Id": _header("The correlation id stored on the job and in its logs."),
        "Idempotent-Replayed": _header("`true` when an Idempotency-Key repeat replayed the "
                                       "first job.", {"type": "string", "enum": ["true"]}),
    },
    (*STATUS, "200"): {
        "Cache-Control": NO_STORE,
        "Retry-After": _header("Sent while the job is not finished.", RETRY_AFTER["schema"]),
        "Expires": _header("Sent once the job is finished: when its record is purged."),
    },
    (*CANCEL, "200"): {"Cache-Control": NO_STORE,
                       "Expires": _header("When the cancelled job's record is purged.")},
    (*CANCEL, "409"): {"Cache-Control": NO_STORE},
    **{(*operation, "503"): {"Retry-After": UNAVAILABLE_RETRY_AFTER} for operation in OPERATIONS},
}
LINKS = {
    "GetJob": {"operationId": "getJob",
               "parameters": {"job_id": "$response.body#/job_id"}},
    "CancelJob": {"operationId": "cancelJob",
                  "parameters": {"job_id": "$response.body#/job_id"}},
}


def complete_document(document: dict[str, Any]) -> dict[str, Any]:
    """Add what the decorators leave out to a generated document, in place, and return it."""
    _name_request_body(document)
    # validate_http documents its 422 inline; it is the one error envelope, so name it as such.
    unprocessable = document["paths"][SUBMIT[0]][SUBMIT[1]]["responses"]["422"]
    unprocessable["description"] = ("The body breaks the JobSubmission schema, or an "
                                    "Idempotency-Key is reused with another body.")
    unprocessable["content"] = {"application/json": {"schema": ERROR_BODY}}
    for (path, method, status), headers in HEADERS.items():
        response = document["paths"][path][method]["responses"][status]
        response.setdefault("headers", {}).update(headers)
    submit = document["paths"][SUBMIT[0]][SUBMIT[1]]["responses"]["202"]
    submit.setdefault("links", {}).update(LINKS)
    return document


def _name_request_body(document: dict[str, Any]) -> None:
    """Move the inlined submit body schema to `components.schemas.JobSubmission`."""
    content = document["paths"][SUBMIT[0]][SUBMIT[1]]["requestBody"]["content"]
    media = content["application/json"]
    schema = media["schema"]
    if "$ref" in schema:
        return
    schema["title"] = SUBMISSION_SCHEMA
    # Worked out here, on the first request for the document, not at every cold start.
    schema["properties"]["customer_id"]["pattern"] = customer_id_pattern()
    document.setdefault("components", {}).setdefault("schemas", {})[SUBMISSION_SCHEMA] = schema
    media["schema"] = {"$ref": f"#/components/schemas/{SUBMISSION_SCHEMA}"}
