"""Timer schedules as the timer extension reads them (pure, no host)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devhost.errors import SettingsError
from devhost.timers import parse_schedule

START = datetime(2026, 11, 29, 8, 0, 0, tzinfo=UTC)  # a Sunday


def test_ncrontab_needs_both_day_of_month_and_day_of_week_to_match() -> None:
    # NCrontab (used by CronSchedule in azure-webjobs-sdk-extensions) fires only on days that
    # match both fields; croniter's default would fire on either. "The 13th, if a Friday":
    schedule = parse_schedule("0 0 0 13 * FRI", function="f")
    fired = schedule.next_after(START)
    assert (fired.day, fired.weekday()) == (13, 4)
    assert fired.date().isoformat() == "2027-08-13"


def test_five_field_schedule_has_no_seconds_field() -> None:
    # CronSchedule.TryCreate: IncludingSeconds unless the expression has exactly 5 fields.
    schedule = parse_schedule("30 9 * * *", function="f")
    assert schedule.next_after(START) == START.replace(hour=9, minute=30)


def test_six_field_schedule_starts_with_seconds() -> None:
    assert parse_schedule("15 * * * * *", function="f").next_after(START) == \
        START + timedelta(seconds=15)


def test_time_span_schedule_fires_at_a_fixed_interval() -> None:
    # TimerTriggerAttributeBindingProvider: not a cron expression, then a TimeSpan gives a
    # ConstantSchedule.
    schedule = parse_schedule("00:05:00", function="f")
    assert schedule.next_after(START) == START + timedelta(minutes=5)


@pytest.mark.parametrize("expression", ["0 0 0 L * *", "0 0 0 * * 5#3", "H 0 * * * *"])
def test_croniter_only_syntax_is_refused(expression: str) -> None:
    with pytest.raises(SettingsError):
        parse_schedule(expression, function="f")


def test_month_and_day_names_are_not_mistaken_for_croniter_syntax() -> None:
    fired = parse_schedule("0 0 12 * JUL THU", function="f").next_after(START)
    assert (fired.month, fired.weekday(), fired.hour) == (7, 3, 12)


@pytest.mark.parametrize("expression", ["every hour", "* * * *", "00:00:00", "0 0 0 32 * *"])
def test_other_schedules_are_refused(expression: str) -> None:
    with pytest.raises(SettingsError):
        parse_schedule(expression, function="f")
