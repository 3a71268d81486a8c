"""Fixtures shared by every test tier: a private Azurite, and the app wired to it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.data.tables import TableClient, TableServiceClient

from tests.support.azurite import Azurite

# The app reads its settings when function_app is imported; a test points them at its own
# Azurite and table before each call (see `app_settings`).
os.environ.setdefault("AzureWebJobsStorage", "UseDevelopmentStorage=true")


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One in-memory Azurite on free loopback ports; tests keep apart by unique names."""
    emulator = Azurite()
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def storage_connection(azurite: Azurite) -> str:
    return azurite.connection_string


def unique_name(prefix: str) -> str:
    """A table or queue name no other test uses (letters and digits only)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture
def app_settings(storage_connection: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the app at the test Azurite and a table of this test's own; yields the table name."""
    from jobs.settings import get_settings

    table_name = unique_name("jobs")
    monkeypatch.setenv("AzureWebJobsStorage", storage_connection)
    monkeypatch.setenv("JOBS_TABLE_NAME", table_name)
    get_settings.cache_clear()
    reset_store()
    yield table_name
    get_settings.cache_clear()
    reset_store()
    with TableServiceClient.from_connection_string(storage_connection) as service:
        service.delete_table(table_name)


def reset_store() -> None:
    """Drop the app's cached store, closing its pooled connections first, so that no open
    socket is left for the garbage collector to warn about in a later test."""
    from jobs.store import default_store

    if default_store.cache_info().currsize:
        default_store().close()
    default_store.cache_clear()


@pytest.fixture
def table(app_settings: str, storage_connection: str) -> Iterator[TableClient]:
    """The test's job table, read directly with azure-data-tables."""
    with TableClient.from_connection_string(storage_connection, table_name=app_settings
                                            ) as client:
        client.create_table()
        yield client


@pytest.fixture(scope="session")
def functions() -> dict[str, Callable[..., Any]]:
    """The app's functions by name, as the host invokes them."""
    import function_app
    from tests.support.functions import user_functions

    return user_functions(function_app.app)


@pytest.fixture
def storage_down(app_settings: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the app at an Azurite that never started: every storage call fails to connect."""
    from jobs.settings import get_settings
    from tests.support.azurite import free_port

    closed = Azurite(blob_port=free_port(), queue_port=free_port(), table_port=free_port())
    monkeypatch.setenv("AzureWebJobsStorage", closed.connection_string)
    get_settings.cache_clear()
    reset_store()
