"""Run the fault explorer (machine.py) against Azurite with the app's own functions.

    make test                          # 200 examples (EXPLORE_PROFILE=ci)
    make explore                       # 5,000 examples (EXPLORE_PROFILE=deep), a summary table
    SEED=123 make explore              # the same run again
    EXPLORE_EXAMPLES=20 pytest tests/explore   # a quick look

A broken guarantee fails the test with the shrunk schedule Hypothesis prints (a replayable
`state = JobExplorer()` program), the seed, and the history of what clients saw.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from jobs import handlers
from tests.explore import conftest, machine
from tests.explore.checker import Violation
from tests.explore.faults import FaultyTransport
from tests.explore.host import Clock

pytestmark = [pytest.mark.explore,
              pytest.mark.timeout(0 if conftest.PROFILE == "explore-deep" else 900)]


@pytest.fixture
def explorer_run(app_settings: str, storage_connection: str, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[machine.Run]:
    """The app on a table of its own, its storage behind a faulty transport, a fake clock."""
    import dataclasses

    import function_app
    from jobs import lifecycle, store
    transport = FaultyTransport(RequestsTransport())
    monkeypatch.setattr(store, "EXTRA_CLIENT_OPTIONS",
                        {"transport": transport, "retry_backoff_factor": 0})
    store.default_store.cache_clear()
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
                      table=table, clock=clock, base_settings=base, stats=machine.Stats())
    monkeypatch.setattr(machine, "RUN", run)
    try:
        yield run
    finally:
        jobs_log.setLevel(level)
        handlers.unregister(machine.JOB_TYPE)
        store.default_store.cache_clear()


def test_explore_guarantees_hold_under_faults(explorer_run: machine.Run,
                                              request: pytest.FixtureRequest) -> None:
    started = time.monotonic()
    seed = request.config.getoption("hypothesis_seed", None) or "random"
    try:
        run_state_machine_as_test(machine.JobExplorer,
                                  settings=settings.get_profile(conftest.PROFILE))
    except BaseException as e:
        found = e.exceptions if isinstance(e, BaseExceptionGroup) else (e,)
        for failure in found:
            name = type(failure).__name__
            if isinstance(failure, Violation):
                name = str(failure).split(":")[0].removeprefix("VIOLATED ")
            explorer_run.stats.violations[name] += 1
        raise
    finally:
        conftest.SUMMARY.update(stats=explorer_run.stats, seed=seed,
                                injected=explorer_run.transport.injected,
                                seconds=time.monotonic() - started)
    stats = explorer_run.stats
    budget = settings.get_profile(conftest.PROFILE).max_examples
    assert stats.examples >= budget
    if budget >= 100:
        # The faults really reached the app: every kind was injected, some answers were 5xx.
        assert all(explorer_run.transport.injected[k] > 0 for k in machine.faults.KINDS)
        assert stats.operations["info"] > 0


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
