"""Budgets of the fault explorer, and the summary table it prints after a run.

`EXPLORE_PROFILE=ci` (the default, what `make test` runs) and `EXPLORE_PROFILE=deep` (what
`make explore` runs) are Hypothesis settings profiles; `SEED=<n> make explore` replays a run,
and `EXPLORE_EXAMPLES=<n>` changes the number of examples (a quick look while developing).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient
from hypothesis import HealthCheck, Phase, settings

from jobs import handlers
from tests.conftest import reset_store
from tests.explore import faults, machine
from tests.explore.faults import FaultyTransport
from tests.explore.host import Clock
from tests.explore.machine import Stats

# Every step does real storage I/O against Azurite on a shared machine, so the time
# Hypothesis attributes to generating an example is mostly I/O: too_slow says nothing here,
# and neither does a per-example deadline.
_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow],
    "print_blob": True,
}
settings.register_profile("explore-ci", max_examples=200, stateful_step_count=25, **_COMMON)
settings.register_profile("explore-deep", max_examples=5000, stateful_step_count=30, **_COMMON)
PROFILE = f"explore-{os.environ.get('EXPLORE_PROFILE', 'ci')}"
if os.environ.get("EXPLORE_EXAMPLES"):
    settings.register_profile(PROFILE, settings.get_profile(PROFILE),
                              max_examples=int(os.environ["EXPLORE_EXAMPLES"]))
if os.environ.get("EXPLORE_NO_SHRINK"):  # make mutants: the first violation is enough
    settings.register_profile(PROFILE, settings.get_profile(PROFILE),
                              phases=[Phase.explicit, Phase.reuse, Phase.generate])
SUMMARY: dict[str, Any] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print what the explorer did: examples, steps, faults by kind, operations, violations."""
    if not SUMMARY:
        return
    stats: Stats = SUMMARY["stats"]
    injected = SUMMARY["injected"]
    write = terminalreporter.write_line
    write("")
    write(f"fault explorer ({PROFILE}, seed {SUMMARY['seed']}, {SUMMARY['seconds']:.0f} s)")
    write("| figure | value |")
    write("|---|---|")
    write(f"| examples run | {stats.examples} |")
    write(f"| steps run | {stats.steps} |")
    for kind in faults.KINDS:
        write(f"| faults injected: {kind} | {injected[kind]} |")
    write(f"| faults injected: total | {sum(injected.values())} |")
    write(f"| real connection failures, sent again | {SUMMARY['uninjected']} |")
    write(f"| held requests that landed late | {SUMMARY['landed_late']} |")
    for name, count in sorted(stats.live.items()):
        write(f"| jobs answered 202, at quiescence: {name} | {count} |")
    for outcome in ("ok", "fail", "info"):
        write(f"| operations {outcome} | {stats.operations[outcome]} |")
    write(f"| violations | {sum(stats.violations.values())} |")
    for name, count in sorted(stats.violations.items()):
        write(f"| violated: {name} | {count} |")
    for name, count in sorted(stats.ignored.items()):
        write(f"| IGNORED (EXPLORE_IGNORE) violations of {name} | {count} |")


@pytest.fixture
def explorer_run(app_settings: str, storage_connection: str, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[machine.Run]:
    """The app on a table of its own, its storage behind a faulty transport, a fake clock."""
    import dataclasses

    import function_app
    from jobs import headers, lifecycle, store, submission
    transport = FaultyTransport(RequestsTransport())
    monkeypatch.setattr(store, "EXTRA_CLIENT_OPTIONS",
                        {"transport": transport, "retry_backoff_factor": 0})
    reset_store()
    # A job's id is a digest of its message, nonce and correlation id included: both drawn
    # from counters, the same schedule makes the same ids on every replay.
    job_ids = machine.JobIds()
    monkeypatch.setattr(submission, "uuid", job_ids)
    monkeypatch.setattr(headers, "uuid", job_ids)
    clock = Clock()
    monkeypatch.setattr(function_app, "clock", clock, raising=False)
    monkeypatch.setattr(lifecycle, "datetime", _clock_datetime(clock))
    base = dataclasses.replace(function_app.settings, max_dequeue_count=machine.MAX_DEQUEUE_COUNT)
    monkeypatch.setattr(function_app, "settings", base)
    handlers.register(machine.JOB_TYPE)(machine.explore_handler)
    # The app logs a line per transition; thousands of examples need none of them.
    jobs_log = logging.getLogger("jobs")
    level = jobs_log.level
    jobs_log.setLevel(logging.ERROR)
    table = TableClient.from_connection_string(storage_connection, table_name=app_settings)
    store.default_store()  # creates the table, before any fault is armed
    run = machine.Run(app=function_app, functions=_functions(function_app), transport=transport,
                      table=table, clock=clock, base_settings=base, stats=machine.Stats(),
                      job_ids=job_ids)
    monkeypatch.setattr(machine, "RUN", run)
    try:
        yield run
    finally:
        jobs_log.setLevel(level)
        handlers.unregister(machine.JOB_TYPE)
        reset_store()  # closes the app's client, and with it the faulty transport
        table.close()


def _functions(app_module: Any) -> dict[str, Callable[..., Any]]:
    from tests.support.functions import user_functions

    return user_functions(app_module.app)


def _clock_datetime(clock: Clock) -> type:
    """jobs.lifecycle's `datetime`, whose now() is the explorer's clock: the default clock
    of every function that is not handed one."""
    from datetime import datetime

    class ClockDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return clock()

    return ClockDatetime
