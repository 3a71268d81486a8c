"""A prototype of the worker as coroutines, to measure against the sync worker; not the app.

It does what `jobs.worker.process` does on the success path of a first delivery (check that
the message names its job, claim with one transaction and no read, run the handler, complete
with a conditional merge) on azure-data-tables' `aio` client, with an async handler that awaits
its wait instead of blocking a thread. Same rows, same lifecycle functions, same storage
calls, so the two designs differ only in how they wait.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from bench.handlers import io_wait_seconds, result
from jobs import lifecycle
from jobs.messages import decode_message, names_its_job
from jobs.models import Claim, JobMessage
from jobs.store import CLIENT_OPTIONS, LEFT_ACCEPTED_ROW_KEY, to_entity
from jobs.submission import accepted_record


def table_client(connection: str, table: str) -> TableClient:
    """The async table client, with the app's client options."""
    return TableClient.from_connection_string(connection, table, **CLIENT_OPTIONS)


async def io_wait(job: JobMessage) -> dict[str, Any]:
    """The async twin of bench_io: await 100-500 ms (the same wait for the same job)."""
    await asyncio.sleep(io_wait_seconds(job.job_id))
    return result(job)


async def process(table: TableClient, body: bytes, *, message_id: str,
                  retention: timedelta) -> str:
    """Run one delivery of a job message; the outcome's name."""
    message = decode_message(body)
    if not names_its_job(message):
        return "dropped"
    claim = Claim(message_id, 1)
    running = lifecycle.start(accepted_record(message, key_row=None), claim,
                              now=lifecycle.utcnow())
    results = await table.submit_transaction([
        ("update", to_entity(running), {"mode": UpdateMode.MERGE}),
        ("create", {"PartitionKey": message.job_id, "RowKey": LEFT_ACCEPTED_ROW_KEY}),
    ])
    done = lifecycle.complete(running, await io_wait(message), now=lifecycle.utcnow(),
                              retention=retention)
    await _merge(table, to_entity(done), results[0]["etag"])
    return "completed"


async def _merge(table: TableClient, entity: dict[str, Any], etag: str) -> dict[str, Any]:
    meta: dict[str, Any] = await table.update_entity(
        entity, mode=UpdateMode.MERGE, etag=etag, match_condition=MatchConditions.IfNotModified)
    return meta
