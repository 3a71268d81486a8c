"""Run the fault explorer (machine.py) against Azurite with the app's own functions.

    make test                          # 200 examples (EXPLORE_PROFILE=ci)
    make explore                       # 5,000 examples (EXPLORE_PROFILE=deep), a summary table
    SEED=123 make explore              # the same run again
    EXPLORE_EXAMPLES=20 pytest tests/explore   # a quick look

A broken guarantee fails the test with the shrunk schedule Hypothesis prints (a replayable
`state = JobExplorer()` program), the seed, and the history of what clients saw.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from tests.explore import conftest, machine
from tests.explore.checker import Violation

pytestmark = [pytest.mark.explore,
              pytest.mark.timeout(0 if conftest.PROFILE == "explore-deep" else 900)]


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
                                uninjected=explorer_run.transport.uninjected,
                                landed_late=explorer_run.transport.landed_late,
                                seconds=time.monotonic() - started)
    stats = explorer_run.stats
    budget = settings.get_profile(conftest.PROFILE).max_examples
    assert stats.examples >= budget
    if budget >= 100:
        # The faults really reached the app: every kind was injected, some answers were 5xx.
        assert all(explorer_run.transport.injected[k] > 0 for k in machine.faults.KINDS)
        assert stats.operations["info"] > 0
