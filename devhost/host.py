"""The host: wires settings, the app's functions and the three trigger kinds together.

Start-up fails loudly (HostError) on anything it cannot run: an unresolved %SETTING%,
a missing connection setting, a bad route or schedule, a port in use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import azure.functions as func

from devhost.admin import AdminEndpoints
from devhost.catalog import FunctionSpec, discover
from devhost.errors import HostError
from devhost.http import (
    HttpFrontDoor,
    HttpServer,
    function_methods,
    function_route,
    make_server,
)
from devhost.invocation import Invoker, WorkerPool
from devhost.queues import QueueOutput, QueueTriggerRunner, QueueWatcher
from devhost.routing import (
    Route,
    Router,
    compile_template,
    join_route,
    route_problem,
    routes_conflict,
)
from devhost.settings import (
    PROCESS_COUNT_SETTING,
    load_host_json,
    local_http_port,
    message_lease_seconds,
    queue_options,
    request_body_limit,
    route_prefix,
    storage_connection,
    worker_process_count,
    worker_thread_count,
)
from devhost.storage import QueueStore
from devhost.timers import TimerRunner

logger = logging.getLogger(__name__)

DEFAULT_PORT = 7071


@dataclass(frozen=True)
class HostOptions:
    """What the command line chooses: where the app is and where to listen."""

    script_root: Path
    address: str = "127.0.0.1"
    port: int | None = None
    host_json_override: Path | None = None


class Worker(Protocol):
    """A background trigger (queue poller, timer) that can start and be waited for."""

    def start(self) -> None:
        """Start in a background thread."""

    def join(self) -> None:
        """Wait until stopped with nothing left running."""


class FunctionsHost:
    """A running (or ready to run) host: one HTTP server and one worker per non-HTTP trigger."""

    def __init__(self, *, specs: list[FunctionSpec], server: HttpServer, workers: list[Worker],
                 stopping: threading.Event, prefix: str, pool: WorkerPool,
                 watcher: QueueWatcher, admin: AdminEndpoints) -> None:
        self._specs = specs
        self._server = server
        self._workers = workers
        self._stopping = stopping
        self._prefix = prefix
        self._pool = pool
        self._watcher = watcher
        self._admin = admin
        # A short poll interval makes `shutdown` return quickly.
        self._serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                         name="http-server")

    @property
    def port(self) -> int:
        """The port the HTTP server listens on."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Start serving HTTP, polling queues and running timers."""
        self._serving.start()
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        """Take no new work, let in-flight invocations finish, then return."""
        logger.info("Stopping host: no new invocations; waiting for running ones to finish")
        self._stopping.set()
        self._watcher.wake_all()
        self._server.shutdown()
        self._server.server_close()  # joins the threads still answering requests
        for worker in self._workers:
            worker.join()
        self._admin.join()
        self._serving.join()
        self._pool.shutdown()
        logger.info("Host stopped")

    def banner(self) -> str:
        """The function list `func start` prints, with each HTTP function's URL."""
        address = str(self._server.server_address[0])
        wildcard = ("127.0.0.1", "0.0.0.0", "::", "::1")  # noqa: S104 - compared, not bound
        shown = "localhost" if address in wildcard else address
        base = f"http://{shown}:{self.port}"
        lines = [describe_function(s, base_url=base, prefix=self._prefix) for s in self._specs]
        return "Functions:\n\n" + "\n\n".join(f"        {line}" for line in lines) + "\n"


def describe_function(spec: FunctionSpec, *, base_url: str, prefix: str) -> str:
    """One banner line: `name: [METHODS] url` for HTTP, `name: triggerType` otherwise."""
    if spec.trigger.type != "httpTrigger":
        return f"{spec.name}: {spec.trigger.type}"
    methods = function_methods(spec)
    shown = f"[{','.join(sorted(methods))}] " if methods else ""
    return f"{spec.name}: {shown}{base_url}/{join_route(prefix, function_route(spec))}"


def build_host(app: func.FunctionRegister, options: HostOptions, *,
               local_settings: Mapping[str, Any], environ: Mapping[str, str]) -> FunctionsHost:
    """Read host.json, describe the app's functions and bind the HTTP port."""
    host_json = load_host_json(options.script_root, options.host_json_override, environ)
    specs = discover(app, environ, directory=options.script_root)
    queues = queue_options(host_json)
    pool = worker_pool(environ)
    store = QueueStore()
    watcher = QueueWatcher()
    invoker = Invoker(sinks={"queue": QueueOutput(store, environ, queues.message_encoding,
                                                  watcher)}, pool=pool)
    stopping = threading.Event()
    prefix = route_prefix(host_json)
    workers: list[Worker] = []
    for spec in specs:
        _check_connections(spec, environ)
        if spec.trigger.type != "httpTrigger" and function_disabled(spec.name, environ):
            logger.info("Function %s is disabled: its trigger is not started", spec.name)
            continue
        if spec.trigger.type == "queueTrigger":
            workers.append(QueueTriggerRunner(
                spec, invoker=invoker, store=store, options=queues, stopping=stopping,
                connection=storage_connection(spec.trigger.get("connection"), environ),
                lease_seconds=message_lease_seconds(environ), watcher=watcher))
        elif spec.trigger.type == "timerTrigger":
            workers.append(TimerRunner(spec, invoker=invoker, stopping=stopping))
    router = Router(http_routes(specs, prefix))
    admin = AdminEndpoints([s for s in specs if s.trigger.type != "httpTrigger"], invoker)
    port = options.port if options.port is not None else local_http_port(local_settings)
    server = _bind(HttpFrontDoor(router, invoker, admin), options.address, port or DEFAULT_PORT,
                   request_body_limit(environ))
    return FunctionsHost(specs=specs, server=server, workers=workers, stopping=stopping,
                         prefix=prefix, pool=pool, watcher=watcher, admin=admin)


def function_disabled(name: str, environ: Mapping[str, str]) -> bool:
    """Whether the app setting `AzureWebJobs.<name>.Disabled` is true (or 1).

    The host then starts no listener for the function; an HTTP function stays reachable
    when it runs locally, as under `func start` (docs: "How to disable functions").
    """
    value = environ.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower()
    return value in ("true", "1")


def worker_pool(environ: Mapping[str, str]) -> WorkerPool:
    """One worker process's pool, sized as the Python worker sizes it."""
    threads = worker_thread_count(environ)
    processes = worker_process_count(environ)
    if processes > 1:
        logger.warning("%s=%d: the local host runs one worker process, so at most %d sync "
                       "invocations run at once here, against %d in Azure",
                       PROCESS_COUNT_SETTING, processes, threads, threads * processes)
    logger.info("Worker: 1 process, %d threads for sync invocations", threads)
    return WorkerPool(threads)


def http_routes(specs: Iterable[FunctionSpec], prefix: str) -> list[Route[FunctionSpec]]:
    """One route per HTTP-triggered function under the route prefix; a function whose route
    the host refuses is logged as in error and left out, as the host does."""
    accepted: list[FunctionSpec] = []
    for spec in (s for s in specs if s.trigger.type == "httpTrigger"):
        problem = route_problem(function_route(spec)) or _conflict(spec, accepted)
        if problem:
            logger.error("The function %s is in error: %s", spec.name, problem)
            continue
        accepted.append(spec)
    return [Route(compile_template(join_route(prefix, function_route(s))), function_methods(s), s)
            for s in accepted]


def _conflict(spec: FunctionSpec, accepted: Iterable[FunctionSpec]) -> str | None:
    for other in accepted:
        if routes_conflict(function_route(spec), function_methods(spec),
                           function_route(other), function_methods(other)):
            return f"The route specified conflicts with the route defined by function " \
                   f"'{other.name}'."
    return None


def _check_connections(spec: FunctionSpec, environ: Mapping[str, str]) -> None:
    # Fail at start-up, not at the first message, when a connection setting is missing.
    for binding in (spec.trigger, *spec.outputs):
        if binding.type in ("queue", "queueTrigger"):
            storage_connection(binding.get("connection"), environ)


def _bind(front_door: HttpFrontDoor, address: str, port: int, max_body_bytes: int
          ) -> HttpServer:
    try:
        return make_server(front_door, host=address, port=port, max_body_bytes=max_body_bytes)
    except OSError as e:
        raise HostError(f"cannot listen on {address}:{port}: {e.strerror or e}") from e
