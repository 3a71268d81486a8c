"""The registry of job types: each maps to a handler that receives the job and returns its result.

A handler gets the job message and a `progress(percent, message)` callable, and returns a
JSON-serialisable dict. It raises `JobFailed` for a failure that retrying cannot fix; any
other exception counts as transient, and the queue delivers the job again. `progress`
raises `JobCancelled` once the job was cancelled, which stops the handler.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from jobs.settings import get_settings

if TYPE_CHECKING:
    from jobs.models import JobMessage



class ReportProgress(Protocol):
    def __call__(self, percent: int, message: str = "") -> None: ...


Handler = Callable[["JobMessage", ReportProgress], dict[str, Any]]

_handlers: dict[str, Handler] = {}


def register(job_type: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of `job_type`."""

    def decorate(handler: Handler) -> Handler:
        _handlers[job_type] = handler
        return handler

    return decorate


def unregister(job_type: str) -> None:
    """Remove a job type; used by tests that register their own."""
    _handlers.pop(job_type, None)


def find_handler(job_type: str) -> Handler | None:
    """The handler of `job_type`, or None if no such type is registered."""
    return _handlers.get(job_type)


def known_job_types() -> list[str]:
    """The registered job types, sorted."""
    return sorted(_handlers)


def load_handler_modules(names: tuple[str, ...]) -> None:
    """Import extra modules whose `@register` calls add job types."""
    for name in names:
        importlib.import_module(name)


@register("thumbnail")
def make_thumbnail(job: JobMessage, progress: ReportProgress) -> dict[str, Any]:
    """The recipe's example: pretend to render a thumbnail and return where it lives."""
    progress(50, "rendering thumbnail")
    return {"artifactUrl": f"{get_settings().artifact_base_url}/jobs/{job.job_id}.json"}
