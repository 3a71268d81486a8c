"""Retention: purge finished jobs past their expiry, and accepted jobs whose message never came.

Tables have no built-in expiry, so a timer runs this. Each job is its own partition, so the
query scans the whole table; see the README for when a table per period is the better design.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from jobs.lifecycle import Clock, utcnow
from jobs.logs import job_fields
from jobs.settings import Settings
from jobs.store import JobStore

log = logging.getLogger(__name__)
# How long a queue message lives by default: an accepted job younger than this may still
# have its message on the way, however short the retention window is.
MESSAGE_TIME_TO_LIVE = timedelta(days=7)


def purge_expired(store: JobStore, *, settings: Settings, clock: Clock = utcnow) -> int:
    """Delete expired job rows with their idempotency keys; return how many jobs went.

    Also delete key rows older than the window whose job row was never written: the
    reservation of a request an outage cut off, which its client never retried.
    """
    now = clock()
    cutoff = now - settings.retention
    for key in store.old_keys(cutoff):
        if store.read(key.job_id) is None:
            store.delete_key(key.row)
            log.info("stale idempotency key purged", extra={"job_id": key.job_id})
    purged = 0
    accepted_before = now - max(settings.retention, MESSAGE_TIME_TO_LIVE)
    for found in store.expired(now, accepted_before=accepted_before):
        record = found.record
        # As of the row that was found: a job claimed since then is left alone, key and all.
        if not store.delete(record.job_id, etag=found.etag):
            continue
        # A replay that finds this key before it goes sees an old key without its job, which
        # frees the key (submission._replay), so the job is never written again.
        if record.idempotency_row:
            store.delete_key(record.idempotency_row)
        log.info("job purged", extra={**job_fields(record), "status": record.status.value})
        purged += 1
    return purged
