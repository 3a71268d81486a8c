"""Swagger UI in headless Chromium, with no network interception: the page and every file it
loads come from the app's own origin (the pinned swagger-ui-bundle-v2 package), every other
host is unresolvable, and "Try it out" on POST /jobs submits a real job."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from swagger_ui_bundle import swagger_ui_path

from tests.e2e.conftest import JobApp, serve

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 # Only the local host resolves: a request to any other host fails.
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def chromium_path() -> str:
    """The system Chromium, or skip (fail where REQUIRE_BROWSER=1, as in CI)."""
    found = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if found:
        return found
    reason = "no Chromium found: install Debian's `chromium` (apt-get install chromium)"
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def docs_page(app: JobApp, requested: list[str]) -> Iterator[Any]:
    """/api/docs open in Chromium; every URL the page requests is appended to `requested`."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    assert app.host is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("request", lambda r: requested.append(r.url))
        page.goto(f"{app.host.base_url}/api/docs")
        page.locator("#operations-jobs-submitJob").wait_for(timeout=15_000)
        yield page
        browser.close()


def off_origin(app: JobApp, urls: list[str]) -> list[str]:
    assert app.host is not None
    own = urlsplit(app.host.base_url).netloc
    return [url for url in urls if urlsplit(url).netloc != own and not url.startswith("data:")]


def test_swagger_ui_renders_and_submits_a_job_from_its_own_origin(job_app: JobApp) -> None:
    requested: list[str] = []
    with docs_page(job_app, requested) as page:
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        code, answer = try_it_out_submit(page)
    assert code == "202"
    assert answer["status"] == "accepted"
    assert job_app.wait_for(answer["job_id"], {"completed"})["status"] == "completed"
    assert off_origin(job_app, requested) == []
    assert any(url.endswith("/api/docs/swagger-ui-bundle.js") for url in requested)
    assert errors == []


@pytest.fixture
def typed_app() -> Iterator[JobApp]:
    """The app with a job type whose payload has a model: the body is a union by job_type."""
    yield from serve(JOB_HANDLER_MODULES="examples.resize")


def test_swagger_ui_shows_each_job_types_body_and_submits_one(typed_app: JobApp) -> None:
    requested: list[str] = []
    with docs_page(typed_app, requested) as page:
        schemas = page.locator("section.models")  # open when the page loads
        for name in ("ResizeJobSubmission", "ResizePayload", "FreeFormJobSubmission"):
            schemas.get_by_text(name, exact=True).first.wait_for(timeout=15_000)
        code, answer = try_it_out_submit(page)
    assert code == "202"
    assert typed_app.wait_for(str(answer["job_id"]), {"completed"})["status"] == "completed"
    assert off_origin(typed_app, requested) == []


def test_swagger_ui_authorize_sends_the_function_key(job_app: JobApp) -> None:
    """Under FUNCTION (the default) the document declares the x-functions-key scheme, so the
    Authorize button takes a key and "Try it out" sends it."""
    key = "test-function-key-0123456789"
    sent: list[dict[str, str]] = []
    requested: list[str] = []
    with docs_page(job_app, requested) as page:
        page.on("request", lambda r: sent.append(r.headers) if r.method == "POST" else None)
        page.locator(".auth-wrapper .authorize").click()
        page.locator(".auth-container input#api_key_value").fill(key)
        page.locator(".auth-btn-wrapper .authorize").click()
        page.locator(".auth-btn-wrapper .btn-done").click()
        code, _ = try_it_out_submit(page)
    assert code == "202"
    assert [headers.get("x-functions-key") for headers in sent] == [key]
    assert off_origin(job_app, requested) == []


def try_it_out_submit(page: Any) -> tuple[str, dict[str, object]]:
    """Open POST /api/jobs in Swagger UI, press "Try it out" and "Execute"; the live answer."""
    operation = page.locator("#operations-jobs-submitJob")
    operation.locator(".opblock-summary").click()
    # The page may open with "Try it out" already on; then the button reads "Cancel".
    operation.get_by_role("button", name="Cancel").or_(
        operation.get_by_role("button", name="Try it out")).first.wait_for()
    if operation.get_by_role("button", name="Try it out").count():
        operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=15_000)
    code = status.inner_text().strip()
    body = operation.locator(".live-responses-table tbody .response-col_description pre").first
    answer: dict[str, object] = json.loads(body.inner_text())
    return code, answer


def test_swagger_ui_files_are_the_pinned_packages_and_nothing_else(job_app: JobApp) -> None:
    assert job_app.host is not None
    docs = f"{job_app.host.base_url}/api/docs"
    assert version("swagger-ui-bundle-v2") == "5.31.0"
    bundle = requests.get(f"{docs}/swagger-ui-bundle.js", timeout=10)
    assert bundle.status_code == 200
    assert bundle.content == (swagger_ui_path / "swagger-ui-bundle.js").read_bytes()
    assert bundle.headers["Content-Type"].startswith("text/javascript")
    page = requests.get(docs, timeout=10)
    policy = page.headers["Content-Security-Policy"]
    assert "https:" not in policy and "default-src 'self'" in policy
    for name in ("index.html", "..%2Fswagger-ui.js", "swagger-ui.js.map"):
        assert requests.get(f"{docs}/{name}", timeout=10).status_code == 404, name
