"""The model-based fault explorer: a Hypothesis state machine over the app's own functions.

Each rule does what a client, the host or an operator does, by calling the app's functions
as the host calls them (tests/support/functions.py), against a real table on Azurite. Storage
faults come in below the app, at the azure-core transport (faults.py), planned by Hypothesis.
The host's queues and clock are modelled (host.py). After every step the checker reads the
table and compares it with everything clients were told (checker.py); `teardown` drives the
example to quiescence (every message delivered or poisoned, the sweep run, retention passed)
and checks again.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from azure.data.tables import TableClient
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from jobs.errors import JobFailed
from jobs.models import JobMessage
from tests.explore import faults
from tests.explore.checker import TERMINAL, Checker, PurgeRun, Row
from tests.explore.host import MAIN, START, Clock, Message, Queues
from tests.support.functions import CapturingOut, Timer, get, post_json, queue_message

PROGRESS = Path(__file__).resolve().parents[2] / "build" / "explore" / "progress.json"
JOB_TYPE = "explore"
URL = "http://localhost:7071/api/jobs"
MAX_DEQUEUE_COUNT = 3
#: What a handler does on one invocation; "nested_*" acts while the handler is mid-run.
BEHAVIOURS = ("ok", "progress", "transient", "fatal",
              "nested_redelivery", "nested_duplicate", "nested_cancel", "nested_sweep")
OVERLAPPING = ("submit", "deliver", "cancel", "purge")
JUMPS = (timedelta(0), timedelta(minutes=30), timedelta(hours=2), timedelta(days=1),
         timedelta(days=8))
RETENTIONS = (timedelta(0), timedelta(minutes=30), timedelta(hours=1), timedelta(days=7))
ABANDON_AFTER = (timedelta(minutes=30), timedelta(hours=1), timedelta(days=1))
fault_plans = st.one_of(
    st.just({}), st.dictionaries(st.integers(0, 6), st.sampled_from(faults.KINDS), max_size=3))


@dataclass
class Run:
    """What the explorer is given by the test: the app, the transport, the table to read."""

    app: Any  # the function_app module
    functions: dict[str, Callable[..., Any]]
    transport: faults.FaultyTransport
    table: TableClient
    clock: Clock
    base_settings: Any
    stats: Stats
    job_ids: JobIds


class JobIds:
    """Stands in for `uuid` in jobs.submission: job ids in the order jobs are made.

    Queries list rows by partition key, and a planned fault hits the n-th request; random
    ids would order a purge's deletes differently on every replay of the same schedule.
    """

    def __init__(self) -> None:
        self.made = 0

    def uuid4(self) -> uuid.UUID:
        self.made += 1
        return uuid.UUID(int=self.made)


@dataclass
class Stats:
    """Totals over every example of a run, for the summary table."""

    examples: int = 0
    steps: int = 0
    operations: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)

    def save(self, transport: faults.FaultyTransport) -> None:
        """Write the figures so far to build/explore/progress.json: a long run shows progress."""
        PROGRESS.parent.mkdir(parents=True, exist_ok=True)
        PROGRESS.write_text(json.dumps({
            "examples": self.examples, "steps": self.steps,
            "faults": dict(transport.injected), "operations": dict(self.operations),
            "violations": dict(self.violations), "ignored": dict(self.ignored)}, indent=1))


#: Set by the test before Hypothesis runs the machine; one per pytest run.
RUN: Run | None = None
#: What the next handler invocations do, and the machine that runs them.
SCRIPT: list[str] = []
CURRENT: JobExplorer | None = None


def explore_handler(job: JobMessage, progress: Callable[..., None]) -> dict[str, Any]:
    """The explorer's job type: does what the step's script says, then returns a run id."""
    assert CURRENT is not None
    behaviour = SCRIPT.pop(0) if SCRIPT else "ok"
    if behaviour == "transient":
        raise RuntimeError("explorer: a transient handler error")
    if behaviour == "fatal":
        raise JobFailed("explorer_failed", "explorer: a failure retrying cannot fix")
    if behaviour == "progress":
        progress(50, "half way")
    if behaviour.startswith("nested_"):
        CURRENT.mid_run(job.job_id, behaviour)
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    CURRENT.checker.runs.setdefault(job.job_id, set()).add(run_id)
    return {"run": run_id}


def step(method: Callable[..., Any]) -> Callable[..., Any]:
    """Count the step and mark the example broken if it raises, so teardown stays quiet."""
    @functools.wraps(method)
    def wrapped(self: JobExplorer, *args: Any, **kwargs: Any) -> Any:
        self.checker.step += 1
        self.run.stats.steps += 1
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self.broken = True
            raise
    return wrapped


class JobExplorer(RuleBasedStateMachine):
    """Clients, the host and an operator acting on one customer's jobs."""

    jobs = Bundle("jobs")
    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        global CURRENT
        assert RUN is not None, "the explorer runs from tests/explore/test_explorer.py"
        self.run = RUN
        self.run.stats.examples += 1
        if self.run.stats.examples % 100 == 0:
            self.run.stats.save(self.run.transport)
        self.checker = Checker()
        self.queues = Queues(MAX_DEQUEUE_COUNT)
        # Fixed names, so that rows sort the same on every replay (each example starts on
        # an empty table: teardown removes every row).
        self.customer = "explore"
        self.run.job_ids.made = 0
        self.keys_made = 1
        self.broken = False
        self.purge: PurgeRun | None = None
        self.run.clock.now = START
        self.settings = self.run.base_settings
        self.run.app.settings = self.settings
        self.run.transport.result_writes.clear()
        CURRENT = self
        SCRIPT.clear()

    # Clients ------------------------------------------------------------------------------

    @initialize(target=keys)
    def first_key(self) -> str:
        return "key-1"

    @rule(target=keys)
    def another_key(self) -> str:
        self.keys_made += 1
        return f"key-{self.keys_made}"

    @rule(target=jobs, key=st.none() | keys, body=st.sampled_from(("a", "b")),
          plans=st.lists(fault_plans, min_size=1, max_size=3), host_dies=st.booleans())
    @step
    def submit(self, key: str | None, body: str, plans: list[dict[int, str]],
               host_dies: bool) -> Any:
        """POST a job; retry a 5xx answer with the same request, once per further plan.

        With `host_dies` the host dies after the first attempt returned and before it wrote
        the queue output: the client sees the connection drop, and retries.
        """
        accepted = []
        for attempt, plan in enumerate(plans):
            status, job_id = self.post(key, body, plan, host_dies=host_dies and attempt == 0)
            if job_id is not None:
                accepted.append(job_id)
            if status is not None and status < 500:
                break
        return multiple(*accepted)

    @rule(job=jobs, plan=fault_plans)
    @step
    def get_status(self, job: str, plan: dict[int, str]) -> None:
        with self.faults(plan):
            response = self.call_http("get_job_status", get(f"{URL}/{job}", job_id=job))
        self.observe("get", f"job={job[:8]}", response, job)

    @rule(job=jobs, plans=st.lists(fault_plans, min_size=1, max_size=3))
    @step
    def cancel(self, job: str, plans: list[dict[int, str]]) -> None:
        """DELETE a job; retry a 5xx answer, once per further plan."""
        for plan in plans:
            status = self.delete(job, plan)
            if status is None or status < 500:
                break

    # The host -----------------------------------------------------------------------------

    @precondition(lambda self: self.queues.visible())
    @rule(data=st.data(), crash=st.booleans(), plan=fault_plans,
          script=st.lists(st.sampled_from(BEHAVIOURS), max_size=2))
    @step
    def deliver(self, data: st.DataObject, crash: bool, plan: dict[int, str],
                script: list[str]) -> None:
        """Deliver a visible message; with `crash` the host dies before deleting it."""
        message = self.queues.messages[data.draw(st.sampled_from(self.queues.visible()),
                                                 label="message")]
        SCRIPT[:] = script
        with self.faults(plan):
            self.host_delivers(message, crash=crash)

    @precondition(lambda self: self.queues.visible())
    @rule(data=st.data())
    @step
    def lapse(self, data: st.DataObject) -> None:
        """The host took a message and died before running it: one dequeue used up."""
        message = self.queues.messages[data.draw(st.sampled_from(self.queues.visible()),
                                                 label="message")]
        self.queues.receive(message)
        self.checker.record("lapse", message.id, 200, f"dequeue_count={message.dequeue_count}")

    @precondition(lambda self: self.queues.visible())
    @rule(data=st.data())
    @step
    def lose_message(self, data: st.DataObject) -> None:
        """A message's time to live ran out, or an operator cleared the queue."""
        message = self.queues.messages[data.draw(st.sampled_from(self.queues.visible()),
                                                 label="message")]
        message.state = "lost"
        self.checker.record("lost", message.id, 200, f"job={message.job_id[:8]}")

    @rule(jump=st.sampled_from(JUMPS), plan=fault_plans)
    @step
    def purge(self, jump: timedelta, plan: dict[int, str]) -> None:
        """The hourly timer, at a clock moved on by `jump`."""
        self.run.clock.jump(jump)
        self.run_timer(plan)

    @rule(retention=st.sampled_from(RETENTIONS), abandon_after=st.sampled_from(ABANDON_AFTER))
    @step
    def change_settings(self, retention: timedelta, abandon_after: timedelta) -> None:
        """An operator changes JOB_RETENTION_HOURS / JOB_ABANDON_AFTER_HOURS and restarts."""
        changes: dict[str, Any] = {"retention": retention}
        if hasattr(self.settings, "abandon_after"):
            changes["abandon_after"] = abandon_after
        self.settings = dataclasses.replace(self.settings, **changes)
        self.run.app.settings = self.settings
        self.checker.record("settings", f"retention={retention}", 200,
                            f"abandon_after={abandon_after}")

    @rule(target=jobs, first=st.sampled_from(OVERLAPPING), second=st.sampled_from(OVERLAPPING),
          key=st.none() | keys, job=st.none() | jobs, at=st.integers(0, 4), after=st.booleans(),
          plan=fault_plans, script=st.lists(st.sampled_from(BEHAVIOURS), max_size=2),
          data=st.data())
    @step
    def overlap(self, first: str, second: str, key: str | None, job: str | None, at: int,
                after: bool, plan: dict[int, str], script: list[str], data: st.DataObject
                ) -> Any:
        """Two operations at once, as two instances or clients run them: the second runs
        whole while the first is at its `at`-th storage request (just before it is sent,
        or just after the table applied it). Deterministic: no threads."""
        accepted: list[str] = []
        later = self.operation(second, key, job, {}, data, accepted)
        self.run.transport.overlap(at, after=after, operation=later)
        SCRIPT[:] = script
        try:
            self.operation(first, key, job, plan, data, accepted)()
        finally:
            ran = self.run.transport.overlapped()
        if not ran:
            later()
        return multiple(*accepted)

    def operation(self, kind: str, key: str | None, job: str | None, plan: dict[int, str],
                  data: st.DataObject, accepted: list[str]) -> Callable[[], object]:
        """One operation of `overlap`, ready to run; without a job or a message, a submit."""
        visible = self.queues.visible()
        if kind == "deliver" and visible:
            message = self.queues.messages[data.draw(st.sampled_from(visible), label=kind)]
            return lambda: self.host_delivers(message) if message.state == "visible" else None
        if kind == "cancel" and job is not None:
            return functools.partial(self.delete, job, plan)
        if kind == "purge":
            # Up to a day: a handler may run that long, but no request is in flight a week.
            jump = data.draw(st.sampled_from(JUMPS[:-1]), label="purge jump")

            def purge() -> None:
                self.run.clock.jump(jump)
                self.run_timer(plan, overlapped=True)
            return purge
        body = data.draw(st.sampled_from(("a", "b")), label="submit body")

        def submit() -> None:
            job_id = self.post(key, body, plan)[1]
            if job_id is not None:
                accepted.append(job_id)
        return submit

    # The guarantees -----------------------------------------------------------------------

    @invariant()
    def guarantees_hold(self) -> None:
        try:
            self.check()
        except BaseException:
            self.broken = True
            raise

    def teardown(self) -> None:
        try:
            if not self.broken:
                self.quiesce()
        finally:
            self.cleanup()

    # How the steps are done ---------------------------------------------------------------

    def post(self, key: str | None, body: str, plan: dict[int, str], *, host_dies: bool = False
             ) -> tuple[int | None, str | None]:
        headers = {"Idempotency-Key": key} if key is not None else {}
        request = post_json(URL, {"job_type": JOB_TYPE, "customer_id": self.customer,
                                  "payload": {"body": body}}, headers=headers)
        out = CapturingOut()
        with self.faults(plan):
            response = self.call_http("submit_job", request, job_message=out)
        if host_dies:
            self.checker.record("submit", f"key={key} body={body}", None,
                                "host died before the queue output")
            return None, None
        status = response.status_code
        job_id = None
        if status == 202:
            job_id = json.loads(response.get_body())["job_id"]
        # The host writes the output binding once the function returned.
        if out.get() is not None:
            assert job_id is not None, "a message was queued for a submit that was not accepted"
            self.queues.send(out.get() or "", job_id)
        self.checker.record("submit", f"key={key} body={body}", status,
                            f"202 job={job_id[:8]}" if job_id else str(status))
        if job_id is not None:
            self.checker.accepted_for(key, job_id)
        return status, job_id

    def delete(self, job: str, plan: dict[int, str]) -> int | None:
        with self.faults(plan):
            response = self.call_http("cancel_job", get(f"{URL}/{job}", method="DELETE",
                                                        job_id=job))
        status = self.observe("cancel", f"job={job[:8]}", response, job)
        if status == 200:
            record = json.loads(response.get_body())
            if record["status"] != "cancelled":
                self.checker.violated("cancel_means_cancelled",
                                        f"DELETE {job} answered 200 with {record['status']}")
        if status == 409:
            row = self.read_row(job)
            if row is not None and row.status not in ("completed", "failed"):
                self.checker.violated("cancel_means_cancelled",
                                        f"DELETE {job} answered 409 for a {row.status} job")
        return status

    def call_http(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call an HTTP function; an exception is what the host turns into 500."""
        try:
            response = self.run.functions[name](*args, **kwargs)
        except Exception as e:
            self.checker.record(name, "", None, f"raised {type(e).__name__}: {e}")
            self.checker.http_answer(name, None, {})
            raise
        self.checker.http_answer(name, response.status_code, dict(response.headers))
        return response

    def observe(self, kind: str, args: str, response: Any, job: str) -> int:
        status: int = response.status_code
        body = json.loads(response.get_body())
        if status == 200:
            error = body.get("error")
            self.checker.seen_record(job, body["status"], body.get("result"),
                                     None if error is None else (error["code"], error["message"]))
        elif status == 404:
            self.checker.seen_missing(job)
        self.checker.record(kind, args, status, body.get("status", str(status)))
        return status

    def host_delivers(self, message: Message, *, crash: bool = False) -> None:
        """Receive and run one message as the host does; see host.py for the rules."""
        if not self.queues.receive(message):
            self.checker.record("receive", message.id, 200, f"moved aside ({message.queue})")
            return
        name = "process_job" if message.queue == MAIN else "fail_poisoned_job"
        if message.queue == MAIN:
            self.checker.deliveries[message.job_id] += 1
        delivery = queue_message(message.body, dequeue_count=message.dequeue_count,
                                 message_id=message.id)
        try:
            self.run.functions[name](delivery)
        except Exception as e:
            self.checker.record(name, f"{message.id} n={message.dequeue_count}", None,
                                f"raised {type(e).__name__}")
            if not crash:
                self.queues.failed(message)
            return
        self.checker.record(name, f"{message.id} n={message.dequeue_count}", 200,
                            "crashed before delete" if crash else "returned")
        if not crash:
            message.state = "done"

    def mid_run(self, job_id: str, behaviour: str) -> None:
        """While a handler runs: its message's lease lapses, a copy arrives, a DELETE, or the
        timer runs once the job looks abandoned."""
        if behaviour == "nested_cancel":
            self.delete(job_id, {})
            return
        if behaviour == "nested_sweep":
            # Read the table first: the purge is judged on the rows as it found them.
            self.check()
            abandon = getattr(self.settings, "abandon_after", timedelta(days=1))
            self.run.clock.jump(abandon + timedelta(minutes=1))
            self.run_timer({})
            return
        running = self.queues.of_job(job_id)
        if behaviour == "nested_redelivery" and running:
            self.host_delivers(running[0])
            return
        body = running[0].body if running else None
        if body is not None:
            self.host_delivers(self.queues.send(body, job_id))

    def run_timer(self, plan: dict[int, str], *, overlapped: bool = False) -> None:
        self.purge = PurgeRun(self.run.clock.now, self.settings.retention,
                              getattr(self.settings, "abandon_after", timedelta(days=1)),
                              overlapped=overlapped or self.purge is not None)
        with self.faults(plan):
            try:
                self.run.functions["purge_expired_jobs"](Timer())
            except Exception as e:
                self.checker.record("purge", f"at {self.run.clock.now:%m-%d %H:%M}", None,
                                    f"raised {type(e).__name__}")
                return
        self.checker.record("purge", f"at {self.run.clock.now:%m-%d %H:%M}", 200, "returned")

    @contextmanager
    def faults(self, plan: dict[int, str]) -> Iterator[None]:
        self.run.transport.arm(plan)
        try:
            yield
        finally:
            self.run.transport.disarm()

    def rows(self) -> list[Row]:
        query = f"RowKey eq 'job' and customer_id eq '{self.customer}'"
        return [Row.of(dict(e)) for e in self.run.table.query_entities(query)]

    def read_row(self, job_id: str) -> Row | None:
        found = [r for r in self.rows() if r.job_id == job_id]
        return found[0] if found else None

    def check(self) -> None:
        purge, self.purge = self.purge, None
        self.checker.snapshot(self.rows(), purge=purge)
        self.checker.result_writes(self.run.transport.result_writes)

    def quiesce(self) -> None:
        """Deliver or poison every message, sweep, let retention pass, and check."""
        SCRIPT.clear()
        for _ in range(2 * MAX_DEQUEUE_COUNT + 2):
            if not self.queues.visible():
                break
            for message_id in self.queues.visible():
                self.host_delivers(self.queues.messages[message_id])
        self.check()
        abandon = getattr(self.settings, "abandon_after", timedelta(days=1))
        self.run.clock.jump(max(abandon, timedelta(days=7)) + timedelta(hours=1))
        self.run_timer({})
        self.check()
        rows = self.rows()
        self.checker.quiescent(rows)
        # Retention may have been longer when a job finished: wait for the latest expiry.
        expiries = [r.expires_at for r in rows if r.expires_at is not None]
        last = max(expiries, default=self.run.clock.now)
        self.run.clock.jump(max(last - self.run.clock.now, timedelta(0)) + timedelta(minutes=1))
        self.run_timer({})
        self.check()
        left = [r for r in self.rows() if r.status in TERMINAL]
        if left:
            self.checker.violated("nothing_lost", f"{len(left)} finished jobs outlived "
                                    f"their retention: {[r.job_id for r in left]}")

    def cleanup(self) -> None:
        """Remove this example's rows, so the next example's purge scans only its own."""
        self.run.stats.operations.update(self.checker.outcomes)
        self.run.stats.ignored.update(self.checker.ignored)
        for entity in list(self.run.table.list_entities(select=["PartitionKey", "RowKey"])):
            self.run.table.delete_entity(entity["PartitionKey"], entity["RowKey"])
