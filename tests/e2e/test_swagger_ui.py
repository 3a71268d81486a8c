"""Swagger UI in headless Chromium: "Try it out" on POST /jobs submits a real job."""

from __future__ import annotations

import json
import mimetypes
import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, JobApp

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SWAGGER_DIST = ROOT / "node_modules" / "swagger-ui-dist"
# The page loads these from a public CDN with Subresource Integrity; serving the pinned npm
# package's byte-identical files keeps the integrity check meaningful where the CDN is
# unreachable.
CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.32.4/"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    """The system Chromium, or skip (fail where REQUIRE_BROWSER=1, as in CI)."""
    found = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if found:
        return found
    reason = "no Chromium found: install Debian's `chromium` (apt-get install chromium)"
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def serve_from_dist(route: object) -> None:
    name = route.request.url.removeprefix(CDN).split("?")[0]  # type: ignore[attr-defined]
    path = (SWAGGER_DIST / name).resolve()
    if SWAGGER_DIST.resolve() not in path.parents or not path.is_file():
        route.fulfill(status=404)  # type: ignore[attr-defined]
        return
    route.fulfill(  # type: ignore[attr-defined]
        status=200, body=path.read_bytes(),
        headers={"Content-Type": mimetypes.guess_type(str(path))[0] or "application/octet-stream",
                 "Access-Control-Allow-Origin": "*"})


def test_swagger_ui_try_it_out_submits_a_job(job_app: JobApp) -> None:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    assert job_app.host is not None
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.route(f"{CDN}**", serve_from_dist)
        page.goto(f"{job_app.host.base_url}/api/docs")
        code, answer = try_it_out_submit(page)
        browser.close()
    assert code == "202"
    assert answer["status"] == "accepted"
    assert job_app.wait_for(answer["job_id"], {"completed"})["status"] == "completed"
    assert not [e for e in errors if "integrity" in e.lower()]


def test_swagger_ui_authorize_sends_the_function_key(job_app: JobApp) -> None:
    """Under FUNCTION (the default) the document declares the x-functions-key scheme, so the
    Authorize button takes a key and "Try it out" sends it."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    assert job_app.host is not None
    key = "test-function-key-0123456789"
    sent: list[dict[str, str]] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route(f"{CDN}**", serve_from_dist)
        page.on("request", lambda r: sent.append(r.headers) if r.method == "POST" else None)
        page.goto(f"{job_app.host.base_url}/api/docs")
        page.locator(".auth-wrapper .authorize").click()
        page.locator(".auth-container input#api_key_value").fill(key)
        page.locator(".auth-btn-wrapper .authorize").click()
        page.locator(".auth-btn-wrapper .btn-done").click()
        code, _ = try_it_out_submit(page)
        browser.close()
    assert code == "202"
    assert [headers.get("x-functions-key") for headers in sent] == [key]


def try_it_out_submit(page: object) -> tuple[str, dict[str, object]]:
    """Open POST /api/jobs in Swagger UI, press "Try it out" and "Execute"; the live answer."""
    operation = page.locator("#operations-jobs-submitJob")  # type: ignore[attr-defined]
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


def test_swagger_dist_is_the_pinned_version() -> None:
    package = json.loads((SWAGGER_DIST / "package.json").read_text())
    assert package["version"] == "5.32.4"
    assert Path(SWAGGER_DIST / "swagger-ui-bundle.js").is_file()
