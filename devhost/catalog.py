"""Discover the app's functions from its own binding metadata, as the Python worker indexes them.

Nothing here knows the app's routes or queues: it imports `function_app.py`, finds the
`FunctionApp`, and reads each function's `function.json`-shaped metadata.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func

from devhost.errors import CatalogError
from devhost.settings import resolve_expression
from devhost.worker import BindingInfo, FunctionLoadError, LoadedFunction, load

logger = logging.getLogger(__name__)

SCRIPT_FILE_SETTING = "PYTHON_SCRIPT_FILE_NAME"
TRIGGER_TYPES = frozenset({"httpTrigger", "queueTrigger", "timerTrigger"})
OUTPUT_TYPES = frozenset({"http", "queue"})
# The binding properties the host resolves from app settings when written as %NAME%.
RESOLVED_PROPERTIES = ("queueName", "schedule")
QUEUE_BINDINGS = ("queueTrigger", "queue")


@dataclass(frozen=True)
class Binding:
    """One binding from the function's metadata: `type`, `name`, `direction` and the rest."""

    type: str
    name: str
    direction: str  #: "in" or "out"
    properties: Mapping[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        """Return a binding property such as `queueName` or `route`."""
        return self.properties.get(key, default)


@dataclass(frozen=True)
class FunctionSpec:
    """A function the host can run: its handler, its trigger and its output bindings."""

    name: str
    handler: Callable[..., Any]
    trigger: Binding
    outputs: tuple[Binding, ...]
    directory: Path
    loaded: LoadedFunction

    @property
    def wants_context(self) -> bool:
        """Whether the handler declares a `context` parameter, which the worker fills."""
        return self.loaded.requires_context


def discover(
    app: func.FunctionRegister, environ: Mapping[str, str], *, directory: Path
) -> list[FunctionSpec]:
    """Describe every function of `app` the host supports; warn about and skip the others.

    A function the worker would refuse to load (FunctionLoadError) fails the whole app, as
    the worker's indexing does: CatalogError, and the host does not start.
    """
    specs = [describe(f, environ, directory=directory) for f in build_functions(app)]
    return [spec for spec in specs if spec is not None]


def import_script(script_root: Path, environ: Mapping[str, str]) -> ModuleType:
    """Import `function_app.py` (or PYTHON_SCRIPT_FILE_NAME) with the script root on sys.path."""
    script = environ.get(SCRIPT_FILE_SETTING) or "function_app.py"
    if not (script_root / script).is_file():
        raise CatalogError(f"{script_root / script} does not exist")
    sys.path.insert(0, str(script_root))
    try:
        return importlib.import_module(Path(script).stem)
    except Exception as e:
        raise CatalogError(f"importing {script} failed: {e!r}") from e


def find_app(module: ModuleType) -> func.FunctionRegister:
    """Return the module's single top-level FunctionApp, as the worker looks for it."""
    apps = {id(v): v for v in vars(module).values() if isinstance(v, func.FunctionRegister)}
    if len(apps) != 1:
        found = "no" if not apps else "more than one"
        raise CatalogError(f"{module.__name__} defines {found} top-level FunctionApp instance")
    return next(iter(apps.values()))


def build_functions(app: func.FunctionRegister) -> list[func.Function]:
    """Build the app's functions once each, checking that their names are unique."""
    # app.get_functions() raises on a second call, so build from the builders directly.
    functions = [builder.build(app.auth_level) for builder in app._function_builders]
    names = [f.get_function_name() for f in functions]
    duplicates = sorted({n for n in names if names.count(n) > 1 and n})
    if duplicates:
        raise CatalogError(f"function names must be unique: {', '.join(duplicates)}")
    return functions


def describe(
    function: func.Function, environ: Mapping[str, str], *, directory: Path
) -> FunctionSpec | None:
    """Describe one function; log why and return None if it uses other bindings or cannot load."""
    name = function.get_function_name() or function.get_user_function().__name__
    raw_bindings = json.loads(function.get_function_json())["bindings"]
    types = [str(raw["type"]) for raw in raw_bindings]
    unsupported = sorted(set(types) - TRIGGER_TYPES - OUTPUT_TYPES)
    if unsupported or len([t for t in types if t in TRIGGER_TYPES]) != 1:
        logger.warning("Skipping function %s: the local host does not support binding types %s",
                       name, ", ".join(unsupported) or "(no trigger)")
        return None
    infos = [BindingInfo(str(raw["name"]), str(raw["type"]),
                         str(raw.get("direction", "in")).lower()) for raw in raw_bindings]
    try:
        loaded = load(name, function.get_user_function(), infos)
    except FunctionLoadError as e:
        raise CatalogError(f"Worker failed to index functions: {e}") from e
    # Resolve %SETTING% only for functions that run, as an unresolved name stops the host.
    bindings = [_binding(raw, environ) for raw in raw_bindings]
    triggers = [b for b in bindings if b.type in TRIGGER_TYPES]
    outputs = tuple(b for b in bindings if b.direction == "out")
    return FunctionSpec(name, function.get_user_function(), triggers[0], outputs, directory,
                        loaded)


def _binding(raw: Mapping[str, Any], environ: Mapping[str, str]) -> Binding:
    properties = dict(raw)
    for key in RESOLVED_PROPERTIES:
        if isinstance(properties.get(key), str):
            properties[key] = resolve_expression(properties[key], environ)
    if raw["type"] in QUEUE_BINDINGS and isinstance(properties.get("queueName"), str):
        # QueueTriggerAttributeBindingProvider.NormalizeAndValidate: "must be lowercase.
        # coerce here to be nice."
        properties["queueName"] = properties["queueName"].lower()
    return Binding(
        type=str(raw["type"]),
        name=str(raw["name"]),
        direction=str(raw.get("direction", "in")).lower(),
        properties=properties,
    )
