"""The benchmark runs: its quick mode completes and reports, and its latency proxy delays.

`make bench` asserts nothing about speed, so these tests do not either: they check that the
bench completes against real Azurite and the local host, that every job it submits ends
completed, and that it writes its figures. The proxy tests check what the figures rest on:
each request through it waits the configured delay, and every request gets its own answer.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.data.tables import TableClient

from bench.latency_proxy import Proxy, read_request
from tests.conftest import unique_name
from tests.support.azurite import Azurite

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_bench_quick_completes_and_writes_its_figures(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=570)
    assert run.returncode == 0, run.stderr[-3000:]
    for heading in ("Storage transactions per job", "Telemetry overhead", "Under storage latency",
                    "Handlers that wait 100-500 ms", "Threads sharing one table client",
                    "Cold start", "Idle latency"):
        assert heading in run.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    for latency_run in results["latency"].values():
        assert latency_run["completed"] == latency_run["jobs"] > 0
        assert latency_run["jobs_per_s"] > 0
    assert all(r["jobs"] > 0 for r in results["io_wait"])
    assert sum(results["transactions"]["bench_noop"]["one GET per job"].values()) > 0
    assert results["cold_start"]["optional_imported"] == []
    telemetry = results["telemetry"]
    assert telemetry["on"]["jobs"] == telemetry["off"]["jobs"] > 0
    assert telemetry["spans_per_job"] >= 2  # the on side really traced: send and process
    assert (tmp_path / "latency.png").read_bytes().startswith(b"\x89PNG")


@pytest.fixture
def table(azurite: Azurite) -> Iterator[TableClient]:
    client = TableClient.from_connection_string(azurite.connection_string,
                                                unique_name("proxy"))
    client.create_table()
    client.create_entity({"PartitionKey": "p", "RowKey": "r", "value": "x" * 5000})
    yield client
    client.delete_table()


def _median_read_ms(connection: str, table: str, reads: int = 15) -> float:
    client = TableClient.from_connection_string(connection, table)
    client.get_entity("p", "r")  # the connection is opened outside the timing
    times = []
    for _ in range(reads):
        started = time.perf_counter()
        assert client.get_entity("p", "r")["value"] == "x" * 5000
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def test_latency_proxy_delays_each_request_on_a_kept_alive_connection(
        azurite: Azurite, table: TableClient) -> None:
    proxy = Proxy(azurite.connection_string, delay_ms=40, jitter=0.25)
    try:
        proxied = proxy.start()
        assert proxied != azurite.connection_string
        through = _median_read_ms(proxied, table.table_name)
    finally:
        proxy.stop()
    direct = _median_read_ms(azurite.connection_string, table.table_name)
    # Each read waits 30-50 ms in the proxy, on top of what Azurite takes.
    assert through >= direct + 30 * 0.9


def test_latency_proxy_forwards_writes_with_bodies(azurite: Azurite, table: TableClient) -> None:
    proxy = Proxy(azurite.connection_string, delay_ms=0)
    try:
        client = TableClient.from_connection_string(proxy.start(), table.table_name)
        for i in range(5):
            client.upsert_entity({"PartitionKey": "p", "RowKey": f"w{i}", "n": i})
        assert [client.get_entity("p", f"w{i}")["n"] for i in range(5)] == list(range(5))
    finally:
        proxy.stop()


@pytest.mark.parametrize("raw", [
    b"POST /t HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /t HTTP/1.1\r\nHost: h\r\n\r\n",
])
def test_read_request_ends_where_the_request_ends(raw: bytes) -> None:
    async def read_two() -> tuple[bytes, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(raw + raw)
        reader.feed_eof()
        return await read_request(reader), await read_request(reader)

    assert asyncio.run(read_two()) == (raw, raw)


def test_importing_the_app_with_a_connection_string_leaves_azure_identity_unimported() -> None:
    code = ("import sys, function_app; "
            "print(sorted(m for m in ('azure.identity', 'msal') if m in sys.modules))")
    env = {"PATH": "/usr/bin:/bin", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
