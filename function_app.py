"""The queue-backed job Function App: the map of its functions and their bindings.

Each function is glue: validated input, one call into the `jobs` package, and the result
mapped to a response. The decorator order of submit_job is the only one that works with
azure-functions-validation 0.16: @validate_http must sit below every @app.* binding.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import azure.functions as func
from azure_functions_openapi import openapi, register_openapi_routes
from azure_functions_validation import validate_http
from pydantic import BaseModel

from jobs import worker
from jobs.errors import MessageTooLarge, StorageUnavailable
from jobs.handlers import load_handler_modules
from jobs.models import (
    ErrorBody,
    ErrorDetail,
    JobAccepted,
    JobSubmissionRequest,
    JobView,
    is_job_id,
)
from jobs.settings import get_settings
from jobs.store import default_store
from jobs.submission import submit

# The job message adds under 1 KiB to the body and must stay within the queue's 48 KiB of
# text (64 KiB once base64-encoded); a larger re-encoded message is refused with 413 too.
MAX_BODY_BYTES = 47 * 1024
JOB_QUEUE = "job-requests"
POISON_QUEUE = f"{JOB_QUEUE}-poison"
RETRY_AFTER_SECONDS = "1"

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
load_handler_modules(get_settings().handler_modules)


@app.route(route="jobs", methods=["POST"])
@openapi(
    summary="Submit a queue-backed job",
    description="Validates the job, writes an accepted status row, and queues it for the worker.",
    tags=["jobs"],
    requests=JobSubmissionRequest,
    # validate_http documents its own 422.
    responses={202: JobAccepted, 400: ErrorBody, 413: ErrorBody, 415: ErrorBody, 503: ErrorBody},
)
@app.queue_output(arg_name="job_message", queue_name=JOB_QUEUE, connection="AzureWebJobsStorage")
@validate_http(
    body=JobSubmissionRequest, max_body_bytes=MAX_BODY_BYTES, require_json_content_type=True
)
def submit_job(
    req: func.HttpRequest, body: JobSubmissionRequest, job_message: func.Out[str]
) -> func.HttpResponse:
    try:
        record, message = submit(default_store(), body)
    except MessageTooLarge as e:
        return error_response(413, str(e), "payload_too_large")
    except StorageUnavailable:
        return error_response(503, "job storage is unavailable; retry later", "unavailable")
    job_message.set(message)
    status_url = job_url(req.url, record.job_id)
    accepted = JobAccepted(job_id=record.job_id, status_url=status_url)
    headers = {"Location": status_url, "Retry-After": RETRY_AFTER_SECONDS}
    return json_response(202, accepted, headers)


@app.route(route="jobs/{job_id}", methods=["GET"])
@openapi(
    summary="Get a job's status",
    description="The job record: accepted, running, completed with its result, or failed.",
    tags=["jobs"],
    responses={200: JobView, 404: ErrorBody, 503: ErrorBody},
)
def get_job_status(req: func.HttpRequest) -> func.HttpResponse:
    job_id = req.route_params.get("job_id", "")
    if not is_job_id(job_id):
        return error_response(404, "job not found", "not_found")
    try:
        found = default_store().read(job_id)
    except StorageUnavailable:
        return error_response(503, "job storage is unavailable; retry later", "unavailable")
    if found is None:
        return error_response(404, "job not found", "not_found")
    return json_response(200, JobView.of(found.record))


@app.queue_trigger(arg_name="msg", queue_name=JOB_QUEUE, connection="AzureWebJobsStorage")
def process_job(msg: func.QueueMessage) -> None:
    delivery = worker.Delivery(msg.id or "", msg.get_body(), msg.dequeue_count or 1)
    worker.process(default_store(), delivery, max_dequeue_count=get_settings().max_dequeue_count)


@app.queue_trigger(arg_name="msg", queue_name=POISON_QUEUE, connection="AzureWebJobsStorage")
def fail_poisoned_job(msg: func.QueueMessage) -> None:
    worker.fail_poisoned(default_store(), msg.get_body())


register_openapi_routes(app, title="Queue-backed job API", version="1.0.0")


def job_url(request_url: str, job_id: str) -> str:
    """The absolute status URL of a job, from the URL its submit request came in on."""
    parts = urlsplit(request_url)
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/{job_id}"


def json_response(
    status: int, model: BaseModel, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        model.model_dump_json(exclude_none=True),
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def error_response(status: int, message: str, error_type: str) -> func.HttpResponse:
    """An error in the same JSON envelope azure-functions-validation uses for its own."""
    detail = ErrorDetail(loc=[], msg=message, type=error_type)
    return json_response(status, ErrorBody(detail=[detail]))
