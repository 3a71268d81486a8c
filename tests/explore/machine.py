"""The model-based fault explorer: a Hypothesis state machine over the app's own functions.

Each rule does what a client, the host or an operator does, by calling the app's functions
as the host calls them (tests/support/functions.py), against a real table on Azurite. Storage
faults come in below the app, at the azure-core transport (faults.py), planned by Hypothesis.
The host's queues and clock are modelled (host.py). After every step the checker reads the
table and compares it with everything clients were told (checker.py); `teardown` drives the
example to quiescence: first every message delivered with the clock where it is, to check
that every job told 202 ran (liveness), then the sweep and the retention passed, to check
that nothing is lost or left behind. docs/guarantees.md lists what each check proves.
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
#: The smallest window the settings accept (JOB_ABANDON_AFTER_HOURS=0.05) among them.
ABANDON_AFTER = (timedelta(minutes=3), timedelta(minutes=30), timedelta(hours=1),
                 timedelta(days=1))
CUSTOMERS = ("explore", "explore-2")
#: Instances' clocks differ: a delivery may run on one that is ahead or behind.
SKEWS = (timedelta(0), timedelta(0), timedelta(minutes=-2), timedelta(minutes=2))
#: The largest difference between two instances' clocks (the timer runs at skew 0).
CLOCK_SPREAD = max(SKEWS) - min(SKEWS)


def _nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


#: Stand for values too large to print in Hypothesis' report: made when the handler runs.
HUGE = {"<an int of 4,400 digits>": lambda: 10 ** 4_400,
        "<40,000 x>": lambda: "x" * 40_000,
        "<17,000 astral characters>": lambda: "\U0001f600" * 17_000}


def _made(value: Any) -> Any:
    return HUGE[value]() if isinstance(value, str) and value in HUGE else value
#: Texts and values a handler may produce: lone surrogates, NUL, huge, astral, not JSON.
ODD_TEXTS = st.sampled_from(("caf\udce9", "\ud800", "nul\x00", "<40,000 x>",
                             "<17,000 astral characters>", "")) | st.text(max_size=8)
ODD_VALUES = st.one_of(
    ODD_TEXTS, st.integers(58, 70).map(_nested),
    st.sampled_from((float("nan"), float("inf"), float("-inf"))),
    st.just({1: "an int key"}), st.just({"a set": {1, 2}}),
    st.integers(-(2**70), 2**70), st.just("<an int of 4,400 digits>"))
ODD_OUTPUTS = st.one_of(
    st.tuples(st.just("odd_result"), ODD_VALUES),
    st.tuples(st.just("odd_error"), ODD_TEXTS, ODD_TEXTS),
    st.tuples(st.just("odd_progress"), ODD_TEXTS))
SCRIPTS = st.lists(st.sampled_from(BEHAVIOURS) | ODD_OUTPUTS, max_size=2)
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
    """Stands in for `uuid` where the submit draws a job's nonce and correlation id.

    A job's id is a digest of them. Queries list rows by partition key, and a planned fault
    hits the n-th request; random ids would order a purge's deletes differently on every
    replay of the same schedule.
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
    #: The liveness check at quiescence: jobs answered 202 checked, and set aside.
    live: Counter[str] = field(default_factory=Counter)

    def save(self, transport: faults.FaultyTransport) -> None:
        """Write the figures so far to build/explore/progress.json: a long run shows progress."""
        PROGRESS.parent.mkdir(parents=True, exist_ok=True)
        PROGRESS.write_text(json.dumps({
            "examples": self.examples, "steps": self.steps,
            "faults": dict(transport.injected), "operations": dict(self.operations),
            "violations": dict(self.violations), "ignored": dict(self.ignored),
            "live": dict(self.live)}, indent=1))


#: Set by the test before Hypothesis runs the machine; one per pytest run.
RUN: Run | None = None
#: What the next handler invocations do, and the machine that runs them.
SCRIPT: list[Any] = []
CURRENT: JobExplorer | None = None


def explore_handler(job: JobMessage, progress: Callable[..., None]) -> dict[str, Any]:
    """The explorer's job type: does what the step's script says, then returns a run id."""
    assert CURRENT is not None
    behaviour = SCRIPT.pop(0) if SCRIPT else "ok"
    odd: tuple[Any, ...] = ()
    if isinstance(behaviour, tuple):
        behaviour, *rest = behaviour
        odd = tuple(_made(value) for value in rest)
    if behaviour == "transient":
        raise RuntimeError("explorer: a transient handler error")
    if behaviour == "fatal":
        raise JobFailed("explorer_failed", "explorer: a failure retrying cannot fix")
    if behaviour == "odd_error":
        raise JobFailed(odd[0], odd[1])
    if behaviour == "progress":
        progress(50, "half way")
    if behaviour == "odd_progress":
        progress(30, odd[0])
    if behaviour.startswith("nested_"):
        CURRENT.mid_run(job.job_id, behaviour)
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    CURRENT.checker.runs.setdefault(job.job_id, set()).add(run_id)
    if behaviour == "odd_result":
        return {"run": run_id, "odd": odd[0]}
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
        self.queue_down = False
        # Fixed names, so that rows sort the same on every replay (each example starts on
        # an empty table: teardown removes every row).
        self.customer = "explore"
        self.run.job_ids.made = 0
        self.keys_made = 1
        self.key_bodies: dict[str, str] = {}
        self.broken = False
        self.purge: PurgeRun | None = None
        #: Each purge run by its operation's index: a delete it sent that was held in the
        #: network may land in a later step, and is judged as that run's.
        self.purge_runs: dict[int, PurgeRun] = {}
        self.run.clock.now = START
        self.settings = self.run.base_settings
        self.run.app.settings = self.settings
        self.run.transport.held.clear()
        self.run.transport.landed_from.clear()
        self.run.transport.result_writes.clear()
        CURRENT = self
        SCRIPT.clear()

    # Clients ------------------------------------------------------------------------------

    @initialize(target=keys)
    def first_key(self) -> str:
        return "key-1"

    @initialize(max_dequeue_count=st.integers(1, 5), retention=st.sampled_from(RETENTIONS),
                abandon_after=st.sampled_from(ABANDON_AFTER))
    def configure(self, max_dequeue_count: int, retention: timedelta,
                  abandon_after: timedelta) -> None:
        """This example's settings: the host's maxDequeueCount and the app's windows."""
        self.queues.max_dequeue_count = max_dequeue_count
        self.settings = dataclasses.replace(self.settings, max_dequeue_count=max_dequeue_count,
                                            retention=retention, abandon_after=abandon_after)
        self.run.app.settings = self.settings
        self.checker.record("settings", f"maxDequeueCount={max_dequeue_count}", 200,
                            f"retention={retention} abandon_after={abandon_after}")

    @rule(target=keys, customer=st.sampled_from(CUSTOMERS))
    def another_key(self, customer: str) -> str:
        """A new key, of one of the customers (the same key text under two customers is
        two keys)."""
        self.keys_made += 1
        key = f"key-{self.keys_made % 3}"
        return key if customer == CUSTOMERS[0] else f"{customer}|{key}"

    @rule(target=jobs, key=st.none() | keys, body=st.sampled_from(("a", "b")),
          plans=st.lists(fault_plans, min_size=1, max_size=3), host_dies=st.booleans(),
          flush_fails=st.lists(st.booleans(), max_size=3))
    @step
    def submit(self, key: str | None, body: str, plans: list[dict[int, str]],
               host_dies: bool, flush_fails: list[bool] | None = None) -> Any:
        """POST a job; retry a 5xx answer with the same request, once per further plan.

        With `host_dies` the host dies after the first attempt returned and before it wrote
        the queue output: the client sees the connection drop, and retries. Where
        `flush_fails` says so, the host's flush of the queue output fails: the client sees
        the host's 500 (and nothing was queued), and retries.
        """
        accepted = []
        fails = list(flush_fails or [])
        for attempt, plan in enumerate(plans):
            status, job_id = self.post(key, body, plan, host_dies=host_dies and attempt == 0,
                                       flush_fails=bool(fails) and fails.pop(0))
            if job_id is not None:
                accepted.append(job_id)
            if status is not None and status < 500:
                break
        return multiple(*accepted)

    @rule(job=jobs, plan=fault_plans)
    @step
    def get_status(self, job: str, plan: dict[int, str]) -> None:
        injected = sum(self.run.transport.injected.values())
        with self.faults(plan):
            response = self.call_http("get_job_status", get(f"{URL}/{job}", job_id=job))
        status = self.observe("get", f"job={job[:8]}", response, job)
        if status >= 500 and injected == sum(self.run.transport.injected.values()):
            self.checker.violated("available", f"GET {job} answered {status} with no fault "
                                  "injected")

    @rule(job=jobs, plans=st.lists(fault_plans, min_size=1, max_size=3))
    @step
    def cancel(self, job: str, plans: list[dict[int, str]]) -> None:
        """DELETE a job; retry a 5xx answer, once per further plan."""
        for plan in plans:
            status = self.delete(job, plan)
            if status is None or status < 500:
                break

    # The host -----------------------------------------------------------------------------

    @precondition(lambda self: self.queues.visible() and not self.queue_down)
    @rule(data=st.data(), crash=st.booleans(), plan=fault_plans,
          script=SCRIPTS, skew=st.sampled_from(SKEWS))
    @step
    def deliver(self, data: st.DataObject, crash: bool, plan: dict[int, str],
                script: list[Any], skew: timedelta = timedelta(0)) -> None:
        """Deliver a visible message; with `crash` the host dies before deleting it. The
        instance that runs it has its clock `skew` off."""
        message = self.queues.messages[data.draw(st.sampled_from(self.queues.visible()),
                                                 label="message")]
        SCRIPT[:] = script
        self.run.clock.jump(skew)
        try:
            with self.faults(plan):
                self.host_delivers(message, crash=crash)
        finally:
            self.run.clock.jump(-skew)

    @rule(down=st.booleans())
    @step
    def queue_outage(self, down: bool) -> None:
        """The queue service goes down or comes back: while down, every flush of a POST's
        queue output fails (the client sees 500) and nothing is delivered."""
        self.queue_down = down
        self.checker.record("queue", "outage" if down else "back", 200, "")

    @precondition(lambda self: self.queues.messages and not self.queue_down)
    @rule(data=st.data(), job=jobs)
    @step
    def forge(self, data: st.DataObject, job: str) -> None:
        """Anyone who can write to the queue sends a job's message with another token, or
        another job's message under this job's id: it must change nothing."""
        source = self.queues.messages[data.draw(st.sampled_from(sorted(self.queues.messages)),
                                                label="message")]
        try:
            body = json.loads(source.body)
        except ValueError:
            return
        if not isinstance(body, dict) or "token" not in body or "job_id" not in body:
            return
        if body["job_id"] == job:
            body["token"] = "forged-" + body["token"][::-1]
        body["job_id"] = job
        before = self.read_entity(job)
        # Kept off the queue's books: a forged message is never the source of another.
        forged = Message(f"forged-{source.id}", json.dumps(body), job)
        self.host_delivers(forged, count=False)
        after = self.read_entity(job)
        if before != after:
            self.checker.violated("foreign_token_ignored", f"a forged message changed job "
                                  f"{job}: {before} -> {after}")

    @precondition(lambda self: self.queues.visible() and not self.queue_down)
    @rule(data=st.data())
    @step
    def lapse(self, data: st.DataObject) -> None:
        """The host took a message and died before running it: one dequeue used up."""
        message = self.queues.messages[data.draw(st.sampled_from(self.queues.visible()),
                                                 label="message")]
        self.queues.receive(message)
        self.checker.record("lapse", message.id, 200, f"dequeue_count={message.dequeue_count}")
        self.set_aside_undeliverable()

    @precondition(lambda self: self.queues.visible())
    @rule(data=st.data())
    @step
    def lose_message(self, data: st.DataObject) -> None:
        """A message's time to live ran out, or an operator cleared the queue."""
        message = self.queues.messages[data.draw(st.sampled_from(self.queues.visible()),
                                                 label="message")]
        message.state = "lost"
        self.checker.record("lost", message.id, 200, f"job={message.job_id[:8]}")
        self.set_aside_undeliverable()

    @rule(jump=st.sampled_from(JUMPS), plan=fault_plans)
    @step
    def purge(self, jump: timedelta, plan: dict[int, str]) -> None:
        """The hourly timer, at a clock moved on by `jump`. Workers run meanwhile: before a
        day or more passes, the queue is up and the host delivers what is queued."""
        if jump >= timedelta(days=1):  # no outage lasts a day, and workers ran all along
            self.queue_down = False
            self.drain()
            self.check()  # the purge is judged on the rows as the drain left them
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
          plan=fault_plans, script=SCRIPTS,
          data=st.data())
    @step
    def overlap(self, first: str, second: str, key: str | None, job: str | None, at: int,
                after: bool, plan: dict[int, str], script: list[Any], data: st.DataObject
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
            job_id = self.post(key, body, plan, overlapped=True)[1]
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

    def post(self, key: str | None, body: str, plan: dict[int, str], *, host_dies: bool = False,
             flush_fails: bool = False, overlapped: bool = False
             ) -> tuple[int | None, str | None]:
        customer, key_text = self.customer, key
        if key is not None and "|" in key:
            customer, key_text = key.split("|", 1)
        headers = {"Idempotency-Key": key_text} if key_text is not None else {}
        request = post_json(URL, {"job_type": JOB_TYPE, "customer_id": customer,
                                  "payload": {"body": body}}, headers=headers)
        out = CapturingOut()
        injected = sum(self.run.transport.injected.values())
        reused = self.reused_with_another_body(key, body)
        with self.faults(plan):
            response = self.call_http("submit_job", request, job_message=out)
        faultless = injected == sum(self.run.transport.injected.values())
        if host_dies:
            self.checker.record("submit", f"key={key} body={body}", None,
                                "host died before the queue output")
            return None, None
        status = response.status_code
        job_id = None
        if status == 202:
            answer = json.loads(response.get_body())
            job_id = answer["job_id"]
            self.check_answer(key, body, job_id, answer, response, out, reused, overlapped)
        elif status >= 500 and faultless and not overlapped:
            self.checker.violated("available", f"POST key={key} answered {status} with no "
                                  "fault injected")
        if out.get() is not None and (flush_fails or self.queue_down):
            # The host's flush of the output binding failed: it answers 500, queues nothing.
            self.checker.record("submit", f"key={key} body={body}", 500,
                                "the host's queue output flush failed")
            return 500, None
        # The host writes the output binding once the function returned.
        if out.get() is not None:
            assert job_id is not None, "a message was queued for a submit that was not accepted"
            self.queues.send(out.get() or "", job_id)
            self.checker.set_aside.discard(job_id)
        self.checker.record("submit", f"key={key} body={body}", status,
                            f"202 job={job_id[:8]}" if job_id else str(status))
        if job_id is not None:
            self.checker.accepted_for(key, job_id)
            if key is not None:  # the key names a job made with this body now
                self.key_bodies[key] = body
        return status, job_id

    def reused_with_another_body(self, key: str | None, body: str) -> str | None:
        """The stored job a key names when this body differs from the one it was made with."""
        if key is None or self.key_bodies.get(key, body) == body:
            return None
        named = [j for j in self.checker.accepted.get(key, []) if j in self.checker.stored]
        return named[-1] if named else None

    def check_answer(self, key: str | None, body: str, job_id: str, answer: dict[str, Any],
                     response: Any, out: CapturingOut, reused: str | None,
                     overlapped: bool) -> None:
        """What a 202 promises: its URLs name the job, a message comes with an accepted job,
        and a key reused with another body is refused while its job is stored."""
        own_url = f"{URL}/{job_id}"
        if answer.get("status_url") != own_url or response.headers.get("Location") != own_url:
            self.checker.violated("location_names_job", f"202 for {job_id}: status_url "
                                  f"{answer.get('status_url')}, Location "
                                  f"{response.headers.get('Location')}")
        message = out.get()
        if message is not None and json.loads(message).get("job_id") != job_id:
            self.checker.violated("accepted_202_queues", f"202 for {job_id} queued a message "
                                  f"for {json.loads(message).get('job_id')}")
        if message is None:
            row = self.read_row(job_id)
            if row is not None and row.status == "accepted":
                self.checker.violated("accepted_202_queues", f"202 for accepted job {job_id} "
                                      "queued no message")
        if reused is not None and not overlapped and self.read_row(reused) is not None:
            self.checker.violated("reused_key_422", f"key {key} with body {body} was answered "
                                  f"202 ({job_id}) while its job {reused} is stored")

    def delete(self, job: str, plan: dict[int, str]) -> int | None:
        injected = sum(self.run.transport.injected.values())
        with self.faults(plan):
            response = self.call_http("cancel_job", get(f"{URL}/{job}", method="DELETE",
                                                        job_id=job))
        status = self.observe("cancel", f"job={job[:8]}", response, job)
        if status >= 500 and injected == sum(self.run.transport.injected.values()):
            self.checker.violated("available", f"DELETE {job} answered {status} with no "
                                  "fault injected")
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

    def host_delivers(self, message: Message, *, crash: bool = False, count: bool = True
                      ) -> None:
        """Receive and run one message as the host does; see host.py for the rules.
        `count` False: a forged message, which may not count as a delivery of its job."""
        if not self.queues.receive(message):
            self.checker.record("receive", message.id, 200, f"moved aside ({message.queue})")
            self.set_aside_undeliverable()
            return
        name = "process_job" if message.queue == MAIN else "fail_poisoned_job"
        if message.queue == MAIN and count:
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
        landed = self.run.transport.landed_late
        self.purge = PurgeRun(self.run.clock.now, self.settings.retention,
                              getattr(self.settings, "abandon_after", timedelta(days=1)),
                              overlapped=overlapped or self.purge is not None,
                              clock_spread=CLOCK_SPREAD)
        try:
            with self.faults(plan):
                operation = self.run.transport.operation
                self.run.functions["purge_expired_jobs"](Timer())
        except Exception as e:
            self.checker.record("purge", f"at {self.run.clock.now:%m-%d %H:%M}", None,
                                f"raised {type(e).__name__}")
            return
        finally:
            if self.run.transport.landed_late > landed and self.purge is not None:
                # A held write (a finish, a cancel) landed while the purge ran: another
                # writer in flight, as in an overlap.
                self.purge = dataclasses.replace(self.purge, overlapped=True)
            if self.purge is not None:
                self.purge_runs[operation] = self.purge
        self.checker.record("purge", f"at {self.run.clock.now:%m-%d %H:%M}", 200, "returned")

    @contextmanager
    def faults(self, plan: dict[int, str]) -> Iterator[None]:
        self.run.transport.arm(plan)
        try:
            yield
        finally:
            self.run.transport.disarm()

    def rows(self) -> list[Row]:
        return [Row.of(dict(e)) for e in self.run.table.query_entities("RowKey eq 'job'")]

    def key_rows(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self.run.table.query_entities("RowKey eq 'key'")]

    def read_entity(self, job_id: str) -> tuple[Any, ...] | None:
        """A job row as stored, with its ETag, or None."""
        found = list(self.run.table.query_entities(
            f"PartitionKey eq '{job_id}' and RowKey eq 'job'"))
        if not found:
            return None
        return (found[0].metadata.get("etag"), sorted(dict(found[0]).items()))

    def set_aside_undeliverable(self) -> None:
        """Jobs whose every message an operator cleared or the poison queue keeps for good:
        outside the liveness guarantee (see docs/guarantees.md), so set aside and counted."""
        by_job: dict[str, list[str]] = {}
        for message in self.queues.messages.values():
            by_job.setdefault(message.job_id, []).append(message.state)
        for job_id, states in by_job.items():
            if all(state in ("lost", "stuck", "poisoned") for state in states):
                self.checker.set_aside.add(job_id)

    def drain(self) -> None:
        """Workers run with storage up: every visible message is delivered or moved aside."""
        SCRIPT.clear()
        self.run.transport.land_held()
        for _ in range(4 * self.queues.max_dequeue_count + 4):
            if not self.queues.visible():
                break
            for message_id in self.queues.visible():
                if self.queues.messages[message_id].state == "visible":
                    self.host_delivers(self.queues.messages[message_id])

    def read_row(self, job_id: str) -> Row | None:
        found = [r for r in self.rows() if r.job_id == job_id]
        return found[0] if found else None

    def check(self) -> list[Row]:
        """Compare the table with what was seen; the rows read."""
        purge, self.purge = self.purge, None
        landed = sorted(self.run.transport.landed_from & self.purge_runs.keys())
        self.run.transport.landed_from.clear()
        if purge is None and landed:
            # A purge's delete held in the network landed in this step: that run's doing.
            purge = self.purge_runs[landed[-1]]
        rows = self.rows()
        self.checker.snapshot(rows, purge=purge)
        self.checker.result_writes(self.run.transport.result_writes)
        return rows

    def quiesce(self) -> None:
        """Bring the queue back and deliver every message, with storage up and the clock
        where it is; check that every 202 ran. Then sweep, let retention pass, and check
        that nothing is lost or left behind."""
        self.queue_down = False
        self.drain()
        self.set_aside_undeliverable()
        self.checker.every_202_ran(self.check())
        self.run.stats.live.update(self.checker.live)
        for job in sorted(self.checker.accepted_jobs):  # what a polling client reads now
            self.observe("get", f"job={job[:8]}", self.call_http(
                "get_job_status", get(f"{URL}/{job}", job_id=job)), job)
        self.check()
        abandon = self.settings.abandon_after
        self.run.clock.jump(max(abandon, timedelta(days=7)) + timedelta(hours=1))
        self.run_timer({})
        rows = self.check()
        self.checker.quiescent(rows)
        # Retention may have been longer when a job finished: wait for the latest expiry,
        # and for a key left by a purge cut short to be older than any live job's key.
        expiries = [r.expires_at for r in rows if r.expires_at is not None]
        last = max(expiries, default=self.run.clock.now) - self.run.clock.now
        keys_free = self.settings.retention + abandon + timedelta(days=7)
        self.run.clock.jump(max(last, keys_free, timedelta(0)) + timedelta(minutes=1))
        self.run_timer({})
        left = [r for r in self.check() if r.status in TERMINAL]
        if left:
            self.checker.violated("nothing_lost", f"{len(left)} finished jobs outlived "
                                    f"their retention: {[r.job_id for r in left]}")
        keys = self.key_rows()
        if keys:
            self.checker.violated("keys_follow_jobs", f"{len(keys)} key rows outlived their "
                                  f"jobs: {[k['job_id'] for k in keys]}")

    def cleanup(self) -> None:
        """Remove this example's rows, so the next example's purge scans only its own."""
        self.run.stats.operations.update(self.checker.outcomes)
        self.run.stats.ignored.update(self.checker.ignored)
        for entity in list(self.run.table.list_entities(select=["PartitionKey", "RowKey"])):
            self.run.table.delete_entity(entity["PartitionKey"], entity["RowKey"])
