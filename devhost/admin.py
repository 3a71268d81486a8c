"""`POST /admin/functions/{name}`: run a non-HTTP function now, as `func start` serves it.

Follows `Invoke` in the host's FunctionsController (Azure/azure-functions-host,
src/WebJobs.Script.WebHost/Controllers/FunctionsController.cs): the body is `{"input": "..."}`,
bound with `[FromBody]`, so a request that is not JSON is 415 before anything else is looked at
(ASP.NET Core's BodyModelBinder finds no input formatter for its Content-Type, and the
UnsupportedContentTypeFilter that MvcCoreMvcOptionsSetup adds to every action answers 415; the
JSON formatters read application/json, text/json and application/*+json). A missing or invalid
JSON body is 400, an unknown function (names compare case-insensitively) is 404, and otherwise
the invocation is started in the background and the answer is 202 at once. Locally no key is
needed; in Azure the endpoint needs the master key.

The 415 also keeps a web page from running a function: a cross-origin POST a browser sends
without asking first (a "simple" request) can only carry text/plain, form or multipart bodies.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from azure.functions.queue import QueueMessage as TriggerMessage
from azure.functions.timer import TimerRequest

from devhost.catalog import FunctionSpec
from devhost.http import IncomingRequest, Reply
from devhost.invocation import InvocationFailed, Invoker

logger = logging.getLogger(__name__)

_INVOKE_PATH = re.compile(r"^/admin/functions/([^/]+)/?$", re.IGNORECASE)
REASON = "This function was programmatically called via the host APIs."


class AdminEndpoints:
    """The admin invoke endpoint; invocations it starts are waited for on `join`."""

    def __init__(self, specs: Iterable[FunctionSpec], invoker: Invoker) -> None:
        self._specs = {spec.name.lower(): spec for spec in specs}
        self._invoker = invoker
        self._running: list[threading.Thread] = []
        self._lock = threading.Lock()

    def handle(self, incoming: IncomingRequest, path: str) -> Reply | None:
        """Answer POST /admin/functions/{name}; None for any other request."""
        found = _INVOKE_PATH.match(path)
        if found is None or incoming.method.upper() != "POST":
            return None
        if not is_json_media_type(header(incoming, "content-type")):
            return Reply(415)
        text = read_input(incoming.body)
        if text is None:
            return Reply(400)
        spec = self._specs.get(found.group(1).lower())
        if spec is None:
            return Reply(404)
        thread = threading.Thread(target=self._run, args=(spec, text),
                                  name=f"admin-{spec.name}")
        with self._lock:
            self._running = [t for t in self._running if t.is_alive()] + [thread]
        thread.start()
        return Reply(202)

    def join(self) -> None:
        """Wait for the invocations this endpoint started."""
        with self._lock:
            running = list(self._running)
        for thread in running:
            thread.join()

    def _run(self, spec: FunctionSpec, text: str) -> None:
        try:
            self._invoker.invoke(spec, trigger_value(spec, text), reason=REASON)
        except InvocationFailed:
            pass  # logged with its traceback by the invoker
        except Exception:
            logger.exception("Invoking %s through the admin API failed", spec.name)


def header(incoming: IncomingRequest, name: str) -> str:
    """The first value of header `name` (compared case-insensitively), or ''."""
    return next((v for k, v in incoming.headers if k.lower() == name.lower()), "")


def is_json_media_type(content_type: str) -> bool:
    """Whether ASP.NET Core's JSON input formatters read this Content-Type."""
    media = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = media.partition("/")
    return media in {"application/json", "text/json"} or (main == "application" and
                                                          sub.endswith("+json"))


def read_input(body: bytes) -> str | None:
    """The `input` of a `{"input": ...}` body; None when the body is not such an object."""
    try:
        parsed: Any = json.loads(body or b"null")
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    # MVC's JSON input formatter matches property names in any case, an exact match first.
    value = parsed.get("input", next((v for k, v in parsed.items() if k.lower() == "input"),
                                     None))
    return "" if value is None else str(value)


def trigger_value(spec: FunctionSpec, text: str) -> Any:
    """The trigger argument the input stands for: a timer tick, a queue message, or the text."""
    if spec.trigger.type == "timerTrigger":
        now = datetime.now().astimezone().isoformat()
        return TimerRequest(past_due=False, schedule_status={"Last": now, "Next": now,
                                                             "LastUpdated": now},
                            schedule={"AdjustForDST": True})
    if spec.trigger.type == "queueTrigger":
        return TriggerMessage(  # type: ignore[no-untyped-call]  # untyped in azure-functions
            id=str(uuid.uuid4()), body=text.encode("utf-8"), dequeue_count=0,
            expiration_time=None, insertion_time=None, time_next_visible=None, pop_receipt=None)
    return text
