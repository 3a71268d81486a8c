"""Route templates and the match-or-404 decision, without a server.

The host maps each function's methods as a route constraint (WebScriptHostHttpRoutesManager in
Azure/azure-functions-host), so a wrong method matches no route: 404, never 405.
"""

from __future__ import annotations

import pytest

from devhost.errors import RouteError
from devhost.routing import (
    Matched,
    NotFound,
    Route,
    Router,
    compile_template,
    decode_path,
    join_route,
    route_problem,
    routes_conflict,
)

GUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


def router(*routes: tuple[str, list[str] | None, str]) -> Router[str]:
    return Router(
        Route(compile_template(t), frozenset(m) if m else None, target) for t, m, target in routes
    )


def test_template_plain_parameter_captures_one_segment() -> None:
    template = compile_template("api/jobs/{job_id}")
    assert template.match("/api/jobs/abc") == {"job_id": "abc"}
    assert template.match("/api/jobs/abc/") == {"job_id": "abc"}
    assert template.match("/api/jobs/abc/more") is None
    assert template.match("/api/jobs") is None


def test_template_literals_match_case_insensitively() -> None:
    assert compile_template("api/Jobs").match("/API/jobs") == {}


def test_path_is_percent_decoded_except_encoded_slashes() -> None:
    # ToRpcHttp builds the URL from ASP.NET's decoded PathString, in which %2F stays encoded.
    assert decode_path("/files/a%20b%2Fc%2f") == "/files/a b%2Fc%2F"
    assert compile_template("files/{name}").match(decode_path("/files/a%20b%2Fc")) == {
        "name": "a b%2Fc"}


def test_template_guid_constraint_accepts_guids_only() -> None:
    template = compile_template("items/{id:guid}")
    assert template.match(f"/items/{GUID}") == {"id": GUID}
    assert template.match(f"/items/{GUID.upper()}") == {"id": GUID.upper()}
    assert template.match("/items/42") is None
    assert template.match(f"/items/{GUID}x") is None


@pytest.mark.parametrize("value", ["0", "-7", "2147483647"])
def test_template_int_constraint_accepts_32_bit_integers(value: str) -> None:
    assert compile_template("n/{n:int}").match(f"/n/{value}") == {"n": value}


# int.TryParse with the invariant culture reads ASCII digits only, not `١٢٣` or `１２`.
@pytest.mark.parametrize("value", ["x", "1.5", "2147483648", "", "\u0661\u0662\u0663",
                                   "\uff11\uff12"])
def test_template_int_constraint_rejects_other_values(value: str) -> None:
    assert compile_template("n/{n:int}").match(f"/n/{value}") is None


def test_template_optional_last_parameter_may_be_absent() -> None:
    template = compile_template("optional/{name?}")
    assert template.match("/optional") == {}
    assert template.match("/optional/x") == {"name": "x"}


def test_template_catch_all_takes_the_rest_of_the_path() -> None:
    assert compile_template("files/{*path}").match("/files/a/b/c") == {"path": "a/b/c"}


def test_template_mixed_segment_splits_literal_and_parameters() -> None:
    assert compile_template("r/{name}.{ext}").match("/r/report.csv") == {
        "name": "report", "ext": "csv"}


def test_template_empty_route_matches_the_root_only() -> None:
    template = compile_template("")
    assert template.match("/") == {}
    assert template.match("/x") is None


@pytest.mark.parametrize("text", ["a/{x:regex}", "{a?}/b", "a/{x}{", "a/{x}/{x}", "a//b"])
def test_template_unsupported_syntax_is_a_route_error(text: str) -> None:
    with pytest.raises(RouteError):
        compile_template(text)


def test_join_route_uses_the_prefix_unless_it_is_empty() -> None:
    assert join_route("api", "/jobs/{id}") == "api/jobs/{id}"
    assert join_route("", "jobs") == "jobs"
    assert join_route("api", "") == "api"


def test_router_unknown_path_is_not_found() -> None:
    assert isinstance(router(("api/jobs", ["POST"], "submit")).resolve("GET", "/api/x"), NotFound)


def test_router_known_path_with_other_method_is_not_found() -> None:
    # HttpMethodRouteConstraint on each route (WebScriptHostHttpRoutesManager): no 405.
    found = router(("api/jobs", ["POST"], "submit"), ("api/jobs", ["PUT"], "replace")).resolve(
        "GET", "/api/jobs")
    assert found == NotFound()
    assert not hasattr(found, "allowed")


def test_router_method_matching_is_case_insensitive_and_none_means_any() -> None:
    routes = router(("api/jobs", ["POST"], "submit"), ("api/any", None, "any"))
    assert routes.resolve("post", "/api/jobs") == Matched("submit", {})
    assert routes.resolve("PATCH", "/api/any") == Matched("any", {})


def test_router_constraint_violation_is_not_found() -> None:
    routes = router(("api/items/{id:guid}", ["GET"], "item"))
    assert isinstance(routes.resolve("GET", "/api/items/not-a-guid"), NotFound)


def test_router_literal_segment_beats_parameter_whatever_the_order() -> None:
    routes = router(("api/jobs/{id}", ["GET"], "by_id"), ("api/jobs/stats", ["GET"], "stats"))
    assert routes.resolve("GET", "/api/jobs/stats") == Matched("stats", {})
    assert routes.resolve("GET", "/api/jobs/7") == Matched("by_id", {"id": "7"})


def test_router_constrained_parameter_beats_plain_parameter() -> None:
    routes = router(("n/{name}", None, "plain"), ("n/{n:int}", None, "int"))
    assert routes.resolve("GET", "/n/5") == Matched("int", {"n": "5"})
    assert routes.resolve("GET", "/n/five") == Matched("plain", {"name": "five"})


def test_router_path_match_with_wrong_method_falls_through_to_a_later_route() -> None:
    routes = router(("api/jobs/stats", ["POST"], "reset"), ("api/jobs/{id}", ["GET"], "by_id"))
    assert routes.resolve("GET", "/api/jobs/stats") == Matched("by_id", {"id": "stats"})


# WebJobsRouteBuilder.Build (azure-webjobs-sdk-extensions) sorts the function routes with its
# RouteComparison before they go into the RouteCollection, which takes the first match.


def test_router_longer_specific_template_beats_catch_all() -> None:
    # Segment by segment: a literal before a parameter (a catch-all is a parameter).
    routes = router(("files/{*rest}", ["GET"], "any"), ("files/special/{name}", ["GET"], "special"))
    assert routes.resolve("GET", "/files/special/x") == Matched("special", {"name": "x"})
    assert routes.resolve("GET", "/files/other/x") == Matched("any", {"rest": "other/x"})


@pytest.mark.parametrize("route", ["admin/jobs", "/Admin", "administration/x", "runtime/webhooks",
                                   "runtimes"])
def test_route_under_admin_or_runtime_is_refused(route: str) -> None:
    # ScriptHost.ValidateHttpFunction: the route, trimmed and lower-cased, must not start
    # with "admin" or "runtime" (the host's own endpoints).
    assert route_problem(route) == "The specified route conflicts with one or more built in routes."


def test_route_elsewhere_is_accepted() -> None:
    assert route_problem("jobs/{id}") is None
    assert route_problem("my/admin") is None


def test_routes_conflict_on_the_same_route_with_shared_methods() -> None:
    # ScriptHost.HttpRoutesConflict: same route ignoring case and slashes, and the methods
    # intersect or either function takes every method.
    get, post = frozenset({"GET"}), frozenset({"POST"})
    assert routes_conflict("jobs/{id}", get, "/Jobs/{id}/", get)
    assert routes_conflict("jobs", None, "jobs", post)
    assert not routes_conflict("jobs", get, "jobs", post)
    assert not routes_conflict("jobs", get, "jobs/{id}", get)


def test_router_longer_template_is_tried_before_the_shorter_one_it_extends() -> None:
    # RouteComparison puts x first when y runs out of segments: an optional last parameter
    # makes the longer template match the shorter path too, and it wins.
    routes = router(("n/{a}", ["GET"], "short"), ("n/{a}/{b?}", ["GET"], "long"))
    assert routes.resolve("GET", "/n/1") == Matched("long", {"a": "1"})
    assert routes.resolve("GET", "/n/1/2") == Matched("long", {"a": "1", "b": "2"})


def test_router_parameter_with_more_constraints_is_tried_first() -> None:
    routes = router(("v/{x:int}", ["GET"], "one"), ("v/{x:int:bool}", ["GET"], "two"),
                    ("v/{x}", ["GET"], "none"))
    assert [r.target for r in routes.routes] == ["two", "one", "none"]


def test_router_order_does_not_depend_on_declaration_order() -> None:
    declared = [("api/{*all}", None, "catch"), ("api/jobs/{id}", ["GET"], "job"),
                ("api/jobs/stats", ["GET"], "stats"), ("api/jobs", ["POST"], "submit")]
    forward = [r.target for r in router(*declared).routes]
    backward = [r.target for r in router(*reversed(declared)).routes]
    assert forward == backward == ["stats", "job", "submit", "catch"]
