"""Timer triggers: NCRONTAB schedules or fixed intervals, in the machine's local time.

A schedule is what the timer extension reads (CronSchedule.TryCreate, then TimeSpan in
Azure/azure-webjobs-sdk-extensions): six NCRONTAB fields with seconds first, five fields
without seconds, or an `hh:mm:ss` interval. NCrontab fires only when the day-of-month AND the
day-of-week fields both match (croniter's default is either one), and it knows none of
croniter's extensions `L`, `#` and `H`, which are refused here rather than run.

Each timer function has one thread, so its invocations never overlap, as on the real host
(where a timer is a singleton). The next occurrence is computed after an invocation ends;
`runOnStartup` fires once when the host starts. `useMonitor` is ignored: the local host
keeps no schedule history, so runs missed while it was down are not made up.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.functions.timer import TimerRequest
from croniter import croniter

from devhost.catalog import FunctionSpec
from devhost.errors import SettingsError
from devhost.invocation import InvocationFailed, Invoker
from devhost.settings import TIMESPAN, timespan_seconds

logger = logging.getLogger(__name__)

# Waking up a few milliseconds late is not lateness; a run this much behind is past due.
PAST_DUE_TOLERANCE_SECONDS = 1.0


_NOT_NCRONTAB = re.compile(r"[LH#]", re.IGNORECASE)
_NAMES = re.compile(r"JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT",
                    re.IGNORECASE)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: an NCRONTAB expression, or a fixed interval in seconds."""

    expression: str
    interval: float | None = None  #: seconds, for an `hh:mm:ss` schedule

    def next_after(self, after: datetime) -> datetime:
        """The first time strictly after `after` that the schedule fires."""
        if self.interval is not None:
            return after + timedelta(seconds=self.interval)
        six = len(self.expression.split()) == 6
        following: datetime = croniter(self.expression, after, second_at_beginning=six,
                                       day_or=False).get_next(datetime)
        return following


def parse_schedule(expression: str, *, function: str) -> Schedule:
    """Read a schedule as the timer extension does; SettingsError if it cannot be one."""
    fields = expression.split()
    if len(fields) in (5, 6):
        if _NOT_NCRONTAB.search(_NAMES.sub("", expression)):
            raise SettingsError(f"function {function}: schedule {expression!r} uses croniter "
                                "syntax NCRONTAB does not have (L, # or H)")
        try:
            croniter(expression, _now(), second_at_beginning=len(fields) == 6, day_or=False)
        except (ValueError, KeyError) as e:
            raise SettingsError(f"function {function}: invalid schedule {expression!r}: {e}"
                                ) from e
        return Schedule(expression)
    match = TIMESPAN.match(expression.strip())
    if match is not None and timespan_seconds(match) > 0:
        return Schedule(expression, interval=timespan_seconds(match))
    raise SettingsError(f"function {function}: schedule {expression!r} is neither an NCRONTAB "
                        "expression ({second} {minute} {hour} {day} {month} {day-of-week}, or "
                        "five fields without seconds) nor a time span like 01:00:00")


def check_schedule(expression: str, *, function: str) -> None:
    """Raise SettingsError unless the timer extension would accept `expression`."""
    parse_schedule(expression, function=function)


def next_occurrence(expression: str, after: datetime) -> datetime:
    """Return the first time strictly after `after` that the schedule fires."""
    return parse_schedule(expression, function="(schedule)").next_after(after)


class TimerRunner:
    """Fires one timer-triggered function on its schedule until the host stops."""

    def __init__(self, spec: FunctionSpec, *, invoker: Invoker, stopping: threading.Event) -> None:
        self._spec = spec
        self._invoker = invoker
        self._stopping = stopping
        self._schedule = parse_schedule(str(spec.trigger.get("schedule")), function=spec.name)
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
            self._fire(scheduled=last, following=self._schedule.next_after(last))
        while True:
            # From the later of now and the last run: an early wake-up must not fire twice.
            scheduled = self._schedule.next_after(max(_now(), last))
            if self._stopping.wait(max(0.0, (scheduled - _now()).total_seconds())):
                return
            self._fire(scheduled=scheduled, following=self._schedule.next_after(scheduled))
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
