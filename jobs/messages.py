"""The queue message codec: a job message to JSON text and back, and what binds it to its job.

A job's id is a digest of everything else its message carries (job type, customer, payload,
submit time, correlation id and a random nonce), made when the job is submitted. So a
message names its job only if it is, field for field, the message the submit queued: change
any field and it names another id, which no row has. Reading a message from the queue (or
a stored copy from the table) therefore allows an exact replay of it and nothing more.

The message also carries the W3C trace context of its submit (`traceparent`, `tracestate`),
outside the digest, for two reasons. It decides nothing: it only says which trace a
delivery's spans join, and the worker never writes a message's context to the row. So a
message whose trace context was changed still acts only as an exact replay would, and at
worst misattributes the spans of that replay. And the job id stays a digest of the job
alone: the same content and nonce name the same id whatever tracing is set up, sampled or
not, so a seeded run makes the same ids. A malformed trace context is dropped, never the
message.

Anyone who can write to the queue can put anything there, so decoding trusts nothing: any
body that is not a job message of this app raises InvalidMessage, never another error.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from jobs.errors import InvalidMessage, MessageTooLarge
from jobs.models import JobMessage, is_job_id
from jobs.telemetry import MAX_TRACESTATE

# A queue message may hold 64 KiB once base64-encoded, so 48 KiB of UTF-8 text.
MAX_MESSAGE_BYTES = 48 * 1024
# Names the digest's input format, so a change of it can never make an old id match.
_DIGEST_SCHEME = "job-message-1"
# Version 00 as W3C Trace Context writes it; later versions start the same way.
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def new_job_message(*, job_type: str, customer_id: str, payload: dict[str, Any],
                    submitted_at: datetime, correlation_id: str, nonce: str) -> JobMessage:
    """A new job's message, with the id its content names; `nonce` must be new and random."""
    job = JobMessage(job_id="", job_type=job_type, customer_id=customer_id, payload=payload,
                     submitted_at=submitted_at, correlation_id=correlation_id, token=nonce)
    return replace(job, job_id=job_id_for(job))


def job_id_for(message: JobMessage) -> str:
    """The job id a message's content names: a UUID (version 8) of its SHA-256 digest.

    Every field but the id itself and the trace context goes in, so the handler sees nothing
    the id does not bind (the module docstring says why the trace context stays out).
    122 bits of the digest remain: finding other content for a given id is out of reach.
    """
    content = json.dumps(
        [_DIGEST_SCHEME, message.job_type, message.customer_id, message.payload,
         message.submitted_at.isoformat(), message.correlation_id, message.token],
        sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    digest = int.from_bytes(hashlib.sha256(content.encode()).digest()[:16])
    # RFC 9562 version 8 (custom) and the RFC variant; uuid.UUID(version=8) needs 3.14.
    digest = digest & ~(0xF000 << 64) | 0x8000 << 64
    digest = digest & ~(0xC000 << 48) | 0x8000 << 48
    return str(uuid.UUID(int=digest))


def names_its_job(message: JobMessage) -> bool:
    """Whether the message's job id is the one its content names."""
    try:
        return message.job_id == job_id_for(message)
    except (ValueError, RecursionError):  # no plain JSON, or too deep: no submit made it
        return False


def encode_message(message: JobMessage) -> str:
    """The message as compact JSON; raises MessageTooLarge past the queue's limit."""
    fields = {
        "job_id": message.job_id,
        "job_type": message.job_type,
        "customer_id": message.customer_id,
        "payload": message.payload,
        "submitted_at": message.submitted_at.isoformat(),
        "correlation_id": message.correlation_id,
        "token": message.token,
    }
    if message.traceparent:
        fields["traceparent"] = message.traceparent
    if message.tracestate:
        fields["tracestate"] = message.tracestate
    text = json.dumps(
        fields,
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
    )
    if len(text.encode()) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"the job message would exceed {MAX_MESSAGE_BYTES} bytes")
    return text


def decode_message(body: bytes) -> JobMessage:
    """Parse a message body; any malformed body raises InvalidMessage."""
    try:
        data = json.loads(body)
        job_id = _text(data, "job_id")
        if not is_job_id(job_id):
            raise ValueError("job_id is not a job id")
        payload = data.get("payload", {})
        if not isinstance(payload, dict):
            raise ValueError("payload is not an object")
        return JobMessage(
            job_id=job_id,
            job_type=_text(data, "job_type"),
            customer_id=_text(data, "customer_id"),
            payload=payload,
            submitted_at=datetime.fromisoformat(_text(data, "submitted_at")),
            correlation_id=str(data.get("correlation_id") or ""),
            token=_text(data, "token"),
            **trace_fields(data),
        )
    # RecursionError: JSON nested too deeply for the decoder.
    except (ValueError, TypeError, AttributeError, RecursionError) as e:
        raise InvalidMessage(f"not a job message: {e}") from e


def trace_fields(data: dict[str, Any]) -> dict[str, str]:
    """The well-formed W3C trace context among `data`'s fields; a malformed one is left out."""
    traceparent = data.get("traceparent")
    if not isinstance(traceparent, str) or _TRACEPARENT.fullmatch(traceparent) is None:
        return {}
    tracestate = data.get("tracestate")
    if not isinstance(tracestate, str) or len(tracestate) > MAX_TRACESTATE:
        tracestate = ""
    return {"traceparent": traceparent, "tracestate": tracestate}


def _text(data: Any, key: str) -> str:
    value = data[key] if isinstance(data, dict) and key in data else None
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing or empty {key!r}")
    return value
