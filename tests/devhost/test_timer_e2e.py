"""Timer triggers through a real host process: NCRONTAB schedule and runOnStartup."""

from __future__ import annotations

import statistics
from itertools import pairwise

import pytest

from tests.devhost.conftest import HostFactory, collect_json

pytestmark = pytest.mark.e2e


def test_timer_fires_on_its_schedule_from_a_setting(start_host: HostFactory) -> None:
    host = start_host(settings={"TIMER_SCHEDULE": "* * * * * *"})  # every second
    runs = collect_json(host.queue("TIMER_QUEUE"), count=4, timeout=6)
    ticks = [r for r in runs if r["function"] == "tick"]
    assert len(ticks) >= 3
    assert not any(r["past_due"] for r in ticks)
    gaps = [b["at"] - a["at"] for a, b in pairwise(ticks)]
    # The median, so one tick a busy machine delayed does not decide it; an every-2-seconds
    # schedule would put it near 2.
    assert 0.7 <= statistics.median(gaps) <= 1.5, gaps


def test_timer_run_on_startup_fires_once_at_start(start_host: HostFactory) -> None:
    host = start_host()  # both schedules fire once a year
    runs = collect_json(host.queue("TIMER_QUEUE"), count=2, timeout=1.5)
    assert [r["function"] for r in runs] == ["startup_tick"]
    assert runs[0]["past_due"] is False
