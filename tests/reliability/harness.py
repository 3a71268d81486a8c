"""The reliability harness: the app on the local host over a restartable Azurite, and the
accounting every scenario ends with."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from tests.support import devhost_process
from tests.support.azurite import ACCOUNT_KEY, Azurite

ROOT = Path(__file__).resolve().parents[2]
MAX_DEQUEUE = 5
HOST_JSON = {"extensions": {"queues": {
    "maxPollingInterval": "00:00:00.200", "visibilityTimeout": "00:00:01",
    "maxDequeueCount": MAX_DEQUEUE,
    "batchSize": 16, "newBatchThreshold": 8,
}}}
REPORT_DIR = ROOT / "build" / "reliability"
TERMINAL = {"completed", "failed", "cancelled"}


@dataclass
class Figures:
    """One scenario's accounting, as the reliability report prints it."""

    scenario: str
    submitted: int = 0
    completed: int = 0
    failed: int = 0
    duplicates_delivered: int = 0
    handler_runs: int = 0
    lost: int = 0
    overwritten: int = 0
    drain_seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        REPORT_DIR.mkdir(parents=True, exist_ok=True)
        path = REPORT_DIR / f"{self.scenario}.json"
        path.write_text(json.dumps(asdict(self), indent=2))


class Rig:
    """A persistent Azurite (so it can stop and start again) and the app on the local host."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.azurite = Azurite(location=workdir / "azurite")
        self.runs_file = workdir / "runs.log"
        self.runs_file.touch()
        self.host: devhost_process.DevHostProcess | None = None
        self.session = requests.Session()
        self.logs: list[str] = []

    def start(self) -> None:
        self.azurite.start()
        self.start_host()

    def start_host(self) -> None:
        env = {
            "AzureWebJobsStorage": self.azurite.connection_string,
            "JOB_HANDLER_MODULES": "tests.reliability.handlers",
            "RELIABILITY_RUNS": str(self.runs_file),
            "AzureFunctionsJobHost__extensions__queues__maxDequeueCount": str(MAX_DEQUEUE),
            "DEVHOST_MESSAGE_LEASE_SECONDS": "3",
        }
        self.host = devhost_process.start(ROOT, env=env, host_json_override=HOST_JSON)
        self.host.wait_ready()

    def kill_host(self) -> None:
        """SIGKILL the host, as a crash would, keeping what it logged."""
        assert self.host is not None
        self.host.kill()
        self.logs.append(self.host.stdout() + self.host.stderr())
        self.host.cleanup()
        self.host = None

    def stop(self) -> None:
        if self.host is not None:
            self.host.stop()
            self.logs.append(self.host.stdout() + self.host.stderr())
            self.host.cleanup()
        self.azurite.stop()

    def all_logs(self) -> str:
        live = self.host.stdout() + self.host.stderr() if self.host else ""
        return "".join(self.logs) + live

    @property
    def url(self) -> str:
        assert self.host is not None
        return f"{self.host.base_url}/api/jobs"

    def submit(self, body: dict[str, Any], **headers: str) -> requests.Response:
        return self.session.post(self.url, json=body, headers=headers, timeout=30)

    def submit_many(self, bodies: Iterable[dict[str, Any]], clients: int = 16, *,
                    keyed: bool = False) -> list[str]:
        """Submit concurrently; every answer must be 202. Returns the job ids.

        `keyed`: each with an Idempotency-Key of its own, so its key row keeps its message.
        """
        def one(body: dict[str, Any]) -> requests.Response:
            return self.submit(body, **({"Idempotency-Key": uuid.uuid4().hex} if keyed else {}))

        with ThreadPoolExecutor(clients) as pool:
            answers = list(pool.map(one, bodies))
        assert {a.status_code for a in answers} == {202}, Counter(a.status_code for a in answers)
        return [a.json()["job_id"] for a in answers]

    def table(self) -> TableClient:
        return TableClient.from_connection_string(self.azurite.connection_string, "jobs")

    def queue(self, name: str) -> QueueClient:
        """A raw client: it sends and reads message text exactly as given, no encoding."""
        return QueueClient.from_connection_string(self.azurite.connection_string, name)

    def inject(self, name: str, text: str | bytes, *, as_host: bool = True) -> None:
        """Put a message straight on a queue: base64, as the host writes, or raw bytes-as-text."""
        raw = text.encode() if isinstance(text, str) else text
        body = base64.b64encode(raw).decode() if as_host else raw.decode()
        queue = self.queue(name)
        try:
            queue.send_message(body)
        except ResourceNotFoundError:
            # The host's listener never creates its queue; only an output binding does.
            queue.create_queue()
            queue.send_message(body)

    def jobs(self) -> dict[str, dict[str, Any]]:
        rows = self.table().query_entities("RowKey eq 'job'")
        return {row["PartitionKey"]: dict(row) for row in rows}

    def runs(self) -> Counter[str]:
        lines = self.runs_file.read_text().split()
        return Counter(lines[0::2])

    def run_ids(self) -> dict[str, set[str]]:
        pairs = self.runs_file.read_text().split()
        found: dict[str, set[str]] = {}
        for job_id, run_id in zip(pairs[0::2], pairs[1::2], strict=True):
            found.setdefault(job_id, set()).add(run_id)
        return found

    def drain(self, job_ids: Iterable[str], timeout: float) -> float:
        """Wait until every job is terminal; return how long that took."""
        wanted = set(job_ids)
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            jobs = self.jobs()
            if all(jobs.get(i, {}).get("status") in TERMINAL for i in wanted):
                break
            time.sleep(0.25)
        return time.monotonic() - started


def account(rig: Rig, scenario: str, job_ids: list[str], *, drain_seconds: float,
            duplicates: int = 0) -> Figures:
    """The end-of-scenario accounting: every job terminal, no completed job overwritten."""
    jobs = rig.jobs()
    run_ids = rig.run_ids()
    statuses = Counter(jobs[i]["status"] if i in jobs else "missing" for i in job_ids)
    lost = [i for i in job_ids if jobs.get(i, {}).get("status") not in TERMINAL]
    overwritten = [i for i in job_ids if _overwritten(jobs.get(i), run_ids.get(i, set()))]
    assert not overwritten, overwritten
    figures = Figures(
        scenario=scenario,
        submitted=len(job_ids),
        completed=statuses["completed"],
        failed=statuses["failed"],
        duplicates_delivered=duplicates,
        handler_runs=sum(rig.runs()[i] for i in job_ids),
        lost=len(lost),
        overwritten=len(overwritten),
        drain_seconds=round(drain_seconds, 1),
    )
    assert_no_secrets(rig.all_logs(), rig.azurite.connection_string)
    return figures


def _overwritten(row: dict[str, Any] | None, run_ids: set[str]) -> bool:
    """Whether a completed row holds a result no run returned, or was written after it."""
    if row is None or row["status"] != "completed":
        return False
    result = json.loads(row["result"])
    forged = "run_id" in result and result["run_id"] not in run_ids
    return forged or row["updated_at"] != row["completed_at"]


def assert_no_secrets(logs: str, connection_string: str) -> None:
    """No log line may carry the storage connection string or the account key."""
    assert logs, "the host logged nothing"
    assert ACCOUNT_KEY not in logs
    assert connection_string not in logs
    assert "AccountKey=" not in logs


def message_for(rig: Rig, row: dict[str, Any]) -> str:
    """The queue message the app sent for a keyed job's row: what a duplicate carries.

    A message names its job only as sent (its job id is a digest of it), so it is read
    back from the job's Idempotency-Key row, which keeps it for replays.
    """
    key = rig.table().get_entity(row["idempotency_row"], "key")
    return bytes(key["message"]).decode()


def wait_until(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not met within {timeout}s: {what}")


def unique_customer() -> str:
    return f"rel-{uuid.uuid4().hex[:8]}"


SCALE_APP = '''"""The recipe's app as the scale-out scenario runs it: the timer every {every} s."""

# Written by tests/reliability/harness.py; the schedule is the only change.

import logging

import function_app

# The local host logs each invocation at INFO; the app leaves the root logger at WARNING.
logging.getLogger("devhost").setLevel(logging.INFO)
for builder in function_app.app._function_builders:
    for binding in builder._function._bindings:
        if binding.type == "timerTrigger":
            binding.schedule = "*/{every} * * * * *"
app = function_app.app
'''


class Cluster(Rig):
    """Several local hosts on one Azurite, as instances of one app would run: they share the
    queues and the table, and each runs the timer (the local host has no singleton lock)."""

    def __init__(self, workdir: Path, *, size: int = 3, timer_every: int = 2,
                 env: dict[str, str] | None = None) -> None:
        super().__init__(workdir)
        self.hosts: list[devhost_process.DevHostProcess | None] = [None] * size
        self.extra_env = env or {}
        self.script_root = workdir / "app"
        self.script_root.mkdir()
        (self.script_root / "host.json").write_text((ROOT / "host.json").read_text())
        (self.script_root / "scale_app.py").write_text(SCALE_APP.format(every=timer_every))
        self.host_logs: list[list[str]] = [[] for _ in range(size)]

    def start(self) -> None:
        self.azurite.start()
        for index in range(len(self.hosts)):
            self.hosts[index] = self._launch()
        for host in self.hosts:
            assert host is not None
            host.wait_ready(timeout=60)

    def _launch(self) -> devhost_process.DevHostProcess:
        env = {
            "AzureWebJobsStorage": self.azurite.connection_string,
            "PYTHON_SCRIPT_FILE_NAME": "scale_app.py",
            "JOB_HANDLER_MODULES": "tests.reliability.handlers",
            "RELIABILITY_RUNS": str(self.runs_file),
            "AzureFunctionsJobHost__extensions__queues__maxDequeueCount": str(MAX_DEQUEUE),
            "DEVHOST_MESSAGE_LEASE_SECONDS": "3",
            **self.extra_env,
        }
        return devhost_process.start(self.script_root, env=env, host_json_override=HOST_JSON)

    def restart(self, index: int) -> None:
        """SIGKILL one host, as a crash would, and start it again."""
        host = self.hosts[index]
        assert host is not None
        host.kill()
        self.host_logs[index].append(host.stdout() + host.stderr())
        host.cleanup()
        self.hosts[index] = self._launch()
        self.hosts[index].wait_ready(timeout=60)  # type: ignore[union-attr]

    def stop(self) -> None:
        for index, host in enumerate(self.hosts):
            if host is not None:
                host.stop()
                self.host_logs[index].append(host.stdout() + host.stderr())
                host.cleanup()
                self.hosts[index] = None
        self.azurite.stop()

    def logs_of(self, index: int) -> str:
        host = self.hosts[index]
        live = host.stdout() + host.stderr() if host is not None else ""
        return "".join(self.host_logs[index]) + live

    def all_logs(self) -> str:
        return "".join(self.logs_of(i) for i in range(len(self.hosts)))

    def urls(self) -> list[str]:
        """Each host's jobs URL, whether or not it is up right now."""
        return [f"{host.base_url}/api/jobs" for host in self.hosts if host is not None]
