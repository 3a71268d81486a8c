"""What the Python worker checks when it loads a function, and how it converts values.

Follows `Registry.add_function` in azure_functions_worker/functions.py
(Azure/azure-functions-python-worker): parameter names against binding names, the `Out`
direction, the `context` annotation, and each annotation against its binding's converter in
the azure-functions library. Any failure is a FunctionLoadError, and the worker then fails
indexing of the whole app, not just that function.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions import meta

RETURN = "$return"
GENERIC = "generic"  # the worker's binding for str/bytes annotations: the raw value


class FunctionLoadError(Exception):
    """The worker refuses to load a function; the message is the worker's."""

    def __init__(self, function_name: str, message: str) -> None:
        super().__init__(f"cannot load the {function_name} function: {message}")


@dataclass(frozen=True)
class BindingInfo:
    """A binding as the worker sees it: name, type and direction."""

    name: str
    type: str
    direction: str  #: "in" or "out"


@dataclass(frozen=True)
class LoadedFunction:
    """What loading found: context wanted, a $return binding, and each parameter's type."""

    requires_context: bool
    has_return: bool
    #: binding name -> (binding type the worker converts with, annotated type or None)
    parameters: Mapping[str, tuple[str, Any]]


def load(name: str, handler: Callable[..., Any], bindings: Iterable[BindingInfo]) -> LoadedFunction:
    """Check `handler` against its bindings as the worker does; raise FunctionLoadError."""
    params = dict(inspect.signature(handler).parameters)
    annotations = _type_hints(name, handler)
    bound = {b.name: b for b in bindings if b.name != RETURN}
    has_return = any(b.name == RETURN for b in bindings)
    requires_context = _takes_context(name, params, bound, annotations)
    if set(params) - set(bound):
        raise FunctionLoadError(name, "the following parameters are declared in Python but not "
                                f"in the function definition: {set(params) - set(bound)!r}")
    if set(bound) - set(params):
        raise FunctionLoadError(name, "the following parameters are declared in the function "
                                f"definition but not in Python: {set(bound) - set(params)!r}")
    parameters = {p: _parameter(name, bound[p], annotations) for p in params}
    return LoadedFunction(requires_context, has_return, parameters)


def _type_hints(name: str, handler: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(handler)
    except Exception as e:  # a name the annotation uses does not resolve
        raise FunctionLoadError(name, f"cannot read the annotations: {e!r}") from e


def _takes_context(name: str, params: dict[str, inspect.Parameter], bound: Mapping[str, Any],
                   annotations: Mapping[str, Any]) -> bool:
    if "context" not in params or "context" in bound:
        return False
    params.pop("context")
    anno = annotations.get("context")
    if "context" in annotations and (not isinstance(anno, type) or anno.__name__ != "Context"):
        raise FunctionLoadError(name, 'the "context" parameter is expected to be of type '
                                f"azure.functions.Context, got {anno!r}")
    return True


def _parameter(name: str, binding: BindingInfo, annotations: Mapping[str, Any]
               ) -> tuple[str, Any]:
    if binding.name not in annotations:
        return binding.type, None
    anno = annotations[binding.name]
    is_out = typing.get_origin(anno) is func.Out or anno is func.Out
    if is_out:
        args = typing.get_args(anno)
        if len(args) != 1:
            raise FunctionLoadError(name, f"binding {binding.name} has invalid Out annotation "
                                    f"{anno!r}")
        anno = args[0]
    _check_direction(name, binding, is_out=is_out)
    if not isinstance(anno, type) and typing.get_origin(anno) is None:
        raise FunctionLoadError(name, f"binding {binding.name} has invalid non-type annotation "
                                f"{anno!r}")
    binding_type = GENERIC if anno in (str, bytes) else binding.type
    if not _annotation_fits(binding_type, anno, is_out=is_out):
        shown = getattr(anno, "__name__", repr(anno))
        raise FunctionLoadError(name, f'type of {binding.name} binding "{binding.type}" does '
                                f'not match its Python annotation "{shown}"')
    return binding_type, anno


def _check_direction(name: str, binding: BindingInfo, *, is_out: bool) -> None:
    if binding.direction == "out" and not is_out:
        raise FunctionLoadError(name, f'binding {binding.name} is declared to have the "out" '
                                "direction, but its annotation in Python is not a subclass of "
                                "azure.functions.Out")
    if binding.direction != "out" and is_out:
        raise FunctionLoadError(name, f'binding {binding.name} is declared to have the "in" '
                                "direction, but its annotation is azure.functions.Out in Python")


def converter_for(binding_type: str) -> Any:
    """The azure-functions converter the worker uses for a binding type (None if unknown)."""
    registry = meta.get_binding_registry()  # type: ignore[no-untyped-call]  # untyped library
    return registry.get(binding_type)


def _annotation_fits(binding_type: str, anno: Any, *, is_out: bool) -> bool:
    if binding_type == GENERIC:
        return True  # GenericBinding takes str and bytes both ways
    converter = converter_for(binding_type)
    if converter is None:
        return True  # a binding the library has no converter for: the worker passes it through
    check = converter.check_output_type_annotation if is_out else \
        converter.check_input_type_annotation
    try:
        return bool(check(anno))
    except TypeError:  # issubclass on a generic alias
        return False


def check_return(name: str, loaded: LoadedFunction, result: Any) -> None:
    """The worker's rule: a function without a $return binding must return None."""
    if result is not None and not loaded.has_return:
        raise RuntimeError(f"function {name!r} without a $return binding returned a non-None "
                           "value")


def trigger_argument(binding_type: str, pytype: Any, message: func.QueueMessage) -> Any:
    """The value a queue-triggered parameter receives: the body for str/bytes, else the message."""
    if binding_type == GENERIC and pytype is str:
        return message.get_body().decode("utf-8")
    if binding_type == GENERIC:
        return message.get_body()
    return message


def queue_output_bodies(binding_type: str, value: Any) -> list[bytes]:
    """The message bodies the host writes for a queue output value, as the worker encodes it.

    A str/bytes annotation (`func.Out[str]`) goes through the worker's GenericBinding, which
    takes one str or bytes only. Otherwise the azure-functions QueueMessageOutConverter applies:
    a `func.QueueMessage` is sent as JSON `{"id", "body"}`, and a list may hold str and
    QueueMessage items but not bytes.
    """
    if binding_type == GENERIC:
        if isinstance(value, str):
            return [value.encode("utf-8")]
        if isinstance(value, bytes | bytearray):
            return [bytes(value)]
        raise TypeError(f"a str/bytes queue output cannot take {type(value).__name__}")
    datum = converter_for("queue").encode(value, expected_type=None)
    return _datum_bodies(datum)


def _datum_bodies(datum: meta.Datum) -> list[bytes]:
    if datum.type == "bytes":
        return [bytes(datum.value)]
    if datum.type != "json":
        return [str(datum.value).encode("utf-8")]
    parsed = json.loads(datum.value)
    if not isinstance(parsed, list):
        return [str(datum.value).encode("utf-8")]
    return [(item if isinstance(item, str) else json.dumps(item, separators=(",", ":")))
            .encode("utf-8") for item in parsed]
