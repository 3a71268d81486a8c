"""Every `az` command on the deploy, security and operations pages exists, with every flag it
is given.

Opt-in (marker `azcli`): `make check-az AZ=/path/to/az` runs it against that azure-cli's
`az <command> --help`, which needs no login. Without AZ it is skipped.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.azcli

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "docs" / "deploy.md", ROOT / "docs" / "security.md",
         ROOT / "docs" / "operations.md"]
_BLOCK = re.compile(r"^ *```bash\n(.*?)^ *```", re.S | re.M)
# `az` where a command starts: line start, after $( or a shell operator.
_AZ_START = re.compile(r"(?:^|\$\(|&&|\|\||;|\|)\s*(az\s)")
_WORD = re.compile(r"[a-z][a-z0-9-]*")
_FLAG = re.compile(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*|-[a-zA-Z])\b")


def az_commands(text: str) -> list[str]:
    """The az command lines in a page's bash blocks, continuations joined, comments dropped."""
    found = []
    for block in _BLOCK.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("#"):
                continue
            for start in _AZ_START.finditer(line):
                found.append(_until_end(line[start.start(1):]))
    return found


def _until_end(text: str) -> str:
    """The command up to the `)` that closes its $( ... ), or a shell operator."""
    depth, quote = 0, ""
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return text[:i]
            depth -= 1
        elif char in ";|&" and depth == 0:
            return text[:i]
    return text


def split_command(command: str) -> tuple[list[str], list[str]]:
    """(`["functionapp", "create"]`, `["--name", ...]`) from one az command."""
    words = shlex.split(command)[1:]
    path: list[str] = []
    for word in words:
        if not _WORD.fullmatch(word):
            break
        path.append(word)
    flags = [w.split("=", 1)[0] for w in words if w.startswith("-")]
    return path, flags


@cache
def _help(az: str, path: tuple[str, ...]) -> tuple[int, str]:
    env = {**os.environ, "AZURE_CORE_COLLECT_TELEMETRY": "false"}
    done = subprocess.run([az, *path, "--help"], capture_output=True, text=True, env=env,
                          check=False, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_az_command_parser_reads_substitutions_continuations_and_flags() -> None:
    text = ('```bash\nX=$(az identity show -n $I -g $RG --query id -o tsv)\n'
            'az role assignment create --scope $S \\\n  --role "Storage Blob Data Owner"  # c\n'
            '# az not this\n```\n')
    commands = az_commands(text)
    assert [split_command(c) for c in commands] == [
        (["identity", "show"], ["-n", "-g", "--query", "-o"]),
        (["role", "assignment", "create"], ["--scope", "--role"]),
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_az_commands_and_flags_exist_in_the_cli(page: Path) -> None:
    az = os.environ.get("AZ")
    if not az:
        pytest.skip("set AZ to an az executable (make check-az AZ=...)")
    if not page.is_file():
        pytest.skip(f"{page.name} does not exist")
    commands = az_commands(page.read_text(encoding="utf-8"))
    assert commands, f"no az command found on {page.name}"
    problems = []
    for command in commands:
        path, flags = split_command(command)
        code, text = _help(az, tuple(path))
        if code != 0 or "is misspelled or not recognized" in text:
            problems.append(f"az {' '.join(path)}: no such command")
            continue
        known = set(_FLAG.findall(text))
        problems += [f"az {' '.join(path)}: no flag {flag}" for flag in flags if flag not in known]
    assert problems == []
