"""At-least-once processing under faults: duplicates, crashes, a storage outage, poison, garbage.

Each scenario ends with an accounting (harness.account): every submitted job is in one
terminal state, no completed job was overwritten, and completed handler runs are counted.
The figures go to build/reliability/ for `make reliability-report`.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from tests.reliability.harness import (
    MAX_DEQUEUE,
    Rig,
    account,
    message_for,
    unique_customer,
    wait_until,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]


def bodies(count: int, job_type: str = "counted", **payload: Any) -> list[dict[str, Any]]:
    customer = unique_customer()
    return [{"job_type": job_type, "customer_id": customer, "payload": payload}
            for _ in range(count)]


def test_reliability_duplicates_complete_once(rig: Rig) -> None:
    started = time.monotonic()
    job_ids = rig.submit_many(bodies(500), keyed=True)
    jobs = rig.jobs()
    copies = 0
    for job_id in job_ids:
        for _ in range(random.choice((1, 2))):  # each message delivered two or three times
            rig.inject("job-requests", message_for(rig, jobs[job_id]))
            copies += 1
    rig.drain(job_ids, timeout=180)
    figures = account(rig, "duplicates", job_ids, drain_seconds=time.monotonic() - started,
                      duplicates=copies)
    figures.save()
    assert figures.completed == 500 and figures.lost == 0
    assert max(rig.runs()[i] for i in job_ids) == 1  # at most one completed run per job
    assert "dropped" not in rig.all_logs()  # every copy was a real message of its job


def test_reliability_crashes_lose_no_job(rig: Rig) -> None:
    started = time.monotonic()
    # 0.8 s each: the six worker threads of a 2-CPU machine take about 40 s for all 300, so
    # every SIGKILL lands while runs are in progress (submits share the worker's pool with
    # the jobs, so no backlog builds up while they are sent).
    job_ids = rig.submit_many(bodies(300, seconds=0.8))
    unfinished_at_kill = []
    for _ in range(3):
        time.sleep(random.uniform(0.3, 1.5))
        statuses = Counter(row["status"] for row in rig.jobs().values())
        unfinished_at_kill.append(statuses["accepted"] + statuses["running"])
        rig.kill_host()
        rig.start_host()
    rig.drain(job_ids, timeout=180)
    figures = account(rig, "crash", job_ids, drain_seconds=time.monotonic() - started)
    figures.notes["unfinished jobs at each SIGKILL"] = unfinished_at_kill
    figures.save()
    assert min(unfinished_at_kill) > 0  # every kill hit a run in progress
    assert figures.completed == 300 and figures.lost == 0


def test_reliability_storage_outage(rig: Rig) -> None:
    """POSTs during the outage get 503 and leave nothing; every accepted job still finishes.

    Clients send an Idempotency-Key and retry a 5xx answer, as the README tells them to. A
    POST that the outage cuts off after its row write but before the host's queue send gets
    500 from the host; its retry replays the job and sends the message again.
    """
    started = time.monotonic()
    answers: list[int] = []
    job_ids: list[str] = []
    stop = threading.Event()

    def submit_until_accepted(body: dict[str, Any]) -> str:
        key = uuid.uuid4().hex
        while True:
            answer = rig.submit(body, **{"Idempotency-Key": key})
            answers.append(answer.status_code)
            if answer.status_code == 202:
                return str(answer.json()["job_id"])
            assert answer.status_code in (500, 503), answer.text
            if answer.status_code == 503:
                assert answer.json()["detail"][0]["type"] == "unavailable"
            time.sleep(0.1)

    def keep_submitting() -> None:
        for body in bodies(400, seconds=0.01):
            if stop.is_set():
                return
            job_ids.append(submit_until_accepted(body))
            time.sleep(0.02)

    submitter = threading.Thread(target=keep_submitting)
    submitter.start()
    time.sleep(2)
    rig.azurite.stop()
    time.sleep(3)
    rig.azurite.start()
    time.sleep(2)
    stop.set()
    submitter.join(60)
    assert 503 in answers
    rig.drain(job_ids, timeout=120)
    figures = account(rig, "storage-outage", job_ids, drain_seconds=time.monotonic() - started)
    stored = rig.jobs()
    # A POST that could not tell whether its key write held keeps its row (a replay may have
    # answered with it) and answers 503: such a row was never told of, has no message and
    # never ran; the sweep fails it as abandoned after 7 days.
    untold = {job_id: row for job_id, row in stored.items() if job_id not in job_ids}
    figures.notes.update(refused_503=answers.count(503), cut_off_500=answers.count(500),
                         unanswered_rows_left=len(untold))
    figures.save()
    assert set(job_ids) <= set(stored)
    assert all(row["status"] == "accepted" and row["attempts"] == 0 for row in untold.values())
    assert len(job_ids) == len(set(job_ids))
    assert figures.completed == len(job_ids) and figures.lost == 0


def test_reliability_poison_is_not_retried_forever(rig: Rig) -> None:
    started = time.monotonic()
    job_ids = rig.submit_many(bodies(20, job_type="always_raises"))
    rig.drain(job_ids, timeout=120)
    figures = account(rig, "poison", job_ids, drain_seconds=time.monotonic() - started)
    figures.save()
    jobs = rig.jobs()
    assert figures.failed == 20 and figures.lost == 0
    assert {jobs[i]["attempts"] for i in job_ids} == {MAX_DEQUEUE}
    # The host moved every message to job-requests-poison, where fail_poisoned_job read it.
    wait_until(lambda: rig.all_logs().count("poison message for a finished job") == 20, 30,
               "the poison handler saw every message")
    for name in ("job-requests", "job-requests-poison"):
        wait_until(lambda n=name: rig.queue(n).get_queue_properties()
                   .approximate_message_count == 0, 30, f"{name} is empty")
    time.sleep(2)
    assert {rig.jobs()[i]["attempts"] for i in job_ids} == {MAX_DEQUEUE}  # nothing retries


UNDECODABLE = "%%% not base64 %%%"


def test_reliability_malformed_messages_do_not_stop_real_jobs(rig: Rig) -> None:
    """Garbage next to real jobs: the app drops what it can read, the host parks the rest.

    Four messages decode (base64) but are no job message: process_job logs each with its id
    and a reason and drops it. The fifth is not base64 at all: the host copies its raw text
    to job-requests-poison without running anything (the storage queue extension's
    MessageDecodingFailed handler). It cannot be decoded there either, and a -poison queue
    has no poison queue of its own (QueueListenerFactory.CreatePoisonQueueReference), so it
    stays in job-requests-poison, never reaching the app: only the host's log shows it.
    """
    started = time.monotonic()
    garbage = {
        "not JSON": ("this is not json", True),
        "JSON without a job id": ('{"job_type": "counted"}', True),
        "unknown job id": ('{"job_id":"00000000-0000-4000-8000-000000000000","job_type":'
                           '"counted","customer_id":"c","submitted_at":'
                           '"2026-01-01T00:00:00+00:00","token":"t"}', True),
        # Valid base64 (60 KiB of "x"), so the host decodes it to bytes that are no message.
        "60 KiB body": ("x" * 60 * 1024, False),
    }
    for text, as_host in garbage.values():
        rig.inject("job-requests", text, as_host=as_host)
    rig.inject("job-requests", UNDECODABLE, as_host=False)
    job_ids = rig.submit_many(bodies(20))
    rig.drain(job_ids, timeout=60)
    logs = wait_until(lambda: _all_garbage_handled(rig.all_logs(), len(garbage)), 30,
                      "garbage logged")
    wait_until(lambda: "to queue 'job-requests-poison' because message is not valid base64"
               in rig.all_logs(), 30, "the host moved the undecodable message")
    wait_until(lambda: "(it has no poison queue)" in rig.all_logs(), 30,
               "the poison trigger left the undecodable message")
    figures = account(rig, "malformed", job_ids, drain_seconds=time.monotonic() - started,
                      duplicates=0)
    figures.notes["garbage_messages"] = len(garbage) + 1
    figures.notes["dropped_by_the_app"] = _dropped(logs)
    figures.notes["left_in_job_requests_poison"] = _left_in_poison(rig)
    figures.save()
    assert figures.completed == 20 and figures.lost == 0
    assert _dropped(logs) == len(garbage)
    assert figures.notes["left_in_job_requests_poison"] == [UNDECODABLE]
    assert rig.queue("job-requests").get_queue_properties().approximate_message_count == 0


def _dropped(logs: str) -> int:
    # The unknown job id is no digest of its message's content: dropped before any read.
    return (logs.count("dropped a malformed message")
            + logs.count("dropped: the message names no job")
            + logs.count("dropped: the message does not match its job"))


def _all_garbage_handled(logs: str, expected: int) -> str | None:
    return logs if _dropped(logs) >= expected else None


def _left_in_poison(rig: Rig) -> list[str]:
    """Stop the host, wait out the message leases, and read job-requests-poison raw."""
    rig.kill_host()
    time.sleep(3.5)  # DEVHOST_MESSAGE_LEASE_SECONDS is 3: leased messages become visible
    peeked = rig.queue("job-requests-poison").peek_messages(max_messages=32)
    return [str(m.content) for m in peeked]
