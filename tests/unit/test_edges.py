"""Pure helpers at the edges: request headers, JSON log lines, and the auth-level setting."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.headers import correlation_id, is_idempotency_key
from jobs.logs import ContextLogRecord, JsonFormatter, log_context

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("value", "ok"), [("a", True), ("x" * 255, True), ("~ !", True),
                                           ("", False), ("x" * 256, False), ("\u00e9", False),
                                           ("a\nb", False)])
def test_headers_idempotency_key_is_printable_ascii(value: str, ok: bool) -> None:
    assert is_idempotency_key(value) is ok


def test_headers_correlation_id_prefers_traceparent_then_header_then_new() -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert correlation_id(trace, "mine") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert correlation_id("garbage", "mine") == "mine"
    assert correlation_id("00-" + "0" * 32 + "-00f067aa0ba902b7-01", "mine") == "mine"
    made = correlation_id(None, "has spaces")
    assert len(made) == 32 and made != correlation_id(None, None)


def test_logs_json_line_has_message_context_and_extra_fields() -> None:
    with log_context(correlation_id="c-1", job_id="from-context"):
        record = ContextLogRecord("jobs.x", logging.INFO, __file__, 1, "job %s", ("done",), None)
    record.job_id = "from-extra"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "job done" and line["level"] == "INFO"
    assert line["correlation_id"] == "c-1"
    assert line["job_id"] == "from-extra"
    assert "\n" not in JsonFormatter().format(record)


def _http_auth_levels(level: str | None) -> dict[str, str]:
    env = {**os.environ, "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    env.pop("JOBS_AUTH_LEVEL", None)
    if level is not None:
        env["JOBS_AUTH_LEVEL"] = level
    script = (
        "import json, function_app as f\n"
        "built = [b.build(f.app.auth_level) for b in f.app._function_builders]\n"
        "print(json.dumps({fn.get_function_name(): b['authLevel'] for fn in built for b in "
        "json.loads(fn.get_function_json())['bindings'] if b['type'] == 'httpTrigger'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    levels: dict[str, str] = json.loads(out)
    return levels


JOB_ROUTES = {"submit_job", "get_job_status", "cancel_job"}
DOC_ROUTES = {"openapi_document", "swagger_ui"}


def test_auth_level_defaults_to_function_on_every_job_route() -> None:
    levels = _http_auth_levels(None)
    assert set(levels) == JOB_ROUTES | DOC_ROUTES
    assert {levels[name] for name in JOB_ROUTES} == {"FUNCTION"}


def test_auth_level_anonymous_opens_every_job_route() -> None:
    levels = _http_auth_levels("ANONYMOUS")
    assert {levels[name] for name in JOB_ROUTES} == {"ANONYMOUS"}


def test_auth_level_leaves_the_document_and_ui_public_so_swagger_ui_can_load() -> None:
    assert {_http_auth_levels(None)[name] for name in DOC_ROUTES} == {"ANONYMOUS"}
