"""In-process figures: the app's functions, called as the host calls them, against bare SDK calls.

- overhead: submit_job plus the host's queue send, and process_job with a no-progress
  handler, each against the bare storage calls the same work needs, on reused clients;
- naive: the same functions with a new table client (and create_table_if_not_exists) per
  call, as many samples do, against the app's client built once;
- transactions: the storage requests of jobs end to end, by operation (transactions.py).

Samples of the two sides alternate (a-b, then b-a), so Azurite's drift as its in-memory
table grows hits both alike. Everything a sample needs (rows, records, entities) is made
before its clock starts.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import statistics
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from time import perf_counter, process_time
from typing import Any

import azure.functions as func
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, UpdateMode
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from bench.handlers import NOOP
from bench.stats import ms, summary
from bench.transactions import TransactionCounter
from jobs import lifecycle, submission
from jobs.logs import JsonFormatter
from jobs.models import Claim, JobRecord, JobSubmissionRequest
from jobs.settings import get_settings
from jobs.store import (
    CLIENT_OPTIONS,
    EXTRA_CLIENT_OPTIONS,
    LEFT_ACCEPTED_ROW_KEY,
    ROW_KEY,
    JobStore,
    default_store,
    to_entity,
)
from tests.support.functions import CapturingOut, InvocationContext, get, post_json, queue_message

TABLE = "benchjobs"
QUEUE = "job-requests"
URL = "http://localhost:7071/api/jobs"
CUSTOMER = "cust-123"
PAYLOAD = {"asset_url": "https://example.invalid/image.png"}
RETENTION = timedelta(hours=168)
Sample = Callable[[], "Stopwatch"]


@dataclass
class Rig:
    """The app's functions on one Azurite, and the reused bare clients to compare them with."""

    connection: str
    functions: dict[str, Callable[..., Any]]
    #: Plays the host: sends the output binding's message (base64, as the host does).
    queue: QueueClient
    #: The bare SDK side, and the benchmark's own setup and checks.
    table: TableClient
    #: A second table the bare side's jobs are made in (by the app's submit) before it
    #: writes them itself, so each bare insert meets no row of its own.
    scratch: JobStore
    #: The app's table through the benchmark's own client: jobs a sample needs are made
    #: here, so making them never builds (or warms) the app's store.
    setup: JobStore

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Invoke a function as the host does, with a fresh context if it takes one."""
        function = self.functions[name]
        if "context" in inspect.signature(function).parameters:
            kwargs["context"] = InvocationContext(name)
        return function(*args, **kwargs)


def open_rig(connection: str) -> Rig:
    """Point the app at `connection`, import it, and build the reused clients."""
    os.environ["AzureWebJobsStorage"] = connection
    os.environ["JOBS_TABLE_NAME"] = TABLE
    _discard_logs()
    import function_app  # after the environment: the app reads its settings on import

    get_settings.cache_clear()
    default_store.cache_clear()
    default_store()  # the app's first use creates the table; not part of any sample
    queue = host_queue(connection, QUEUE)
    table = TableClient.from_connection_string(connection, TABLE, **CLIENT_OPTIONS)
    scratch = JobStore.connect(connection, f"{TABLE}scratch")
    return Rig(connection, _user_functions(function_app.app), queue, table, scratch,
               JobStore(table))


def host_queue(connection: str, name: str, **options: Any) -> QueueClient:
    """A queue client coded as the Functions host codes messages (base64), queue created."""
    client = QueueClient.from_connection_string(
        connection, name, message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(), **options)
    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    return client


def _discard_logs() -> None:
    """Format each app log line as JSON, as it would be shipped, then drop it: cost, no noise."""

    class Discard(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            self.format(record)

    handler = Discard()
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)


def _user_functions(app: func.FunctionApp) -> dict[str, Callable[..., Any]]:
    built = [builder.build(app.auth_level) for builder in app._function_builders]
    return {f.get_function_name(): f.get_user_function() for f in built}


# --- what one job is, made before any clock starts -------------------------------------------

def new_job(store: JobStore) -> tuple[JobRecord, str]:
    """An accepted no-progress job, made and stored by the app's own submit, and its message.

    Going through `jobs.submission.submit` keeps the row and the message in the format the
    worker reads, whatever that becomes: a hand-built message goes stale silently.
    """
    request = JobSubmissionRequest(job_type=NOOP, customer_id=CUSTOMER, payload=PAYLOAD)
    submitted = submission.submit(store, request, correlation_id=uuid.uuid4().hex)
    _check(submitted.message is not None, "submit queued no message")
    return submitted.record, str(submitted.message)


def _worker_entities(record: JobRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two merges the worker writes for `record`: claimed (running), then completed."""
    now = lifecycle.utcnow()
    running = lifecycle.start(record, Claim(str(uuid.uuid4()), 1), now=now)
    result = {"artifactUrl": f"https://example.invalid/jobs/{record.job_id}.json"}
    done = lifecycle.complete(running, result, now=now, retention=RETENTION)
    return to_entity(running), to_entity(done)


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"benchmark sanity check failed: {what}")


# --- the samples ------------------------------------------------------------------------------

@dataclass
class Stopwatch:
    """Wall-clock and CPU seconds (this process only: not Azurite's) of one block."""

    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> Stopwatch:
        self.wall, self.cpu = perf_counter(), process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = perf_counter() - self.wall, process_time() - self.cpu


def app_submit(rig: Rig) -> Sample:
    """submit_job (validation, table insert) plus the host's send of its output message."""
    def sample() -> Stopwatch:
        request, out = post_json(URL, {"job_type": NOOP, "customer_id": CUSTOMER,
                                       "payload": PAYLOAD}), CapturingOut()
        context = InvocationContext("submit_job")
        with Stopwatch() as timing:
            response = rig.functions["submit_job"](request, job_message=out, context=context)
            rig.queue.send_message(out.get())
        _check(response.status_code == 202, f"submit_job answered {response.status_code}")
        return timing
    return sample


def bare_submit(rig: Rig) -> Sample:
    """The same work on bare clients: one create_entity and one send_message."""
    def sample() -> Stopwatch:
        record, message = new_job(rig.scratch)
        entity = to_entity(record)
        with Stopwatch() as timing:
            rig.table.create_entity(entity)
            rig.queue.send_message(message)
        return timing
    return sample


def app_worker(rig: Rig) -> Sample:
    """process_job on an accepted job with the no-progress handler; checks it completed."""
    def sample() -> Stopwatch:
        record, message = new_job(rig.setup)
        delivery, context = queue_message(message), InvocationContext("process_job")
        with Stopwatch() as timing:
            rig.functions["process_job"](delivery, context=context)
        status = rig.table.get_entity(record.job_id, ROW_KEY)["status"]
        _check(status == "completed", f"process_job left the job {status}")
        return timing
    return sample


def bare_worker(rig: Rig) -> Sample:
    """The same work on a bare client: the claim's transaction and one conditional merge."""
    def sample() -> Stopwatch:
        record, _ = new_job(rig.setup)
        running, done = _worker_entities(record)
        with Stopwatch() as timing:
            results = rig.table.submit_transaction([
                ("update", running, {"mode": UpdateMode.MERGE}),
                ("create", {"PartitionKey": record.job_id, "RowKey": LEFT_ACCEPTED_ROW_KEY}),
            ])
            rig.table.update_entity(done, mode=UpdateMode.MERGE, etag=results[0]["etag"],
                                    match_condition=MatchConditions.IfNotModified)
        return timing
    return sample


def naive(sample: Sample) -> Sample:
    """`sample` with the app's store forgotten first: a new client and create-table per call."""
    def run() -> Stopwatch:
        default_store.cache_clear()
        return sample()
    return run


# --- the measurements -------------------------------------------------------------------------

def interleaved(a: Sample, b: Sample, *, samples: int,
                warmup: int) -> tuple[list[Stopwatch], list[Stopwatch]]:
    """Run `a` and `b` alternately (a-b, then b-a), `warmup` untimed rounds first."""
    first: list[Stopwatch] = []
    second: list[Stopwatch] = []
    for i in range(warmup + samples):
        if i % 2:
            tb, ta = b(), a()
        else:
            ta, tb = a(), b()
        if i >= warmup:
            first.append(ta)
            second.append(tb)
    return first, second


def compare(names: tuple[str, str], a: list[Stopwatch], b: list[Stopwatch]) -> dict[str, Any]:
    """Both sides' wall-clock summaries and CPU medians, and the ratio of the wall medians."""
    ratio = statistics.median(t.wall for t in a) / statistics.median(t.wall for t in b)
    return {name: summary([t.wall for t in side])
            | {"cpu_p50_ms": ms(statistics.median(t.cpu for t in side))}
            for name, side in zip(names, (a, b), strict=True)} | {"ratio": round(ratio, 3)}


def overhead(rig: Rig, *, samples: int, warmup: int) -> dict[str, Any]:
    """The app against the bare SDK calls, for submit and for the worker."""
    submit = interleaved(app_submit(rig), bare_submit(rig), samples=samples, warmup=warmup)
    worker = interleaved(app_worker(rig), bare_worker(rig), samples=samples, warmup=warmup)
    return {"submit": compare(("app", "bare"), *submit),
            "worker": compare(("app", "bare"), *worker)}


def client_reuse(rig: Rig, *, samples: int, warmup: int) -> dict[str, Any]:
    """A new table client and create-table per call against the app's reused client."""
    figures = {}
    for name, make in (("submit", app_submit), ("worker", app_worker)):
        slow, fast = interleaved(naive(make(rig)), make(rig), samples=samples, warmup=warmup)
        default_store.cache_clear()
        figures[name] = compare(("naive", "reused"), slow, fast)
    default_store()
    return figures


def count_transactions(rig: Rig, *, batch: int) -> dict[str, Any]:
    """The storage requests of `batch` no-progress jobs and of one thumbnail job, by step."""
    counter = TransactionCounter()
    EXTRA_CLIENT_OPTIONS["raw_response_hook"] = counter.hook("table")
    default_store.cache_clear()
    try:
        default_store()
        first_use = counter.take()
        queue = host_queue(rig.connection, f"count{uuid.uuid4().hex[:12]}",
                           raw_response_hook=counter.hook("queue"))
        counter.take()  # the queue's own creation is the benchmark's, not the job's
        figures = {
            "first_use": first_use,
            "batch": batch,
            NOOP: _one_batch(rig, queue, counter, NOOP, batch),
            "thumbnail": _one_batch(rig, queue, counter, "thumbnail", 1),
        }
        naive(app_submit(rig))()  # its queue send goes through rig.queue, which counts nothing
        figures["naive_submit"] = counter.take()
        return figures
    finally:
        EXTRA_CLIENT_OPTIONS.clear()
        default_store.cache_clear()
        default_store()


def _one_batch(rig: Rig, queue: QueueClient, counter: TransactionCounter, job_type: str,
               size: int) -> dict[str, dict[str, int]]:
    """Submit `size` jobs, receive them in one batch, run and delete each, GET each once."""
    steps: dict[str, dict[str, int]] = {}
    body = {"job_type": job_type, "customer_id": CUSTOMER, "payload": PAYLOAD}
    job_ids = []
    for _ in range(size):
        out = CapturingOut()
        response = rig.call("submit_job", post_json(URL, body), job_message=out)
        job_ids.append(func_json(response)["job_id"])
        queue.send_message(out.get())
    steps["submit (function + host's queue put)"] = counter.take()
    messages = list(next(queue.receive_messages(messages_per_page=size).by_page()))
    _check(len(messages) == size, f"received {len(messages)} of {size} messages in one batch")
    steps["host receives the batch"] = counter.take()
    for message in messages:
        rig.call("process_job", queue_message(message.content, dequeue_count=message.dequeue_count,
                                              message_id=message.id))
        queue.delete_message(message)
    steps["worker (function + host's delete)"] = counter.take()
    for job_id in job_ids:
        answer = func_json(rig.call("get_job_status", get(f"{URL}/{job_id}", job_id=job_id)))
        _check(answer["status"] == "completed", f"job {job_id} ended {answer['status']}")
    steps["one GET per job"] = counter.take()
    return steps


def func_json(response: func.HttpResponse) -> Any:
    """The JSON body of a function's response."""
    return json.loads(response.get_body())


# --- under storage latency --------------------------------------------------------------------

def thread_time(rig: Rig, connection: str, *, samples: int) -> dict[str, Any]:
    """What one no-progress job holds a worker thread for, on `connection` (a proxy's).

    Jobs run one at a time: `submit_job`, then `process_job` on its message, each timed for
    wall-clock and CPU. Wall minus CPU is the storage wait: what the thread spends on round
    trips. Also the bare read a claim without a read saves, on the same connection.
    """
    _use_connection(connection)
    try:
        direct = TableClient.from_connection_string(connection, TABLE, **CLIENT_OPTIONS)
        run_one_job(rig)  # the first use (connections, create table) is not a job's cost
        jobs = [run_one_job(rig) for _ in range(samples)]
        reads = []
        for _ in range(samples):
            record, _message = new_job(rig.setup)
            with Stopwatch() as timing:
                direct.get_entity(record.job_id, ROW_KEY)
            reads.append(timing.wall)
    finally:
        _use_connection(rig.connection)
    wall = [submit.wall + work.wall for submit, work in jobs]
    cpu = [submit.cpu + work.cpu for submit, work in jobs]
    return {
        "samples": samples,
        "submit_job": summary([submit.wall for submit, _ in jobs]),
        "process_job": summary([work.wall for _, work in jobs]),
        "thread_ms_per_job": ms(statistics.fmean(wall)),
        "cpu_ms_per_job": ms(statistics.fmean(cpu)),
        "storage_wait_ms_per_job": ms(statistics.fmean(wall) - statistics.fmean(cpu)),
        "read_round_trip": summary(reads),
    }


def run_one_job(rig: Rig) -> tuple[Stopwatch, Stopwatch]:
    """submit_job, then process_job on its message; each one's wall-clock and CPU."""
    request, out = post_json(URL, {"job_type": NOOP, "customer_id": CUSTOMER,
                                   "payload": PAYLOAD}), CapturingOut()
    with Stopwatch() as submit:
        response = rig.call("submit_job", request, job_message=out)
    _check(response.status_code == 202, f"submit_job answered {response.status_code}")
    delivery = queue_message(str(out.get()))
    with Stopwatch() as work:
        rig.call("process_job", delivery)
    return submit, work


def _use_connection(connection: str) -> None:
    """Point the app's settings and store at `connection` (the store is built on next use)."""
    os.environ["AzureWebJobsStorage"] = connection
    get_settings.cache_clear()
    default_store.cache_clear()
    default_store()
