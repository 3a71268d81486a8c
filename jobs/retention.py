"""Retention: purge finished jobs past their expiry, and accepted jobs whose message never came.

Tables have no built-in expiry, so a timer runs this. Each job is its own partition, so the
query scans the whole table; see the README for when a table per period is the better design.
"""

from __future__ import annotations

import logging

from jobs.lifecycle import Clock, utcnow
from jobs.logs import job_fields
from jobs.settings import Settings
from jobs.store import JobStore

log = logging.getLogger(__name__)


def purge_expired(store: JobStore, *, settings: Settings, clock: Clock = utcnow) -> int:
    """Delete expired job rows with their idempotency keys; return how many jobs went."""
    now = clock()
    purged = 0
    for record in store.expired(now, accepted_before=now - settings.retention):
        # The key row goes first: a key must never point at a missing job for long.
        if record.idempotency_row:
            store.delete_key(record.idempotency_row)
        store.delete(record.job_id)
        log.info("job purged", extra={**job_fields(record), "status": record.status.value})
        purged += 1
    return purged
