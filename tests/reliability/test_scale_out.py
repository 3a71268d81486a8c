"""Scale-out: three hosts on one storage account, as three instances run, two of them crashing.

Three local hosts share the queues and the table, and each runs the timer (every 2 s here,
and the local host, like the real one without its blob lease, lets all three run it at once:
the purge and the abandoned-job sweep must tolerate that). Clients spread 600 submits over
the hosts with an Idempotency-Key each and retry a refused or 5xx answer on another host.
At two random moments one random host is SIGKILLed and started again. The accounting is the
usual one: every job terminal, none lost, no completed job overwritten, and the completed
handler runs per job.

The clients do what the README asks of them: retry a refused or 5xx POST with the same key
(a host killed between the row write and the queue send answers nothing, and the replay
queues the message again); a client that saw no answer at all also posts again after 30 s.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.reliability.harness import TERMINAL, Cluster, account, unique_customer

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]
JOBS = 600
HOSTS = 3
KILLS = 2
# Long enough that a SIGKILL finds handlers mid-run, short enough to drain in seconds.
HANDLER_SECONDS = 0.2
# A running job not updated for this long is failed by the sweep; far above a handler run,
# so the sweep acts only on a job whose host died and whose message did not come back.
ABANDON_AFTER_HOURS = "0.05"

# A client whose POST got no answer (its host was killed) posts again after this long.
REPOST_AFTER_SECONDS = 30


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, size=HOSTS,
                      env={"JOB_ABANDON_AFTER_HOURS": ABANDON_AFTER_HOURS})
    cluster.start()
    yield cluster
    cluster.stop()


class Clients:
    """Clients behind a load balancer: each submit goes to the next host that answers."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.turn = itertools.count()
        self.answers: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.requests: dict[str, tuple[str, dict[str, Any]]] = {}  # job -> key, body
        self.reposts = 0

    def submit(self, body: dict[str, Any], key: str | None = None) -> str:
        key = key or uuid.uuid4().hex
        while True:
            urls = self.cluster.urls()
            url = urls[next(self.turn) % len(urls)]
            try:
                answer = requests.post(url, json=body, headers={"Idempotency-Key": key},
                                       timeout=30)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                # Refused, or the host died while answering (its body cut short): the
                # client cannot tell whether the job was made, so it retries with its key.
                self.count("refused")
                time.sleep(0.05)
                continue
            self.count(str(answer.status_code))
            if answer.status_code == 202:
                job_id = str(answer.json()["job_id"])
                self.requests[job_id] = (key, body)
                return job_id
            assert answer.status_code >= 500, answer.text
            time.sleep(0.05)

    def post_again(self, job_id: str) -> None:
        """The README's advice for a job that stays accepted: POST again with the same key."""
        key, body = self.requests[job_id]
        assert self.submit(body, key) == job_id
        self.reposts += 1

    def count(self, what: str) -> None:
        with self.lock:
            self.answers[what] += 1


def test_reliability_scale_out_three_hosts_two_crashes(cluster: Cluster) -> None:
    started = time.monotonic()
    customer = unique_customer()
    payload = {"seconds": HANDLER_SECONDS}
    bodies = [{"job_type": "counted", "customer_id": customer, "payload": payload}
              for _ in range(JOBS)]
    clients = Clients(cluster)
    job_ids: list[str] = []
    submitter = threading.Thread(
        target=lambda: job_ids.extend(_submit_all(clients, bodies)), name="clients")
    submitter.start()
    kill_points = []
    for _ in range(KILLS):
        time.sleep(random.uniform(1.0, 6.0))
        statuses = Counter(row["status"] for row in cluster.jobs().values())
        victim = random.randrange(HOSTS)
        kill_points.append({"at_s": round(time.monotonic() - started, 1), "host": victim,
                            "accepted": statuses["accepted"], "running": statuses["running"],
                            "finished": sum(statuses[s] for s in ("completed", "failed"))})
        cluster.restart(victim)
    submitter.join(300)
    assert not submitter.is_alive() and len(job_ids) == JOBS
    drained = _drain(cluster, clients, job_ids, timeout=300)
    figures = account(cluster, "scale-out", job_ids, drain_seconds=time.monotonic() - started)
    runs = cluster.runs()
    timer_runs = [cluster.logs_of(i).count("Executed 'Functions.purge_expired_jobs' (Succeeded")
                  for i in range(HOSTS)]
    figures.notes.update({
        "hosts": HOSTS,
        "kill points": kill_points,
        "completed handler runs per job": dict(sorted(Counter(runs[i] for i in job_ids).items())),
        "jobs failed as abandoned": sum(1 for row in cluster.jobs().values()
                                        if row.get("error_code") == "abandoned"),
        "timer runs per host": timer_runs,
        "client answers": dict(clients.answers),
        "seconds after the last submit to drain": round(drained, 1),
        "POSTs again for jobs left accepted": clients.reposts,
    })
    figures.save()
    assert figures.lost == 0 and figures.overwritten == 0
    assert figures.completed + figures.failed == JOBS
    assert len(set(job_ids)) == JOBS  # one job per Idempotency-Key
    jobs = cluster.jobs()
    assert all(runs[i] >= 1 for i in job_ids if jobs[i]["status"] == "completed")
    assert all(count > 0 for count in timer_runs)  # the timer really ran on every host


def _submit_all(clients: Clients, bodies: list[dict[str, Any]]) -> list[str]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(12) as pool:
        return list(pool.map(clients.submit, bodies))


def _drain(cluster: Cluster, clients: Clients, job_ids: list[str], timeout: float) -> float:
    """Wait until every job is terminal, POSTing again for jobs that stay accepted."""
    started = time.monotonic()
    last_post = dict.fromkeys(job_ids, started)
    while time.monotonic() - started < timeout:
        jobs = cluster.jobs()
        waiting = [i for i in job_ids if jobs.get(i, {}).get("status") not in TERMINAL]
        if not waiting:
            break
        for job_id in waiting:
            quiet = time.monotonic() - last_post[job_id]
            if jobs[job_id]["status"] == "accepted" and quiet > REPOST_AFTER_SECONDS:
                clients.post_again(job_id)
                last_post[job_id] = time.monotonic()
        time.sleep(0.5)
    return time.monotonic() - started
