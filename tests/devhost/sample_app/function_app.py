"""Sample app for the local host's own tests: one small function per behaviour to observe.

Queue and timer functions record what they saw in queues named by app settings, so each
test reads its own results from Azurite.
"""

import asyncio
import json
import os
import time
from collections.abc import Mapping
from typing import List  # noqa: UP035 - azure-functions checks typing.List, not list[str]

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
STORAGE = "AzureWebJobsStorage"


def _json(payload: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(payload), status_code=status, mimetype="application/json")


@app.route(route="echo/{name}", methods=["GET", "POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    payload = {
        "method": req.method,
        "url": req.url,
        "route_params": dict(req.route_params),
        "params": dict(req.params),
        "headers": {k: req.headers.get(k) for k in ("x-test", "host")},
        "body": req.get_body().decode(),
    }
    response = _json(payload, status=int(req.params.get("status", "200")))
    response.headers["X-Echo"] = req.route_params["name"]
    return response


@app.route(route="items/{id:guid}", methods=["GET"])
def item_by_guid(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"guid:{req.route_params['id']}")


@app.route(route="numbers/{n:int}", methods=["GET"])
def number_by_int(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"int:{req.route_params['n']}")


@app.route(route="numbers/latest", methods=["GET"])
def latest_number(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("latest")


@app.route(route="optional/{name?}", methods=["GET"])
def optional_name(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params.get("name", "(none)"))


@app.route(route="things/{name}", methods=["DELETE"])
def delete_thing(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(status_code=204)


@app.route(route="raw", methods=["POST"])
def raw_bytes(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        req.get_body()[::-1],
        status_code=201,
        headers={"Content-Type": "application/octet-stream", "X-Custom": "kept as is"},
    )


@app.route(route="plain", methods=["GET"])
def plain_text(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("héllo", mimetype="text/html", charset="utf-8")


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret detail 4711")


@app.route(route="enqueue", methods=["POST"])
@app.queue_output(arg_name="message", queue_name="%OUTPUT_QUEUE%", connection=STORAGE)
def enqueue(req: func.HttpRequest, message: func.Out[List[str]]) -> func.HttpResponse:  # noqa: UP006
    text = req.get_body().decode()
    message.set(text.split(",") if "," in text else text)
    if req.params.get("fail"):
        raise RuntimeError("failed after setting the output")
    return func.HttpResponse("queued", status_code=202)


@app.route(route="administration/status", methods=["GET"])
def reserved_route(req: func.HttpRequest) -> func.HttpResponse:
    """Under the host's reserved `admin` prefix: the host puts it in error and never serves it."""
    return func.HttpResponse("served")


@app.route(route="Echo/{name}/", methods=["POST", "PUT"])
def echo_again(req: func.HttpRequest) -> func.HttpResponse:
    """The same route as `echo` with an overlapping method: in error, never served."""
    return func.HttpResponse("echo_again")


@app.route(route="slow", methods=["GET"])
def slow(req: func.HttpRequest) -> func.HttpResponse:
    time.sleep(float(req.params.get("seconds", "1")))
    return func.HttpResponse("slept")


@app.route(route="settings/{name}", methods=["GET"])
def app_setting(req: func.HttpRequest) -> func.HttpResponse:
    value = os.environ.get(req.route_params["name"])
    return func.HttpResponse(value or "", status_code=200 if value is not None else 404)


@app.route(route="context")
def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _json({
        "function_name": context.function_name,
        "invocation_id": context.invocation_id,
        "function_directory": context.function_directory,
    })


@app.route(route="async", methods=["GET"])
async def async_hello(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0.01)
    return func.HttpResponse("async ok")


_attempts: QueueClient | None = None


def _record_attempt(record: Mapping[str, object]) -> None:
    # Written directly, not through an output binding: attempts that fail must show too.
    global _attempts
    if _attempts is None:
        _attempts = QueueClient.from_connection_string(
            os.environ[STORAGE], os.environ["ATTEMPTS_QUEUE"]
        )
        try:
            _attempts.create_queue()
        except ResourceExistsError:
            pass
    _attempts.send_message(json.dumps(record))


@app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection=STORAGE)
@app.queue_output(arg_name="result", queue_name="%RESULTS_QUEUE%", connection=STORAGE)
def work(msg: func.QueueMessage, result: func.Out[str]) -> None:
    body = msg.get_body().decode()
    record = {
        "id": msg.id,
        "body": body,
        "dequeue_count": msg.dequeue_count,
        "has_insertion_time": msg.insertion_time is not None,
        "has_pop_receipt": bool(msg.pop_receipt),
        "at": time.time(),
    }
    _record_attempt(record)
    result.set(json.dumps(record))
    if body.startswith("sleep:"):
        time.sleep(float(body.split(":", 1)[1]))
    if body.startswith("stall:") and msg.dequeue_count == 1:
        time.sleep(float(body.split(":", 1)[1]))  # only the first delivery hangs
    if body == "fail":
        raise RuntimeError("asked to fail")


@app.queue_trigger(arg_name="msg", queue_name="%POISONED_QUEUE%", connection=STORAGE)
def poisoned(msg: func.QueueMessage) -> None:
    """A trigger on a queue whose name ends in -poison, which has no poison queue of its own."""
    body = msg.get_body().decode()
    _record_attempt({"id": msg.id, "body": body, "dequeue_count": msg.dequeue_count,
                     "at": time.time()})
    if body == "fail":
        raise RuntimeError("asked to fail")


@app.timer_trigger(schedule="%TIMER_SCHEDULE%", arg_name="timer", run_on_startup=False)
@app.queue_output(arg_name="run", queue_name="%TIMER_QUEUE%", connection=STORAGE)
def tick(timer: func.TimerRequest, run: func.Out[str]) -> None:
    run.set(json.dumps({"function": "tick", "past_due": timer.past_due, "at": time.time()}))


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
@app.queue_output(arg_name="run", queue_name="%TIMER_QUEUE%", connection=STORAGE)
def startup_tick(timer: func.TimerRequest, run: func.Out[str]) -> None:
    run.set(json.dumps({"function": "startup_tick", "past_due": timer.past_due}))


@app.blob_trigger(arg_name="blob", path="samples/{name}", connection=STORAGE)
def unsupported_blob(blob: func.InputStream) -> None:
    """A binding type the local host does not run: it must be skipped with a warning."""
