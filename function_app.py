"""The queue-backed job Function App: the map of its functions and their bindings.

Each function is glue: validated input, one call into the `jobs` package, and the result
mapped to a response. The decorator order of submit_job is the only one that works with
azure-functions-validation 0.16: @validate_http must sit below every @app.* binding.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from email.utils import format_datetime
from functools import cache, wraps
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
from azure_functions_openapi import get_openapi_json, openapi
from azure_functions_validation import MalformedRequestError, PydanticAdapter, validate_http
from opentelemetry.context import Context
from pydantic import BaseModel

from api_docs import API_DESCRIPTION, complete_document, swagger_ui_file, swagger_ui_page
from jobs import serial, telemetry, worker
from jobs.cancellation import cancel
from jobs.errors import (
    IdempotencyKeyReused,
    InvalidTransition,
    JobNotFound,
    MessageTooLarge,
    RowRejected,
    StorageUnavailable,
)
from jobs.exporters import configure_telemetry
from jobs.handlers import load_handler_modules
from jobs.headers import (
    CORRELATION_ID_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    correlation_id,
    is_idempotency_key,
)
from jobs.lifecycle import Clock, utcnow
from jobs.logs import configure_logging, log_context
from jobs.models import (
    JOB_QUEUE,
    POISON_QUEUE,
    ErrorBody,
    ErrorDetail,
    JobAccepted,
    JobRecord,
    JobSubmissionRequest,
    JobView,
    is_job_id,
)
from jobs.retention import purge_expired
from jobs.settings import get_settings
from jobs.store import default_store
from jobs.submission import submit

# The job message adds under 1 KiB to the body and must stay within the queue's 48 KiB of
# text (64 KiB once base64-encoded); a larger re-encoded message is refused with 413 too.
MAX_BODY_BYTES = 47 * 1024
JOBS_ROUTE = "jobs"
RETRY_AFTER_SECONDS = "1"
# Storage is down for seconds at least: a client waits longer than between polls.
UNAVAILABLE_RETRY_AFTER_SECONDS = "5"
# Job records belong to one customer: no shared cache or CDN may keep or serve them.
NO_STORE = {"Cache-Control": "no-store"}
STORAGE = "AzureWebJobsStorage"
UNAVAILABLE = (503, "job storage is unavailable; retry later", "unavailable")
# What an HTTP function answers UNAVAILABLE for: storage unreachable or failing, or refusing
# a request of the app's (a 400 from Table Storage); neither is the client's to fix.
STORAGE_FAILED = (StorageUnavailable, RowRejected)
NOT_FOUND = (404, "job not found", "not_found")
HEADER_PARAMETERS = [
    {"name": "Idempotency-Key", "in": "header", "required": False,
     "description": "1-255 printable ASCII characters, no space at either end. A repeat with "
     "the same body replays the first job; with another body it is refused with 422.",
     "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN}},
    {"name": "traceparent", "in": "header", "required": False,
     "description": "A W3C trace context; its trace id becomes the job's correlation id.",
     "schema": {"type": "string"}},
    {"name": "X-Correlation-Id", "in": "header", "required": False,
     "description": "The job's correlation id when no valid traceparent is sent and it matches "
     f"`{CORRELATION_ID_PATTERN}`; any other value is ignored and a new id is made.",
     "schema": {"type": "string"}},
]



class JsonBodyAdapter(PydanticAdapter):
    """validate_http's adapter, answering 400 rather than 500 for JSON nested deeper than the
    app's limit, or that json.loads refuses past its syntax checks (an integer longer than
    4,300 digits)."""

    def parse_body(self, req: func.HttpRequest, model: type[BaseModel]) -> BaseModel:
        # The app's own depth limit, counted before parsing: the interpreter's differs by
        # version (3.13's json.loads takes far deeper input than 3.11's).
        if serial.depth(req.get_body()) > serial.MAX_DEPTH:
            raise MalformedRequestError(
                f"Invalid JSON: nested deeper than {serial.MAX_DEPTH} levels")
        try:
            parsed: BaseModel = super().parse_body(req, model)
        except (RecursionError, ValueError) as e:
            raise MalformedRequestError("Invalid JSON: nested too deeply or a number too long"
                                        ) from e
        return parsed


def no_store(handler: Callable[..., func.HttpResponse]) -> Callable[..., func.HttpResponse]:
    """Mark every answer of `handler` not to be cached, validate_http's own errors included."""
    @wraps(handler)
    def answer(*args: Any, **kwargs: Any) -> func.HttpResponse:
        response = handler(*args, **kwargs)
        response.headers.update(NO_STORE)
        return response
    return answer


# Export first: configure_logging gives the exporter's log handler the context fields too.
configure_telemetry()
configure_logging()
# Module globals, read at each call: a test may swap the settings or move the clock.
settings = get_settings()
clock: Clock = utcnow
load_handler_modules(settings.handler_modules)
app = func.FunctionApp(http_auth_level=func.AuthLevel[settings.auth_level])


@app.route(route=JOBS_ROUTE, methods=["POST"])
@openapi(
    summary="Submit a queue-backed job",
    operation_id="submitJob",
    description="Validates the job, writes an accepted status row, and queues it for the worker.",
    tags=["jobs"],
    parameters=HEADER_PARAMETERS,
    requests=JobSubmissionRequest,
    # validate_http documents its own 422.
    responses={202: JobAccepted, 400: ErrorBody, 413: ErrorBody, 415: ErrorBody, 503: ErrorBody},
)
@app.queue_output(arg_name="job_message", queue_name=JOB_QUEUE, connection=STORAGE)
@no_store
@validate_http(
    body=JobSubmissionRequest,
    adapter=JsonBodyAdapter(),
    max_body_bytes=MAX_BODY_BYTES,
    require_json_content_type=True,
)
def submit_job(
    req: func.HttpRequest, body: JobSubmissionRequest, job_message: func.Out[str],
    context: func.Context,
) -> func.HttpResponse:
    key = req.headers.get("Idempotency-Key")
    if key is not None and not is_idempotency_key(key):
        return error_response(400, "Idempotency-Key must be 1-255 printable ASCII characters "
                              "with no space at either end", "invalid_idempotency_key")
    try:
        # Before any write: a request no status URL can be made for leaves nothing stored.
        base_url = settings.public_base_url or api_base_url(req.url)
    except ValueError:
        return error_response(400, "no status URL can be made from this request's Host "
                              "header", "invalid_host")
    trace = correlation_id(req.headers.get("traceparent"), req.headers.get("X-Correlation-Id"))
    with log_context(correlation_id=trace, invocation_id=context.invocation_id):
        try:
            submitted = submit(default_store(), body, correlation_id=trace,
                               idempotency_key=key, clock=clock,
                               invocation=invocation_context(context))
        except MessageTooLarge as e:
            return error_response(413, str(e), "payload_too_large")
        except IdempotencyKeyReused as e:
            return error_response(422, str(e), "idempotency_key_reused")
        except STORAGE_FAILED:
            return error_response(*UNAVAILABLE)
    if submitted.message is not None:
        job_message.set(submitted.message)
    record = submitted.record
    status_url = job_url(base_url, record.job_id)
    headers = {"Location": status_url, "Retry-After": RETRY_AFTER_SECONDS,
               "X-Correlation-Id": record.correlation_id}
    if submitted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(202, JobAccepted(job_id=record.job_id, status_url=status_url), headers)


@app.route(route="jobs/{job_id}", methods=["GET"])
@openapi(
    summary="Get a job's status",
    operation_id="getJob",
    description="The job record in any state; Retry-After while it is not finished, "
    "Expires once it is.",
    tags=["jobs"],
    responses={200: JobView, 404: ErrorBody, 503: ErrorBody},
)
def get_job_status(req: func.HttpRequest) -> func.HttpResponse:
    job_id = route_job_id(req)
    if job_id is None:
        return error_response(*NOT_FOUND)
    try:
        found = default_store().read(job_id)
    except STORAGE_FAILED:
        return error_response(*UNAVAILABLE)
    if found is None:
        return error_response(*NOT_FOUND)
    return record_response(found.record)


@app.route(route="jobs/{job_id}", methods=["DELETE"])
@openapi(
    summary="Cancel a job",
    operation_id="cancelJob",
    description="An accepted or running job becomes cancelled; a cancelled job is returned "
    "as it is, so a retried cancel succeeds; a completed or failed job gets 409. The record "
    "stays readable until it is purged.",
    tags=["jobs"],
    responses={200: JobView, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody},
)
def cancel_job(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    job_id = route_job_id(req)
    if job_id is None:
        return error_response(*NOT_FOUND)
    try:
        record = cancel(default_store(), job_id, settings=settings, clock=clock,
                        invocation=invocation_context(context))
    except JobNotFound:
        return error_response(*NOT_FOUND)
    except InvalidTransition:
        return error_response(409, "the job has already finished", "conflict")
    except STORAGE_FAILED:
        return error_response(*UNAVAILABLE)
    return record_response(record)


@app.queue_trigger(arg_name="msg", queue_name=JOB_QUEUE, connection=STORAGE)
def process_job(msg: func.QueueMessage, context: func.Context) -> None:
    dequeue_count = msg.dequeue_count or 1
    delivery = worker.Delivery(msg.id or "", msg.get_body(), dequeue_count)
    with log_context(invocation_id=context.invocation_id, message_id=msg.id,
                     dequeue_count=dequeue_count):
        worker.process(default_store(), delivery, settings=settings, clock=clock,
                       invocation=invocation_context(context))


@app.queue_trigger(arg_name="msg", queue_name=POISON_QUEUE, connection=STORAGE)
def fail_poisoned_job(msg: func.QueueMessage, context: func.Context) -> None:
    with log_context(invocation_id=context.invocation_id, message_id=msg.id):
        worker.fail_poisoned(default_store(), msg.get_body(), settings=settings,
                             message_id=msg.id or "", clock=clock,
                             invocation=invocation_context(context))


@app.timer_trigger(arg_name="timer", schedule="0 0 * * * *", run_on_startup=False)
def purge_expired_jobs(timer: func.TimerRequest, context: func.Context) -> None:
    with log_context(invocation_id=context.invocation_id):
        purge_expired(default_store(), settings=settings, clock=clock,
                      invocation=invocation_context(context))


# Our own routes for the document and the UI: the handlers register_openapi_routes adds
# name their parameter `_req`, which does not match the `req` binding the host passes.
# The document and the UI are public under every auth level: they hold no data, and Swagger UI
# must load the document before its Authorize button can send a function key.
@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(openapi_json(), mimetype="application/json")


# The page and its files: all from the app itself, so the page works offline and loads no
# third-party script.
@app.route(route="docs/{file?}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def swagger_ui(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("file")
    if not name:
        page, policy = swagger_ui_page(title="Queue-backed job API",
                                       document_url="/api/openapi.json", assets_url="/api/docs")
        return func.HttpResponse(page, mimetype="text/html", headers={
            "Content-Security-Policy": policy, "Cache-Control": "no-store"})
    found = swagger_ui_file(name)
    if found is None:
        return error_response(404, "no such file", "not_found")
    content, media_type = found
    return func.HttpResponse(content, headers={"Content-Type": media_type,
                                               "Cache-Control": "public, max-age=86400"})


@cache
def openapi_json() -> str:
    """The OpenAPI 3.1 document, read from the app's own functions once."""
    generated = get_openapi_json(title="Queue-backed job API", version="1.0.0", app=app,
                                 description=API_DESCRIPTION, infer_auth_level=True)
    return json.dumps(complete_document(json.loads(generated)), indent=2)


def invocation_context(context: func.Context) -> Context | None:
    """The host's W3C trace context of this invocation, which the job's spans join or link.

    The Python worker hands it over on `context.trace_context`, and makes it current only
    with PYTHON_ENABLE_OPENTELEMETRY set (Dispatcher.configure_opentelemetry in
    azure_functions_worker/dispatcher.py); passed on explicitly, it holds either way.
    """
    found = context.trace_context
    if found is None:  # a caller that is no host
        return None
    return telemetry.extract(found.trace_parent, found.trace_state)


def api_base_url(request_url: str) -> str:
    """The URL of the route prefix (`https://host/api`) a request to `.../jobs` came in under.

    ValueError if no URL can be made from it: a Host header that is no host name, address
    or port (`[abcd]`, `host:99999`, spaces).
    """
    parts = urlsplit(request_url)
    _ = parts.port  # raises ValueError for a port out of range
    # Only what a URL's authority may hold, ASCII: the name is echoed into Location and
    # status_url, so quotes, angle brackets, spaces or non-ASCII there would be echoed too.
    if parts.scheme not in ("http", "https") or not _AUTHORITY.fullmatch(parts.netloc):
        raise ValueError(f"no URL can be made from {request_url!r}")
    # The host matches routes in any case, and an empty segment before `jobs` too
    # (`/API/Jobs`, `/api//jobs`): drop the last segment whatever its case, then the
    # slashes before it.
    prefix, _, last = parts.path.rstrip("/").rpartition("/")
    path = prefix.rstrip("/") if last.lower() == JOBS_ROUTE else parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path}"


# A host name (letters, digits, '.', '-', '_'), an IPv4 address or a bracketed IPv6 address,
# and an optional port.
_AUTHORITY = re.compile(r"(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?", re.ASCII)


def route_job_id(req: func.HttpRequest) -> str | None:
    """The job id the route names, in the lower case ids are made in (a UUID's hex digits
    may come in either case); None if it can name no job."""
    job_id = req.route_params.get("job_id", "").lower()
    return job_id if is_job_id(job_id) else None


def job_url(base_url: str, job_id: str) -> str:
    """The absolute status URL of a job under the API's base URL."""
    return f"{base_url}/{JOBS_ROUTE}/{job_id}"


def record_response(record: JobRecord) -> func.HttpResponse:
    """200 with the job; Retry-After while it can still change, Expires once it cannot."""
    if record.expires_at is not None:
        headers = {"Expires": format_datetime(record.expires_at, usegmt=True)}
    else:
        headers = {"Retry-After": RETRY_AFTER_SECONDS}
    return func.HttpResponse(record_json(record), status_code=200,
                             headers={"Content-Type": "application/json", **NO_STORE, **headers})


def record_json(record: JobRecord) -> str:
    """The job as JSON, written by the same serialiser that stored its result, so what was
    stored is always answered; a row stored before results were checked is answered cleaned."""
    view = JobView.of(dataclasses.replace(record, result=None)).model_dump(
        mode="json", exclude_none=True)
    if record.result is not None:
        view = {name: record.result if name == "result" else view[name]
                for name in JobView.model_fields if name in view or name == "result"}
    try:
        return serial.dumps(view, max_depth=serial.MAX_DEPTH + 1)  # the result is one down
    except serial.NotStorable:
        return serial.dumps(serial.answerable(view), max_depth=serial.MAX_DEPTH + 1)


def json_response(
    status: int, model: BaseModel, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        model.model_dump_json(exclude_none=True),
        status_code=status,
        headers={"Content-Type": "application/json", **NO_STORE, **(headers or {})},
    )


def error_response(status: int, message: str, error_type: str) -> func.HttpResponse:
    """An error in the envelope azure-functions-validation uses, spaced as it spaces them.

    A 503 says when to retry; no error is stored by a cache.
    """
    body = ErrorBody(detail=[ErrorDetail(loc=[], msg=message, type=error_type)])
    headers = {"Content-Type": "application/json", **NO_STORE}
    if status == 503:
        headers["Retry-After"] = UNAVAILABLE_RETRY_AFTER_SECONDS
    return func.HttpResponse(json.dumps(body.model_dump()), status_code=status, headers=headers)
