"""Connections a shared table client opens when more threads use it than its pool keeps.

azure-core's requests transport mounts an HTTPAdapter with urllib3's default pool of 10
connections per host. When more threads than that call one client at once, urllib3 opens
extra connections and, on their return to a full pool, closes them ("Connection pool is
full, discarding connection"); in Azure each new one costs a TCP and TLS handshake. This
counts both from urllib3's own log lines, for N threads sharing one client.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.data.tables import TableClient

from bench.latency_proxy import Proxy
from jobs.store import CLIENT_OPTIONS
from tests.support.azurite import Azurite

LOGGER = "urllib3.connectionpool"


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Starting new"):
            self.counts["opened"] += 1
        elif message.startswith("Connection pool is full"):
            self.counts["discarded"] += 1


def run(*, threads: tuple[int, ...], calls: int, delay_ms: float) -> list[dict[str, Any]]:
    """For each thread count, `calls` reads on one warm client: connections opened, discarded."""
    azurite = Azurite()
    azurite.start()
    proxy = Proxy(azurite.connection_string, delay_ms)
    counter, logger = _Count(), logging.getLogger(LOGGER)
    level = logger.level
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    try:
        table = TableClient.from_connection_string(proxy.start(), "pool", **CLIENT_OPTIONS)
        table.create_table()
        table.upsert_entity({"PartitionKey": "p", "RowKey": "r"})
        figures = []
        for count in threads:
            _reads(table, count, calls)  # warm: the pool fills up to its size
            counter.counts.clear()
            _reads(table, count, calls)
            figures.append({"threads": count, "calls": calls, "delay_ms": delay_ms,
                            "opened": counter.counts["opened"],
                            "discarded": counter.counts["discarded"]})
        return figures
    finally:
        logger.removeHandler(counter)
        logger.setLevel(level)
        proxy.stop()
        azurite.stop()


def _reads(table: TableClient, threads: int, calls: int) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: table.get_entity("p", "r"), range(calls)))
