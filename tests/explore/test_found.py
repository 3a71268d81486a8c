"""Counterexamples the explorer found on main, replayed step by step (see FOUND.md).

Each is the shrunk schedule Hypothesis printed, run by hand against the same fixture, kept
as a regression test once resolved. While a violation stands, its test is marked xfail
(strict), so that the fix makes it fail until the marker comes off.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.explore import checker, machine

pytestmark = pytest.mark.explore


class Draws:
    """Stands in for Hypothesis' `data`: hands out the printed draws in order."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)

    def draw(self, strategy: Any, label: str | None = None) -> Any:
        return self.values.pop(0)


def test_found_two_stored_job_rows_for_one_key(explorer_run: machine.Run,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two POSTs with one key at once; the loser cannot take its own job row back.

    Resolved by stating the guarantee as it holds (FOUND.md 1): the row left behind was
    never answered with and has no message, so it never runs; the sweep fails it.
    """
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
        state.teardown()  # quiescence: every message delivered, the sweep and purge run


@pytest.mark.parametrize(("at", "after", "plan"), [
    # B runs just before A deletes its row (A's read refused once, so request 4 is the delete).
    pytest.param(4, False, {3: "lost_response", 0: "refused"}, id="before-the-delete"),
    # B runs just after A's key write was applied; its answer is then lost.
    pytest.param(2, True, {2: "lost_response"}, id="after-the-key-write"),
])
def test_found_answered_job_deleted_by_the_request_that_made_it(
        explorer_run: machine.Run, monkeypatch: pytest.MonkeyPatch, at: int, after: bool,
        plan: dict[int, str]) -> None:
    """The key write is applied but its answer lost; the request must not take its job row
    back, as a second request has meanwhile been answered 202 with that job (FOUND.md 2)."""
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
        state.overlap(after=after, at=at, data=Draws("a", "a"), first="submit", job=None,
                      key=keys_0, plan=plan, script=[], second="submit")
        state.guarantees_hold()
    finally:
        state.teardown()


def test_found_a_late_delete_of_an_earlier_rounds_row_never_meets_the_told_job(
        explorer_run: machine.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A keyed POST's key insert is refused; the request deletes its own row (its delete is
    held in the network: request 4 lands late, after the SDK's resend applied it) and tries
    again. The next round's row must carry a new id: with the same id, the late delete
    landed on the told job's row (FOUND.md 3)."""
    monkeypatch.setattr(checker, "IGNORED", frozenset())
    state = machine.JobExplorer()
    try:
        state.configure(max_dequeue_count=1, retention=timedelta(0),
                        abandon_after=timedelta(minutes=3))
        keys_0 = state.first_key()
        state.guarantees_hold()
        state.overlap(after=False, at=0, data=Draws(timedelta(0), "a"), first="submit",
                      job=None, key=keys_0, plan={2: "refused", 4: "late"}, script=[],
                      second="purge")
        state.guarantees_hold()
    finally:
        state.teardown()
