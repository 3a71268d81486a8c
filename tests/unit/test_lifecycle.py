"""The transition table and the claim rule, without storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs import lifecycle
from jobs.errors import InvalidTransition
from jobs.models import Claim, JobError, JobRecord, JobStatus, Progress

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
KEEP = timedelta(hours=2)


def record(status: JobStatus = JobStatus.ACCEPTED, claim: Claim | None = None) -> JobRecord:
    return JobRecord("j1", status, "thumbnail", "c", NOW, NOW, claim=claim)


def test_lifecycle_terminal_statuses_allow_no_move() -> None:
    for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        for to in JobStatus:
            with pytest.raises(InvalidTransition):
                lifecycle.advance(record(status), to, now=LATER, retention=KEEP)


def test_lifecycle_accepted_cannot_complete_without_running() -> None:
    with pytest.raises(InvalidTransition):
        lifecycle.complete(record(), {"x": 1}, now=LATER, retention=KEEP)


def test_lifecycle_start_counts_attempt_and_keeps_first_start() -> None:
    first = lifecycle.start(record(), Claim("m", 1), now=NOW)
    second = lifecycle.start(first, Claim("m", 2), now=LATER)
    assert (second.status, second.attempts, second.started_at) == (JobStatus.RUNNING, 2, NOW)
    assert second.updated_at == LATER and second.claim == Claim("m", 2)


def test_lifecycle_terminal_moves_set_completed_and_expires_at() -> None:
    running = lifecycle.start(record(), Claim("m", 1), now=NOW)
    done = lifecycle.complete(running, {"a": 1}, now=LATER, retention=KEEP)
    failed = lifecycle.fail(running, JobError("x", "y"), now=LATER, retention=KEEP)
    cancelled = lifecycle.cancel(record(), now=LATER, retention=KEEP)
    assert (done.status, done.result, done.completed_at) == (JobStatus.COMPLETED, {"a": 1}, LATER)
    assert (failed.status, failed.error) == (JobStatus.FAILED, JobError("x", "y"))
    assert cancelled.status is JobStatus.CANCELLED
    for finished in (done, failed, cancelled):
        assert finished.expires_at == LATER + KEEP
    assert running.expires_at is None


def test_lifecycle_progress_only_while_running() -> None:
    running = lifecycle.start(record(), Claim("m", 1), now=NOW)
    moved = lifecycle.report_progress(running, Progress(40, "half"), now=LATER)
    assert (moved.status, moved.progress, moved.updated_at) == (
        JobStatus.RUNNING, Progress(40, "half"), LATER)
    with pytest.raises(InvalidTransition):
        lifecycle.report_progress(lifecycle.cancel(running, now=LATER, retention=KEEP),
                                  Progress(50), now=LATER)


@pytest.mark.parametrize(
    ("status", "owner", "claim", "expected"),
    [
        (JobStatus.ACCEPTED, None, Claim("m", 1), True),
        (JobStatus.RUNNING, Claim("m", 1), Claim("m", 2), True),  # a crashed attempt's redelivery
        # its own claim, read back: held already (see holds_claim), not claimed again
        (JobStatus.RUNNING, Claim("m", 1), Claim("m", 1), False),
        (JobStatus.RUNNING, Claim("m", 1), Claim("copy", 5), False),  # an overlapping copy
        (JobStatus.COMPLETED, Claim("m", 1), Claim("m", 2), False),
        (JobStatus.FAILED, Claim("m", 1), Claim("m", 2), False),
        (JobStatus.CANCELLED, None, Claim("m", 1), False),
        (JobStatus.CANCELLED, Claim("m", 1), Claim("m", 2), False),
    ],
)
def test_lifecycle_may_claim(status: JobStatus, owner: Claim | None, claim: Claim,
                             expected: bool) -> None:
    assert lifecycle.may_claim(record(status, owner), claim) is expected


@pytest.mark.parametrize(
    ("status", "owner", "claim", "expected"),
    [
        (JobStatus.RUNNING, Claim("m", 1), Claim("m", 1), True),
        (JobStatus.RUNNING, Claim("m", 1), Claim("m", 2), False),
        (JobStatus.RUNNING, Claim("m", 1), Claim("copy", 1), False),
        (JobStatus.ACCEPTED, None, Claim("m", 1), False),
        (JobStatus.COMPLETED, Claim("m", 1), Claim("m", 1), False),
    ],
)
def test_lifecycle_holds_claim_only_for_the_same_delivery_while_running(
        status: JobStatus, owner: Claim | None, claim: Claim, expected: bool) -> None:
    assert lifecycle.holds_claim(record(status, owner), claim) is expected
