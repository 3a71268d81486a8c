"""The production contract: idempotent submits, cancellation, retention, progress, correlation."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from azure.data.tables import TableClient

from jobs.models import JobMessage
from tests.support.functions import Timer, get, queue_message, response_json
from tests.support.jobs_api import EXAMPLE, Functions, cancel, rows, status, submit

Register = Callable[..., None]


def job_rows(table: TableClient) -> list[dict[str, Any]]:
    return [row for row in rows(table) if row["RowKey"] == "job"]


def keyed(key: str, body: Any = None, **headers: str) -> dict[str, Any]:
    return {"body": body, "headers": {"Idempotency-Key": key, **headers}}


# --- idempotent submits -------------------------------------------------------------------

def test_idempotency_repeat_replays_same_job_and_queues_its_message_while_accepted(
    functions: Functions, table: TableClient
) -> None:
    first, first_out = submit(functions, **keyed("order-1"))
    replays = [submit(functions, **keyed("order-1")) for _ in range(3)]
    assert first.status_code == 202 and {r.status_code for r, _ in replays} == {202}
    assert all(response_json(r) == response_json(first) for r, _ in replays)
    assert all(r.headers["Idempotent-Replayed"] == "true" for r, _ in replays)
    assert "Idempotent-Replayed" not in first.headers
    # The host answers 202 only once it flushed the queue output, so every replay of a job
    # still accepted queues its message: a send lost before is made good by any 202 after.
    assert [out.get() for _, out in replays] == [first_out.get()] * 3
    assert len(job_rows(table)) == 1


def test_idempotency_repeat_after_completion_queues_nothing(
    functions: Functions, table: TableClient
) -> None:
    first, out = submit(functions, **keyed("order-2"))
    functions["process_job"](queue_message(out.get() or ""))
    again, again_out = submit(functions, **keyed("order-2"))
    assert response_json(again)["job_id"] == response_json(first)["job_id"]
    assert again_out.get() is None
    assert len(job_rows(table)) == 1


def test_idempotency_same_key_other_body_is_422(functions: Functions, table: TableClient) -> None:
    submit(functions, **keyed("order-3"))
    other, out = submit(functions, **keyed("order-3", {**EXAMPLE, "payload": {"x": 1}}))
    assert other.status_code == 422
    assert "different request body" in response_json(other)["detail"][0]["msg"]
    assert out.get() is None and len(job_rows(table)) == 1


def test_idempotency_key_is_scoped_to_the_customer(functions: Functions, table: TableClient
                                                   ) -> None:
    a, _ = submit(functions, **keyed("shared"))
    b, _ = submit(functions, **keyed("shared", {**EXAMPLE, "customer_id": "cust-456"}))
    assert response_json(a)["job_id"] != response_json(b)["job_id"]


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_idempotency_malformed_key_is_400_and_leaves_nothing(
    functions: Functions, table: TableClient, key: str
) -> None:
    response, out = submit(functions, **keyed(key))
    assert response.status_code == 400
    assert response_json(response)["detail"][0]["type"] == "invalid_idempotency_key"
    assert out.get() is None and rows(table) == []


def test_idempotency_racing_requests_create_exactly_one_job(
    functions: Functions, table: TableClient
) -> None:
    def race(barrier: threading.Barrier, key: str) -> Any:
        barrier.wait()
        return submit(functions, **keyed(key))[0]

    for round_ in range(5):
        barrier = threading.Barrier(4)
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(race, [barrier] * 4, [f"race-{round_}"] * 4))
        assert {a.status_code for a in answers} == {202}
        assert len({response_json(a)["job_id"] for a in answers}) == 1
    assert len(job_rows(table)) == 5


def test_idempotency_outage_between_the_writes_keeps_its_row_and_the_retry_makes_the_job(
    functions: Functions, table: TableClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs.errors import StorageUnavailable
    from jobs.store import JobStore

    def outage(self: JobStore, key: Any) -> Any:
        raise StorageUnavailable("Table Storage is unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(JobStore, "insert_key", outage)
        cut_off, cut_off_out = submit(functions, **keyed("cut-off"))
    assert cut_off.status_code == 503 and cut_off_out.get() is None
    # A key write whose outcome is unknown may still land (tests/explore/FOUND.md 5), so the
    # job row it would name stays: unanswered, with no message and no key row naming it.
    [kept] = job_rows(table)
    assert kept["status"] == "accepted" and [r for r in rows(table) if r["RowKey"] == "key"] == []
    retry, retry_out = submit(functions, **keyed("cut-off"))
    assert retry.status_code == 202 and "Idempotent-Replayed" not in retry.headers
    job_id = response_json(retry)["job_id"]
    assert job_id != kept["PartitionKey"]
    functions["process_job"](queue_message(retry_out.get() or ""))
    assert status(functions, job_id)[1]["status"] == "completed"
    assert {r["PartitionKey"]: r["status"] for r in job_rows(table)} == {
        job_id: "completed", kept["PartitionKey"]: "accepted"}


# --- cancellation -------------------------------------------------------------------------

def test_cancel_accepted_job_and_worker_never_starts_it(
    functions: Functions, table: TableClient
) -> None:
    response, out = submit(functions)
    job_id = response_json(response)["job_id"]
    code, record = cancel(functions, job_id)
    assert (code, record["status"]) == (200, "cancelled")
    functions["process_job"](queue_message(out.get() or ""))
    row = job_rows(table)[0]
    assert (row["status"], row["attempts"]) == ("cancelled", 0)


def test_cancel_finished_job_is_409_and_unknown_is_404(functions: Functions, table: TableClient
                                                        ) -> None:
    response, out = submit(functions)
    job_id = response_json(response)["job_id"]
    functions["process_job"](queue_message(out.get() or ""))
    assert cancel(functions, job_id)[0] == 409
    assert cancel(functions, "00000000-0000-4000-8000-000000000000")[0] == 404
    assert cancel(functions, "not-an-id")[0] == 404
    assert status(functions, job_id)[1]["status"] == "completed"


def test_cancel_twice_answers_200_with_the_same_record(
        functions: Functions, table: TableClient) -> None:
    job_id = response_json(submit(functions)[0])["job_id"]
    first = cancel(functions, job_id)
    again = cancel(functions, job_id)
    assert first[0] == again[0] == 200
    assert again[1] == first[1] and again[1]["status"] == "cancelled"


def test_cancel_during_run_keeps_cancelled_and_drops_result(
    functions: Functions, table: TableClient, register: Register,
    caplog: pytest.LogCaptureFixture
) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(job: JobMessage, progress: Any) -> dict[str, Any]:
        entered.set()
        assert release.wait(10)
        return {"done": True}

    register("slow", slow)
    caplog.set_level(logging.INFO, logger="jobs")
    response, out = submit(functions, {**EXAMPLE, "job_type": "slow"})
    job_id = response_json(response)["job_id"]
    run = threading.Thread(target=functions["process_job"], args=(queue_message(out.get() or ""),))
    run.start()
    assert entered.wait(10)
    assert cancel(functions, job_id)[1]["status"] == "cancelled"
    release.set()
    run.join(10)
    code, record = status(functions, job_id)
    assert record["status"] == "cancelled" and "result" not in record
    assert any("outcome dropped" in r.getMessage() for r in caplog.records)


# --- progress -----------------------------------------------------------------------------

def test_progress_is_visible_while_running(functions: Functions, table: TableClient,
                                           register: Register) -> None:
    seen: list[Any] = []

    def stepwise(job: JobMessage, progress: Any) -> dict[str, Any]:
        before = status(functions, job.job_id)[1]
        progress(30, "step one")
        after = status(functions, job.job_id)[1]
        seen.extend([before, after])
        return {}

    register("stepwise", stepwise)
    response, out = submit(functions, {**EXAMPLE, "job_type": "stepwise"})
    functions["process_job"](queue_message(out.get() or ""))
    before, after = seen
    assert "progress" not in before
    assert after["progress"] == {"percent": 30, "message": "step one"}
    assert after["updated_at"] > before["updated_at"]
    assert status(functions, before["job_id"])[1]["status"] == "completed"


def test_progress_of_thumbnail_is_stored(functions: Functions, table: TableClient) -> None:
    response, out = submit(functions)
    functions["process_job"](queue_message(out.get() or ""))
    record = status(functions, response_json(response)["job_id"])[1]
    assert record["progress"] == {"percent": 50, "message": "rendering thumbnail"}


def test_progress_after_cancel_does_not_overwrite_it(
    functions: Functions, table: TableClient, register: Register
) -> None:
    def cancelled_midway(job: JobMessage, progress: Any) -> dict[str, Any]:
        progress(10, "started")
        assert cancel(functions, job.job_id)[0] == 200
        progress(90, "nearly there")  # raises JobCancelled: the handler stops here
        raise AssertionError("progress did not stop a cancelled job")

    register("cancelled_midway", cancelled_midway)
    response, out = submit(functions, {**EXAMPLE, "job_type": "cancelled_midway"})
    functions["process_job"](queue_message(out.get() or ""))
    record = status(functions, response_json(response)["job_id"])[1]
    assert record["status"] == "cancelled"
    assert record["progress"] == {"percent": 10, "message": "started"}


# --- retention and status headers ---------------------------------------------------------

def test_status_is_200_in_every_state_with_retry_after_until_terminal(
    functions: Functions, table: TableClient, register: Register
) -> None:
    states: dict[str, Any] = {}

    def read(job_id: str) -> Any:
        return functions["get_job_status"](get(f"x/{job_id}", job_id=job_id))

    def observe(job: JobMessage, progress: Any) -> dict[str, Any]:
        states["running"] = read(job.job_id)
        return {}

    register("observe", observe)
    response, out = submit(functions, {**EXAMPLE, "job_type": "observe"})
    job_id = response_json(response)["job_id"]
    states["accepted"] = read(job_id)
    functions["process_job"](queue_message(out.get() or ""))
    states["completed"] = read(job_id)
    for name in ("accepted", "running"):
        assert states[name].status_code == 200
        headers = states[name].headers
        assert int(headers["Retry-After"]) > 0 and "Expires" not in headers
    done = states["completed"]
    record = response_json(done)
    assert done.status_code == 200 and "Retry-After" not in done.headers
    expires = datetime.fromisoformat(record["expires_at"])
    assert parsedate_to_datetime(done.headers["Expires"]) == expires.replace(microsecond=0)


def test_terminal_job_expires_after_retention_hours(functions: Functions, table: TableClient
                                                    ) -> None:
    response, out = submit(functions)
    functions["process_job"](queue_message(out.get() or ""))
    record = status(functions, response_json(response)["job_id"])[1]
    expires = datetime.fromisoformat(record["expires_at"])
    assert expires - datetime.fromisoformat(record["completed_at"]) == timedelta(hours=168)


def purge_days_from_now(days: float) -> int:
    """Run the purge as if `days` had passed, with the default 168-hour retention."""
    from jobs.lifecycle import utcnow
    from jobs.retention import purge_expired
    from jobs.settings import get_settings
    from jobs.store import default_store

    later = utcnow() + timedelta(days=days)
    return purge_expired(default_store(), settings=get_settings(), clock=lambda: later)


def test_purge_removes_expired_jobs_with_their_keys_and_frees_the_keys(
    functions: Functions, table: TableClient
) -> None:
    done, done_out = submit(functions, **keyed("k-done"))
    functions["process_job"](queue_message(done_out.get() or ""))
    assert purge_days_from_now(6) == 0  # nothing has expired yet
    assert purge_days_from_now(8) == 1
    assert status(functions, response_json(done)["job_id"])[0] == 404
    assert rows(table) == []  # the key row went with its job
    again, _ = submit(functions, **keyed("k-done"))
    assert response_json(again)["job_id"] != response_json(done)["job_id"]
    assert "Idempotent-Replayed" not in again.headers


def test_sweep_fails_abandoned_running_and_accepted_jobs(
    functions: Functions, table: TableClient, register: Register
) -> None:
    hold, entered = threading.Event(), threading.Event()

    def held(job: JobMessage, progress: Any) -> dict[str, Any]:
        entered.set()
        assert hold.wait(10)
        return {}

    register("held", held)
    waiting, _ = submit(functions, **keyed("k-waiting"))
    running, running_out = submit(functions, {**EXAMPLE, "job_type": "held"})
    worker = threading.Thread(target=functions["process_job"],
                              args=(queue_message(running_out.get() or ""),))
    worker.start()
    try:
        assert entered.wait(10)
        assert purge_days_from_now(0.5) == 0  # running for less than the 24-hour bound
        assert status(functions, response_json(running)["job_id"])[1]["status"] == "running"
        assert purge_days_from_now(2) == 0  # past it: abandoned, kept for the retention
        assert status(functions, response_json(waiting)["job_id"])[1]["status"] == "accepted"
        purge_days_from_now(8)  # an accepted job older than a queue message lives
    finally:
        hold.set()
        worker.join(10)
    for job in (running, waiting):
        record = status(functions, response_json(job)["job_id"])[1]
        assert record["status"] == "failed" and record["error"]["code"] == "abandoned"


def test_sweep_gives_a_replayed_accepted_job_a_week_from_the_replay(
    functions: Functions, table: TableClient, at: Callable[[float], datetime]
) -> None:
    """A job whose message was lost, replayed 8 days on: the replay queued its message
    again, so the sweep waits a queue message's life from the replay, not the submit."""
    first, _ = submit(functions, **keyed("k-lost"))  # its message is never delivered
    job_id = response_json(first)["job_id"]
    at(8)
    replay, out = submit(functions, **keyed("k-lost"))
    assert replay.headers["Idempotent-Replayed"] == "true" and out.get() is not None
    assert purge_days_from_now(8) == 0
    assert status(functions, job_id)[1]["status"] == "accepted"
    purge_days_from_now(15.01)  # the replay's message has outlived its time to live
    record = status(functions, job_id)[1]
    assert record["status"] == "failed" and record["error"]["code"] == "abandoned"


def test_replays_within_a_minute_of_a_stamp_keep_it_and_still_queue_the_message(
    functions: Functions, table: TableClient, at: Callable[[float], datetime]
) -> None:
    """Racing replays write the stamp once: a stamp from the last minute is kept."""
    submit(functions, **keyed("k-again"))
    stamped_at = at(8)
    submit(functions, **keyed("k-again"))
    [stamped] = job_rows(table)
    at(8 + 59 / 86400)
    _, out = submit(functions, **keyed("k-again"))
    [kept] = job_rows(table)
    assert out.get() is not None and kept.metadata["etag"] == stamped.metadata["etag"]
    assert kept["queued_at"] == stamped_at
    restamped_at = at(8 + 2 / 1440)
    submit(functions, **keyed("k-again"))
    [restamped] = job_rows(table)
    assert restamped["queued_at"] == restamped_at


def test_a_replay_whose_job_left_accepted_after_its_read_queues_nothing(
    functions: Functions, table: TableClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay's stamp is written on the ETag it read: a job run in between refuses it,
    and the replay answers with the job as it now is, queuing nothing."""
    from jobs.store import JobStore, Versioned

    first, first_out = submit(functions, **keyed("k-raced"))
    read = JobStore.read

    def read_then_run(self: JobStore, job_id: str) -> Versioned | None:
        found = read(self, job_id)
        monkeypatch.setattr(JobStore, "read", read)
        functions["process_job"](queue_message(first_out.get() or ""))
        return found

    monkeypatch.setattr(JobStore, "read", read_then_run)
    replay, out = submit(functions, **keyed("k-raced"))
    assert replay.status_code == 202 and out.get() is None
    assert response_json(replay)["job_id"] == response_json(first)["job_id"]
    assert status(functions, response_json(first)["job_id"])[1]["status"] == "completed"


def test_purge_timer_deletes_jobs_past_a_zero_hour_retention(
    functions: Functions, table: TableClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import function_app
    from jobs.settings import get_settings

    monkeypatch.setenv("JOB_RETENTION_HOURS", "0")
    get_settings.cache_clear()
    monkeypatch.setattr(function_app, "settings", get_settings())
    done, out = submit(functions)
    functions["process_job"](queue_message(out.get() or ""))
    waiting, _ = submit(functions)
    functions["purge_expired_jobs"](Timer())
    assert status(functions, response_json(done)["job_id"])[0] == 404
    # An accepted job's message may live 7 days in the queue, whatever the retention says.
    assert status(functions, response_json(waiting)["job_id"])[0] == 200


def test_purge_removes_a_key_left_behind_once_it_is_older_than_any_live_job(
    functions: Functions, table: TableClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs.errors import StorageUnavailable
    from jobs.store import JobStore

    _, out = submit(functions, **keyed("left-behind"))
    functions["process_job"](queue_message(out.get() or ""))

    def outage(self: JobStore, key: Any) -> Any:
        raise StorageUnavailable("Table Storage is unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(JobStore, "delete_key", outage)
        with pytest.raises(StorageUnavailable):
            purge_days_from_now(8)
    assert [r["RowKey"] for r in rows(table)] == ["key"]  # free already: its job is gone
    purge_days_from_now(14)  # not older than 7 + 7 days + 24 hours yet
    assert len(rows(table)) == 1
    purge_days_from_now(16)
    assert rows(table) == []


# --- correlation and logs -----------------------------------------------------------------

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(("headers", "expected"), [
    ({"traceparent": TRACEPARENT, "X-Correlation-Id": "ignored"},
     "4bf92f3577b34da6a3ce929d0e0e4736"),
    ({"X-Correlation-Id": "req-77"}, "req-77"),
])
def test_correlation_id_is_returned_stored_and_queued(
    functions: Functions, table: TableClient, headers: dict[str, str], expected: str
) -> None:
    response, out = submit(functions, headers=headers)
    assert response.headers["X-Correlation-Id"] == expected
    assert json.loads(out.get() or "")["correlation_id"] == expected
    assert status(functions, response_json(response)["job_id"])[1]["correlation_id"] == expected


def test_correlation_id_is_made_when_none_is_sent(functions: Functions, table: TableClient
                                                  ) -> None:
    first, _ = submit(functions)
    second, _ = submit(functions)
    made = {first.headers["X-Correlation-Id"], second.headers["X-Correlation-Id"]}
    assert len(made) == 2 and all(len(m) == 32 for m in made)


def test_every_log_line_carries_correlation_and_invocation(
    functions: Functions, table: TableClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobs")
    response, out = submit(functions, headers={"X-Correlation-Id": "trace-9"})
    functions["process_job"](queue_message(out.get() or "", dequeue_count=2))
    functions["fail_poisoned_job"](queue_message(out.get() or ""))
    lines = [r for r in caplog.records if r.name.startswith("jobs")]
    assert len(lines) == 4  # accepted, running, completed, poison for a finished job
    for line in lines:
        assert line.correlation_id == "trace-9"  # type: ignore[attr-defined]
        assert len(line.invocation_id) == 36  # type: ignore[attr-defined]
    worker_lines = [r for r in lines if r.name == "jobs.worker" and "poison" not in r.getMessage()]
    assert {r.dequeue_count for r in worker_lines} == {2}  # type: ignore[attr-defined]
    assert all(r.message_id for r in worker_lines)  # type: ignore[attr-defined]


def test_sweep_leaves_a_job_that_reported_progress_since_the_scan(
    functions: Functions, table: TableClient, monkeypatch: pytest.MonkeyPatch,
    register: Register,
) -> None:
    """The scan saw the job stalled; it reported progress before the sweep's write: it stays."""
    from jobs.retention import purge_expired
    from jobs.settings import get_settings
    from jobs.store import JobStore, default_store

    def reports(job: JobMessage, progress: Any) -> dict[str, Any]:
        seen = default_store().read(job.job_id)
        progress(10, "still going")
        fresh = default_store().read(job.job_id)
        assert seen is not None and fresh is not None
        claimed, reported = seen.record.updated_at, fresh.record.updated_at
        assert reported > claimed
        monkeypatch.setattr(JobStore, "stalled", lambda self, **cutoffs: iter([seen]))
        between = claimed + (reported - claimed) / 2  # stalled as seen, alive as it is now
        settings = dataclasses.replace(get_settings(), abandon_after=timedelta(0))
        purge_expired(default_store(), settings=settings, clock=lambda: between)
        return {"ok": True}

    register("reports", reports)
    response, out = submit(functions, {**EXAMPLE, "job_type": "reports"})
    functions["process_job"](queue_message(out.get() or ""))
    assert status(functions, response_json(response)["job_id"])[1]["status"] == "completed"


# --- a message acts only on its own job ---------------------------------------------------

def forged(message: str, **changes: Any) -> str:
    return json.dumps({**json.loads(message), **changes})


# Each forgery keeps the real message's job id and token: all a reader of the queue or the
# table can learn. It changes one thing the handler would see.
FORGERIES = {
    "job_type": {"job_type": "attack"},
    "customer_id": {"customer_id": "cust-999"},
    "payload": {"payload": {"evil": 1}},
    "submitted_at": {"submitted_at": "2026-01-01T00:00:00+00:00"},
    "correlation_id": {"correlation_id": "0" * 32},
}


def drops(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.getMessage(), getattr(r, "reason", "")) for r in caplog.records
            if r.levelno == logging.WARNING]


@pytest.mark.parametrize("changes", FORGERIES.values(), ids=FORGERIES.keys())
def test_forged_message_with_the_right_token_is_dropped_and_changes_nothing(
    functions: Functions, table: TableClient, register: Register,
    caplog: pytest.LogCaptureFixture, changes: dict[str, Any],
) -> None:
    ran: list[dict[str, Any]] = []
    register("attack", lambda job, progress: ran.append(job.payload) or {})
    caplog.set_level(logging.INFO, logger="jobs")
    response, out = submit(functions)
    job_id = response_json(response)["job_id"]
    real = out.get() or ""
    before = rows(table)
    attack = forged(real, **changes)
    functions["process_job"](queue_message(attack))
    functions["fail_poisoned_job"](queue_message(attack))
    assert ran == []
    after = rows(table)
    assert after == before and [r.metadata["etag"] for r in after] == [
        r.metadata["etag"] for r in before]
    assert drops(caplog) == [("dropped: the message does not match its job",
                              "its job id is not the digest of its content")] * 2
    functions["process_job"](queue_message(real))  # the real message still works
    assert status(functions, job_id)[1]["status"] == "completed"


@pytest.mark.parametrize("changes", FORGERIES.values(), ids=FORGERIES.keys())
def test_forged_poison_message_with_the_right_token_cannot_fail_a_running_job(
    functions: Functions, table: TableClient, register: Register,
    caplog: pytest.LogCaptureFixture, changes: dict[str, Any],
) -> None:
    verdicts: list[tuple[str, Any]] = []

    def runs(job: JobMessage, progress: Any) -> dict[str, Any]:
        before = rows(table)
        functions["fail_poisoned_job"](queue_message(forged(job_message, **changes)))
        verdicts.append((status(functions, job.job_id)[1]["status"], rows(table) == before))
        return {"ok": True}

    register("runs", runs)
    caplog.set_level(logging.INFO, logger="jobs")
    response, out = submit(functions, {**EXAMPLE, "job_type": "runs"})
    job_message = out.get() or ""
    functions["process_job"](queue_message(job_message))
    assert verdicts == [("running", True)]
    assert drops(caplog) == [("dropped: the message does not match its job",
                              "its job id is not the digest of its content")]
    assert status(functions, response_json(response)["job_id"])[1]["status"] == "completed"


def test_message_whose_row_holds_another_job_type_or_customer_is_dropped(
    functions: Functions, table: TableClient, caplog: pytest.LogCaptureFixture,
) -> None:
    """The row read is checked too: a message acts only on a row of its type and customer."""
    caplog.set_level(logging.INFO, logger="jobs")
    response, out = submit(functions)
    job_id = response_json(response)["job_id"]
    row = table.get_entity(job_id, "job")
    table.update_entity({"PartitionKey": job_id, "RowKey": "job", "customer_id": "cust-999"})
    changed = table.get_entity(job_id, "job")
    # A first delivery's claim trusts the row the id names, as only a table writer could
    # have changed it; a later delivery and the poison queue's function read the row.
    functions["process_job"](queue_message(out.get() or "", dequeue_count=2))
    functions["fail_poisoned_job"](queue_message(out.get() or ""))
    assert table.get_entity(job_id, "job") == changed and changed["status"] == row["status"]
    assert drops(caplog) == [("dropped: the message does not match its job",
                              "the job's row holds another job type or customer")] * 2
