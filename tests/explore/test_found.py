"""Counterexamples the explorer found on main, replayed step by step (see FOUND.md).

Each is the shrunk schedule Hypothesis printed, run by hand against the same fixture, kept
as a regression test once resolved. While a violation stands, its test is marked xfail
(strict), so that the fix makes it fail until the marker comes off.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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


def test_found_a_job_finished_on_a_slower_clock_is_purged_on_that_clock(
        explorer_run: machine.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first delivery on an instance 2 minutes ahead claims the job (its claim lands late,
    stamped `updated_at` 00:06); the takeover delivery on a right clock completes it at
    00:04, and with retention 0 the purge at 00:04 deletes it. Both are right on their own
    clocks; the checker's bound for a job finished during a purge run must allow for the
    skew between the two writers' clocks (FOUND.md 4)."""
    monkeypatch.setattr(checker, "IGNORED", frozenset())
    state = machine.JobExplorer()
    try:
        state.configure(max_dequeue_count=5, retention=timedelta(0),
                        abandon_after=timedelta(minutes=3))
        keys_0 = state.first_key()
        state.guarantees_hold()
        (jobs_0,) = state.overlap(after=True, at=0, data=Draws("a", "b"), first="submit",
                                  job=None, key=keys_0, plan={}, script=[], second="submit")
        state.guarantees_hold()
        state.deliver(crash=False, data=Draws("m1"), plan={}, script=["nested_sweep", "ok"],
                      skew=timedelta(0))
        state.guarantees_hold()
        state.another_key(customer="explore")
        state.guarantees_hold()
        jobs_1, jobs_2 = state.overlap(after=False, at=0, data=Draws("a", "a"), first="submit",
                                       job=jobs_0, key=None, plan={},
                                       script=[("odd_progress", "caf\udce9"), "ok"],
                                       second="submit")
        state.guarantees_hold()
        state.another_key(customer="explore")
        state.guarantees_hold()
        state.overlap(after=True, at=0, data=Draws("b", "b"), first="cancel", job=None,
                      key=keys_0, plan={}, script=[("odd_error", "R|¤\U000a75e3", "")],
                      second="submit")
        state.guarantees_hold()
        state.deliver(crash=True, data=Draws("m5"), plan={3: "applied_503", 0: "late",
                                                          5: "reset"},
                      script=[("odd_error", "", "\U00076ad0:½0+Llk")],
                      skew=timedelta(seconds=120))
        state.guarantees_hold()
        state.lose_message(data=Draws("m2"))
        state.guarantees_hold()
        state.deliver(crash=True, data=Draws("m3"), plan={},
                      script=["ok", ("odd_result", float("nan"))], skew=timedelta(0))
        state.guarantees_hold()
        state.lose_message(data=Draws("m3"))
        state.guarantees_hold()
        state.another_key(customer="explore-2")
        state.guarantees_hold()
        state.overlap(after=False, at=4, data=Draws(timedelta(0), "m5"), first="deliver",
                      job=jobs_2, key=None, plan={6: "reset", 1: "late", 3: "applied_503"},
                      script=[("odd_progress", "<17,000 astral characters>"),
                              ("odd_result", "Æ\x8b")],
                      second="purge")
        state.guarantees_hold()
    finally:
        state.teardown()


def test_found_a_finish_landing_late_in_a_purge_run_is_judged_as_an_overlap(
        explorer_run: machine.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """The completing write of a delivery is held in the network (request 1, after the
    claim) and lands during the next timer run, after its query for stalled jobs; with
    retention 0 that run purges the job it finished. The purge is judged as one that ran
    alongside another writer (FOUND.md 4)."""
    monkeypatch.setattr(checker, "IGNORED", frozenset())
    state = machine.JobExplorer()
    try:
        state.configure(max_dequeue_count=5, retention=timedelta(0),
                        abandon_after=timedelta(minutes=3))
        state.first_key()
        state.submit(key=None, body="a", plans=[{}], host_dies=False, flush_fails=[])
        state.guarantees_hold()
        state.deliver(crash=False, data=Draws("m1"), plan={1: "late"}, script=["ok"],
                      skew=timedelta(0))
        state.guarantees_hold()
        # The rule, not the attribute of the same name that holds the last PurgeRun.
        machine.JobExplorer.purge(state, jump=timedelta(0), plan={})
        state.guarantees_hold()
    finally:
        state.teardown()


def _running_row(updated_at: datetime) -> checker.Row:
    return checker.Row(job_id="j", status="running", result=None, error=None, attempts=1,
                       key_row=None, submitted_at=updated_at, updated_at=updated_at,
                       expires_at=None)


@pytest.mark.parametrize(("purged_after", "allowed"), [
    (timedelta(minutes=26), True),  # retention 30 min less the 4-minute clock spread
    (timedelta(minutes=26) - timedelta(seconds=1), False),
])
def test_found_a_purge_alongside_another_writer_is_held_to_the_clock_spread(
        purged_after: timedelta, allowed: bool) -> None:
    """The bound the checker puts on a job finished during a purge run: no earlier than its
    retention after the update seen last, less the largest skew between two instances."""
    seen = datetime(2026, 1, 1, tzinfo=UTC)
    judge = checker.Checker()
    judge.deliveries["j"] = 1
    judge.snapshot([_running_row(seen)], purge=None)
    purge = checker.PurgeRun(seen + purged_after, timedelta(minutes=30), timedelta(minutes=3),
                             overlapped=True, clock_spread=machine.CLOCK_SPREAD)
    assert machine.CLOCK_SPREAD == timedelta(minutes=4)
    if allowed:
        judge.snapshot([], purge=purge)
    else:
        with pytest.raises(checker.Violation, match="purge_after_retention"):
            judge.snapshot([], purge=purge)


def test_found_a_key_write_landing_late_names_a_job_its_request_took_back(
        explorer_run: machine.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key write is held in the network and lands after the request read the key row
    and found none; the request must not take its job row back while its write may still
    land, as a second request may meanwhile replay that job (FOUND.md 5)."""
    monkeypatch.setattr(checker, "IGNORED", frozenset())
    state = machine.JobExplorer()
    try:
        keys_0 = state.first_key()
        state.guarantees_hold()
        # First POST: reads the key (0, none), writes its job row (1), writes the key (2:
        # held, the client times out), reads the key again (3: none yet). The second POST
        # runs whole just before request 4; the held key write lands at its first request.
        state.overlap(after=False, at=4, data=Draws("a", "a"), first="submit", job=None,
                      key=keys_0, plan={2: "late"}, script=[], second="submit")
        state.guarantees_hold()
    finally:
        state.teardown()


def test_found_a_purge_delete_landing_after_its_run_is_judged_as_that_runs(
        explorer_run: machine.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A purge's delete held in the network lands in a later step: the row goes by that
    purge run's decision, judged against its clock and settings (FOUND.md 6)."""
    monkeypatch.setattr(checker, "IGNORED", frozenset())
    state = machine.JobExplorer()
    try:
        (job,) = state.submit(body="a", flush_fails=[False], host_dies=False, key=None,
                              plans=[{}])
        state.guarantees_hold()
        state.change_settings(abandon_after=timedelta(days=1), retention=timedelta(0))
        state.guarantees_hold()
        state.cancel(job=job, plans=[{}])
        state.guarantees_hold()
        # The purge reads the expired job (sweep, oldest accepted, expired: requests 0-2),
        # then its delete (3) is held and the SDK's resends are refused; the held delete
        # lands at the next operation's first request.
        # (`state.purge` is the run being judged: call the rule through the class.)
        machine.JobExplorer.purge(state, jump=timedelta(0),
                                  plan={3: "late", 4: "refused", 5: "reset"})
        state.guarantees_hold()
        state.get_status(job=job, plan={})
        state.guarantees_hold()
    finally:
        state.teardown()


def test_found_a_replay_told_of_an_old_accepted_job_is_not_swept_before_its_message_runs(
        explorer_run: machine.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A keyed job's message is lost; 8 days on, a replay queues it again and answers 202;
    the next timer run must not fail it `abandoned` from `accepted` by its submit time,
    before the new message is delivered (FOUND.md 7). The shrunk schedule, as printed."""
    monkeypatch.setattr(checker, "IGNORED", frozenset())
    purge = machine.JobExplorer.purge  # `state.purge` is the run being judged
    state = machine.JobExplorer()
    try:
        state.configure(max_dequeue_count=1, abandon_after=timedelta(seconds=180),
                        retention=timedelta(0))
        keys_0 = state.first_key()
        state.guarantees_hold()
        keys_1 = state.another_key(customer="explore")
        state.guarantees_hold()
        state.change_settings(abandon_after=timedelta(seconds=180), retention=timedelta(0))
        state.guarantees_hold()
        purge(state, jump=timedelta(0), plan={})
        state.guarantees_hold()
        state.submit(body="a", flush_fails=[False], host_dies=False, key=keys_0,
                     plans=[{}, {}, {}])
        state.guarantees_hold()
        state.lose_message(data=Draws("m1"))
        state.guarantees_hold()
        state.queue_outage(down=True)
        state.guarantees_hold()
        state.another_key(customer="explore")
        state.guarantees_hold()
        purge(state, jump=timedelta(0), plan={})
        state.guarantees_hold()
        state.another_key(customer="explore")
        state.guarantees_hold()
        state.another_key(customer="explore")
        state.guarantees_hold()
        state.queue_outage(down=False)
        state.guarantees_hold()
        state.submit(body="a", flush_fails=[False, False], host_dies=True, key=None,
                     plans=[{}, {6: "late"}])
        state.guarantees_hold()
        state.lose_message(data=Draws("m2"))
        state.guarantees_hold()
        purge(state, jump=timedelta(0), plan={})
        state.guarantees_hold()
        state.queue_outage(down=True)
        state.guarantees_hold()
        state.submit(body="b", flush_fails=[True, True, False], host_dies=False, key=keys_1,
                     plans=[{}])
        state.guarantees_hold()
        purge(state, jump=timedelta(days=8), plan={5: "reset", 2: "refused", 1: "applied_503"})
        state.guarantees_hold()
        state.submit(body="b", flush_fails=[False], host_dies=False, key=None,
                     plans=[{}, {}, {}])
        state.guarantees_hold()
        state.submit(body="a", flush_fails=[True, False, True], host_dies=True, key=None,
                     plans=[{}])
        state.guarantees_hold()
        state.submit(body="a", flush_fails=[True], host_dies=True, key=keys_0, plans=[{}, {}])
        state.guarantees_hold()
        purge(state, jump=timedelta(seconds=7200),
              plan={3: "lost_response", 4: "applied_500", 5: "late"})
        state.guarantees_hold()
    finally:
        state.teardown()
