"""Run the local Functions host (`python -m devhost`) as a child process for end-to-end tests.

    host = devhost_process.start(script_root, env={"AzureWebJobsStorage": conn},
                                 host_json_override={"extensions": {...}})
    host.wait_ready()
    requests.get(host.base_url + "/api/...")
    host.stop()          # SIGTERM, wait, return the exit code

The child's stdout and stderr go to files (no pipe can fill up and block it); read them
with `host.stdout()` and `host.stderr()`, during or after the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.azurite import accepts, free_port

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "Host started"
#: The developer's own settings (`make run` writes them): never read by a test's host.
LOCAL_SETTINGS = "local.settings.json"


class DevHostProcess:
    """One `python -m devhost` child process listening on `port`."""

    def __init__(self, process: subprocess.Popen[bytes], *, port: int, log_dir: Path) -> None:
        self.process = process
        self.port = port
        self.log_dir = log_dir

    @property
    def base_url(self) -> str:
        """Where the host serves HTTP, e.g. http://127.0.0.1:7071 (add /api/... yourself)."""
        return f"http://127.0.0.1:{self.port}"

    def stdout(self) -> str:
        """What the host printed so far: the function list and `Host started`."""
        return _read(self.log_dir / "stdout.log")

    def stderr(self) -> str:
        """The host's and the app's log output so far."""
        return _read(self.log_dir / "stderr.log")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the host printed `Host started` and its port accepts connections."""
        deadline = time.monotonic() + timeout
        while not (READY_LINE in self.stdout() and accepts(self.port)):
            if self.process.poll() is not None:
                raise RuntimeError(f"devhost exited with {self.process.returncode}:\n"
                                   f"{self.stderr()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"devhost not ready after {timeout}s:\n{self.stderr()}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` (graceful stop), wait for the exit and return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        return self.process.returncode

    def kill(self) -> None:
        """Kill the host at once (SIGKILL), as a crash would."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def cleanup(self) -> None:
        """Kill the host if it still runs and remove its log files."""
        self.kill()
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> DevHostProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()


def start(
    script_root: Path | str,
    env: Mapping[str, str] | None = None,
    host_json_override: Mapping[str, Any] | Path | str | None = None,
    *,
    port: int | None = None,
    checkout: Path = ROOT,
) -> DevHostProcess:
    """Start `python -m devhost` for `script_root`; `env` is added to this process's environment.

    `host_json_override` is a dict (written to a temporary file) or a path to a JSON file.
    The call does not wait: use `wait_ready()`. A host started on `checkout` (the repository,
    by default) runs on a copy of it without local.settings.json, so the test's `env` is the
    whole configuration, whatever the developer's file says.
    """
    port = port or free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="devhost-"))
    if Path(script_root).resolve() == Path(checkout).resolve():
        script_root = app_tree(Path(checkout), log_dir / "app")
    args = [sys.executable, "-m", "devhost", "--script-root", str(script_root),
            "--port", str(port)]
    override = _override_file(host_json_override, log_dir)
    if override is not None:
        args += ["--host-json-override", str(override)]
    with open(log_dir / "stdout.log", "wb") as out, open(log_dir / "stderr.log", "wb") as err:
        process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            args, cwd=script_root, env=_child_env(env), stdout=out, stderr=err,
            start_new_session=True,
        )
    return DevHostProcess(process, port=port, log_dir=log_dir)


def app_tree(source: Path, target: Path) -> Path:
    """`target`, made to hold a link to each entry of `source` but its local.settings.json."""
    target.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name != LOCAL_SETTINGS:
            (target / entry.name).symlink_to(entry.resolve())
    return target


def _child_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    # The host runs with the app folder as cwd: make sure `devhost` imports from this checkout.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _override_file(override: Mapping[str, Any] | Path | str | None, log_dir: Path) -> Path | None:
    if override is None or isinstance(override, Path | str):
        return Path(override) if override is not None else None
    path = log_dir / "host.override.json"
    path.write_text(json.dumps(override), encoding="utf-8")
    return path


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""

