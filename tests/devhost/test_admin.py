"""The admin invoke endpoint refuses a body that is not JSON with 415, as the real host does.

The host binds the body of `POST admin/functions/{name}` with `[FromBody]`
(Azure/azure-functions-host, src/WebJobs.Script.WebHost/Controllers/FunctionsController.cs).
ASP.NET Core answers 415 when no input formatter reads the Content-Type: BodyModelBinder records
an UnsupportedContentTypeException and the UnsupportedContentTypeFilter, which
MvcCoreMvcOptionsSetup adds to every action (dotnet/aspnetcore, src/Mvc/Mvc.Core), turns it into
415 before the action runs. The JSON formatters read application/json, text/json and
application/*+json.
"""

from __future__ import annotations

import pytest
import requests

from devhost.admin import is_json_media_type, read_input
from tests.devhost.conftest import HostFactory, collect_json

JSON_BODY = '{"input": "from a web page"}'


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"input": "hello"}', "hello"), (b'{"Input": "hello"}', "hello"),
    (b'{"INPUT": "x", "input": "hello"}', "hello"), (b"{}", ""), (b"[]", None)])
def test_admin_input_property_is_matched_in_any_case(body: bytes, expected: str | None) -> None:
    # The body binds to the host's FunctionInvocation model by MVC's JSON input formatter,
    # which matches property names in any case.
    assert read_input(body) == expected


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON", "text/json",
                                          "application/problem+json"])
def test_admin_json_media_types_are_read(content_type: str) -> None:
    assert is_json_media_type(content_type)


@pytest.mark.parametrize("content_type", ["", "text/plain", "text/plain; charset=utf-8",
                                          "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonx",
                                          "text/json+xml", "application/xml"])
def test_admin_other_media_types_are_not(content_type: str) -> None:
    assert not is_json_media_type(content_type)


@pytest.mark.e2e
def test_admin_cross_origin_simple_post_is_refused_and_runs_nothing(
    start_host: HostFactory,
) -> None:
    host = start_host()
    url = f"{host.process.base_url}/admin/functions/work"
    # What a browser sends for a page's fetch(url, {method: "POST", mode: "no-cors", body}):
    # no preflight, since text/plain, form and multipart bodies are "simple".
    for content_type in ["text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=b"]:
        answer = requests.post(url, data=JSON_BODY, timeout=10, headers={
            "Content-Type": content_type, "Origin": "https://attacker.example"})
        assert answer.status_code == 415, content_type
    no_type = requests.Request("POST", url, data=JSON_BODY.encode()).prepare()
    assert "Content-Type" not in no_type.headers
    assert requests.Session().send(no_type, timeout=10).status_code == 415
    # 415 comes before the name is looked up, as model binding runs before the action.
    assert requests.post(f"{host.process.base_url}/admin/functions/nope", data=JSON_BODY,
                         headers={"Content-Type": "text/plain"}, timeout=10).status_code == 415
    # A page's application/json POST is preflighted first; the local host sends no CORS headers
    # (devhost/README.md: no CORS), so the browser never sends that POST.
    preflight = requests.options(url, timeout=10, headers={
        "Origin": "https://attacker.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 404
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert collect_json(host.queue("RESULTS_QUEUE"), count=1, timeout=3) == []

    answer = requests.post(url, data=JSON_BODY, timeout=10,
                           headers={"Content-Type": "application/json; charset=utf-8"})
    assert answer.status_code == 202
    [record] = collect_json(host.queue("RESULTS_QUEUE"), count=1, timeout=5)
    assert record["body"] == "from a web page"
