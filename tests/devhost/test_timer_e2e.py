"""Timer triggers through a real host process: schedule, runOnStartup, the admin endpoint."""

from __future__ import annotations

import statistics
from itertools import pairwise

import pytest
import requests

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


def test_admin_endpoint_runs_a_timer_function_now(start_host: HostFactory) -> None:
    # The host's admin Invoke (POST admin/functions/{name}, body {"input": ...}) answers 202
    # and runs the function in the background; `func start` needs no key for it.
    host = start_host()
    collect_json(host.queue("TIMER_QUEUE"), count=1, timeout=5)  # startup_tick's run
    base = host.process.base_url
    answer = requests.post(f"{base}/admin/functions/TICK", json={"input": ""}, timeout=10)
    assert answer.status_code == 202
    [run] = collect_json(host.queue("TIMER_QUEUE"), count=1, timeout=5)
    assert run["function"] == "tick"
    assert requests.post(f"{base}/admin/functions/nope", json={"input": ""},
                         timeout=10).status_code == 404
    assert requests.post(f"{base}/admin/functions/tick", data="not json", timeout=10,
                         headers={"Content-Type": "application/json"}).status_code == 400
    assert requests.get(f"{base}/admin/functions/tick", timeout=10).status_code == 404


def test_admin_endpoint_puts_the_input_in_a_queue_message(start_host: HostFactory) -> None:
    host = start_host()
    answer = requests.post(f"{host.process.base_url}/admin/functions/work",
                           json={"input": "from admin"}, timeout=10)
    assert answer.status_code == 202
    [record] = collect_json(host.queue("RESULTS_QUEUE"), count=1, timeout=5)
    assert record["body"] == "from admin"
