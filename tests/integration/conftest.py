"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from pydantic import BaseModel

from jobs import handlers


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], datetime]:
    """Move the app's clock to `days` from the test's start; returns the moment."""
    import function_app
    from jobs.lifecycle import utcnow

    start = utcnow()

    def move(days: float) -> datetime:
        moment = start + timedelta(days=days)
        monkeypatch.setattr(function_app, "clock", lambda: moment)
        return moment
    return move


@pytest.fixture
def register() -> Iterator[Callable[..., None]]:
    """Register extra job types for one test: `register(name, handler, payload=Model)`."""
    added: list[str] = []

    def add(job_type: str, handler: handlers.Handler,
            payload: type[BaseModel] | None = None) -> None:
        handlers.register(job_type, payload=payload)(handler)
        added.append(job_type)

    yield add
    for job_type in added:
        handlers.unregister(job_type)
