"""The queue message codec: a job message to JSON text and back.

Anyone who can write to the queue can put anything there, so decoding trusts nothing: any
body that is not a job message of this app raises InvalidMessage, never another error.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from jobs.errors import InvalidMessage, MessageTooLarge
from jobs.models import JobMessage, is_job_id

# A queue message may hold 64 KiB once base64-encoded, so 48 KiB of UTF-8 text.
MAX_MESSAGE_BYTES = 48 * 1024


def encode_message(message: JobMessage) -> str:
    """The message as compact JSON; raises MessageTooLarge past the queue's limit."""
    text = json.dumps(
        {
            "job_id": message.job_id,
            "job_type": message.job_type,
            "customer_id": message.customer_id,
            "payload": message.payload,
            "submitted_at": message.submitted_at.isoformat(),
            "correlation_id": message.correlation_id,
            "token": message.token,
        },
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
        )
    # RecursionError: JSON nested too deeply for the decoder.
    except (ValueError, TypeError, AttributeError, RecursionError) as e:
        raise InvalidMessage(f"not a job message: {e}") from e


def _text(data: Any, key: str) -> str:
    value = data[key] if isinstance(data, dict) and key in data else None
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing or empty {key!r}")
    return value
