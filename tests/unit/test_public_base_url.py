"""JOBS_PUBLIC_BASE_URL: parsed, checked and used as one value; a bad one stops start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.settings import InvalidSetting, Settings

ROOT = Path(__file__).resolve().parents[2]
ENV = {"AzureWebJobsStorage__accountName": "acct"}


def _base_url(value: str) -> str | None:
    return Settings.from_env({**ENV, "JOBS_PUBLIC_BASE_URL": value}).public_base_url


@pytest.mark.parametrize(("value", "used"), [
    ("https://api.example.com", "https://api.example.com"),
    ("https://api.example.com/jobs-api/", "https://api.example.com/jobs-api"),
    ("HTTPS://API.Example.COM:8443/Jobs", "https://api.example.com:8443/Jobs"),
    ("https://10.0.0.4/api%20v1", "https://10.0.0.4/api%20v1"),
    ("https://[2001:db8::1]:443/x", "https://[2001:db8::1]:443/x"),
    ("http://localhost:7071", "http://localhost:7071"),
    ("http://127.0.0.1:7071/", "http://127.0.0.1:7071"),
    ("http://[::1]:7071", "http://[::1]:7071"),
])
def test_public_base_url_is_used_as_rebuilt_from_its_checked_parts(value: str, used: str) -> None:
    assert _base_url(value) == used


@pytest.mark.parametrize("value", ["", "   "])
def test_public_base_url_unset_or_blank_means_the_request_url(value: str) -> None:
    assert _base_url(value) is None


@pytest.mark.parametrize(("value", "reason"), [
    ("https://api.example.com\r\nSet-Cookie: a=b", "control characters"),
    ("https://api.example.com/\n", "control characters"),
    ("https://api.example.com/a b", "whitespace"),
    (" https://api.example.com", "whitespace"),
    ("https://api.example.com/\x00", "control characters"),
    ("https://user:secret@api.example.com", "credentials"),
    ("https://user@api.example.com", "credentials"),
    ("http://api.example.com", "https"),
    ("http://10.0.0.4", "https"),
    ("ftp://api.example.com", "https"),
    ("api.example.com", "needs a host"),
    ("https://", "needs a host"),
    ("https:///jobs", "needs a host"),
    ("https://exa_mple.com", "needs a host"),
    ("https://bücher.example", "needs a host"),
    ("https://api.example.com:99999", "port"),
    ("https://api.example.com:0", "port"),
    ("https://api.example.com:http", "port"),
    ("https://api.example.com:", "port"),
    ("https://api.example.com/?a=1", "'?'"),
    ("https://api.example.com/?", "'?'"),
    ("https://api.example.com/#top", "'#'"),
    ("https://api.example.com/a\\b", "path"),
    ("https://api.example.com/%zz", "path"),
    ("https://api.example.com/<script>", "path"),
])
def test_public_base_url_refuses_a_bad_value_naming_the_setting(value: str, reason: str) -> None:
    with pytest.raises(InvalidSetting, match="JOBS_PUBLIC_BASE_URL") as raised:
        _base_url(value)
    assert reason in str(raised.value)


def test_public_base_url_bad_value_stops_start_up_naming_the_setting() -> None:
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("azurewebjobs")}
    env.update({**ENV, "JOBS_PUBLIC_BASE_URL": "https://api.example.com\r\nX-Injected: 1"})
    done = subprocess.run([sys.executable, "-c", "import function_app"], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "InvalidSetting" in done.stderr and "JOBS_PUBLIC_BASE_URL" in done.stderr
