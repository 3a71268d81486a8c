"""Errors of the job package: one class per concept, mapped to HTTP only by function_app.py."""

from __future__ import annotations


class JobsError(Exception):
    """Base class of every error the job package raises on purpose."""


class StorageUnavailable(JobsError):
    """Table Storage could not be reached or answered with a server error."""


class RowRejected(JobsError):
    """Table Storage refused a row as invalid, for example past its size limits."""


class JobNotFound(JobsError):
    """No job has the given id."""


class InvalidTransition(JobsError):
    """A status change that the lifecycle table does not allow."""


class InvalidMessage(JobsError):
    """A queue message that is not a job message: not JSON, or no job id."""


class MessageTooLarge(JobsError):
    """The queue message for a job would exceed the queue's size limit."""


class IdempotencyKeyReused(JobsError):
    """An Idempotency-Key came back with a different request body."""


class JobCancelled(JobsError):
    """The job was cancelled while its handler ran; raised to the handler by progress reports."""


class JobFailed(JobsError):
    """Raised by a handler for a failure that retrying cannot fix."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
