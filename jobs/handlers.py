"""The registry of job types: each maps to a handler that receives the job and returns its result.

A handler gets the job message and a `progress(percent, message)` callable, and returns a
JSON-serialisable dict. It raises `JobFailed` for a failure that retrying cannot fix; any
other exception counts as transient, and the queue delivers the job again. `progress`
raises `JobCancelled` once the job was cancelled, which stops the handler.

A job type may declare its payload as a pydantic model: the submit then refuses a payload
that breaks it (422, before anything is stored), and the handler gets the payload as the model
dumped it, defaults filled in. A job type without one takes any JSON object.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ValidationError

from jobs.errors import JobFailed
from jobs.settings import get_settings

if TYPE_CHECKING:
    from jobs.models import JobMessage


class ReportProgress(Protocol):
    def __call__(self, percent: int, message: str = "") -> None: ...


Handler = Callable[["JobMessage", ReportProgress], dict[str, Any]]


@dataclass(frozen=True)
class JobType:
    """A registered job type: its name, its handler, and its payload model if it has one."""

    name: str
    handler: Handler
    payload: type[BaseModel] | None = None


_job_types: dict[str, JobType] = {}


def register(job_type: str, *, payload: type[BaseModel] | None = None
             ) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of `job_type`, its payload checked
    against `payload` at submit when given."""

    def decorate(handler: Handler) -> Handler:
        _job_types[job_type] = JobType(job_type, handler, payload)
        return handler

    return decorate


def unregister(job_type: str) -> None:
    """Remove a job type; used by tests that register their own."""
    _job_types.pop(job_type, None)


def find_handler(job_type: str) -> Handler | None:
    """The handler of `job_type`, or None if no such type is registered.

    A typed job type's handler first checks the payload again: a message queued before its
    model changed fails with `invalid_payload` at once instead of being retried.
    """
    found = _job_types.get(job_type)
    if found is None or found.payload is None:
        return None if found is None else found.handler
    model, handler = found.payload, found.handler

    def checked(job: JobMessage, progress: ReportProgress) -> dict[str, Any]:
        try:
            model.model_validate(job.payload)
        except ValidationError as e:
            raise JobFailed("invalid_payload", f"the payload no longer fits {model.__name__}: "
                            f"{e.errors(include_url=False)}") from e
        return handler(job, progress)

    return checked


def payload_model(job_type: str) -> type[BaseModel] | None:
    """The payload model of `job_type`, or None for a free-form or unknown type."""
    found = _job_types.get(job_type)
    return None if found is None else found.payload


def job_types() -> list[JobType]:
    """The registered job types, sorted by name."""
    return [_job_types[name] for name in sorted(_job_types)]


def known_job_types() -> list[str]:
    """The registered job types' names, sorted."""
    return sorted(_job_types)


def load_handler_modules(names: tuple[str, ...]) -> None:
    """Import extra modules whose `@register` calls add job types."""
    for name in names:
        importlib.import_module(name)


@register("thumbnail")
def make_thumbnail(job: JobMessage, progress: ReportProgress) -> dict[str, Any]:
    """The recipe's example: pretend to render a thumbnail and return where it lives."""
    progress(50, "rendering thumbnail")
    return {"artifactUrl": f"{get_settings().artifact_base_url}/jobs/{job.job_id}.json"}
