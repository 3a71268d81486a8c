"""What one queue delivery of a job does: claim the job, run its handler, record the outcome.

Delivery is at least once. The claim and every later write are conditional updates, so a
repeated or overlapping delivery can neither run a claimed job again nor move a finished
job back. A transient handler error re-raises so the host retries the message; on the last
allowed delivery the job is marked failed first. A job cancelled while it runs stays
cancelled: its result is dropped.

Anyone who can write to the queue can put anything there, so a message acts only on its
own job: its job id must be the digest of everything else it carries (jobs.messages), and
the row it names must hold its job type and customer. So a message read from the queue or
the table can be replayed exactly and cannot be changed: another job type, customer or
payload names another job. Anything else is dropped with a logged reason, never raised,
since no retry could make it work. The poison queue's function follows the same rule.

The first delivery's claim needs no read. The message names its job, so the job's row was
written from this very message; the store's claim transaction succeeds only while the job
has never left `accepted`, so the row is still exactly that. Any other claim (a redelivery,
a duplicate, a job cancelled or claimed since) reads the row and decides, as every later
write does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

from jobs import lifecycle, serial, telemetry
from jobs.errors import InvalidMessage, JobCancelled, JobFailed, JobNotFound, RowRejected
from jobs.handlers import find_handler
from jobs.lifecycle import Clock, utcnow
from jobs.logs import job_fields, log_context
from jobs.messages import decode_message, names_its_job
from jobs.models import (
    JOB_QUEUE,
    POISON_QUEUE,
    Claim,
    JobError,
    JobMessage,
    JobRecord,
    JobStatus,
    Progress,
)
from jobs.settings import Settings
from jobs.store import MAX_TEXT_PROPERTY, Decide, JobStore, Versioned
from jobs.submission import accepted_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One delivery of a queue message, as the host hands it over."""

    message_id: str
    body: bytes
    dequeue_count: int


class Outcome(StrEnum):
    """How a delivery ended, for logs and tests."""

    #: The handler ran and its result was stored.
    COMPLETED = "completed"
    #: The job was marked failed.
    FAILED = "failed"
    #: The job is finished, cancelled, or run by another delivery; nothing was done.
    SKIPPED = "skipped"
    #: The message is not a job message, names no job, or does not match its job.
    DROPPED = "dropped"


def process(
    store: JobStore, delivery: Delivery, *, settings: Settings, clock: Clock = utcnow,
    invocation: Context | None = None,
) -> Outcome:
    """Run one delivery of a job message; see the module docstring for the rules.

    All of it happens in one `process` span in the job's trace (the context its message
    carries), linked to `invocation`, the host's context of this delivery.
    """
    message = _decode(delivery.body, message_id=delivery.message_id)
    with _delivery_span(f"process {JOB_QUEUE}", message, invocation, queue=JOB_QUEUE,
                        message_id=delivery.message_id,
                        dequeue_count=delivery.dequeue_count) as span:
        outcome = _process(store, delivery, message, span=span, settings=settings, clock=clock)
        span.set_attribute("job.outcome", outcome.value)
    return outcome


def _process(store: JobStore, delivery: Delivery, message: JobMessage | None, *, span: Span,
             settings: Settings, clock: Clock) -> Outcome:
    if message is None:
        return Outcome.DROPPED
    with log_context(correlation_id=message.correlation_id, **job_fields(message)):
        if not _names_its_job(message):
            return Outcome.DROPPED
        with telemetry.span("claim"):
            run = _Run.claim(store, message, Claim(delivery.message_id, delivery.dequeue_count),
                             settings=settings, clock=clock, span=span)
        if isinstance(run, Outcome):
            return run
        return run.execute(last_try=delivery.dequeue_count >= settings.max_dequeue_count)


@contextmanager
def _delivery_span(name: str, message: JobMessage | None, invocation: Context | None, *,
                   queue: str, message_id: str, dequeue_count: int | None = None
                   ) -> Iterator[Span]:
    """A delivery's CONSUMER span: in its job's trace, linked to the host's invocation."""
    parent, links = (invocation, []) if message is None else telemetry.joined(message, invocation)
    attributes = telemetry.messaging_attributes("process", queue=queue, message_id=message_id,
                                                dequeue_count=dequeue_count)
    if message is None:
        attributes["job.dropped.reason"] = "malformed"
    else:
        attributes.update(telemetry.job_attributes(message))
    with telemetry.span(name, kind=SpanKind.CONSUMER, parent=parent, links=links,
                        attributes=attributes) as span:
        yield span


class _Run:
    """One delivery's run of a job it claimed; it tracks the row's latest ETag."""

    def __init__(self, store: JobStore, message: JobMessage, current: Versioned, *,
                 settings: Settings, clock: Clock, span: Span) -> None:
        self.store, self.message, self.current = store, message, current
        self.settings, self.clock, self.span = settings, clock, span

    @classmethod
    def claim(cls, store: JobStore, message: JobMessage, claim: Claim, *,
              settings: Settings, clock: Clock, span: Span) -> _Run | Outcome:
        """Claim the job for this delivery, or say why it may not run now."""
        def decide(record: JobRecord) -> JobRecord | None:
            if lifecycle.holds_claim(record, claim):
                return record
            if not lifecycle.may_claim(record, claim):
                return None
            return lifecycle.start(record, claim, now=clock())

        current = (_claim_untouched(store, message, claim, now=clock())
                   or _update_own_job(store, message, decide))
        if current is None:
            return Outcome.DROPPED
        job_type = {"job.type": message.job_type}
        telemetry.attempts.add(1, job_type)
        span.set_attribute("job.status", current.record.status.value)
        if not current.applied:
            status = current.record.status.value
            log.info("skipped: job is finished or claimed by another delivery",
                     extra={"status": status})
            return Outcome.SKIPPED
        record = current.record
        if record.attempts == 1 and record.started_at is not None:
            wait = (record.started_at - message.submitted_at).total_seconds()
            telemetry.queue_wait.record(max(wait, 0.0), job_type)
        log.info("job running", extra={"attempt": record.attempts})
        return cls(store, message, current, settings=settings, clock=clock, span=span)

    def execute(self, *, last_try: bool) -> Outcome:
        started = time.monotonic()
        try:
            return self._execute(last_try=last_try)
        finally:
            telemetry.run_duration.record(time.monotonic() - started, {
                "job.type": self.message.job_type,
                "job.status": self.current.record.status.value})

    def _execute(self, *, last_try: bool) -> Outcome:
        handler = find_handler(self.message.job_type)
        try:
            with telemetry.span(f"run {self.message.job_type}", benign=(JobCancelled,)
                                ) as run_span:
                if handler is None:
                    raise JobFailed("unknown_job_type", "no handler for this job type")
                try:
                    result = _checked_result(handler(self.message, self.report_progress))
                except JobFailed as e:
                    telemetry.fail(run_span, e.code, code=e.code, description=e.message)
                    raise
        except JobCancelled:
            log.info("job cancelled or taken over while running; stopped")
            return Outcome.SKIPPED
        except JobFailed as e:
            return self.finish(JobError(e.code, e.message))
        except Exception as e:
            if not last_try:
                log.warning("handler failed; the queue retries", exc_info=True)
                raise
            self.finish(JobError("retries_exhausted", f"{type(e).__name__} on every delivery"))
            raise
        return self.finish(result)

    def report_progress(self, percent: int, message: str = "") -> None:
        """Store the handler's progress; raises JobCancelled if the job was cancelled.

        A percent outside 0-100 is the handler's bug, which no retry mends: the job fails.
        """
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise JobFailed("bad_progress", f"progress takes a whole percent, 0-100: {percent!r}")
        progress = Progress(percent, message)

        def change(record: JobRecord) -> JobRecord:
            return lifecycle.report_progress(record, progress, now=self.clock())

        if not self._write(change, done=lambda record: False):
            raise JobCancelled(self.message.job_id)

    def finish(self, outcome: dict[str, Any] | JobError) -> Outcome:
        """Write the terminal state, unless the job stopped being this run's meanwhile.

        Finding the job already in exactly that state means our own write was applied and
        answered with an error: it counts as written.
        """
        with telemetry.span("finish"):
            return self._finish(outcome)

    def _finish(self, outcome: dict[str, Any] | JobError) -> Outcome:
        retention, now = self.settings.retention, self.clock()
        if isinstance(outcome, JobError):
            error = outcome
            written = self._write(
                lambda r: lifecycle.fail(r, error, now=now, retention=retention),
                done=lambda r: r.status is JobStatus.FAILED and r.error == error)
        else:
            result = outcome
            try:
                written = self._write(
                    lambda r: lifecycle.complete(r, result, now=now, retention=retention),
                    done=lambda r: r.status is JobStatus.COMPLETED and r.result == result)
            except RowRejected as e:
                return self._finish(JobError("result_not_storable", str(e)))
        status = self.current.record.status.value
        self.span.set_attribute("job.status", status)
        if not written:
            log.warning("outcome dropped: the job changed under this run",
                        extra={"status": status})
            return Outcome.SKIPPED
        telemetry.record_finished(self.current.record, self.span)
        if isinstance(outcome, JobError):
            log.info("job failed", extra={"status": status, "error_code": outcome.code})
            return Outcome.FAILED
        log.info("job completed", extra={"status": status})
        return Outcome.COMPLETED

    def _write(self, change: lifecycle.Change, *, done: Callable[[JobRecord], bool]) -> bool:
        """Apply `change` while the job is still this run's; False once it is not.

        `done` tells a finished row that already holds this change (True) from one that
        another writer finished (False).
        """
        claim = self.current.record.claim

        def decide(record: JobRecord) -> JobRecord | None:
            if record.claim != claim:
                return None
            if record.status.terminal:
                return record if done(record) else None
            return change(record)

        try:
            self.current = self.store.update(self.message.job_id, decide, known=self.current)
        except JobNotFound:  # purged meanwhile
            return False
        return self.current.applied


def _checked_result(result: Any) -> dict[str, Any]:
    """A handler's result must be a JSON object that `serial.dumps` takes and that fits one
    table property; anything else fails the job with a code, never a 500 later.

    Returns it as the store gives it back (through JSON), so a retried write can tell it.
    """
    if not isinstance(result, dict):
        raise JobFailed("invalid_result", "the handler did not return a JSON object")
    try:
        text = serial.dumps(result)
    except serial.NotStorable as e:
        raise JobFailed("result_not_storable", f"the handler's result cannot be stored: {e}"
                        ) from e
    if serial.utf16_length(text) > MAX_TEXT_PROPERTY:
        raise JobFailed("result_too_large", "the handler's result is too large to store")
    stored: dict[str, Any] = serial.loads(text)
    return stored


def _claim_untouched(store: JobStore, message: JobMessage, claim: Claim, *, now: datetime
                     ) -> Versioned | None:
    """On a first delivery, claim a job that never left `accepted`: one write, no read.

    None if the job left `accepted` or has no row; the caller then reads and decides. The
    message names its job, so the row is the accepted record this message makes, and
    starting it is what `decide` would do. That record lacks the row's idempotency_row and
    queued_at, which the merge leaves as they are. A later delivery (the job was most likely
    claimed) goes straight to the read.
    """
    if claim.dequeue_count != 1:
        return None
    # Without the message's trace context: the merge leaves the row's own, so a message
    # whose context was changed never writes it (jobs.messages).
    accepted = replace(accepted_record(message, key_row=None), traceparent="", tracestate="")
    started = lifecycle.start(accepted, claim, now=now)
    return store.leave_accepted_unread(started)


def _update_own_job(store: JobStore, message: JobMessage, decide: Decide) -> Versioned | None:
    """Apply `decide` to the message's job, if the job's row holds what the message says.

    None, logged, when there is no such job or its row does not match: the message is
    dropped, as no retry could make it act.
    """
    def own(record: JobRecord) -> JobRecord | None:
        return decide(record) if _matches(record, message) else None

    try:
        current = store.update(message.job_id, own)
    except JobNotFound:
        log.warning("dropped: the message names no job")
        _dropped("no_job")
        return None
    if not _matches(current.record, message):
        log.warning("dropped: the message does not match its job",
                    extra={"reason": "the job's row holds another job type or customer"})
        _dropped("row_mismatch")
        return None
    return current


def _matches(record: JobRecord, message: JobMessage) -> bool:
    return record.job_type == message.job_type and record.customer_id == message.customer_id


def _names_its_job(message: JobMessage) -> bool:
    """Whether the message is the one its job was submitted with; logged when not."""
    if names_its_job(message):
        return True
    log.warning("dropped: the message does not match its job",
                extra={"reason": "its job id is not the digest of its content"})
    _dropped("digest_mismatch")
    return False


def _dropped(reason: str) -> None:
    """Count a message dropped, and say why on the current span."""
    telemetry.dropped.add(1, {"reason": reason})
    trace.get_current_span().set_attribute("job.dropped.reason", reason)


def _decode(body: bytes, *, message_id: str) -> JobMessage | None:
    """The job message in a body, or None, logged, for a body that is not one."""
    try:
        return decode_message(body)
    except InvalidMessage as e:
        log.warning("dropped a malformed message",
                    extra={"message_id": message_id, "reason": str(e)})
        telemetry.dropped.add(1, {"reason": "malformed"})
        return None


def fail_poisoned(
    store: JobStore, body: bytes, *, settings: Settings, message_id: str = "",
    clock: Clock = utcnow, invocation: Context | None = None,
) -> Outcome:
    """Mark the job of a poisoned message failed, unless it already finished.

    Raises only for a storage outage, which a later delivery can get past; a message it
    cannot act on is logged and dropped. Its `poison` span joins the job's trace, linked to
    `invocation`.
    """
    message = _decode(body, message_id=message_id)
    with _delivery_span(f"poison {JOB_QUEUE}", message, invocation, queue=POISON_QUEUE,
                        message_id=message_id) as span:
        outcome = _fail_poisoned(store, message, span=span, settings=settings, clock=clock)
        span.set_attribute("job.outcome", outcome.value)
    return outcome


def _fail_poisoned(store: JobStore, message: JobMessage | None, *, span: Span,
                   settings: Settings, clock: Clock) -> Outcome:
    if message is None:
        return Outcome.DROPPED
    error = JobError("poisoned", "the job message failed every delivery and was poisoned")

    def decide(record: JobRecord) -> JobRecord | None:
        if record.status.terminal:  # by our own write, if it was applied but answered 5xx
            return record if record.error == error else None
        return lifecycle.fail(record, error, now=clock(), retention=settings.retention)

    with log_context(correlation_id=message.correlation_id, **job_fields(message)):
        if not _names_its_job(message):
            return Outcome.DROPPED
        final = _update_own_job(store, message, decide)
        if final is None:
            return Outcome.DROPPED
        span.set_attribute("job.status", final.record.status.value)
        if not final.applied:
            log.info("poison message for a finished job",
                     extra={"status": final.record.status.value})
            return Outcome.SKIPPED
        log.error("job failed: poisoned", extra={"status": final.record.status.value})
        telemetry.record_finished(final.record, span)
        return Outcome.FAILED
