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
            "TIMER_QUEUE": "timer-q", "TIMER_SCHEDULE": "*/5 * * * * *",
            "POISONED_QUEUE": "dead-poison"}


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
    assert len(sample_app.get_functions()) == 21  # the app's own indexing still works once


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


def _app_with(handler_source: str) -> func.FunctionApp:
    """An app with one good HTTP function and one function defined by `handler_source`."""
    app = func.FunctionApp()

    @app.route(route="good")
    def good(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("good")

    namespace: dict[str, object] = {"func": func, "app": app}
    exec(handler_source, namespace)  # noqa: S102 - fixed test source
    return app


# Registry.add_function in azure_functions_worker/functions.py (azure-functions-python-worker)
# raises FunctionLoadError for each of these, and the worker's metadata request then fails
# indexing of the whole app: no function of it runs, not only the broken one.
LOAD_ERRORS = {
    "parameter not in the bindings": (
        "@app.route(route='a')\n"
        "def renamed(_req: func.HttpRequest) -> func.HttpResponse: ...",
        "declared in Python but not in the function definition"),
    "binding not in the parameters": (
        "@app.route(route='a')\n"
        "@app.queue_output(arg_name='out', queue_name='q', connection='AzureWebJobsStorage')\n"
        "def missing(req: func.HttpRequest) -> func.HttpResponse: ...",
        "declared in the function definition but not in Python"),
    "out binding without Out annotation": (
        "@app.route(route='a')\n"
        "@app.queue_output(arg_name='out', queue_name='q', connection='AzureWebJobsStorage')\n"
        "def not_out(req: func.HttpRequest, out: str) -> func.HttpResponse: ...",
        'declared to have the "out" direction'),
    "in binding with Out annotation": (
        "@app.queue_trigger(arg_name='msg', queue_name='q', connection='AzureWebJobsStorage')\n"
        "def out_in(msg: func.Out[str]) -> None: ...",
        'declared to have the "in" direction'),
    "context of another type": (
        "@app.route(route='a')\n"
        "def bad_context(req: func.HttpRequest, context: str) -> func.HttpResponse: ...",
        'the "context" parameter is expected to be of type azure.functions.Context'),
    "annotation that does not fit the binding": (
        "@app.route(route='a')\n"
        "def wrong_type(req: func.QueueMessage) -> func.HttpResponse: ...",
        'does not match its Python annotation "QueueMessage"'),
}


@pytest.mark.parametrize("case", sorted(LOAD_ERRORS))
def test_worker_load_error_fails_indexing_of_the_whole_app(case: str) -> None:
    source, message = LOAD_ERRORS[case]
    with pytest.raises(CatalogError, match="Worker failed to index functions") as raised:
        discover(_app_with(source), {}, directory=SAMPLE_APP)
    assert message in str(raised.value)


def test_worker_accepts_context_str_bytes_and_list_outputs() -> None:
    app = _app_with(
        "import typing\n"
        "@app.queue_trigger(arg_name='msg', queue_name='q', connection='AzureWebJobsStorage')\n"
        "@app.queue_output(arg_name='out', queue_name='o', connection='AzureWebJobsStorage')\n"
        "def fine(msg: bytes, out: func.Out[typing.List[str]], context: func.Context) -> None: ...")
    specs = {s.name: s for s in discover(app, {}, directory=SAMPLE_APP)}
    assert specs["fine"].loaded.requires_context
    assert specs["fine"].loaded.parameters["msg"] == ("generic", bytes)


def test_queue_names_are_lower_cased() -> None:
    # QueueTriggerAttributeBindingProvider.NormalizeAndValidate in the storage queue extension:
    # "must be lowercase. coerce here to be nice."
    app = _app_with(
        "@app.queue_trigger(arg_name='msg', queue_name='%Q%', connection='AzureWebJobsStorage')\n"
        "@app.queue_output(arg_name='out', queue_name='Results-Q', "
        "connection='AzureWebJobsStorage')\n"
        "def shouty(msg: func.QueueMessage, out: func.Out[str]) -> None: ...")
    specs = {s.name: s for s in discover(app, {"Q": "Work-Q"}, directory=SAMPLE_APP)}
    assert specs["shouty"].trigger.get("queueName") == "work-q"
    assert specs["shouty"].outputs[0].get("queueName") == "results-q"


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
