"""The job status store on Azure Table Storage.

Each job is its own partition (PartitionKey = job id), so load spreads over partitions and
no single partition's throughput target caps the app. Every change is conditional: a merge
on the ETag the change was decided from, or the first claim's transaction below.

A job that leaves `accepted` gets a second row, `left-accepted`, inserted in the same
entity-group transaction as that change (one billed transaction). While a job has none,
its row is as the submit wrote it, but for the `queued_at` stamp of a replay: `accepted`
has no other transition to itself. That lets the worker claim a fresh job with no read: a
transaction that starts the row and inserts the marker fails once the job has left
`accepted`, whatever ETag anyone has seen. A purge deletes the job row, then its marker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import (
    TableClient,
    TableEntity,
    TableServiceClient,
    TableTransactionError,
    UpdateMode,
)

from jobs import serial
from jobs.errors import JobNotFound, RowRejected, StorageUnavailable
from jobs.models import Claim, JobError, JobRecord, JobStatus, Progress
from jobs.settings import get_settings
from storage_connection import StorageConnection, service_client

log = logging.getLogger(__name__)
ROW_KEY = "job"
#: The row a job gets when it leaves `accepted` (sorted after the job's own row).
LEFT_ACCEPTED_ROW_KEY = "left-accepted"
KEY_ROW_KEY = "key"
# A string property holds 64 KiB of UTF-16: 32K characters.
MAX_TEXT_PROPERTY = 32 * 1024
# Fail fast while storage is down, so a client gets its 503 in about a second.
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.2,
    "connection_timeout": 5,
    "read_timeout": 20,
}
#: Extra keyword options for the store's clients, read when a store connects; empty in the
#: app. The benchmark counts storage requests with an azure-core `raw_response_hook` here.
EXTRA_CLIENT_OPTIONS: dict[str, Any] = {}

Decide = Callable[[JobRecord], JobRecord | None]
Operation = tuple[str, dict[str, Any], dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class IdempotencyKey:
    """A client's Idempotency-Key row: which job it names, from which body, with which message.

    It is written only after its job row exists, and only ever changed or deleted on the
    ETag it was read with. So a key whose job row is gone names a purged job: it is free.
    """

    row: str
    job_id: str
    fingerprint: str
    message: str
    created_at: datetime
    etag: str = ""


@dataclass(frozen=True)
class Versioned:
    """A record with the ETag of the row it was read from or written to."""

    record: JobRecord
    etag: str
    #: True when the change asked for holds: just written, or found already made.
    applied: bool = False


class JobStore:
    """Reads and writes job rows; build one per process and reuse it."""

    def __init__(self, table: TableClient, *, service: TableServiceClient | None = None) -> None:
        self._table = table
        # The table client shares the service client's connections, and only the service
        # client closes them.
        self._service = service

    @classmethod
    def connect(cls, connection: StorageConnection | str, table_name: str) -> JobStore:
        """Connect (a str is a connection string) and create the table if it is missing."""
        if isinstance(connection, str):
            connection = StorageConnection(connection_string=connection)
        options = {**CLIENT_OPTIONS, **EXTRA_CLIENT_OPTIONS}
        service = service_client(TableServiceClient, connection, "table", **options)
        with _storage_errors():
            service.create_table_if_not_exists(table_name)
        return cls(service.get_table_client(table_name), service=service)

    def close(self) -> None:
        """Close the client's pooled connections; the app keeps its store for its life, a
        test or script that drops one closes it."""
        self._table.close()
        if self._service is not None:
            self._service.close()

    def insert(self, record: JobRecord) -> Versioned | None:
        """Write a new job row; None if a row with its id exists already."""
        meta = self._create(to_entity(record))
        return None if meta is None else Versioned(record, meta["etag"], applied=True)

    def read(self, job_id: str) -> Versioned | None:
        """The job's row, or None if there is none."""
        entity = self._get(job_id, ROW_KEY)
        return None if entity is None else Versioned(from_entity(entity), _etag(entity))

    def delete(self, job_id: str, *, etag: str) -> bool:
        """Delete a job's row as of `etag`, then its `left-accepted` row; False if it changed.

        Two DELETEs, not one transaction: the SDK sends a DELETE again when its answer is
        lost, never a transaction, so a purge finishes its delete within its own run. The job
        row goes first, as a finished row without its marker could be claimed again; a
        marker left by a cut-short run names an id no job will have again, and acts on
        nothing.
        """
        if not self._delete(job_id, ROW_KEY, etag):
            return False
        with _storage_errors():
            self._table.delete_entity(job_id, LEFT_ACCEPTED_ROW_KEY)
        return True

    def discard(self, job_id: str) -> None:
        """Delete a job row this process wrote but never answered for; best effort."""
        try:
            with _storage_errors():
                self._table.delete_entity(job_id, ROW_KEY)
        except StorageUnavailable:
            log.warning("could not remove an unanswered job row; the sweep fails it later",
                        extra={"job_id": job_id})

    def insert_key(self, key: IdempotencyKey) -> IdempotencyKey | None:
        """Write a new idempotency-key row; None if the key has a row already."""
        meta = self._create(_key_entity(key))
        return None if meta is None else replace(key, etag=meta["etag"])

    def read_key(self, row: str) -> IdempotencyKey | None:
        """The idempotency-key row, or None."""
        entity = self._get(row, KEY_ROW_KEY)
        return None if entity is None else _key(entity)

    def replace_key(self, key: IdempotencyKey, new: IdempotencyKey) -> IdempotencyKey | None:
        """Overwrite `key` with `new` if the row is still as `key` was read; else None."""
        with _storage_errors():
            try:
                meta = self._table.update_entity(
                    _key_entity(new), mode=UpdateMode.REPLACE, etag=key.etag,
                    match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                return None
        return replace(new, etag=meta["etag"])

    def delete_key(self, key: IdempotencyKey) -> bool:
        """Delete an idempotency-key row as of its ETag; False if it changed since."""
        return self._delete(key.row, KEY_ROW_KEY, key.etag)

    def expired(self, now: datetime) -> Iterator[Versioned]:
        """Finished jobs past `expires_at`. Every job is its own partition: a table scan."""
        query = f"RowKey eq '{ROW_KEY}' and expires_at le datetime'{_odata(now)}'"
        return self._query_jobs(query)

    def stalled(self, *, running_before: datetime, accepted_before: datetime
                ) -> Iterator[Versioned]:
        """Running jobs not updated since a cutoff, and accepted jobs submitted before one
        (the caller checks their `queued_at`: few rows have one, and only lost messages')."""
        query = (
            f"RowKey eq '{ROW_KEY}' and ((status eq 'running' and "
            f"updated_at le datetime'{_odata(running_before)}') or (status eq 'accepted' and "
            f"submitted_at le datetime'{_odata(accepted_before)}'))"
        )
        return self._query_jobs(query)

    def oldest_accepted(self) -> datetime | None:
        """When the oldest job still `accepted` was submitted; None if no job is.

        The sweep's kind of query (`stalled`), with no cutoff and one property selected:
        the service filters every job row (each job is its own partition, so no index
        helps) and answers with the accepted ones alone, one small entity per job waiting.
        """
        query = f"RowKey eq '{ROW_KEY}' and status eq '{JobStatus.ACCEPTED.value}'"
        with _storage_errors():
            submitted = [entity["submitted_at"] for entity in
                         self._table.query_entities(query, select=["submitted_at"])]
        return _moment(min(submitted)) if submitted else None

    def old_keys(self, created_before: datetime) -> Iterator[IdempotencyKey]:
        """Idempotency-key rows written before a cutoff."""
        query = f"RowKey eq '{KEY_ROW_KEY}' and created_at le datetime'{_odata(created_before)}'"
        with _storage_errors():
            for entity in self._table.query_entities(query):
                yield _key(entity)

    def leave_accepted_unread(self, record: JobRecord) -> Versioned | None:
        """Write `record`, moved out of `accepted`, over a job row still as submitted; no read.

        None if the job left `accepted` already (its marker exists) or has no row. Only for
        a record made from the very message the row was written from. A transaction applied
        but answered with an error is resent by the SDK, meets its own marker, and also gives
        None: the caller reads the row then and decides, as `update` does.
        """
        try:
            return self._leave_accepted(record, etag="*")
        except (ResourceModifiedError, ResourceNotFoundError):
            return None

    def update(self, job_id: str, decide: Decide, *, known: Versioned | None = None) -> Versioned:
        """Apply `decide` to the job and write its answer if the row did not change meanwhile.

        `decide` gets the current record and returns the new one; the record it was given,
        to say the change is already made (a write of ours applied but answered with an
        error, then retried); or None to refuse. On an ETag conflict the row is read again
        and `decide` runs again, so the answer always rests on the latest state. `known`
        saves the first read. Returns the record as last read or written, `applied` unless
        refused; raises JobNotFound if there is no row.
        """
        current = known
        while True:
            current = current or self.read(job_id)
            if current is None:
                raise JobNotFound(job_id)
            new = decide(current.record)
            if new is None or new is current.record:
                return replace(current, applied=new is not None)
            try:
                leaves = (current.record.status is JobStatus.ACCEPTED
                          and new.status is not JobStatus.ACCEPTED)
                if leaves:
                    return self._leave_accepted(new, etag=current.etag)
                return self._write(new, current.etag)
            except ResourceModifiedError:
                current = None
            except ResourceNotFoundError as e:  # purged since it was read
                raise JobNotFound(job_id) from e

    def _create(self, entity: dict[str, Any]) -> dict[str, Any] | None:
        """Create a row; its metadata, or None if a row with its keys exists already."""
        with _storage_errors():
            try:
                meta: dict[str, Any] = self._table.create_entity(entity)
            except ResourceExistsError:
                return None
            except ResourceNotFoundError as e:  # the table itself was deleted
                raise StorageUnavailable("the job table is missing") from e
        return meta

    def _get(self, partition_key: str, row_key: str) -> TableEntity | None:
        """The entity with these keys, or None."""
        with _storage_errors():
            try:
                return self._table.get_entity(partition_key, row_key)
            except ResourceNotFoundError:
                return None

    def _delete(self, partition_key: str, row_key: str, etag: str) -> bool:
        with _storage_errors():
            try:
                self._table.delete_entity(partition_key, row_key, etag=etag,
                                          match_condition=MatchConditions.IfNotModified)
            except ResourceModifiedError:
                return False
        return True

    def _query_jobs(self, query: str) -> Iterator[Versioned]:
        with _storage_errors():
            for entity in self._table.query_entities(query):
                yield Versioned(from_entity(entity), _etag(entity))

    def _leave_accepted(self, record: JobRecord, *, etag: str) -> Versioned:
        """Write `record` on `etag` and insert the job's `left-accepted` row, in one transaction.

        Raises ResourceModifiedError if the row changed or the marker exists already, and
        ResourceNotFoundError if the row is gone.
        """
        merge = {"mode": UpdateMode.MERGE, **(_on(etag) if etag != "*" else {})}
        written = self._transact([
            ("update", to_entity(record), merge),
            ("create", _keys(record.job_id, LEFT_ACCEPTED_ROW_KEY), {}),
        ])
        return Versioned(record, written[0]["etag"], applied=True)

    def _transact(self, operations: list[Operation]) -> list[dict[str, Any]]:
        """Run an entity-group transaction; its failures raised as a single request's would.

        A stale ETag (412) and an existing row (409) both raise ResourceModifiedError: each
        says the job changed since the caller looked.
        """
        with _storage_errors():
            try:
                return [dict(result) for result in self._table.submit_transaction(operations)]
            except TableTransactionError as e:
                if e.status_code in (409, 412):
                    raise ResourceModifiedError(e.message, response=e.response) from e
                if e.status_code == 404:
                    raise ResourceNotFoundError(e.message, response=e.response) from e
                raise

    def _write(self, record: JobRecord, etag: str) -> Versioned:
        with _storage_errors():
            meta = self._table.update_entity(
                to_entity(record),
                mode=UpdateMode.MERGE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        return Versioned(record, meta["etag"], applied=True)


@cache
def default_store() -> JobStore:
    """The process's store, built on first use from the settings and reused after."""
    settings = get_settings()
    return JobStore.connect(settings.storage, settings.table_name)


@contextmanager
def _storage_errors() -> Iterator[None]:
    """Turn transport failures and error answers into StorageUnavailable.

    That includes 401 and 403: a missing role assignment is for an operator to fix, and
    a client gets 503 meanwhile, not 500.
    """
    try:
        yield
    except (ResourceNotFoundError, ResourceModifiedError, ResourceExistsError):
        raise
    except HttpResponseError as e:
        if e.status_code in (400, 413):
            raise RowRejected(f"Table Storage refused the row: {e.reason}") from e
        raise StorageUnavailable(f"Table Storage answered {e.status_code} {e.reason}") from e
    except AzureError as e:
        raise StorageUnavailable("Table Storage is unreachable") from e


def to_entity(record: JobRecord) -> dict[str, Any]:
    """The table entity for a record; None fields are left out."""
    entity: dict[str, Any] = {
        "PartitionKey": record.job_id,
        "RowKey": ROW_KEY,
        "status": record.status.value,
        "job_type": record.job_type,
        "customer_id": record.customer_id,
        "submitted_at": record.submitted_at,
        "updated_at": record.updated_at,
        "started_at": record.started_at,
        "completed_at": record.completed_at,
        "attempts": record.attempts,
    }
    if record.result is not None:
        entity["result"] = serial.dumps(record.result)
    if record.error is not None:
        entity["error_code"] = record.error.code
        entity["error_message"] = record.error.message
    if record.claim is not None:
        entity["claim_message_id"] = record.claim.message_id
        entity["claim_dequeue_count"] = record.claim.dequeue_count
    if record.progress is not None:
        entity["progress_percent"] = record.progress.percent
        entity["progress_message"] = record.progress.message
    entity["correlation_id"] = record.correlation_id
    entity["expires_at"] = record.expires_at
    entity["idempotency_row"] = record.idempotency_row
    entity["queued_at"] = record.queued_at
    # Left out when empty, so a merge of a record made without them keeps the row's own.
    entity["traceparent"] = record.traceparent or None
    entity["tracestate"] = record.tracestate or None
    return {key: value for key, value in entity.items() if value is not None}


def from_entity(entity: dict[str, Any]) -> JobRecord:
    """The record a table entity holds."""
    return JobRecord(
        job_id=entity["PartitionKey"],
        status=JobStatus(entity["status"]),
        job_type=entity["job_type"],
        customer_id=entity["customer_id"],
        submitted_at=entity["submitted_at"],
        updated_at=entity["updated_at"],
        started_at=_utc(entity.get("started_at")),
        completed_at=_utc(entity.get("completed_at")),
        attempts=int(entity.get("attempts", 0)),
        result=serial.loads(entity["result"]) if "result" in entity else None,
        error=_error(entity),
        progress=_progress(entity),
        correlation_id=entity.get("correlation_id", ""),
        expires_at=_utc(entity.get("expires_at")),
        idempotency_row=entity.get("idempotency_row"),
        queued_at=_utc(entity.get("queued_at")),
        claim=_claim(entity),
        # Absent on rows stored before jobs carried a trace context.
        traceparent=entity.get("traceparent", ""),
        tracestate=entity.get("tracestate", ""),
    )


def _keys(partition_key: str, row_key: str) -> dict[str, Any]:
    return {"PartitionKey": partition_key, "RowKey": row_key}


def _on(etag: str) -> dict[str, Any]:
    """The options of a transaction operation conditioned on `etag`."""
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else _moment(value)


def _moment(value: datetime) -> datetime:
    # The SDK returns its own datetime subclass; a plain datetime compares and prints cleanly.
    return datetime.fromtimestamp(value.timestamp(), value.tzinfo)


def _error(entity: dict[str, Any]) -> JobError | None:
    if "error_code" not in entity:
        return None
    return JobError(code=entity["error_code"], message=entity.get("error_message", ""))


def _etag(entity: TableEntity) -> str:
    return str(entity.metadata["etag"])


def _key_entity(key: IdempotencyKey) -> dict[str, Any]:
    entity = {
        "PartitionKey": key.row,
        "RowKey": KEY_ROW_KEY,
        "job_id": key.job_id,
        "fingerprint": key.fingerprint,
        "message": key.message.encode(),
        "created_at": key.created_at,
    }
    return {name: value for name, value in entity.items() if value is not None}


def _key(entity: TableEntity) -> IdempotencyKey:
    return IdempotencyKey(row=entity["PartitionKey"], job_id=entity["job_id"],
                          fingerprint=entity["fingerprint"],
                          message=bytes(entity["message"]).decode(),
                          created_at=_moment(entity["created_at"]), etag=_etag(entity))


def _progress(entity: dict[str, Any]) -> Progress | None:
    if "progress_percent" not in entity:
        return None
    return Progress(int(entity["progress_percent"]), entity.get("progress_message", ""))


def _odata(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _claim(entity: dict[str, Any]) -> Claim | None:
    if "claim_message_id" not in entity:
        return None
    return Claim(entity["claim_message_id"], int(entity["claim_dequeue_count"]))
