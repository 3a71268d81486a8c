"""Timer triggers: NCRONTAB schedules (six fields, seconds first) in the machine's local time.

Each timer function has one thread, so its invocations never overlap, as on the real host
(where a timer is a singleton). The next occurrence is computed after an invocation ends;
`runOnStartup` fires once when the host starts. `useMonitor` is ignored: the local host
keeps no schedule history, so runs missed while it was down are not made up.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from azure.functions.timer import TimerRequest
from croniter import croniter

from devhost.catalog import FunctionSpec
from devhost.errors import SettingsError
from devhost.invocation import InvocationFailed, Invoker

logger = logging.getLogger(__name__)

# Waking up a few milliseconds late is not lateness; a run this much behind is past due.
PAST_DUE_TOLERANCE_SECONDS = 1.0


def check_schedule(expression: str, *, function: str) -> None:
    """Raise SettingsError unless `expression` is a six-field NCRONTAB schedule."""
    if len(expression.split()) != 6:
        raise SettingsError(f"function {function}: schedule {expression!r} needs six fields "
                            "({second} {minute} {hour} {day} {month} {day-of-week})")
    try:
        croniter(expression, _now(), second_at_beginning=True)
    except (ValueError, KeyError) as e:
        raise SettingsError(f"function {function}: invalid schedule {expression!r}: {e}") from e


def next_occurrence(expression: str, after: datetime) -> datetime:
    """Return the first time strictly after `after` that the schedule fires."""
    following: datetime = croniter(expression, after, second_at_beginning=True).get_next(datetime)
    return following


class TimerRunner:
    """Fires one timer-triggered function on its schedule until the host stops."""

    def __init__(self, spec: FunctionSpec, *, invoker: Invoker, stopping: threading.Event) -> None:
        self._spec = spec
        self._invoker = invoker
        self._stopping = stopping
        self._expression = str(spec.trigger.get("schedule"))
        check_schedule(self._expression, function=spec.name)
        self._run_on_startup = bool(spec.trigger.get("runOnStartup", False))
        self._thread = threading.Thread(target=self._run, name=f"timer-{spec.name}")

    def start(self) -> None:
        """Start the schedule in a background thread."""
        self._thread.start()

    def join(self) -> None:
        """Wait until the schedule has stopped and a running invocation has finished."""
        self._thread.join()

    def _run(self) -> None:
        last = _now()
        if self._run_on_startup:
            self._fire(scheduled=last, following=next_occurrence(self._expression, last))
        while True:
            # From the later of now and the last run: an early wake-up must not fire twice.
            scheduled = next_occurrence(self._expression, max(_now(), last))
            if self._stopping.wait(max(0.0, (scheduled - _now()).total_seconds())):
                return
            self._fire(scheduled=scheduled, following=next_occurrence(self._expression, scheduled))
            last = scheduled

    def _fire(self, *, scheduled: datetime, following: datetime) -> None:
        late = (_now() - scheduled).total_seconds()
        request = TimerRequest(
            past_due=late > PAST_DUE_TOLERANCE_SECONDS,
            schedule_status={"Last": scheduled.isoformat(), "Next": following.isoformat(),
                             "LastUpdated": _now().isoformat()},
            schedule={"AdjustForDST": True},
        )
        try:
            self._invoker.invoke(self._spec, request, reason=f"Timer fired at {_now().isoformat()}")
        except InvocationFailed:
            pass  # already logged with its traceback; the schedule goes on


def _now() -> datetime:
    return datetime.now().astimezone()
