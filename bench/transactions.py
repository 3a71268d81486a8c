"""Storage transactions counted by operation, from an azure-core response hook.

Neither azure-data-tables 12.7 nor azure-storage-queue 12.18 passes `per_call_policies` or
`per_retry_policies` into its pipeline: each builds its own policy list. Both run a
`raw_response_hook` after every HTTP attempt, and each attempt is one billed transaction,
so the counter hangs there (jobs.store.EXTRA_CLIENT_OPTIONS for the app's table client).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

Hook = Callable[[Any], None]


class TransactionCounter:
    """Counts responses by service and operation; safe to share across threads."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def hook(self, service: str) -> Hook:
        """A `raw_response_hook` that counts the responses of a `table` or `queue` client."""
        classify = table_operation if service == "table" else queue_operation

        def count(response: Any) -> None:
            request = response.http_request
            name = f"{service} {classify(request.method, request.url, request.headers)}"
            with self._lock:
                self._counts[name] += 1

        return count

    def take(self) -> dict[str, int]:
        """The counts since the last take, and start again from zero."""
        with self._lock:
            counts = dict(sorted(self._counts.items()))
            self._counts.clear()
        return counts


def table_operation(method: str, url: str, headers: Any) -> str:
    """The Table Storage operation of a request, e.g. `insert` or `conditional merge`."""
    resource = _resource(url)
    if resource == "Tables":
        return "create table" if method == "POST" else "list tables"
    if method == "POST":
        return "transaction" if resource == "$batch" else "insert"
    if method == "GET":
        return "read" if "PartitionKey=" in resource else "query"
    conditional = headers.get("If-Match", "*") != "*"
    if method == "PATCH":
        return "conditional merge" if conditional else "merge"
    if method == "PUT":
        return "conditional replace" if conditional else "replace"
    return "delete" if method == "DELETE" else method.lower()


def queue_operation(method: str, url: str, headers: Any) -> str:
    """The Queue Storage operation of a request, e.g. `put` or `receive`."""
    resource = _resource(url)
    if "/messages" not in resource:
        return {"PUT": "create queue", "DELETE": "delete queue"}.get(method, "queue metadata")
    if method == "POST":
        return "put"
    if method == "GET":
        return "peek" if "peekonly" in parse_qs(urlsplit(url).query) else "receive"
    if method == "DELETE":
        return "delete" if "popreceipt" in url else "clear"
    return "update (visibility)" if method == "PUT" else method.lower()


def _resource(url: str) -> str:
    """The path after the account (Azurite URLs are path-style): `Tables`, `q/messages`..."""
    path = urlsplit(url).path.strip("/")
    return path.split("/", 1)[1] if "/" in path else path
