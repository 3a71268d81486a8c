"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from jobs import handlers


@pytest.fixture
def register() -> Iterator[Callable[[str, handlers.Handler], None]]:
    """Register extra job types for one test."""
    added: list[str] = []

    def add(job_type: str, handler: handlers.Handler) -> None:
        handlers.register(job_type)(handler)
        added.append(job_type)

    yield add
    for job_type in added:
        handlers.unregister(job_type)
