"""Counterexamples the explorer found on main, replayed step by step (see FOUND.md).

Each is the shrunk schedule Hypothesis printed, run by hand against the same fixture. It is
marked xfail (strict) while the violation stands: once the app is fixed it passes, the
strict xfail fails, and the marker comes off, leaving a regression test.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.explore import checker, machine
from tests.explore.checker import Violation

pytestmark = pytest.mark.explore


class Draws:
    """Stands in for Hypothesis' `data`: hands out the printed draws in order."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)

    def draw(self, strategy: Any, label: str | None = None) -> Any:
        return self.values.pop(0)


@pytest.mark.xfail(raises=Violation, strict=True,
                   reason="FOUND.md 1: an unanswered job row keeps the key's name")
def test_found_two_stored_job_rows_for_one_key(explorer_run: machine.Run,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two POSTs with one key at once; the loser cannot take its own job row back."""
    monkeypatch.setattr(checker, "IGNORED", frozenset())  # whatever EXPLORE_IGNORE says
    state = machine.JobExplorer()
    try:
        keys_0 = state.first_key()
        state.guarantees_hold()
        # The second POST runs whole just before the first sends its request 1 (its job-row
        # insert); the first then loses the key, and its delete of its own row is refused
        # three times (requests 4-6: the attempt and the SDK's two retries).
        state.overlap(after=False, at=1, data=Draws("a", "a"), first="submit", job=None,
                      key=keys_0, plan={4: "refused", 5: "refused", 6: "refused"}, script=[],
                      second="submit")
        state.guarantees_hold()
    finally:
        state.broken = True  # no quiescence: only the rows are cleaned up
        state.teardown()


@pytest.mark.xfail(raises=Violation, strict=True,
                   reason="FOUND.md 2: a submit deletes the job another request was answered with")
def test_found_answered_job_deleted_by_the_request_that_made_it(
        explorer_run: machine.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key write is applied but its answer lost; the request takes its job row back
    although a second request has meanwhile been answered 202 with that job."""
    monkeypatch.setattr(checker, "IGNORED", frozenset())
    state = machine.JobExplorer()
    try:
        keys_0 = state.first_key()
        state.guarantees_hold()
        state.change_settings(abandon_after=timedelta(minutes=30), retention=timedelta(0))
        state.guarantees_hold()
        # First POST: request 0 (read the key) refused, the SDK reads again (1), writes its
        # job row (2), writes the key (3: applied, answer lost), then deletes its job row (4).
        # The second POST runs whole just before request 4 is sent, and replays the job.
        state.overlap(after=False, at=4, data=Draws("a", "a"), first="submit", job=None,
                      key=keys_0, plan={3: "lost_response", 0: "refused"}, script=[],
                      second="submit")
        state.guarantees_hold()
    finally:
        state.broken = True
        state.teardown()
