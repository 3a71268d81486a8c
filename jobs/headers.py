"""Request headers the API reads: the Idempotency-Key and the correlation id."""

from __future__ import annotations

import re
import uuid

#: An Idempotency-Key: 1-255 printable ASCII characters, no space at either end (HTTP drops
#: those before the app sees the header). The same text in Python and ECMA-262 regexes.
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]{0,253}[!-~])?$"
#: A correlation id the app keeps as given; any other X-Correlation-Id is replaced.
CORRELATION_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_CORRELATION_ID = re.compile(CORRELATION_ID_PATTERN)


def is_idempotency_key(value: str) -> bool:
    """An Idempotency-Key is 1-255 printable ASCII characters, no space at either end."""
    return _IDEMPOTENCY_KEY.fullmatch(value) is not None


def correlation_id(traceparent: str | None, given: str | None) -> str:
    """The W3C trace id of `traceparent`, else a well-formed X-Correlation-Id, else a new id."""
    match = _TRACEPARENT.fullmatch((traceparent or "").strip().lower())
    if match and match.group(1) != "0" * 32:
        return match.group(1)
    if given and _CORRELATION_ID.fullmatch(given.strip()):
        return given.strip()
    return uuid.uuid4().hex
