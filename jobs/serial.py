"""The one JSON serialiser of job data: what a job may store, and how an answer is written.

A handler's result is stored as JSON text and answered by GET and DELETE for the job's whole
retention, so what is stored must serialise every time. `dumps` decides, both when the
worker stores a result and when an HTTP function answers: a value it refuses is never
stored (the job fails with `result_not_storable`), and an answer it refuses is never given.

It refuses what the interpreter or the JSON libraries would refuse, or accept on one version
and refuse on another, with limits of the app's own: nesting deeper than `MAX_DEPTH`, a lone
surrogate in a text (no UTF-8 encoding exists for it), NaN and infinities (not JSON),
non-string object keys, integers too long to print, and any value that is not JSON.
Texts the app writes itself (error and progress messages) are cleaned instead: `clean_text`.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: How deeply JSON may nest: objects and arrays inside each other, the outermost counted as
#: one. Request bodies are held to it too, so a handler that returns part of its payload
#: returns something storable. Far below every parser's and encoder's own limit.
MAX_DEPTH = 64
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SCALARS = (str, bool, int, float, type(None))


class NotStorable(ValueError):
    """A value that JSON cannot carry to every reader."""


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise NotStorable, saying why, unless `value` serialises on every path."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth + 1 > max_depth:
                raise NotStorable(f"nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                _check_keys(item)
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict)
                                                  else item))
        else:
            _check_scalar(item)


def _check_keys(item: dict[Any, Any]) -> None:
    for key in item:
        if not isinstance(key, str):
            raise NotStorable(f"an object key is a {type(key).__name__}, not a string")
        _check_text(key)


def _check_scalar(item: Any) -> None:
    if isinstance(item, str):
        _check_text(item)
    elif isinstance(item, float):
        if item != item or item in (float("inf"), float("-inf")):
            raise NotStorable("NaN and infinities are not JSON")
    elif isinstance(item, int) and not isinstance(item, bool):
        try:
            str(item)
        except ValueError as e:  # past sys.get_int_max_str_digits()
            raise NotStorable("an integer too long to print") from e
    elif not isinstance(item, _SCALARS):
        raise NotStorable(f"a {type(item).__name__} is not JSON")


def _check_text(text: str) -> None:
    if _LONE_SURROGATE.search(text):
        raise NotStorable("a text holds a lone surrogate, which has no UTF-8 encoding")


def dumps(value: Any, *, max_depth: int = MAX_DEPTH) -> str:
    """Compact JSON text for `value`, or NotStorable; the text `loads` gives back as it was.

    `max_depth` is one more for an answer that holds a stored value one level down.
    """
    check(value, max_depth=max_depth)
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError) as e:  # refused above; kept for safety
        raise NotStorable(str(e)) from e


def loads(text: str) -> Any:
    """The value a `dumps` text holds."""
    return json.loads(text)


def depth(text: str | bytes) -> int:
    """How deeply the JSON in `text` nests, counted without parsing it (so no parser's own
    recursion limit is involved): brackets outside strings."""
    data = text.encode() if isinstance(text, str) else text
    deepest = level = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            level += 1
            deepest = max(deepest, level)
        elif byte in (0x5D, 0x7D):  # ] }
            level -= 1
    return deepest


def clean_text(text: object, limit: int) -> str:
    """A text the app stores itself (an error or progress message): lone surrogates become
    U+FFFD and it is cut to `limit` characters, so it always serialises and fits."""
    return _LONE_SURROGATE.sub("\ufffd", str(text))[:limit]


def utf16_length(text: str) -> int:
    """A text's length as Table Storage counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def answerable(value: Any, depth: int = -1) -> Any:
    """A copy of `value` that `dumps` takes: for a row stored before its result was checked.
    Lone surrogates become U+FFFD, NaN and infinities null, keys strings, anything nested past
    `MAX_DEPTH` null, and anything else that is not JSON its text."""
    if isinstance(value, dict | list):
        if depth + 1 > MAX_DEPTH:
            return None
        if isinstance(value, list):
            return [answerable(v, depth + 1) for v in value]
        return {clean_text(k, len(str(k))): answerable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, str):
        return clean_text(value, len(value))
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            str(value)
        except ValueError:
            return None
        return value
    if isinstance(value, _SCALARS):
        return value
    return clean_text(value, 1024)
