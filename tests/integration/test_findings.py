"""Regression tests for the ways reviews broke the README's promises under faults.

First the seven findings of the first review, then what a second review's scripts broke.
Each drives its interleaving exactly, through the storage transport (tests/support/faults.py):
a hook runs another client's whole request just before a chosen storage request, or a
request fails before it is sent, or is applied and then answered 500 so that the SDK
resends it. No sleeps. Each failed on the code before its fix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableClient

from jobs.errors import JobFailed, StorageUnavailable
from jobs.models import JobMessage
from tests.conftest import reset_store
from tests.support.faults import ScriptedTransport, on
from tests.support.functions import Timer, get, queue_message, response_json
from tests.support.jobs_api import EXAMPLE, URL, Functions, cancel, rows, status, submit

Register = Callable[..., None]


@pytest.fixture
def transport(table: TableClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedTransport]:
    """The app's store, on a transport the test scripts."""
    from jobs import store

    scripted = ScriptedTransport()
    monkeypatch.setitem(store.EXTRA_CLIENT_OPTIONS, "transport", scripted)
    monkeypatch.setitem(store.EXTRA_CLIENT_OPTIONS, "retry_backoff_factor", 0)
    reset_store()
    yield scripted
    reset_store()


@pytest.fixture
def retention(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Set the app's JOB_RETENTION_HOURS."""
    import dataclasses

    import function_app

    def change(hours: float) -> None:
        monkeypatch.setattr(function_app, "settings", dataclasses.replace(
            function_app.settings, retention=timedelta(hours=hours)))
    return change


def keyed(key: str) -> dict[str, Any]:
    return {"headers": {"Idempotency-Key": key}}


def job_ids(table: TableClient) -> list[str]:
    return [r["PartitionKey"] for r in rows(table) if r["RowKey"] == "job"]


def purge(functions: Functions) -> None:
    functions["purge_expired_jobs"](Timer())


def completed_then_purged_with_key_left(functions: Functions, transport: ScriptedTransport,
                                        at: Callable[[float], datetime], key: str) -> str:
    """A keyed job completes, then a purge deletes its row and fails to delete its key."""
    first, out = submit(functions, **keyed(key))
    functions["process_job"](queue_message(out.get() or ""))
    at(8)
    transport.add(on("DELETE", "key"), "refuse", times=3)  # the SDK's two retries too
    with pytest.raises(StorageUnavailable):
        purge(functions)
    return str(response_json(first)["job_id"])


def test_finding_1a_two_retries_of_a_freed_key_make_one_job(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
    at: Callable[[float], datetime], retention: Callable[[float], None],
) -> None:
    retention(0)
    completed_then_purged_with_key_left(functions, transport, at, "k1a")
    answers: list[Any] = []
    # P2 has read the key; just before its first write to the key, P1 runs to its end.
    write = on("PUT", "key")
    transport.add(lambda r: write(r) or on("DELETE", "key")(r), "run",
                  hook=lambda: answers.append(submit(functions, **keyed("k1a"))[0]))
    answers.append(submit(functions, **keyed("k1a"))[0])
    assert [a.status_code for a in answers] == [202, 202]
    assert len({response_json(a)["job_id"] for a in answers}) == 1
    assert len(job_ids(table)) == 1


def test_finding_1b_the_purge_never_deletes_a_key_that_names_another_job(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
    at: Callable[[float], datetime], retention: Callable[[float], None],
) -> None:
    retention(0)
    _, out = submit(functions, **keyed("k1b"))
    functions["process_job"](queue_message(out.get() or ""))
    at(1)
    client: list[Any] = []
    # Just before the purge deletes the key, a client's POST frees it and makes a new job.
    transport.add(on("DELETE", "key"), "run",
                  hook=lambda: client.append(submit(functions, **keyed("k1b"))[0]))
    purge(functions)
    retry, _ = submit(functions, **keyed("k1b"))
    assert client[0].status_code == 202
    assert response_json(retry)["job_id"] == response_json(client[0])["job_id"]
    assert job_ids(table) == [response_json(client[0])["job_id"]]


def test_finding_1c_zero_retention_racing_submits_make_one_job(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
    retention: Callable[[float], None],
) -> None:
    retention(0)
    answers: list[Any] = []
    # P1 has reserved the key; just before it writes the job row, P2 runs to its end.
    transport.add(on("POST", "job"), "run",
                  hook=lambda: answers.append(submit(functions, **keyed("k1c"))[0]))
    answers.append(submit(functions, **keyed("k1c"))[0])
    assert [a.status_code for a in answers] == [202, 202]
    assert len({response_json(a)["job_id"] for a in answers}) == 1
    assert len(job_ids(table)) == 1


def test_finding_2_a_job_whose_message_is_gone_ends_failed_not_running_forever(
    functions: Functions, table: TableClient, at: Callable[[float], datetime], register: Register,
) -> None:
    def flaky(job: JobMessage, progress: Any) -> dict[str, Any]:
        raise ConnectionError("a transient failure")

    register("flaky", flaky)
    response, out = submit(functions, {**EXAMPLE, "job_type": "flaky"})
    running_id = response_json(response)["job_id"]
    with pytest.raises(ConnectionError):
        functions["process_job"](queue_message(out.get() or ""))
    lost, _ = submit(functions)  # its message is gone too: the queue was cleared
    at(8)
    purge(functions)
    for job_id in (running_id, response_json(lost)["job_id"]):
        code, record = status(functions, job_id)
        assert code == 200
        assert record["status"] == "failed" and record["error"]["code"] == "abandoned"
    at(16)
    purge(functions)  # then they expire like any finished job
    assert job_ids(table) == []


def test_finding_3_an_oversized_job_failed_is_stored_cut_short_in_one_run(
    functions: Functions, table: TableClient, register: Register,
) -> None:
    runs: list[str] = []

    def verbose(job: JobMessage, progress: Any) -> dict[str, Any]:
        runs.append(job.job_id)
        progress(10, "p" * 100_000)
        raise JobFailed("c" * 100_000, "m" * 100_000)

    register("verbose", verbose)
    response, out = submit(functions, {**EXAMPLE, "job_type": "verbose"})
    functions["process_job"](queue_message(out.get() or ""))  # does not raise: no retry
    record = status(functions, response_json(response)["job_id"])[1]
    assert record["status"] == "failed" and len(runs) == 1
    assert record["error"]["code"] == "c" * 64
    assert record["error"]["message"] == "m" * 1024


def test_finding_4_cancel_applied_but_answered_500_is_200(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
) -> None:
    job_id = response_json(submit(functions)[0])["job_id"]
    transport.add(on("PATCH", "job"), "lose_answer")
    code, record = cancel(functions, job_id)
    assert code == 200 and record["status"] == "cancelled"
    assert cancel(functions, job_id)[0] == 200  # a client's retry of its cancel too


def test_finding_4_finish_applied_but_answered_500_is_not_dropped(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="jobs")
    response, out = submit(functions)
    # The second merge of the delivery (after the claim; no progress) is the finish.
    patches = iter([False, False, True])  # claim, progress, finish
    transport.add(lambda r: r.method == "PATCH" and next(patches), "lose_answer")
    functions["process_job"](queue_message(out.get() or ""))
    messages = [r.getMessage() for r in caplog.records]
    assert "job completed" in messages
    assert not any("outcome dropped" in m for m in messages)
    assert status(functions, response_json(response)["job_id"])[1]["status"] == "completed"


def test_finding_4_claim_applied_but_answered_500_counts_one_attempt(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
) -> None:
    response, out = submit(functions)
    transport.add(on("PATCH", "job"), "lose_answer")  # the first merge is the claim
    functions["process_job"](queue_message(out.get() or ""))
    record = status(functions, response_json(response)["job_id"])[1]
    assert record["status"] == "completed" and record["attempts"] == 1


def test_finding_5_a_replay_queues_one_message_while_accepted_and_none_after(
    functions: Functions, table: TableClient, at: Callable[[float], datetime],
) -> None:
    """At most one extra message per request a client sends, and none once the job runs."""
    at(0)
    response, first = submit(functions, **keyed("k5"))
    sent = [submit(functions, **keyed("k5"))[1].get() for _ in range(5)]
    assert sent == [first.get()] * 5
    functions["process_job"](queue_message(first.get() or ""))
    assert status(functions, response_json(response)["job_id"])[1]["status"] == "completed"
    assert [submit(functions, **keyed("k5"))[1].get() for _ in range(5)] == [None] * 5


def test_finding_6_a_purged_job_is_never_rebuilt_from_its_leftover_key(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
    at: Callable[[float], datetime], retention: Callable[[float], None],
) -> None:
    retention(1)
    first_id = completed_then_purged_with_key_left(functions, transport, at, "k6")
    retention(24 * 365)  # the leftover key now looks young
    again, out = submit(functions, **keyed("k6"))
    assert again.status_code == 202
    assert response_json(again)["job_id"] != first_id
    assert "Idempotent-Replayed" not in again.headers
    assert status(functions, first_id)[0] == 404
    assert json.loads(out.get() or "")["job_id"] != first_id


@pytest.mark.parametrize("body", [
    json.dumps({"job_id": "a/b", "job_type": "thumbnail", "customer_id": "c",
                "submitted_at": "2026-01-01T00:00:00+00:00", "token": "t"}).encode(),
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
])
def test_finding_7_an_unusable_message_is_dropped_by_both_queue_functions(
    functions: Functions, table: TableClient, caplog: pytest.LogCaptureFixture, body: bytes,
) -> None:
    caplog.set_level(logging.INFO, logger="jobs")
    functions["process_job"](queue_message(body, message_id="m7"))
    functions["fail_poisoned_job"](queue_message(body, message_id="m7p"))
    dropped = [r for r in caplog.records if r.getMessage() == "dropped a malformed message"]
    assert [getattr(r, "message_id", None) for r in dropped] == ["m7", "m7p"]
    assert rows(table) == []


def test_unkeyed_insert_applied_but_unanswered_leaves_no_row(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
) -> None:
    transport.add(on("POST", "job"), "lose_answer")
    transport.add(on("POST", "job"), "refuse", times=2)  # the SDK's retries fail too
    response, out = submit(functions)
    assert response.status_code == 503 and out.get() is None
    assert rows(table) == []


def test_a_purge_cut_short_before_the_job_delete_still_replays_the_stored_job(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
    at: Callable[[float], datetime],
) -> None:
    first, out = submit(functions, **keyed("cut-short"))
    first_id = response_json(first)["job_id"]
    functions["process_job"](queue_message(out.get() or ""))
    at(8)
    transport.add(on("DELETE", "job"), "refuse", times=3)  # the SDK's two retries too
    with pytest.raises(StorageUnavailable):
        purge(functions)
    again, _ = submit(functions, **keyed("cut-short"))  # the key is retired, its job stored
    assert response_json(again)["job_id"] == first_id
    purge(functions)
    assert rows(table) == []
    fresh, _ = submit(functions, **keyed("cut-short"))
    assert response_json(fresh)["job_id"] != first_id


# --- the second review --------------------------------------------------------------------

def test_overlapping_timer_runs_never_bring_a_purged_job_back(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
    at: Callable[[float], datetime],
) -> None:
    first, out = submit(functions, **keyed("overlap"))
    first_id = response_json(first)["job_id"]
    functions["process_job"](queue_message(out.get() or ""))
    at(16)  # expired, and its key older than the leftover-key cutoff too
    # Run B does its whole run just before run A's first read of a job row.
    transport.add(lambda r: r.method == "GET" and "RowKey='job'" in r.url, "run",
                  hook=lambda: purge(functions))
    purge(functions)
    assert status(functions, first_id)[0] == 404 and rows(table) == []
    again, _ = submit(functions, **keyed("overlap"))
    assert response_json(again)["job_id"] != first_id and len(job_ids(table)) == 1


def test_a_submit_outrun_by_its_replay_worker_and_purge_never_revives_the_job(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
    retention: Callable[[float], None],
) -> None:
    retention(0)
    seen: dict[str, Any] = {}

    def replay_run_and_purge() -> None:
        response, out = submit(functions, **keyed("outrun"))
        seen["id"], seen["message"] = response_json(response)["job_id"], out.get()
        functions["process_job"](queue_message(out.get() or "", message_id="m1"))
        purge(functions)
        # and the first request's cleanup, if it needs one, is refused
        transport.add(on("DELETE", "job"), "refuse", times=3)

    transport.add(on("POST", "job"), "run", hook=replay_run_and_purge)
    first, _ = submit(functions, **keyed("outrun"))
    assert first.status_code == 202 and response_json(first)["job_id"] != seen["id"]
    functions["process_job"](queue_message(seen["message"], message_id="m1", dequeue_count=2))
    assert status(functions, seen["id"])[0] == 404  # purged, and it stays so
    assert len(job_ids(table)) == 1


def test_racing_replays_each_queue_the_message(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
) -> None:
    _, first = submit(functions, **keyed("racing"))
    sent: list[str | None] = []
    # P3 runs to its end while P2 reads the job: each is answered 202, so each queued it.
    transport.add(on("GET", "job"), "run",
                  hook=lambda: sent.append(submit(functions, **keyed("racing"))[1].get()))
    sent.append(submit(functions, **keyed("racing"))[1].get())
    assert sent == [first.get(), first.get()]


def test_a_first_key_insert_applied_but_answered_500_is_not_a_replay(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
) -> None:
    transport.add(on("POST", "key"), "lose_answer")
    response, out = submit(functions, **keyed("own-insert"))
    assert response.status_code == 202 and "Idempotent-Replayed" not in response.headers
    assert json.loads(out.get() or "")["job_id"] == response_json(response)["job_id"]
    assert len(job_ids(table)) == 1


def test_a_poison_write_applied_but_answered_500_counts_as_done(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="jobs")
    response, out = submit(functions)
    transport.add(on("PATCH", "job"), "lose_answer")
    functions["fail_poisoned_job"](queue_message(out.get() or ""))
    assert "job failed: poisoned" in [r.getMessage() for r in caplog.records]
    assert status(functions, response_json(response)["job_id"])[1]["error"]["code"] == "poisoned"


def test_a_post_after_the_table_was_deleted_is_503(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
) -> None:
    submit(functions)  # the store is built, and made the table once
    table.delete_table()
    for headers in ({}, keyed("gone")):
        response, out = submit(functions, **headers)
        assert response.status_code == 503 and out.get() is None


def test_storage_refusing_access_is_503_not_500(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
) -> None:
    job_id = response_json(submit(functions)[0])["job_id"]
    transport.add(lambda r: r.method == "GET", "lose_answer", status=403)  # a missing role
    response = functions["get_job_status"](get(f"{URL}/{job_id}", job_id=job_id))
    assert response.status_code == 503 and response.headers["Retry-After"]


@pytest.mark.parametrize("code", [400, 413])
@pytest.mark.parametrize("route", ["submit", "get", "cancel"])
def test_storage_refusing_a_request_as_invalid_is_503_not_500(
    functions: Functions, table: TableClient, transport: ScriptedTransport, code: int,
    route: str,
) -> None:
    job_id = response_json(submit(functions)[0])["job_id"]
    transport.add(lambda r: True, "lose_answer", status=code)  # the route's first request
    response = {
        "submit": lambda: submit(functions)[0],
        "get": lambda: functions["get_job_status"](get(f"{URL}/{job_id}", job_id=job_id)),
        "cancel": lambda: functions["cancel_job"](
            get(f"{URL}/{job_id}", method="DELETE", job_id=job_id)),
    }[route]()
    assert response.status_code == 503 and response.headers["Retry-After"]


# --- found by the fault explorer ----------------------------------------------------------

def test_a_key_write_whose_answer_was_lost_keeps_the_job_a_replay_answered_with(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
) -> None:
    """tests/explore/FOUND.md 2: A's key insert is applied, its answer lost; B replays A's job."""
    replays: list[Any] = []
    transport.add(on("POST", "key"), "drop_answer")
    transport.add(on("GET", "key"), "run",  # A's next request: it reads the key again
                  hook=lambda: replays.append(submit(functions, **keyed("lost-answer"))[0]))
    first, out = submit(functions, **keyed("lost-answer"))
    [replay] = replays
    assert replay.status_code == 202 and first.status_code == 202
    job_id = response_json(replay)["job_id"]
    assert response_json(first)["job_id"] == job_id
    assert status(functions, job_id)[0] == 200 and job_ids(table) == [job_id]
    assert json.loads(out.get() or "")["job_id"] == job_id


# --- liveness: every 202 runs ----------------------------------------------------------------
# The host answers an HTTP function only after it flushed the function's output bindings, and a
# flush that fails fails the invocation (500): Azure/azure-webjobs-sdk,
# src/Microsoft.Azure.WebJobs.Host/Executors/FunctionExecutor.cs (ExecuteWithWatchersAsync runs
# ProcessOutputParameters after the function returns) and Azure/azure-functions-host,
# src/WebJobs.Script.WebHost/Middleware/FunctionInvocationMiddleware.cs (the response is written
# after FunctionExecutionFeature.ExecuteAsync, i.e. JobHost.CallAsync, completed). So a 202 the
# client sees means the message the function set was queued; a flush failure is a 500.


def test_f1_a_replay_whose_flush_failed_is_made_good_by_the_next_replay(
    functions: Functions, table: TableClient, at: Callable[[float], datetime],
) -> None:
    at(0)
    response, first = submit(functions, **keyed("flush"))
    # The queue is down: the host's flush of the first POST and of a replay both fail, so
    # the client saw 500 twice and retries; the queue is back for the third request.
    lost_replay = submit(functions, **keyed("flush"))[1]
    assert lost_replay.get() == first.get()
    at(1 / 86_400)  # one second later: well within any resend interval
    again, out = submit(functions, **keyed("flush"))
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert out.get() == first.get()  # the 202 comes with the job's message
    job_id = response_json(response)["job_id"]
    functions["process_job"](queue_message(out.get() or ""))
    assert status(functions, job_id)[1]["status"] == "completed"


def test_f1_a_table_error_during_a_replay_never_leaves_a_later_202_without_its_message(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
) -> None:
    _, first = submit(functions, **keyed("table-error"))

    def outage() -> None:  # any write this replay makes is applied and answered 500, and
        # the key cannot be read back: the request answers 503
        transport.add(on("PUT", "key"), "lose_answer")
        transport.add(on("GET", "key"), "refuse", times=4)

    transport.add(on("GET", "job"), "run", hook=outage)
    answers = [submit(functions, **keyed("table-error")) for _ in range(3)]
    told = [out.get() for response, out in answers if response.status_code == 202]
    assert told and told == [first.get()] * len(told)


def test_f1_every_202_of_an_accepted_job_queues_its_message_under_table_faults(
    functions: Functions, table: TableClient, transport: ScriptedTransport,
) -> None:
    """Whatever a replay's storage requests meet, a 202 for an accepted job carries the
    message and an error answer queues nothing."""
    _, first = submit(functions, **keyed("faults"))
    for method, row, action in [("GET", "key", "refuse"), ("GET", "job", "refuse"),
                                ("GET", "key", "drop_answer"), ("GET", "job", "lose_answer")]:
        transport.add(on(method, row), action, times=4)
        response, out = submit(functions, **keyed("faults"))
        assert (out.get() == first.get()) if response.status_code == 202 else out.get() is None


# --- nothing a handler returns, raises or reports makes GET or DELETE answer 500 -------------

def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


class _Opaque:
    pass


@pytest.mark.parametrize("result", [
    pytest.param(_deep(300), id="nested-300"),
    pytest.param(_deep(65), id="nested-past-the-limit"),
    pytest.param({"text": "caf\udce9"}, id="lone-surrogate"),
    pytest.param({"caf\udce9": 1}, id="lone-surrogate-key"),
    pytest.param({"n": float("nan")}, id="nan"),
    pytest.param({"n": float("inf")}, id="infinity"),
    pytest.param({1: "x"}, id="int-key"),
    pytest.param({"s": {1, 2}}, id="set"),
    pytest.param({"o": _Opaque()}, id="object"),
])
def test_f2_a_result_no_answer_can_carry_fails_the_job_and_get_answers(
    functions: Functions, table: TableClient, register: Register, result: Any,
) -> None:
    register("odd", lambda job, progress: result)
    response, out = submit(functions, {**EXAMPLE, "job_type": "odd"})
    job_id = response_json(response)["job_id"]
    functions["process_job"](queue_message(out.get() or ""))
    code, record = status(functions, job_id)
    assert code == 200 and record["status"] == "failed"
    assert record["error"]["code"] in ("result_not_storable", "invalid_result")
    assert cancel(functions, job_id)[0] == 409


def test_f2_a_result_at_the_depth_limit_is_stored_and_answered_as_returned(
    functions: Functions, table: TableClient, register: Register,
) -> None:
    from jobs.serial import MAX_DEPTH

    register("deep", lambda job, progress: _deep(MAX_DEPTH))
    response, out = submit(functions, {**EXAMPLE, "job_type": "deep"})
    functions["process_job"](queue_message(out.get() or ""))
    code, record = status(functions, response_json(response)["job_id"])
    assert code == 200 and record["status"] == "completed"
    assert record["result"] == _deep(MAX_DEPTH)


def test_f2_texts_a_handler_reports_or_raises_are_answered_with_lone_surrogates_replaced(
    functions: Functions, table: TableClient, register: Register,
) -> None:
    seen: dict[str, Any] = {}

    def odd_texts(job: JobMessage, progress: Any) -> dict[str, Any]:
        progress(40, "reading caf\udce9.txt")
        seen["running"] = status(functions, job.job_id)
        seen["cancel"] = None
        raise JobFailed("bad\udce9", "cannot read caf\udce9.txt" + "x" * 5_000)

    register("odd-texts", odd_texts)
    response, out = submit(functions, {**EXAMPLE, "job_type": "odd-texts"})
    job_id = response_json(response)["job_id"]
    functions["process_job"](queue_message(out.get() or ""))
    code, running = seen["running"]
    assert code == 200 and running["progress"]["message"] == "reading caf\ufffd.txt"
    code, record = status(functions, job_id)
    assert code == 200 and record["error"]["code"] == "bad\ufffd"
    assert record["error"]["message"].startswith("cannot read caf\ufffd.txt")
    assert len(record["error"]["message"]) == 1024


def test_f2_a_running_job_whose_progress_holds_a_lone_surrogate_is_cancelled_with_200(
    functions: Functions, table: TableClient, register: Register,
) -> None:
    answers: list[tuple[int, Any]] = []

    def cancelled_mid_run(job: JobMessage, progress: Any) -> dict[str, Any]:
        progress(10, "\udc80" * 300)
        answers.append(cancel(functions, job.job_id))
        answers.append(cancel(functions, job.job_id))
        return {"never": "stored"}

    register("cancelled-mid-run", cancelled_mid_run)
    _, out = submit(functions, {**EXAMPLE, "job_type": "cancelled-mid-run"})
    functions["process_job"](queue_message(out.get() or ""))
    assert [code for code, _ in answers] == [200, 200]
    assert all(record["status"] == "cancelled" for _, record in answers)


def test_f2_a_row_stored_before_results_were_checked_is_still_answered(
    functions: Functions, table: TableClient,
) -> None:
    """A result written by an earlier version, nested past every limit: GET answers 200."""
    response, _ = submit(functions)
    job_id = response_json(response)["job_id"]
    row = table.get_entity(job_id, "job")
    row["status"] = "completed"
    row["result"] = '{"a":' * 400 + '"caf\\udce9"' + "}" * 400
    table.update_entity(row)
    code, record = status(functions, job_id)
    assert code == 200 and record["status"] == "completed"


@pytest.mark.parametrize(("levels", "expected"), [(64, 202), (65, 400), (5_000, 400)])
def test_f2_the_body_depth_limit_is_the_apps_own(
    functions: Functions, table: TableClient, levels: int, expected: int,
) -> None:
    """The same answer on every Python version: the depth is counted before parsing (3.13's
    json.loads accepts nesting that 3.11's refuses)."""
    payload = b'{"a":' * (levels - 1) + b"1" + b"}" * (levels - 1)
    body = b'{"job_type":"thumbnail","customer_id":"c","payload":' + payload + b"}"
    response, out = submit(functions, body)
    assert response.status_code == expected
    assert (out.get() is not None) == (expected == 202)
    assert len(job_ids(table)) == (1 if expected == 202 else 0)


# --- the sweep never fails a job that is making progress --------------------------------------

def test_f3_a_job_reporting_progress_within_the_smallest_window_is_never_swept(
    functions: Functions, table: TableClient, register: Register,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses

    import function_app
    from jobs.lifecycle import utcnow
    from jobs.settings import MIN_ABANDON_HOURS, Settings

    smallest = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true",
                                  "JOB_ABANDON_AFTER_HOURS": str(MIN_ABANDON_HOURS)})
    monkeypatch.setattr(function_app, "settings", dataclasses.replace(
        function_app.settings, abandon_after=smallest.abandon_after))
    start = utcnow()
    now = [start]
    monkeypatch.setattr(function_app, "clock", lambda: now[0])
    window = smallest.abandon_after

    def slow(job: JobMessage, progress: Any) -> dict[str, Any]:
        for _ in range(3):  # each report just inside the window; the timer runs in between
            now[0] += window - timedelta(seconds=1)
            purge(functions)
            progress(50, "still going")
        return {"done": True}

    register("slow", slow)
    response, out = submit(functions, {**EXAMPLE, "job_type": "slow"})
    functions["process_job"](queue_message(out.get() or ""))
    assert status(functions, response_json(response)["job_id"])[1]["status"] == "completed"


# --- the status URL is made before any write ---------------------------------------------------

@pytest.mark.parametrize("host", ["[abcd]", "host:99999", "[::1", 'jobs"x.example',
                                  "jobs.example<b>", "jöbs.example", "jobs.example:8o",
                                  "user@jobs.example", ""])
def test_f4_a_request_no_status_url_can_be_made_for_is_400_and_stores_nothing(
    functions: Functions, table: TableClient, host: str,
) -> None:
    from tests.support.functions import CapturingOut, post_json

    out = CapturingOut()
    request = post_json(f"http://{host}/api/jobs", EXAMPLE, headers={"Host": host})
    response = functions["submit_job"](request, job_message=out)
    assert response.status_code == 400
    assert response_json(response)["detail"][0]["type"] == "invalid_host"
    assert out.get() is None and rows(table) == []
