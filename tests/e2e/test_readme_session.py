"""The console sessions of the README and of every docs/*.md page, replayed against the local
host: same output, ids and times aside.

A ```console block is replayed when each of its commands is a `curl` call to
http://localhost:7071; any other block (make, pytest, az) was captured once and is not. The
README runs against the app as shipped; the docs pages against the app with the example job
types of `examples/` loaded, as docs/job-types.md starts it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, JobApp, serve

pytestmark = pytest.mark.e2e

LOCAL_URL = "http://localhost:7071"
DOCS_HANDLER_MODULES = "examples.resize"
FINISHED = {"completed", "failed", "cancelled"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
VARIABLE = [
    (re.compile(r"\b(?!00000000-)" + UUID.pattern), "<job-id>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<correlation-id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<time>"),
    (re.compile(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT"), "<http-date>"),
    (re.compile(r"Content-Length: \d+"), "Content-Length: <n>"),
    # The registered job types: a project that adds its own still matches the documented answer.
    (re.compile(r"known types: [^\"]*"), "known types: <types>"),
]
Session = list[tuple[str, str]]


def console_sessions(page: Path) -> list[Session]:
    """The (command, output) pairs of each ```console block of `page`."""
    blocks = re.findall(r"^```console\n(.*?)^```", page.read_text(), flags=re.M | re.S)
    sessions: list[Session] = []
    for block in blocks:
        pairs: Session = []
        for chunk in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
            command, _, output = chunk.partition("\n")
            pairs.append((command, output.strip()))
        sessions.append(pairs)
    return sessions


def replayed(page: Path) -> list[Session]:
    """The sessions of `page` that a test replays: every command a curl to the local host."""
    return [s for s in console_sessions(page)
            if s and all(c.startswith("curl ") and LOCAL_URL in c for c, _ in s)]


DOC_PAGES = sorted(p for p in (ROOT / "docs").glob("*.md") if replayed(p))


def normalise(text: str, port: int) -> str:
    text = text.replace(f"127.0.0.1:{port}", "localhost:7071").replace(
        f"localhost:{port}", "localhost:7071")
    for pattern, placeholder in VARIABLE:
        text = pattern.sub(placeholder, text)
    return text.strip()


def replay(app: JobApp, session: Session) -> None:
    """Run each command against `app`, with the ids it was answered with in place of the
    documented ones, and compare each output with the documented one."""
    assert app.host is not None
    port = app.host.port
    ids: dict[str, str] = {}
    for command, expected in session:
        live = command.replace("localhost:7071", f"localhost:{port}")
        for documented, actual_id in ids.items():
            live = live.replace(documented, actual_id)
        result = subprocess.run(["bash", "-c", live], capture_output=True, text=True,  # noqa: S603,S607
                                check=True, timeout=30)
        actual = result.stdout.replace("\r", "")
        for documented, actual_id in zip(UUID.findall(expected), UUID.findall(actual),
                                         strict=False):
            ids.setdefault(documented, actual_id)
        accepted = re.search(r'"job_id":"(' + UUID.pattern + ')"', actual)
        if " 202 " in actual.partition("\n")[0] and accepted:
            app.wait_for(accepted.group(1), FINISHED)
        assert normalise(actual, port) == normalise(expected, port), command


@pytest.fixture(scope="module")
def docs_app() -> Iterator[JobApp]:
    """The app with the example job types, as the docs pages run it."""
    yield from serve(JOB_HANDLER_MODULES=DOCS_HANDLER_MODULES)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_session_gives_the_documented_output(recipe_app: JobApp) -> None:
    sessions = replayed(ROOT / "README.md")
    assert len(sessions) == 1 and len(sessions[0]) >= 4
    replay(recipe_app, sessions[0])


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("page", DOC_PAGES, ids=[p.name for p in DOC_PAGES])
def test_docs_curl_sessions_give_the_documented_output(docs_app: JobApp, page: Path) -> None:
    for session in replayed(page):
        replay(docs_app, session)


def test_docs_pages_with_sessions_include_the_job_types_page() -> None:
    """The replay finds the pages' sessions (a parsing slip would silently skip them all)."""
    assert ROOT / "docs" / "job-types.md" in DOC_PAGES
    assert len(replayed(ROOT / "docs" / "job-types.md")[0]) == 5


def test_docs_pages_link_back_to_the_readme() -> None:
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert "](../README.md)" in page.read_text(), page.name
