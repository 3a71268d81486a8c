"""App settings: the hour windows accept numbers in their range and refuse the rest."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.settings import InvalidSetting, Settings

ENV = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


@pytest.mark.parametrize(("name", "field"), [("JOB_RETENTION_HOURS", "retention"),
                                             ("JOB_ABANDON_AFTER_HOURS", "abandon_after")])
@pytest.mark.parametrize(("value", "expected"), [
    ("0.05", timedelta(minutes=3)), ("0.5", timedelta(minutes=30)),
    ("36", timedelta(hours=36)), ("87600", timedelta(hours=87_600))])
def test_settings_hours_accept_non_negative_numbers(name: str, field: str, value: str,
                                                    expected: timedelta) -> None:
    assert getattr(Settings.from_env({**ENV, name: value}), field) == expected


def test_settings_retention_accepts_zero() -> None:
    assert Settings.from_env({**ENV, "JOB_RETENTION_HOURS": "0"}).retention == timedelta(0)


@pytest.mark.parametrize(("name", "minimum"), [("JOB_RETENTION_HOURS", "0"),
                                               ("JOB_ABANDON_AFTER_HOURS", "0.05")])
@pytest.mark.parametrize("value", ["-1", "week", "", "nan", "inf", "87601", "100000000"])
def test_settings_hours_refuse_negative_and_non_numbers(name: str, minimum: str, value: str
                                                        ) -> None:
    with pytest.raises(InvalidSetting,
                       match=f"{name} must be a number of hours from {minimum} to 87600"):
        Settings.from_env({**ENV, name: value})


@pytest.mark.parametrize("value", ["0", "0.04"])
def test_settings_abandon_after_refuses_windows_that_would_sweep_live_jobs(value: str) -> None:
    """At 0 every timer run would fail every running job, even one that just reported
    progress; start-up stops instead."""
    with pytest.raises(InvalidSetting, match="JOB_ABANDON_AFTER_HOURS must be a number of "
                       "hours from 0.05 to 87600"):
        Settings.from_env({**ENV, "JOB_ABANDON_AFTER_HOURS": value})


def test_settings_hours_defaults() -> None:
    settings = Settings.from_env(ENV)
    assert settings.retention == timedelta(hours=168)
    assert settings.abandon_after == timedelta(hours=24)
