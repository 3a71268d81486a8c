"""Route templates and matching, kept pure: a path and method either match a route or not.

Each route carries its methods as a constraint, as WebScriptHostHttpRoutesManager
(Azure/azure-functions-host) maps it with an HttpMethodRouteConstraint: a request whose method
a function does not declare matches no route, so the answer is 404 with no Allow header.

Templates follow the ASP.NET syntax the Functions host uses: `{name}`, optional `{name?}`
as the last segment, catch-all `{*name}`, and the constraints `int`, `long`, `guid`, `alpha`
and `bool`. Literal text matches case-insensitively. Routes are tried in the order
`WebJobsRouteBuilder.Build` (azure-webjobs-sdk-extensions) sorts them with its
`RouteComparison`: segment by segment, a literal before a parameter, a parameter with more
constraints before one with fewer, literals in case-insensitive order, and a longer template
before a shorter one it extends. The first route whose template and method both match wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cmp_to_key
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

from devhost.errors import RouteError

T = TypeVar("T")

_PARAM = re.compile(r"\{(\*{0,2})([A-Za-z_][A-Za-z0-9_]*)((?::[A-Za-z]+)*)(\?)?\}")
_GUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}"
    r"|\([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)"
    r"|[0-9a-f]{32}",
    re.IGNORECASE,
)


def _is_integer(value: str, bits: int) -> bool:
    if re.fullmatch(r"[+-]?[0-9]+", value) is None:  # .NET's invariant culture: ASCII digits
        return False
    return -(1 << (bits - 1)) <= int(value) < 1 << (bits - 1)


CONSTRAINTS: Mapping[str, Callable[[str], bool]] = {
    "int": lambda v: _is_integer(v, 32),
    "long": lambda v: _is_integer(v, 64),
    "guid": lambda v: _GUID.fullmatch(v) is not None,
    "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
    "bool": lambda v: v.lower() in ("true", "false"),
}



@dataclass(frozen=True)
class SegmentKey:
    """What RouteComparison looks at in a segment: its first part."""

    is_parameter: bool
    constraints: int = 0
    text: str = ""  #: the literal text, when the first part is a literal


@dataclass(frozen=True)
class RouteTemplate:
    """A compiled route template: its regex, parameter constraints and sort keys."""

    text: str
    pattern: re.Pattern[str]
    constraints: Mapping[str, tuple[str, ...]]
    segments: tuple[SegmentKey, ...]

    def match(self, path: str) -> dict[str, str] | None:
        """Return the decoded parameters when `path` fits the template, else None."""
        found = self.pattern.fullmatch(_normalise(path))
        if found is None:
            return None
        # The path is already decoded (all but %2F), as ASP.NET routing sees it.
        params = {k: v for k, v in found.groupdict().items() if v is not None}
        for name, names in self.constraints.items():
            if name in params and not all(CONSTRAINTS[c](params[name]) for c in names):
                return None
        return params


@dataclass(frozen=True)
class Route(Generic[T]):
    """One route: a template, the methods it accepts (None = any), and what it leads to."""

    template: RouteTemplate
    methods: frozenset[str] | None
    target: T

    def allows(self, method: str) -> bool:
        """Whether this route accepts the HTTP method."""
        return self.methods is None or method.upper() in self.methods


@dataclass(frozen=True)
class Matched(Generic[T]):
    """The path and method matched `target`, with these route parameters."""

    target: T
    params: dict[str, str]


@dataclass(frozen=True)
class NotFound:
    """No template matches the path: 404."""

    status: int = 404


def compile_template(text: str) -> RouteTemplate:
    """Compile a route template such as `jobs/{job_id:guid}` or `files/{*path}`."""
    segments = text.strip("/").split("/") if text.strip("/") else []
    regex_parts: list[str] = []
    constraints: dict[str, tuple[str, ...]] = {}
    keys: list[SegmentKey] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        regex_parts.append(_compile_segment(segment, constraints, last=last, template=text))
        keys.append(_segment_key(segment))
    pattern = "".join(regex_parts) or "/"
    return RouteTemplate(text, re.compile(pattern, re.IGNORECASE), constraints, tuple(keys))


def _segment_key(segment: str) -> SegmentKey:
    first = _PARAM.match(segment)
    if first is None:
        return SegmentKey(is_parameter=False, text=_PARAM.split(segment, maxsplit=1)[0])
    return SegmentKey(is_parameter=True, constraints=len([c for c in first.group(3).split(":")
                                                          if c]))


def route_comparison(x: RouteTemplate, y: RouteTemplate) -> int:
    """WebJobsRouteBuilder.RouteComparison: negative when `x` is tried before `y`."""
    for i, xs in enumerate(x.segments):
        if len(y.segments) <= i:
            return -1  # x extends y: the longer, more specific template first
        ys = y.segments[i]
        if xs.is_parameter != ys.is_parameter:
            return 1 if xs.is_parameter else -1
        if xs.is_parameter and xs.constraints != ys.constraints:
            return -1 if xs.constraints > ys.constraints else 1
        if not xs.is_parameter and xs.text.lower() != ys.text.lower():
            return -1 if xs.text.lower() < ys.text.lower() else 1
    return 1 if len(y.segments) > len(x.segments) else 0


def join_route(prefix: str, route: str) -> str:
    """Join the host's route prefix and a function's route into one template."""
    return "/".join(part.strip("/") for part in (prefix, route) if part.strip("/"))


def _compile_segment(
    segment: str, constraints: dict[str, tuple[str, ...]], *, last: bool, template: str
) -> str:
    params = list(_PARAM.finditer(segment))
    if not segment or "{" in _PARAM.sub("", segment) or "}" in _PARAM.sub("", segment):
        raise RouteError(f"route {template!r}: cannot read segment {segment!r}")
    if len(params) == 1 and params[0].group(0) == segment:
        return _whole_segment_param(params[0], constraints, last=last, template=template)
    if any(p.group(1) or p.group(4) for p in params):
        raise RouteError(f"route {template!r}: optional and catch-all need a segment of their own")
    regex, cursor = "/", 0
    for param in params:
        regex += re.escape(segment[cursor:param.start()])
        regex += _named_group(param, constraints, template)
        cursor = param.end()
    regex += re.escape(segment[cursor:])
    return regex


def _whole_segment_param(
    param: re.Match[str], constraints: dict[str, tuple[str, ...]], *, last: bool, template: str
) -> str:
    group = _named_group(param, constraints, template)
    catch_all, optional = bool(param.group(1)), bool(param.group(4))
    if (catch_all or optional) and not last:
        raise RouteError(f"route {template!r}: {param.group(0)} must be the last segment")
    if catch_all:
        return f"(?:/(?P<{param.group(2)}>.*))?"
    if optional:
        return f"(?:/{group})?"
    return "/" + group


def _named_group(
    param: re.Match[str], constraints: dict[str, tuple[str, ...]], template: str
) -> str:
    name = param.group(2)
    names = tuple(c.lower() for c in param.group(3).split(":") if c)
    unknown = [c for c in names if c not in CONSTRAINTS]
    if unknown:
        raise RouteError(f"route {template!r}: unsupported constraint {unknown[0]!r}")
    if name in constraints:
        raise RouteError(f"route {template!r}: parameter {name!r} appears twice")
    constraints[name] = names
    return f"(?P<{name}>[^/]+?)"


def _normalise(path: str) -> str:
    # ASP.NET ignores a trailing slash; the root path is "/".
    return "/" + path.strip("/") if path.strip("/") else "/"


class Router(Generic[T]):
    """Routes in the host's order; `resolve` decides match or 404 without side effects."""

    def __init__(self, routes: Iterable[Route[T]]) -> None:
        self._routes = sorted(routes, key=cmp_to_key(_compare_routes))

    @property
    def routes(self) -> list[Route[T]]:
        """The routes in the order they are tried."""
        return list(self._routes)

    def resolve(self, method: str, path: str) -> Matched[T] | NotFound:
        """Find the route for `method` and `path` (the decoded path, without a query string)."""
        for route in self._routes:
            if not route.allows(method):
                continue  # the method constraint fails: this route does not match
            params = route.template.match(path)
            if params is not None:
                return Matched(route.target, params)
        return NotFound()


def _compare_routes(a: Route[Any], b: Route[Any]) -> int:
    return route_comparison(a.template, b.template)


def decode_path(raw_path: str) -> str:
    """Percent-decode a request path as ASP.NET does, except `%2F`, which stays encoded."""
    parts = re.split(r"(%2[Ff])", raw_path)
    return "".join(p.upper() if re.fullmatch(r"%2[Ff]", p) else unquote(p) for p in parts)


def route_problem(route: str) -> str | None:
    """Why the host refuses a function's route, or None (ScriptHost.ValidateHttpFunction)."""
    if route.strip("/").lower().startswith(("admin", "runtime")):
        return "The specified route conflicts with one or more built in routes."
    return None


def routes_conflict(route: str, methods: frozenset[str] | None, other_route: str,
                    other_methods: frozenset[str] | None) -> bool:
    """Two functions conflict on the same route (ignoring case and slashes) with shared methods,
    or when either accepts every method (ScriptHost.HttpRoutesConflict)."""
    if route.strip("/").lower() != other_route.strip("/").lower():
        return False
    return not methods or not other_methods or bool(methods & other_methods)
