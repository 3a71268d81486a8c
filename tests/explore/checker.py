"""The explorer's history and checker: what clients saw, and the guarantees it must satisfy.

Every operation is recorded as Jepsen records it: `ok` (2xx), `fail` (4xx: definitely not
applied) or `info` (5xx or an exception: maybe applied). The checker never assumes an `info`
operation was or was not applied; it checks the table itself after every step.

The guarantees, in the words a user would use, are `INVARIANTS`; a broken one raises
`Violation` with the recent history.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

INVARIANTS = {
    "one_job_per_key": "while a key's job is stored, every 202 for that key names that job",
    "one_row_per_key": "a key never has two stored job rows that a client was answered with "
                       "or a handler ran (a row whose writer never answered for it and could "
                       "not take it back, its delete refused, has no message and never runs)",
    "terminal_is_final": "an observed terminal state (status, result, error) never changes "
                         "until the job is purged, which answers 404 from then on",
    "no_backward": "a job's status never moves backward",
    "one_result": "at most one handler result per job is ever written, and it is the result "
                  "of a handler run that completed",
    "one_attempt_per_delivery": "a job's attempts never exceed the deliveries that ran it",
    "answered_is_stored": "a job answered 202 is stored when the answer is given",
    "nothing_lost": "every job answered 202 is terminal at quiescence, or purged after its "
                    "retention",
    "no_row_forgotten": "at quiescence no job row is left accepted or running",
    "purge_after_retention": "a job row disappears only in a purge run, after its retention "
                             "(measured on the clocks of the instances that finished and "
                             "purged it: early by at most the skew between them)",
    "no_500": "no HTTP function answers 500 (or raises)",
    "retry_after": "every 503 carries Retry-After",
    "cancel_means_cancelled": "a DELETE answered 200 means the job is cancelled; 409 only for "
                              "a completed or failed job",
    "every_202_runs": "at quiescence, reached without moving the clock past any abandon "
                      "window, every job answered 202 that no one cancelled has run and is "
                      "terminal, with no further client action",
    "never_abandoned_told": "a job a client was answered 202 for is never failed `abandoned` "
                            "from `accepted`",
    "not_found_means_gone": "GET and DELETE answer 404 only for a job never made or purged",
    "reused_key_422": "a key reused with another body is answered 422 while its job is stored",
    "location_names_job": "Location and status_url are the answered job's own URL",
    "accepted_202_queues": "a 202 for a job still accepted comes with a queued message for it",
    "available": "a request that met no storage fault and no queue outage answers without 5xx",
    "foreign_token_ignored": "a message carrying another token than its job's changes nothing",
    "keys_follow_jobs": "once every job is purged and the leftover-key window passed, one "
                        "purge run leaves no key row",
}
RANK = {"accepted": 0, "running": 1, "completed": 2, "failed": 2, "cancelled": 2}
TERMINAL = frozenset({"completed", "failed", "cancelled"})
# An accepted job may wait this long for its message (the queue's default time to live).
MESSAGE_TIME_TO_LIVE = timedelta(days=7)
HISTORY_SHOWN = 40


#: Invariants set aside while a known violation is being fixed (EXPLORE_IGNORE=a,b); the
#: summary lists them, so a run that ignores one never reads as a clean one.
IGNORED = frozenset(n for n in os.environ.get("EXPLORE_IGNORE", "").split(",") if n)


class Violation(AssertionError):
    """A guarantee did not hold; the message names it and shows the recent history."""


@dataclass
class Op:
    """One operation as the client (or the host) saw it."""

    step: int
    kind: str
    args: str
    outcome: str  # ok | fail | info
    seen: str

    def __str__(self) -> str:
        return f"#{self.step:<3} {self.kind:<8} {self.args:<38} {self.outcome:<4} {self.seen}"


@dataclass(frozen=True)
class Row:
    """What the checker reads from a stored job row."""

    job_id: str
    status: str
    result: Any
    error: tuple[str, str] | None
    attempts: int
    key_row: str | None
    submitted_at: datetime
    updated_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, entity: dict[str, Any]) -> Row:
        error = None
        if "error_code" in entity:
            error = (entity["error_code"], entity.get("error_message", ""))
        return cls(
            job_id=entity["PartitionKey"], status=entity["status"],
            result=json.loads(entity["result"]) if "result" in entity else None, error=error,
            attempts=int(entity.get("attempts", 0)), key_row=entity.get("idempotency_row"),
            submitted_at=entity["submitted_at"], updated_at=entity["updated_at"],
            expires_at=entity.get("expires_at"),
        )

    @property
    def final(self) -> tuple[str, Any, Any]:
        return (self.status, self.result, self.error)


@dataclass(frozen=True)
class PurgeRun:
    """The moment and settings of a purge run, to judge what it deleted."""

    now: datetime
    retention: timedelta
    abandon_after: timedelta
    #: It ran while another operation was in flight, or a write held in the network landed
    #: during it: either may have finished a job first.
    overlapped: bool = False
    #: The largest difference between two instances' clocks. A job another writer finished
    #: during the run carries that writer's stamps, which may be this much earlier than the
    #: `updated_at` an instance with a faster clock wrote before.
    clock_spread: timedelta = timedelta(0)


@dataclass
class Checker:
    """The history of one example and everything observed about its jobs."""

    history: list[Op] = field(default_factory=list)
    step: int = 0
    stored: dict[str, Row] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    final: dict[str, tuple[str, Any, Any]] = field(default_factory=dict)
    rank: dict[str, int] = field(default_factory=dict)
    accepted: dict[str, list[str]] = field(default_factory=dict)  # key -> 202'd job ids
    accepted_jobs: set[str] = field(default_factory=set)
    fresh: set[str] = field(default_factory=set)  # 202'd in the current step
    runs: dict[str, set[str]] = field(default_factory=dict)  # job -> completed run ids
    deliveries: Counter[str] = field(default_factory=Counter)  # job -> handler invocations
    outcomes: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    said_missing: set[str] = field(default_factory=set)  # answered 404 in this step
    #: Jobs whose every message was cleared by an operator or stuck in the poison queue.
    set_aside: set[str] = field(default_factory=set)
    #: Jobs swept from `accepted` before any client was told of them.
    abandoned_untold: set[str] = field(default_factory=set)
    #: What the liveness check found: jobs checked, and jobs set aside (and why).
    live: Counter[str] = field(default_factory=Counter)

    def record(self, kind: str, args: str, status: int | None, seen: str) -> Op:
        """Write an operation down; `status` None means the call raised."""
        outcome = "info" if status is None or status >= 500 else "fail" if status >= 400 else "ok"
        op = Op(self.step, kind, args, outcome, seen)
        self.history.append(op)
        self.outcomes[outcome] += 1
        return op

    def violated(self, invariant: str, detail: str) -> None:
        """Raise Violation, with the recent history; count it only if it is ignored."""
        if invariant in IGNORED:
            self.ignored[invariant] += 1
            return
        shown = "\n".join(str(op) for op in self.history[-HISTORY_SHOWN:])
        raise Violation(f"VIOLATED {invariant}: {INVARIANTS[invariant]}\n  {detail}\n"
                         f"history (last {HISTORY_SHOWN} operations):\n{shown}")

    # Observations from HTTP answers -------------------------------------------------------

    def http_answer(self, function: str, status: int | None, headers: dict[str, str]) -> None:
        if status is None or status == 500:
            self.violated("no_500", f"{function} answered {status or 'with an exception'}")
        if status == 503 and not headers.get("Retry-After"):
            self.violated("retry_after", f"{function} answered 503 without Retry-After")

    def accepted_for(self, key: str | None, job_id: str) -> None:
        """A 202 named `job_id`; checked against the table after the step."""
        self.accepted_jobs.add(job_id)
        self.fresh.add(job_id)
        if key is not None:
            self.accepted.setdefault(key, []).append(job_id)

    def seen_record(self, job_id: str, status: str, result: Any, error: Any) -> None:
        """A GET or DELETE answered 200 with this record."""
        self._observe(job_id, status, (status, result, error), "an HTTP answer")

    def seen_missing(self, job_id: str) -> None:
        """A GET or DELETE answered 404; the job must be gone from the table after the step."""
        self.said_missing.add(job_id)
        if job_id in self.stored:
            # The table is read after the step; a 404 for a stored job is caught there if
            # the row is really gone, so only remember the answer here.
            return
        if job_id in self.final:
            self.gone.add(job_id)

    # Observations from the table, after every step ----------------------------------------

    def snapshot(self, rows: list[Row], *, purge: PurgeRun | None) -> None:
        """Compare the table with everything seen before; `purge` is set for a purge step."""
        now = {row.job_id: row for row in rows}
        for job_id in sorted(self.said_missing):
            if job_id in now:
                self.violated("not_found_means_gone", f"job {job_id} was answered 404 and is "
                              f"stored ({now[job_id].status})")
        self.said_missing.clear()
        for row in rows:
            if row.job_id in self.gone:
                self.violated("terminal_is_final", f"job {row.job_id} came back as "
                                f"{row.status} after it was purged")
            self._observe(row.job_id, row.status, row.final, "the table")
            self._judge_result(row)
            self._judge_abandoned(row)
        for job_id, before in self.stored.items():
            if job_id not in now:
                self._judge_deletion(before, purge)
                self.gone.add(job_id)
        self.stored = now
        self._judge_keys(rows)
        for job_id in self.fresh:
            if job_id not in now and job_id not in self.gone:
                self.violated("answered_is_stored", f"a 202 named job {job_id}, which is not "
                              "stored")
        self.fresh.clear()

    def _judge_abandoned(self, row: Row) -> None:
        """A job swept from `accepted` must not be one a client was told of before: a POST
        whose host flush failed was never told, and a client's replay days later may name it
        only after the sweep."""
        if row.error is None or row.error[0] != "abandoned" or row.attempts > 0:
            return
        told = row.job_id in self.accepted_jobs and row.job_id not in self.fresh
        if not told:
            self.abandoned_untold.add(row.job_id)
        elif row.job_id not in self.abandoned_untold | self.set_aside:
            self.violated("never_abandoned_told", f"job {row.job_id} was answered 202 and "
                          "failed abandoned without ever running")

    def _judge_keys(self, rows: list[Row]) -> None:
        stored = {row.job_id for row in rows}
        for key, named in self.accepted.items():
            alive = sorted({job_id for job_id in named if job_id in stored})
            if len(alive) > 1:
                self.violated("one_job_per_key", f"key {key!r}: 202s named {alive}, all stored")
        by_key: dict[str, list[str]] = {}
        for row in rows:
            if row.key_row and (row.job_id in self.accepted_jobs or row.attempts > 0):
                by_key.setdefault(row.key_row, []).append(row.job_id)
        for key_row, jobs in by_key.items():
            if len(jobs) > 1:
                self.violated("one_row_per_key", f"key row {key_row} has job rows {jobs}")

    def _observe(self, job_id: str, status: str, final: tuple[str, Any, Any], source: str
                 ) -> None:
        rank = RANK[status]
        if rank < self.rank.get(job_id, 0):
            self.violated("no_backward", f"job {job_id} is {status} in {source} after "
                            f"rank {self.rank[job_id]}")
        self.rank[job_id] = rank
        if job_id in self.final and self.final[job_id] != final:
            self.violated("terminal_is_final", f"job {job_id} was {self.final[job_id]}, "
                            f"now {final} in {source}")
        if status in TERMINAL:
            self.final[job_id] = final

    def _judge_deletion(self, before: Row, purge: PurgeRun | None) -> None:
        unanswered = before.job_id not in self.accepted_jobs
        if purge is None and before.status == "accepted" and unanswered:
            return  # a submit took back the row of a job it never answered for
        if purge is None:
            self.violated("purge_after_retention",
                            f"job {before.job_id} ({before.status}) vanished outside a purge run")
        if before.status in TERMINAL:
            due = before.expires_at
        elif purge.overlapped:
            # Finished by another writer after the update seen last, then expired. Its clock
            # may be behind the clock that stamped that update, by up to the clock spread.
            due = before.updated_at - purge.clock_spread + purge.retention
        elif before.status == "running":
            due = before.updated_at + purge.abandon_after + purge.retention
        else:
            due = before.submitted_at + MESSAGE_TIME_TO_LIVE + purge.retention
        if due is None or due > purge.now:
            self.violated("purge_after_retention", f"job {before.job_id} ({before.status}, "
                            f"due {due}) purged at {purge.now}")

    def _judge_result(self, row: Row) -> None:
        if row.attempts > self.deliveries[row.job_id]:
            self.violated("one_attempt_per_delivery", f"job {row.job_id} counts "
                            f"{row.attempts} attempts after {self.deliveries[row.job_id]} runs")
        if row.result is None:
            return
        run = row.result.get("run") if isinstance(row.result, dict) else None
        if run not in self.runs.get(row.job_id, set()):
            self.violated("one_result", f"job {row.job_id} holds result {row.result}, "
                            "which no completed handler run returned")

    def result_writes(self, writes: Counter[str]) -> None:
        """The transport's count of applied writes that carried a handler result."""
        for job_id, count in writes.items():
            if count > 1 and (job_id in self.accepted_jobs or job_id in self.stored):
                self.violated("one_result", f"job {job_id}: {count} result writes applied")

    # Quiescence ---------------------------------------------------------------------------

    def every_202_ran(self, rows: list[Row]) -> None:
        """Liveness, checked before the clock moves past any abandon window."""
        stored = {row.job_id: row for row in rows}
        for job_id in sorted(self.accepted_jobs):
            if job_id in self.set_aside:
                self.live["set aside: message cleared or stuck in poison"] += 1
                continue
            if job_id in self.abandoned_untold:
                self.live["swept before a replay told of it"] += 1
                continue
            row = stored.get(job_id)
            if row is None:
                self.live["purged before quiescence"] += 1
                continue
            self.live["checked"] += 1
            if row.status == "running":
                # Its handler started; the delivery that claimed it is gone (a crash, a
                # cleared message): the sweep ends it after the abandon window.
                self.live["running, for the sweep"] += 1
            elif row.status not in TERMINAL:
                self.violated("every_202_runs", f"job {job_id} was answered 202 and is still "
                              f"{row.status} at quiescence")
            if row.status == "failed" and row.attempts == 0 and (row.error or ("",))[0] == (
                    "abandoned"):
                self.violated("every_202_runs", f"job {job_id} was answered 202 and failed "
                              f"{row.error} without running")

    def quiescent(self, rows: list[Row]) -> None:
        """After every message was delivered or poisoned and the sweep ran."""
        for row in rows:
            if row.status not in TERMINAL:
                self.violated("no_row_forgotten", f"job {row.job_id} is still {row.status}")
        stored = {row.job_id for row in rows}
        for job_id in sorted(self.accepted_jobs):
            if job_id not in stored and job_id not in self.gone:
                self.violated("nothing_lost", f"job {job_id} was answered 202 but is neither "
                                "stored nor purged")
