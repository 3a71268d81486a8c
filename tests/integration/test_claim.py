"""The worker's claim: one transaction and no read for a job that never left `accepted`, the
read-and-decide path for every other claim, and the storage requests a job costs end to end.

The marker row (`left-accepted`) is what makes the first path safe: an exact copy of a job's
message, replayed at any later state, must find the job as the rules leave it."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from jobs.models import JobMessage
from tests.conftest import reset_store, unique_name
from tests.support.functions import Timer, queue_message, response_json
from tests.support.jobs_api import EXAMPLE, Functions, cancel, rows, status, submit

Register = Callable[..., None]
# One receive of the host's queue trigger takes up to batchSize (16 by default) messages.
BATCH = 16


class Requests:
    """Storage requests by service and method, from an azure-core `raw_response_hook`.

    The hook runs after every HTTP attempt, and each attempt is one billed transaction.
    """

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def hook(self, service: str) -> Callable[[Any], None]:
        def count(response: Any) -> None:
            request = response.http_request
            with self._lock:
                self.seen[f"{service} {request.method} {_operation(service, request)}"] += 1
        return count

    def take(self) -> dict[str, int]:
        with self._lock:
            taken = dict(self.seen)
            self.seen.clear()
        return taken


def _operation(service: str, request: Any) -> str:
    path = urlsplit(request.url).path
    if service == "queue":
        return "messages" if "/messages" in path else "queue"
    if request.method == "POST":
        return {"Tables": "table", "$batch": "transaction"}.get(path.rsplit("/", 1)[-1], "entity")
    # A point read or write names the entity's keys; a query does not.
    return "entity" if "PartitionKey=" in path else "query"


@pytest.fixture
def requests(table: TableClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[Requests]:
    """Counts every request of the app's store (jobs.store.EXTRA_CLIENT_OPTIONS)."""
    from jobs import store

    counted = Requests()
    monkeypatch.setitem(store.EXTRA_CLIENT_OPTIONS, "raw_response_hook", counted.hook("table"))
    reset_store()
    store.default_store()  # the table exists already; its create is not a job's
    counted.take()
    yield counted
    reset_store()


@pytest.fixture
def job_queue(storage_connection: str, requests: Requests) -> Iterator[QueueClient]:
    """A queue of the test's own, encoded as the host encodes it, its requests counted."""
    queue = QueueClient.from_connection_string(
        storage_connection, unique_name("jobs"), message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(), raw_response_hook=requests.hook("queue"))
    queue.create_queue()
    requests.take()
    yield queue
    queue.delete_queue()


def test_claim_no_progress_job_costs_six_requests_and_one_receive_per_batch(
    functions: Functions, register: Register, requests: Requests, job_queue: QueueClient,
) -> None:
    """Submit, the host's send, its receive, the worker, the host's delete, one GET.

    Per job: the row's insert, the message's put, the claim (one entity-group transaction:
    the row started and its marker inserted) and the finish (a conditional merge), no read,
    the message's delete and the GET's point read; and one receive per batch of 16
    messages. 6 + 1/16 = 6.06 per job.
    """
    register("noop", lambda job, progress: {})
    for _ in range(BATCH):
        response, out = submit(functions, {**EXAMPLE, "job_type": "noop"})
        assert response.status_code == 202
        job_queue.send_message(out.get())
    received = list(job_queue.receive_messages(messages_per_page=BATCH, max_messages=BATCH))
    assert len(received) == BATCH
    job_ids = []
    for message in received:
        functions["process_job"](queue_message(message.content, message_id=message.id))
        job_queue.delete_message(message)
        job_ids.append(json.loads(message.content)["job_id"])
    for job_id in job_ids:
        assert status(functions, job_id)[1]["status"] == "completed"
    assert requests.take() == {
        "table POST entity": BATCH,      # submit: insert the accepted row
        "queue POST messages": BATCH,    # the host sends the message
        "queue GET messages": 1,         # the host receives a batch
        "table POST transaction": BATCH,  # worker: the claim
        "table PATCH entity": BATCH,     # worker: the finish, on the claim's ETag
        "queue DELETE messages": BATCH,  # the host deletes the handled message
        "table GET entity": BATCH,       # one GET of the job's status
    }


def test_claim_first_delivery_claims_in_one_transaction_without_a_read(
    functions: Functions, table: TableClient, register: Register, requests: Requests,
) -> None:
    seen: list[dict[str, int]] = []
    register("noop", lambda job, progress: seen.append(dict(requests.seen)) or {})
    response, out = submit(functions, {**EXAMPLE, "job_type": "noop"})
    job_id = response_json(response)["job_id"]
    requests.take()
    functions["process_job"](queue_message(out.get() or ""))
    assert seen == [{"table POST transaction": 1}]  # the claim, before the handler ran
    assert requests.take() == {"table POST transaction": 1, "table PATCH entity": 1}
    row = table.get_entity(job_id, "job")
    assert (row["status"], row["attempts"]) == ("completed", 1)
    assert table.get_entity(job_id, "left-accepted")


def test_claim_every_move_out_of_accepted_leaves_the_marker(
    functions: Functions, table: TableClient, register: Register,
) -> None:
    """Claimed, cancelled, poisoned, abandoned: each job gets its marker with the change."""
    register("noop", lambda job, progress: {})
    made = {}
    for way in ("claimed", "cancelled", "poisoned"):
        response, out = submit(functions, {**EXAMPLE, "job_type": "noop"})
        made[way] = response_json(response)["job_id"], out.get() or ""
    functions["process_job"](queue_message(made["claimed"][1], dequeue_count=2))  # read path
    cancel(functions, made["cancelled"][0])
    functions["fail_poisoned_job"](queue_message(made["poisoned"][1]))
    statuses = {way: table.get_entity(job_id, "job")["status"]
                for way, (job_id, _) in made.items()}
    assert statuses == {"claimed": "completed", "cancelled": "cancelled", "poisoned": "failed"}
    markers = {r["PartitionKey"] for r in rows(table) if r["RowKey"] == "left-accepted"}
    assert markers == {job_id for job_id, _ in made.values()}


def test_claim_an_exact_replay_finds_each_state_as_the_rules_leave_it(
    functions: Functions, table: TableClient, register: Register,
) -> None:
    """Anyone who read a message can queue it again: a first delivery of another message.

    Running, completed, cancelled or failed, the job stays as it is and no handler runs.
    """
    ran: list[str] = []

    def runs(job: JobMessage, progress: Any) -> dict[str, Any]:
        ran.append(job.job_id)
        before = table.get_entity(job.job_id, "job")
        functions["process_job"](queue_message(messages[job.job_id]))  # while it runs
        assert table.get_entity(job.job_id, "job") == before
        return {"ok": True}

    register("runs", runs)
    messages: dict[str, str] = {}
    for _ in range(3):
        response, out = submit(functions, {**EXAMPLE, "job_type": "runs"})
        messages[response_json(response)["job_id"]] = out.get() or ""
    done, cancelled, poisoned = messages
    assert cancel(functions, cancelled)[0] == 200
    functions["fail_poisoned_job"](queue_message(messages[poisoned]))
    functions["process_job"](queue_message(messages[done]))
    assert ran == [done]  # the replay while it ran did not run it again
    ended = {job_id: table.get_entity(job_id, "job") for job_id in messages}
    assert [row["status"] for row in ended.values()] == ["completed", "cancelled", "failed"]
    for message in messages.values():
        functions["process_job"](queue_message(message))  # replays after the end
    assert ran == [done]
    assert {job_id: table.get_entity(job_id, "job") for job_id in messages} == ended


def test_claim_of_a_cancelled_job_reads_the_row_and_never_starts_it(
    functions: Functions, table: TableClient, register: Register, requests: Requests,
) -> None:
    ran: list[str] = []
    register("noop", lambda job, progress: ran.append(job.job_id) or {})
    response, out = submit(functions, {**EXAMPLE, "job_type": "noop"})
    job_id = response_json(response)["job_id"]
    assert cancel(functions, job_id)[0] == 200
    requests.take()
    functions["process_job"](queue_message(out.get() or ""))
    assert ran == [] and status(functions, job_id)[1]["status"] == "cancelled"
    # The claim transaction meets the marker the cancel wrote; the row read then refuses.
    assert requests.take() == {"table POST transaction": 1, "table GET entity": 2}


def test_claim_redelivery_after_a_crash_takes_over_by_reading_the_row(
    functions: Functions, table: TableClient, register: Register,
) -> None:
    """The first delivery claimed with no read; the rules of later deliveries hold as before."""
    crashes = [RuntimeError("worker died")]

    def flaky(job: JobMessage, progress: Any) -> dict[str, Any]:
        if crashes:
            raise crashes.pop()
        return {"ok": True}

    register("flaky", flaky)
    response, out = submit(functions, {**EXAMPLE, "job_type": "flaky"})
    job_id = response_json(response)["job_id"]
    message = out.get() or ""
    with pytest.raises(RuntimeError):
        functions["process_job"](queue_message(message, message_id="m1"))
    functions["process_job"](queue_message(message, message_id="m2"))  # a duplicate copy
    assert table.get_entity(job_id, "job")["status"] == "running"  # still m1's
    functions["process_job"](queue_message(message, message_id="m1", dequeue_count=2))
    row = table.get_entity(job_id, "job")
    assert (row["status"], row["attempts"], json.loads(row["result"])) == (
        "completed", 2, {"ok": True})
    functions["process_job"](queue_message(message, message_id="m1", dequeue_count=3))
    assert table.get_entity(job_id, "job")["attempts"] == 2


def test_claim_without_a_read_keeps_the_key_so_retention_purges_both(
    functions: Functions, table: TableClient, register: Register,
    retention: Callable[[float], None],
) -> None:
    register("noop", lambda job, progress: {})
    retention(0)
    response, out = submit(functions, {**EXAMPLE, "job_type": "noop"},
                           headers={"Idempotency-Key": "claim-1"})
    job_id = response_json(response)["job_id"]
    key_row = table.get_entity(job_id, "job")["idempotency_row"]
    functions["process_job"](queue_message(out.get() or ""))
    assert table.get_entity(job_id, "job")["idempotency_row"] == key_row
    assert {(r["PartitionKey"], r["RowKey"]) for r in rows(table)} == {
        (job_id, "job"), (job_id, "left-accepted"), (key_row, "key")}
    functions["purge_expired_jobs"](Timer())
    assert rows(table) == []


def test_claim_purge_deletes_a_finished_row_that_has_no_marker(
    functions: Functions, table: TableClient, retention: Callable[[float], None],
) -> None:
    """Rows written before jobs had the marker are purged all the same."""
    retention(0)
    response, _ = submit(functions)
    job_id = response_json(response)["job_id"]
    assert cancel(functions, job_id)[0] == 200
    table.delete_entity(job_id, "left-accepted")
    functions["purge_expired_jobs"](Timer())
    assert rows(table) == []


@pytest.fixture
def retention(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Set the app's JOB_RETENTION_HOURS."""
    import dataclasses
    from datetime import timedelta

    import function_app

    def hours(value: float) -> None:
        monkeypatch.setattr(function_app, "settings", dataclasses.replace(
            function_app.settings, retention=timedelta(hours=value)))
    return hours
