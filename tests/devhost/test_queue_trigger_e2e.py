"""Queue triggers through a real host process on Azurite: delivery, retries, poison, leases.

The sample host runs with maxDequeueCount 3, visibilityTimeout 1 s and polling of at most
200 ms (see FAST_QUEUES). Every test has its own queues.
"""

from __future__ import annotations

import re
import time
from itertools import pairwise
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError

from tests.devhost.conftest import (
    HostFactory,
    SampleHost,
    collect,
    collect_json,
    ensure_queue,
    peek_all,
    queue_client,
    unique_queue_names,
    wait_for,
)
from tests.support.azurite import Azurite

pytestmark = pytest.mark.e2e
OUTAGE = re.compile(r"Queue '([^']+)' is unreachable")
RECOVERY = re.compile(r"Queue '([^']+)' is reachable again")


def message_count(host: SampleHost, setting: str) -> int:
    """Messages in the queue, invisible (leased or delayed) ones included."""
    return host.queue(setting).get_queue_properties().approximate_message_count or 0


def test_queue_message_runs_once_with_metadata_and_is_deleted(start_host: HostFactory) -> None:
    host = start_host()
    ensure_queue(host.queue("WORK_QUEUE")).send_message("hello")
    [record] = collect_json(host.queue("RESULTS_QUEUE"), count=1)
    assert record["body"] == "hello"
    assert record["dequeue_count"] == 1
    assert record["has_insertion_time"] and record["has_pop_receipt"]
    assert wait_for(lambda: message_count(host, "WORK_QUEUE") == 0, timeout=3)


def test_failing_message_retries_after_visibility_timeout_then_goes_to_poison(
    start_host: HostFactory,
) -> None:
    host = start_host()
    ensure_queue(host.queue("WORK_QUEUE")).send_message("fail")
    poison = queue_client(host.connection, host.queues["WORK_QUEUE"] + "-poison")
    assert collect(poison, count=1, timeout=10) == ["fail"]
    attempts = collect_json(host.queue("ATTEMPTS_QUEUE", base64=False), count=3, timeout=2)
    assert [a["dequeue_count"] for a in attempts] == [1, 2, 3]
    gaps = [later["at"] - earlier["at"] for earlier, later in pairwise(attempts)]
    assert all(gap >= 0.95 for gap in gaps), gaps  # visibilityTimeout is 1 s
    assert peek_all(host.queue("RESULTS_QUEUE")) == []  # outputs of failed runs are not sent
    assert message_count(host, "WORK_QUEUE") == 0


def test_visibility_timeout_delays_the_retry(start_host: HostFactory) -> None:
    host = start_host(host_json={"extensions": {"queues": {"visibilityTimeout": "00:00:02"}}})
    ensure_queue(host.queue("WORK_QUEUE")).send_message("fail")
    attempts = host.queue("ATTEMPTS_QUEUE", base64=False)
    [first] = collect_json(attempts, count=1, timeout=5)
    assert collect(attempts, count=1, timeout=1.6) == []  # not back before 2 s
    [second] = collect_json(attempts, count=1, timeout=3)
    assert second["dequeue_count"] == 2
    assert second["at"] - first["at"] >= 1.95


def test_undecodable_message_is_copied_raw_to_poison_without_running(
        start_host: HostFactory) -> None:
    # QueueServiceClientProvider's MessageDecodingFailed handler copies the message through a
    # non-encoding client (storage queue extension): the raw text, not base64 of it.
    host = start_host()
    ensure_queue(host.queue("WORK_QUEUE", base64=False)).send_message("not base64!")
    poison = queue_client(host.connection, host.queues["WORK_QUEUE"] + "-poison", base64=False)
    assert collect(poison, count=1) == ["not base64!"]
    assert peek_all(host.queue("ATTEMPTS_QUEUE", base64=False)) == []
    assert message_count(host, "WORK_QUEUE") == 0


def test_message_past_max_dequeue_count_goes_to_poison_without_running(
    start_host: HostFactory, storage_connection: str
) -> None:
    queues = unique_queue_names()
    work = ensure_queue(queue_client(storage_connection, queues["WORK_QUEUE"]))
    work.send_message("crashed before")
    for _ in range(3):  # three deliveries that never finished, as after three host crashes
        message = work.receive_message(visibility_timeout=30)
        assert message is not None
        work.update_message(message, pop_receipt=message.pop_receipt, visibility_timeout=0)
    host = start_host(queues=queues)
    poison = queue_client(host.connection, queues["WORK_QUEUE"] + "-poison")
    assert collect(poison, count=1) == ["crashed before"]
    assert peek_all(host.queue("ATTEMPTS_QUEUE", base64=False)) == []


def test_messages_of_a_batch_run_in_parallel(start_host: HostFactory) -> None:
    host = start_host()
    work = ensure_queue(host.queue("WORK_QUEUE"))
    for _ in range(4):
        work.send_message("sleep:3")
    records = collect_json(host.queue("RESULTS_QUEUE"), count=4, timeout=20)
    starts = sorted(r["at"] for r in records)
    assert len(starts) == 4
    # All four started before the first one's 3 s were over, so they overlapped; one after
    # the other, the last would start 9 s after the first.
    assert starts[-1] - starts[0] < 3


def test_lease_is_renewed_while_a_long_function_runs(start_host: HostFactory) -> None:
    host = start_host(env={"DEVHOST_MESSAGE_LEASE_SECONDS": "2"})
    ensure_queue(host.queue("WORK_QUEUE")).send_message("sleep:3.5")
    [record] = collect_json(host.queue("RESULTS_QUEUE"), count=1, timeout=10)
    assert record["dequeue_count"] == 1
    attempts = collect(host.queue("ATTEMPTS_QUEUE", base64=False), count=2, timeout=1)
    assert len(attempts) == 1  # never redelivered while it ran past the 2 s lease
    assert message_count(host, "WORK_QUEUE") == 0


def test_killed_hosts_message_comes_back_after_its_lease(start_host: HostFactory) -> None:
    first = start_host(env={"DEVHOST_MESSAGE_LEASE_SECONDS": "2"})
    ensure_queue(first.queue("WORK_QUEUE")).send_message("stall:30")
    attempts = first.queue("ATTEMPTS_QUEUE", base64=False)
    assert len(collect(attempts, count=1, timeout=5)) == 1
    first.process.kill()
    second = start_host(queues=first.queues, env={"DEVHOST_MESSAGE_LEASE_SECONDS": "2"})
    [record] = collect_json(second.queue("RESULTS_QUEUE"), count=1, timeout=10)
    assert record["body"] == "stall:30"
    assert record["dequeue_count"] == 2


def test_poller_survives_a_storage_outage(start_host: HostFactory, tmp_path: Path) -> None:
    emulator = Azurite(location=tmp_path / "azurite")
    emulator.start()
    try:
        host = start_host(connection=emulator.connection_string)
        ensure_queue(host.queue("WORK_QUEUE"))
        emulator.stop()
        assert wait_for(lambda: "unreachable" in host.process.stderr(), timeout=10)
        time.sleep(0.5)  # a few more failed polls
        emulator.start()
        host.queue("WORK_QUEUE").send_message("after the outage")
        [record] = collect_json(host.queue("RESULTS_QUEUE"), count=1, timeout=15)
        assert record["body"] == "after the outage"
        assert host.process.process.poll() is None
        # Every listener that saw the outage says it is over, those on queues that do not
        # exist (an answer too) among them.
        def recovered() -> bool:
            stderr = host.process.stderr()
            return set(OUTAGE.findall(stderr)) <= set(RECOVERY.findall(stderr))
        assert wait_for(recovered, timeout=10), host.process.stderr()
    finally:
        emulator.stop()
        emulator.remove_data()


def test_message_encoding_none_reads_and_writes_plain_text(start_host: HostFactory) -> None:
    host = start_host(host_json={"extensions": {"queues": {"messageEncoding": "none"}}})
    ensure_queue(host.queue("WORK_QUEUE", base64=False)).send_message("plain text!")
    [text] = collect(host.queue("RESULTS_QUEUE", base64=False), count=1)
    assert '"body": "plain text!"' in text


def test_poison_queue_has_no_poison_queue_failed_message_waits_out_its_lease(
        start_host: HostFactory) -> None:
    # QueueListenerFactory.CreatePoisonQueueReference returns null for a name ending in
    # -poison, and QueueProcessor.CompleteProcessingMessageAsync then does not release a
    # failed message: it comes back only when the receive lease (10 min, here 2 s) ends, not
    # after visibilityTimeout (1 s here). Past maxDequeueCount (3) BeginProcessingMessageAsync
    # skips it, and HandlePoisonMessageAsync has nowhere to move it: it stays in the queue.
    host = start_host(env={"DEVHOST_MESSAGE_LEASE_SECONDS": "2"})
    dead = ensure_queue(host.queue("POISONED_QUEUE"))
    dead.send_message("fail")
    attempts = collect_json(host.queue("ATTEMPTS_QUEUE", base64=False), count=4, timeout=12)
    assert [a["dequeue_count"] for a in attempts] == [1, 2, 3]
    gaps = [later["at"] - earlier["at"] for earlier, later in pairwise(attempts)]
    assert all(gap >= 1.9 for gap in gaps), gaps  # the lease, not visibilityTimeout
    assert message_count(host, "POISONED_QUEUE") == 1  # skipped, never deleted
    double = queue_client(host.connection, host.queues["POISONED_QUEUE"] + "-poison")
    with pytest.raises(ResourceNotFoundError):
        double.get_queue_properties()
    assert "it has no poison queue" in host.process.stderr()


def test_undecodable_message_on_a_poison_queue_stays_there(start_host: HostFactory) -> None:
    host = start_host(env={"DEVHOST_MESSAGE_LEASE_SECONDS": "2"})
    ensure_queue(host.queue("POISONED_QUEUE", base64=False)).send_message("not base64!")
    assert wait_for(lambda: "it has no poison queue" in host.process.stderr(), timeout=5)
    time.sleep(0.5)
    assert message_count(host, "POISONED_QUEUE") == 1
    assert peek_all(host.queue("ATTEMPTS_QUEUE", base64=False)) == []


def test_listener_waits_for_a_missing_trigger_queue_without_creating_it(
        start_host: HostFactory) -> None:
    # QueueListener.ExecuteAsync checks ExistsAsync and backs off while the queue is missing;
    # nothing in the listener creates it.
    host = start_host()
    assert wait_for(lambda: "does not exist yet" in host.process.stderr(), timeout=5)
    with pytest.raises(ResourceNotFoundError):
        host.queue("WORK_QUEUE").get_queue_properties()
    ensure_queue(host.queue("WORK_QUEUE")).send_message("late")
    [record] = collect_json(host.queue("RESULTS_QUEUE"), count=1, timeout=10)
    assert record["body"] == "late"


def test_app_setting_max_dequeue_count_overrides_host_json(start_host: HostFactory) -> None:
    # AzureFunctionsJobHost__extensions__queues__maxDequeueCount wins over host.json's 3.
    host = start_host(env={"AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "2"})
    ensure_queue(host.queue("WORK_QUEUE")).send_message("fail")
    poison = queue_client(host.connection, host.queues["WORK_QUEUE"] + "-poison")
    assert collect(poison, count=1, timeout=10) == ["fail"]
    attempts = collect_json(host.queue("ATTEMPTS_QUEUE", base64=False), count=3, timeout=2)
    assert [a["dequeue_count"] for a in attempts] == [1, 2]


def test_output_to_a_queue_this_host_listens_on_wakes_its_poller(
        start_host: HostFactory) -> None:
    # After a queue output adds a message, the extension calls
    # _messageEnqueuedWatcher.Notify(queueName): the listener polls at once rather than
    # sleeping out its backoff (QueueListener.Notify).
    names = unique_queue_names()
    names["OUTPUT_QUEUE"] = names["WORK_QUEUE"]  # /enqueue writes to the work queue
    host = start_host(queues=names,
                      host_json={"extensions": {"queues": {"maxPollingInterval": "00:00:30"}}})
    ensure_queue(host.queue("WORK_QUEUE"))
    for round_ in range(2):
        # Idle polls back off 0.1, 0.2, 0.4, 0.8, 1.6 s: after 4 s the poller is in a 3.2 s
        # sleep, so without the notification a message would wait over 2 s.
        time.sleep(4)
        sent = time.time()
        assert requests.post(f"{host.url}/enqueue", data=f"wake{round_}",
                             timeout=10).status_code == 202
        [record] = collect_json(host.queue("RESULTS_QUEUE"), count=1, timeout=10)
        assert record["body"] == f"wake{round_}"
        assert record["at"] - sent < 1.0


def test_http_and_queue_invocations_share_the_worker_pool(start_host: HostFactory) -> None:
    # Dispatcher: one ThreadPoolExecutor of PYTHON_THREADPOOL_THREAD_COUNT for every sync
    # invocation. With one thread, an HTTP request waits for the running queue function.
    host = start_host(env={"PYTHON_THREADPOOL_THREAD_COUNT": "1"})
    ensure_queue(host.queue("WORK_QUEUE")).send_message("sleep:2")
    assert len(collect(host.queue("ATTEMPTS_QUEUE", base64=False), count=1, timeout=5)) == 1
    started = time.monotonic()
    assert requests.get(f"{host.url}/slow?seconds=0", timeout=10).text == "slept"
    assert time.monotonic() - started > 1.0
    assert "Worker: 1 process, 1 threads" in host.process.stderr()


def test_disabled_function_setting_starts_no_listener(start_host: HostFactory) -> None:
    # The app setting AzureWebJobs.<name>.Disabled=true makes the host start no trigger for
    # the function (learn.microsoft.com, "How to disable functions in Azure Functions").
    host = start_host(env={"AzureWebJobs.work.Disabled": "true"})
    results = ensure_queue(host.queue("RESULTS_QUEUE"))
    ensure_queue(host.queue("WORK_QUEUE")).send_message("hello")
    assert not wait_for(lambda: peek_all(results) != [], timeout=2)
    assert message_count(host, "WORK_QUEUE") == 1
    assert requests.get(f"{host.url}/echo/x", timeout=10).status_code == 200
