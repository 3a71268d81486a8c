"""Start-up and shutdown of the host process: graceful stop, loud start-up errors."""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path

import pytest
import requests

from tests.devhost.conftest import (
    HostFactory,
    collect_json,
    copy_sample_app,
    ensure_queue,
    unique_queue_names,
    wait_for,
    write_local_settings,
)
from tests.support import devhost_process

pytestmark = pytest.mark.e2e


def test_sigterm_lets_an_inflight_http_request_finish(start_host: HostFactory) -> None:
    host = start_host()
    result: dict[str, requests.Response] = {}
    client = threading.Thread(target=lambda: result.update(
        response=requests.get(f"{host.url}/slow?seconds=1.5", timeout=10)))
    client.start()
    assert wait_for(lambda: "Executing 'Functions.slow'" in host.process.stderr(), timeout=5)
    host.process.process.send_signal(signal.SIGTERM)
    assert wait_for(lambda: "Stopping host" in host.process.stderr(), timeout=5)
    with pytest.raises(requests.ConnectionError):  # no new requests once stopping
        requests.get(f"{host.url}/async", timeout=2)
    client.join(timeout=10)
    assert result["response"].status_code == 200
    assert result["response"].text == "slept"
    assert host.process.process.wait(timeout=10) == 0


def test_sigterm_lets_an_inflight_queue_invocation_finish(start_host: HostFactory) -> None:
    host = start_host()
    ensure_queue(host.queue("WORK_QUEUE")).send_message("sleep:1.5")
    assert wait_for(lambda: "Executing 'Functions.work'" in host.process.stderr(), timeout=5)
    assert host.process.stop(signal.SIGTERM) == 0
    [record] = collect_json(host.queue("RESULTS_QUEUE"), count=1, timeout=2)
    assert record["body"] == "sleep:1.5"
    props = host.queue("WORK_QUEUE").get_queue_properties()
    assert props.approximate_message_count == 0  # deleted before the host exited


def test_sigint_stops_the_host_cleanly(start_host: HostFactory) -> None:
    host = start_host()
    assert host.process.stop(signal.SIGINT) == 0
    assert "Host stopped" in host.process.stderr()


def test_unresolved_setting_stops_start_up_naming_it(storage_connection: str,
                                                     tmp_path: Path) -> None:
    root = copy_sample_app(tmp_path / "app")
    write_local_settings(root, {k: v for k, v in unique_queue_names().items()
                                if k != "WORK_QUEUE"})
    process = devhost_process.start(root, env={"AzureWebJobsStorage": storage_connection})
    try:
        assert process.process.wait(timeout=30) == 1
        assert "%WORK_QUEUE%" in process.stderr()
    finally:
        process.cleanup()


def test_port_in_use_stops_start_up(storage_connection: str, tmp_path: Path) -> None:
    root = copy_sample_app(tmp_path / "app")
    write_local_settings(root, unique_queue_names())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = devhost_process.start(root, env={"AzureWebJobsStorage": storage_connection},
                                        port=port)
        try:
            assert process.process.wait(timeout=30) == 1
            assert f"cannot listen on 127.0.0.1:{port}" in process.stderr()
        finally:
            process.cleanup()
