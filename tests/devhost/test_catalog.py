"""Discovering functions from the app's own binding metadata (in process, no storage)."""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Iterator

import azure.functions as func
import pytest

from devhost.catalog import build_functions, discover, find_app, import_script
from devhost.errors import CatalogError, SettingsError
from devhost.http import function_methods, function_route
from tests.devhost.conftest import SAMPLE_APP

SETTINGS = {"WORK_QUEUE": "work-q", "RESULTS_QUEUE": "results-q", "OUTPUT_QUEUE": "out-q",
            "TIMER_QUEUE": "timer-q", "TIMER_SCHEDULE": "*/5 * * * * *"}


@pytest.fixture
def sample_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[func.FunctionRegister]:
    """The sample app imported here, with sys.path and sys.modules restored afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    previous = sys.modules.pop("function_app", None)
    try:
        yield find_app(import_script(SAMPLE_APP, {}))
    finally:
        sys.modules.pop("function_app", None)
        if previous is not None:
            sys.modules["function_app"] = previous


def test_discover_describes_every_supported_function(sample_app: func.FunctionRegister) -> None:
    specs = {s.name: s for s in discover(sample_app, SETTINGS, directory=SAMPLE_APP)}
    assert specs["echo"].trigger.type == "httpTrigger"
    assert function_route(specs["echo"]) == "echo/{name}"
    assert function_methods(specs["echo"]) == frozenset({"GET", "POST"})
    assert function_methods(specs["boom"]) is None
    assert specs["work"].trigger.type == "queueTrigger"
    assert specs["tick"].trigger.type == "timerTrigger"
    assert [(b.type, b.name) for b in specs["enqueue"].outputs] == [
        ("queue", "message"), ("http", "$return")]


def test_discover_resolves_setting_expressions(sample_app: func.FunctionRegister) -> None:
    specs = {s.name: s for s in discover(sample_app, SETTINGS, directory=SAMPLE_APP)}
    assert specs["work"].trigger.get("queueName") == "work-q"
    assert specs["work"].outputs[0].get("queueName") == "results-q"
    assert specs["tick"].trigger.get("schedule") == "*/5 * * * * *"


def test_discover_unresolved_setting_is_an_error(sample_app: func.FunctionRegister) -> None:
    with pytest.raises(SettingsError, match="WORK_QUEUE"):
        discover(sample_app, _without(SETTINGS, "WORK_QUEUE"), directory=SAMPLE_APP)


def test_discover_skips_unsupported_bindings_with_a_warning(
    sample_app: func.FunctionRegister, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="devhost.catalog"):
        names = {s.name for s in discover(sample_app, SETTINGS, directory=SAMPLE_APP)}
    assert "unsupported_blob" not in names
    assert "unsupported_blob" in caplog.text and "blobTrigger" in caplog.text


def test_discover_leaves_get_functions_usable(sample_app: func.FunctionRegister) -> None:
    discover(sample_app, SETTINGS, directory=SAMPLE_APP)
    discover(sample_app, SETTINGS, directory=SAMPLE_APP)
    assert len(sample_app.get_functions()) == 18  # the app's own indexing still works once


def test_function_route_defaults_to_the_function_name() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route()
    def hello(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("hi")

    [spec] = discover(app, {}, directory=SAMPLE_APP)
    assert function_route(spec) == "hello"


def test_build_functions_rejects_duplicate_names() -> None:
    app = func.FunctionApp()

    @app.function_name("same")
    @app.route(route="a")
    def first(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("a")

    @app.function_name("same")
    @app.route(route="b")
    def second(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("b")

    with pytest.raises(CatalogError, match="same"):
        build_functions(app)


def test_function_whose_parameters_differ_from_its_bindings_is_not_loaded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = func.FunctionApp()

    @app.route(route="a")
    def renamed_parameter(_req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("a")

    @app.route(route="b")
    def extra_parameter(req: func.HttpRequest, extra: str) -> func.HttpResponse:
        return func.HttpResponse("b")

    @app.route(route="c")
    def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return func.HttpResponse("c")

    with caplog.at_level(logging.ERROR, logger="devhost.catalog"):
        specs = discover(app, {}, directory=SAMPLE_APP)
    assert [s.name for s in specs] == ["with_context"]
    assert "cannot load the renamed_parameter function" in caplog.text
    assert "{'_req'}" in caplog.text and "{'extra'}" in caplog.text


def test_find_app_needs_exactly_one_function_app() -> None:
    module = types.ModuleType("function_app")
    with pytest.raises(CatalogError, match="no"):
        find_app(module)
    first = func.FunctionApp()
    module.first, module.second = first, func.FunctionApp()  # type: ignore[attr-defined]
    with pytest.raises(CatalogError, match="more than one"):
        find_app(module)
    module.second = first  # type: ignore[attr-defined]  # one app under two names is one app
    assert find_app(module) is first


def _without(values: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in values.items() if k != name}
