"""Budgets of the fault explorer, and the summary table it prints after a run.

`EXPLORE_PROFILE=ci` (the default, what `make test` runs) and `EXPLORE_PROFILE=deep` (what
`make explore` runs) are Hypothesis settings profiles; `SEED=<n> make explore` replays a run,
and `EXPLORE_EXAMPLES=<n>` changes the number of examples (a quick look while developing).
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

from tests.explore import faults
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
    for outcome in ("ok", "fail", "info"):
        write(f"| operations {outcome} | {stats.operations[outcome]} |")
    write(f"| violations | {sum(stats.violations.values())} |")
    for name, count in sorted(stats.violations.items()):
        write(f"| violated: {name} | {count} |")
    for name, count in sorted(stats.ignored.items()):
        write(f"| IGNORED (EXPLORE_IGNORE) violations of {name} | {count} |")
