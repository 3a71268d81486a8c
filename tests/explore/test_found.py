"""Counterexamples the explorer found on main, replayed step by step (see FOUND.md).

Each is the shrunk schedule Hypothesis printed, run by hand against the same fixture, kept
as a regression test once resolved. While a violation stands, its test is marked xfail
(strict), so that the fix makes it fail until the marker comes off.
"""

from __future__ import annotations

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
