"""A storage transport a test scripts: hooks and faults on chosen requests, below the app.

It wraps the real transport, so every request still reaches Azurite unless a rule says
otherwise. A rule matches a request by a predicate and acts once, or a given number of
times:
- `run`: call a function just before the request is sent (another client's whole request)
- `refuse`: fail before sending, as a refused connection does
- `lose_answer`: send it, so storage applies it, then answer 500 OperationTimedOut (or
  another `status`)
- `drop_answer`: send it, then lose the connection before the answer: the SDK resends
  only an idempotent request
The SDK's own retry policy then resends as it would against Azure.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline.transport import HttpTransport, RequestsTransport

Predicate = Callable[[Any], bool]


@dataclass
class Rule:
    matches: Predicate
    action: str
    times: int = 1
    hook: Callable[[], None] | None = None
    status: int = 500


class DelegatingTransport(HttpTransport):  # type: ignore[misc]
    """A transport that hands every request to the real one; subclasses step in on `send`."""

    def __init__(self, inner: HttpTransport | None = None) -> None:
        self.inner = inner or RequestsTransport()

    def send(self, request: Any, **kwargs: Any) -> Any:
        return self.inner.send(request, **kwargs)

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> DelegatingTransport:
        self.inner.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self.inner.__exit__(*args)


class ScriptedTransport(DelegatingTransport):
    """The real transport, with the rules a test adds."""

    def __init__(self) -> None:
        super().__init__()
        self.rules: list[Rule] = []

    def add(self, matches: Predicate, action: str, *, times: int = 1,
            hook: Callable[[], None] | None = None, status: int = 500) -> None:
        self.rules.append(Rule(matches, action, times, hook, status))

    def send(self, request: Any, **kwargs: Any) -> Any:
        rule = next((r for r in self.rules if r.times > 0 and r.matches(request)), None)
        if rule is None:
            return self.inner.send(request, **kwargs)
        rule.times -= 1  # before acting: the hook's own requests must not match it again
        if rule.action == "run":
            assert rule.hook is not None
            rule.hook()
            return self.inner.send(request, **kwargs)
        if rule.action == "refuse":
            raise ServiceRequestError("connection refused (scripted)")
        response = self.inner.send(request, **kwargs)
        if rule.action == "drop_answer":
            raise ServiceResponseError("connection reset before the answer (scripted)")
        response.status_code, response.reason = rule.status, "Operation could not be completed"
        return response


def entity(request: Any) -> dict[str, Any]:
    """The entity a create request carries, or {}."""
    body = getattr(request, "data", None) or getattr(request, "body", None)
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def on(method: str, row: str, *, partition: str = "") -> Predicate:
    """Requests of `method` on rows with RowKey `row` (job or key) in a matching partition.

    Creates are POSTs to the table with the keys in the body; other writes name the
    entity in the URL. An entity-group transaction matches when one of its operations does.
    """
    def one(request: Any) -> bool:
        if request.method != method:
            return False
        if method == "POST":
            found = entity(request)
            return found.get("RowKey") == row and found.get("PartitionKey", "").startswith(
                partition)
        return f"RowKey='{row}'" in request.url and f"PartitionKey='{partition}" in request.url

    def matches(request: Any) -> bool:
        return any(one(part) for part in operations(request))
    return matches


def operations(request: Any) -> list[Any]:
    """The request itself, or the operations of a transaction (a `$batch` of changesets)."""
    parts = (getattr(request, "multipart_mixed_info", None) or [None])[0]
    if not parts:
        return [request]
    return [operation for part in parts for operation in operations(part)]
