"""App settings: the hour windows accept any non-negative number and refuse the rest."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.settings import InvalidSetting, Settings

ENV = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


@pytest.mark.parametrize(("name", "field"), [("JOB_RETENTION_HOURS", "retention"),
                                             ("JOB_ABANDON_AFTER_HOURS", "abandon_after")])
@pytest.mark.parametrize(("value", "expected"), [
    ("0", timedelta(0)), ("0.5", timedelta(minutes=30)), ("36", timedelta(hours=36)),
    ("87600", timedelta(hours=87_600))])
def test_settings_hours_accept_non_negative_numbers(name: str, field: str, value: str,
                                                    expected: timedelta) -> None:
    assert getattr(Settings.from_env({**ENV, name: value}), field) == expected


@pytest.mark.parametrize("name", ["JOB_RETENTION_HOURS", "JOB_ABANDON_AFTER_HOURS"])
@pytest.mark.parametrize("value", ["-1", "week", "", "nan", "inf", "87601", "100000000"])
def test_settings_hours_refuse_negative_and_non_numbers(name: str, value: str) -> None:
    with pytest.raises(InvalidSetting, match=f"{name} must be a number of hours from 0 to 87600"):
        Settings.from_env({**ENV, name: value})


def test_settings_hours_defaults() -> None:
    settings = Settings.from_env(ENV)
    assert settings.retention == timedelta(hours=168)
    assert settings.abandon_after == timedelta(hours=24)
