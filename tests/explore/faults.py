"""Storage faults injected at the azure-core transport, below the code under test.

The explorer installs `FaultyTransport` through `jobs.store.EXTRA_CLIENT_OPTIONS`, so every
table request the app sends passes through it. Before each operation the state machine hands
it a plan: which HTTP attempts (counted from 0 within that operation) get which fault. The
plan comes from Hypothesis, so a failing schedule shrinks and replays exactly.

It also watches what reached the table: every job-row write that carried a handler result
and that the table applied (whatever answer the client then saw) is counted per job.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from azure.core.exceptions import AzureError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline.transport import HttpTransport

from tests.support.faults import DelegatingTransport

#: Fails before the request is sent: the table never sees it.
REFUSED = "refused"
#: The connection is reset while sending: the table never sees it either.
RESET = "reset"
#: The table applies the request, then the client gets 500 OperationTimedOut.
APPLIED_500 = "applied_500"
#: The table applies the request, then the client gets 503 ServerBusy.
APPLIED_503 = "applied_503"
#: The table applies the request and the response is lost on the way back.
LOST_RESPONSE = "lost_response"
#: The request is delayed a little before it is sent.
SLOW = "slow"
#: The request is held in the network: the client times out (and its SDK may send it again),
#: and the held copy lands later, just before the next operation starts.
LATE = "late"
KINDS = (REFUSED, RESET, APPLIED_500, APPLIED_503, LOST_RESPONSE, SLOW, LATE)
SLOW_SECONDS = 0.002
_ENTITY = re.compile(r"PartitionKey='([^']*)',\s*RowKey='job'")
_ERRORS = {
    APPLIED_500: (500, "Internal Server Error", "OperationTimedOut",
                  "Operation could not be completed within the specified time."),
    APPLIED_503: (503, "Service Unavailable", "ServerBusy",
                  "The server is currently unable to receive requests."),
}


class FaultyTransport(DelegatingTransport):
    """A requests transport that injects the faults of the current plan."""

    def __init__(self, inner: HttpTransport | None = None) -> None:
        super().__init__(inner)
        self.plan: Mapping[int, str] = {}
        self.attempt = 0
        self.injected: Counter[str] = Counter()
        #: Job id -> how many writes of a handler result the table applied.
        self.result_writes: Counter[str] = Counter()
        self._overlap: tuple[int, bool, Callable[[], object]] | None = None
        #: Real connection failures (not injected) that were sent again.
        self.uninjected = 0
        #: Requests held by a LATE fault, with the operation they came from; each lands
        #: just after the first request of a later operation reached the table.
        self.held: list[tuple[int, Any, dict[str, Any]]] = []
        self.operation = 0
        #: Held requests that landed late (whatever the table answered them).
        self.landed_late = 0
        #: The operations whose held requests landed since the explorer last cleared this.
        self.landed_from: set[int] = set()

    def overlap(self, at: int, *, after: bool, operation: Callable[[], object]) -> None:
        """Run `operation` whole when the current operation reaches its `at`-th request:
        just before that request is sent, or (`after`) once the table applied it and before
        its answer reaches the caller. The two never run in parallel, so it replays exactly."""
        self._overlap = (at, after, operation)

    def overlapped(self) -> bool:
        """Whether the overlapping operation ran; clears it either way."""
        ran, self._overlap = self._overlap is None, None
        return ran

    def arm(self, plan: Mapping[int, str]) -> None:
        """Use `plan` (attempt index -> fault kind) for the operation that starts now."""
        self.plan, self.attempt = plan, 0
        self.operation += 1

    def land_held(self, *, before: int | None = None) -> None:
        """Send the held requests (those of operations before `before`), as a slow network
        delivers them at last; the table decides what they still do."""
        held = [h for h in self.held if before is None or h[0] < before]
        self.held = [h for h in self.held if h not in held]
        for operation, request, kwargs in held:
            self.landed_from.add(operation)
            try:
                response = self._send(request, **kwargs)
            except AzureError:  # noqa: S112 - a late copy's fate is the table's to tell
                continue
            _release(response)  # no caller reads this answer
            self.landed_late += 1
            self._watch(request, response)

    def disarm(self) -> None:
        self.plan, self.attempt = {}, 0

    def send(self, request: Any, **kwargs: Any) -> Any:
        index = self.attempt
        self.attempt += 1
        self._run_overlap(index, after=False)
        kind = self.plan.get(index)
        if kind is not None:
            self.injected[kind] += 1
        if kind == REFUSED:
            raise ServiceRequestError("injected: connection refused")
        if kind == RESET:
            raise ServiceRequestError("injected: connection reset by peer")
        if kind == SLOW:
            time.sleep(SLOW_SECONDS)
        if kind == LATE:
            self.held.append((self.operation, request, kwargs))
            raise ServiceResponseError("injected: timed out; the request is still on its way")
        response = self._send(request, **kwargs)
        self._watch(request, response)
        if self.held:
            self.land_held(before=self.operation)
        self._run_overlap(index, after=True)
        if kind == LOST_RESPONSE:
            _release(response)
            raise ServiceResponseError("injected: the response was lost")
        if kind in _ERRORS:
            _release(response)
            _turn_into_error(response, *_ERRORS[kind])
        return response

    def _send(self, request: Any, **kwargs: Any) -> Any:
        """Send for real. A pooled connection the emulator closed while idle fails before the
        request is sent; that fault is not in the plan, so send again (as a fresh connection
        would) and count it, instead of letting it shift the plan and break the replay."""
        try:
            return self.inner.send(request, **kwargs)
        except ServiceRequestError:
            self.uninjected += 1
            return self.inner.send(request, **kwargs)

    def _run_overlap(self, index: int, *, after: bool) -> None:
        if self._overlap is None or self._overlap[:2] != (index, after):
            return
        operation = self._overlap[2]
        self._overlap = None
        saved = self.plan, self.attempt
        try:
            operation()
        finally:
            self.plan, self.attempt = saved

    def _watch(self, request: Any, response: Any) -> None:
        if request.method not in ("PATCH", "MERGE", "PUT") or response.status_code >= 300:
            return
        found = _ENTITY.search(request.url)
        body = request.data if isinstance(request.data, str | bytes) else request.body
        if found is None or not body:
            return
        sent = json.loads(body)
        if "result" in sent:
            self.result_writes[found.group(1)] += 1



def _release(response: Any) -> None:
    """Read the real answer whole and give its connection back to the pool. A transaction's
    answer is streamed: the SDK reads it, but not one whose answer is lost or replaced, and
    its connection would stay checked out until the garbage collector closes its socket."""
    real = response.internal_response
    _ = real.content
    real.close()


def _turn_into_error(response: Any, status: int, reason: str, code: str, message: str) -> None:
    """Make an applied request's response read as the server error Azure can answer with."""
    body = json.dumps({"odata.error": {"code": code, "message": {"lang": "en-US",
                                                                 "value": message}}})
    response.status_code = status
    response.reason = reason
    response.headers["x-ms-error-code"] = code
    response.headers["Content-Type"] = "application/json;odata=minimalmetadata"
    # The SDK's response has read the body already and keeps it; so does requests'.
    response._content = body.encode()
    response.internal_response.status_code = status
    response.internal_response._content = body.encode()
