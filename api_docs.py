"""What the OpenAPI document needs beyond what the decorators generate: the API's description,
the request body as a named component (one variant per typed job type, chosen by `job_type`),
response headers, and the links from a submitted job to its status and cancel operations; and
the Swagger UI page, whose files come from a pinned package rather than a CDN."""

from __future__ import annotations

import copy
import html
import json
import re
import secrets
from typing import Any

from pydantic import BaseModel
from swagger_ui_bundle import swagger_ui_path

from jobs.handlers import JobType, job_types
from jobs.models import customer_id_pattern

SUBMIT = ("/api/jobs", "post")
STATUS = ("/api/jobs/{job_id}", "get")
CANCEL = ("/api/jobs/{job_id}", "delete")
OPERATIONS = (SUBMIT, STATUS, CANCEL)
#: The name generated clients give the submit body's model.
SUBMISSION_SCHEMA = "JobSubmission"
#: The variant of the submit body for the job types without a payload model.
FREE_FORM_SCHEMA = "FreeFormJobSubmission"
COMPONENT_REF = "#/components/schemas/{model}"
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
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components[SUBMISSION_SCHEMA] = _by_job_type(schema, components)
    media["schema"] = {"$ref": COMPONENT_REF.format(model=SUBMISSION_SCHEMA)}
    free_form = components.get(FREE_FORM_SCHEMA)
    if free_form is not None:
        # Swagger UI leaves the discriminator out of the body it makes up for a union.
        media["example"] = {name: free_form["properties"][name]["examples"][0]
                            for name in ("job_type", "customer_id", "payload")}


def _by_job_type(submission: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The submit body: as generated while no job type has a payload model; else one variant
    per typed job type and one for the rest, told apart by `job_type` (a discriminator)."""
    registered = job_types()
    typed = [t for t in registered if t.payload is not None]
    if not typed:
        return submission
    mapping: dict[str, str] = {}
    for job_type in typed:
        name = f"{_camel(job_type.name)}JobSubmission"
        components[name] = _typed_variant(submission, name, job_type, components=components)
        mapping[job_type.name] = COMPONENT_REF.format(model=name)
    free_form = [t.name for t in registered if t.payload is None]
    if free_form:
        components[FREE_FORM_SCHEMA] = _variant(submission, FREE_FORM_SCHEMA, free_form)
        mapping.update(dict.fromkeys(free_form, COMPONENT_REF.format(model=FREE_FORM_SCHEMA)))
    # The free-form variant first: Swagger UI fills in its example body from the first one.
    refs = list(dict.fromkeys(sorted(mapping.values(), key=lambda ref: ref.split("/")[-1]
                                     != FREE_FORM_SCHEMA)))
    return {"title": SUBMISSION_SCHEMA, "description": submission.get("description", ""),
            "oneOf": [{"$ref": ref} for ref in refs],
            "discriminator": {"propertyName": "job_type", "mapping": mapping}}


def _typed_variant(submission: dict[str, Any], name: str, job_type: JobType, *,
                   components: dict[str, Any]) -> dict[str, Any]:
    """The submit body of one typed job type; its payload model becomes a component."""
    model = job_type.payload or BaseModel
    payload = model.model_json_schema(ref_template=COMPONENT_REF)
    components.update(payload.pop("$defs", {}))
    components[model.__name__] = payload
    variant = _variant(submission, name, [job_type.name])
    variant["properties"]["payload"] = {"$ref": COMPONENT_REF.format(model=model.__name__)}
    if payload.get("required"):
        variant["required"] = [*variant["required"], "payload"]
    return variant


def _variant(submission: dict[str, Any], name: str, names: list[str]) -> dict[str, Any]:
    variant = copy.deepcopy(submission)
    variant["title"] = name
    variant["properties"]["job_type"].update(enum=names, examples=names[:1])
    return variant


def _camel(job_type: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", job_type))


# --- Swagger UI, served from the pinned swagger-ui-bundle-v2 package: no third-party request ---

#: The files of the package the page loads, and their media types.
SWAGGER_UI_FILES = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
SWAGGER_UI_CSP = ("default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
                  "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
                  "frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
SWAGGER_UI_PAGE = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{title}</title>
    <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
    <link rel="stylesheet" type="text/css" href="{assets}/swagger-ui.css">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="{assets}/swagger-ui-bundle.js"></script>
    <script nonce="{nonce}">
      window.ui = SwaggerUIBundle({{url: {document}, dom_id: "#swagger-ui",
        presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout", validatorUrl: null}});
    </script>
  </body>
</html>
"""


def swagger_ui_page(*, title: str, document_url: str, assets_url: str) -> tuple[str, str]:
    """The Swagger UI page and its Content-Security-Policy: scripts, styles and requests stay
    on the app's own origin."""
    nonce = secrets.token_urlsafe(16)
    page = SWAGGER_UI_PAGE.format(title=html.escape(title), assets=html.escape(assets_url),
                                  document=json.dumps(document_url), nonce=nonce)
    return page, SWAGGER_UI_CSP.format(nonce=nonce)


def swagger_ui_file(name: str) -> tuple[bytes, str] | None:
    """One of the page's files from the installed package, with its media type; None for any
    other name."""
    media_type = SWAGGER_UI_FILES.get(name)
    if media_type is None:
        return None
    return (swagger_ui_path / name).read_bytes(), media_type
