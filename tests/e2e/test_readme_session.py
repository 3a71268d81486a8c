"""The README's curl session, replayed against the local host: same output, ids and times aside."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.e2e.conftest import ROOT, JobApp

pytestmark = pytest.mark.e2e

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


def readme_session() -> list[tuple[str, str]]:
    """The (command, output) pairs of the README's console block under "Try it with curl"."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Try it with curl", 1)[1]
    block = section.split("```console\n", 1)[1].split("\n```", 1)[0]
    pairs: list[tuple[str, str]] = []
    for chunk in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
        command, _, output = chunk.partition("\n")
        pairs.append((command, output.strip()))
    return pairs


def normalise(text: str, port: int) -> str:
    text = text.replace(f"127.0.0.1:{port}", "localhost:7071").replace(
        f"localhost:{port}", "localhost:7071")
    for pattern, placeholder in VARIABLE:
        text = pattern.sub(placeholder, text)
    return text.strip()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_session_gives_the_documented_output(recipe_app: JobApp) -> None:
    assert recipe_app.host is not None
    port = recipe_app.host.port
    pairs = readme_session()
    assert len(pairs) >= 4
    documented_id = UUID.search(pairs[0][1])
    assert documented_id is not None
    job_id = ""
    for index, (command, expected) in enumerate(pairs):
        live = command.replace("localhost:7071", f"localhost:{port}")
        if job_id:
            live = live.replace(documented_id.group(0), job_id)
        result = subprocess.run(["bash", "-c", live], capture_output=True, text=True,  # noqa: S603,S607
                                check=True, timeout=30)
        actual = result.stdout.replace("\r", "")
        if index == 0:
            found = UUID.search(actual)
            assert found is not None
            job_id = found.group(0)
            recipe_app.wait_for(job_id, {"completed"})
        assert normalise(actual, port) == normalise(expected, port), command
