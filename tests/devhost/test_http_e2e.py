"""HTTP triggers through a real host process: routing, passthrough, errors, outputs."""

from __future__ import annotations

import json
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.devhost.conftest import HTTP_BODY_LIMIT, SampleHost, collect

pytestmark = pytest.mark.e2e

GUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


def test_http_echo_gets_route_params_query_headers_and_absolute_url(http_host: SampleHost
                                                                    ) -> None:
    response = requests.get(f"{http_host.url}/echo/bob?x=1&x=2&y=", headers={"X-Test": "hi"},
                            timeout=10)
    assert response.status_code == 200
    seen = response.json()
    assert seen["url"] == f"{http_host.url}/echo/bob?x=1&x=2&y="
    assert seen["route_params"] == {"name": "bob"}
    # ToRpcHttp: repeated values joined with ",", blank values dropped.
    assert seen["params"] == {"x": "1,2"}
    assert seen["headers"]["x-test"] == "hi"
    assert seen["method"] == "GET"


def test_http_url_is_built_from_the_host_header(http_host: SampleHost) -> None:
    response = requests.get(f"{http_host.url}/echo/x?q=1",
                            headers={"Host": "jobs.example:8080"}, timeout=10)
    assert response.json()["url"] == "http://jobs.example:8080/api/echo/x?q=1"


def test_http_request_body_reaches_the_function(http_host: SampleHost) -> None:
    response = requests.post(f"{http_host.url}/echo/bob", data="héllo".encode(), timeout=10)
    assert response.json()["body"] == "héllo"
    assert response.json()["method"] == "POST"


def test_http_response_status_headers_and_body_pass_through(http_host: SampleHost) -> None:
    response = requests.post(f"{http_host.url}/raw", data=b"\x00\x01\x02abc", timeout=10)
    assert response.status_code == 201
    assert response.content == b"cba\x02\x01\x00"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["X-Custom"] == "kept as is"


def test_http_function_status_code_is_kept(http_host: SampleHost) -> None:
    response = requests.get(f"{http_host.url}/echo/teapot?status=418", timeout=10)
    assert response.status_code == 418
    assert response.headers["X-Echo"] == "teapot"
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(("status", "phrase"), [(422, "Unprocessable Entity"),
                                               (413, "Payload Too Large"), (418, "I'm a teapot"),
                                               (202, "Accepted"), (299, "")])
def test_http_reason_phrase_is_the_hosts_whatever_the_python(http_host: SampleHost, status: int,
                                                             phrase: str) -> None:
    # Kestrel's phrases, from ASP.NET Core's ReasonPhrases (dotnet/aspnetcore,
    # src/Http/WebUtilities/src/ReasonPhrases.cs), empty for a status it does not list; Python
    # 3.13's http.HTTPStatus says "Unprocessable Content" and "Content Too Large".
    status_line = _raw_request(http_host, f"GET /api/echo/x?status={status} HTTP/1.0\r\n"
                                          "Host: localhost\r\n\r\n".encode()).split(b"\r\n")[0]
    assert status_line == f"HTTP/1.0 {status} {phrase}".encode()


def test_http_mimetype_and_charset_become_the_content_type(http_host: SampleHost) -> None:
    response = requests.get(f"{http_host.url}/plain", timeout=10)
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.content == "héllo".encode()


def test_http_unknown_path_is_404(http_host: SampleHost) -> None:
    assert requests.get(f"{http_host.url}/nowhere", timeout=10).status_code == 404
    # The route prefix is part of every route.
    assert requests.get(f"{http_host.process.base_url}/echo/bob", timeout=10).status_code == 404


def test_http_wrong_method_is_404_without_allow_header(http_host: SampleHost) -> None:
    # WebScriptHostHttpRoutesManager (azure-functions-host) maps each function's methods as an
    # HttpMethodRouteConstraint: a method the function does not declare matches no route.
    response = requests.put(f"{http_host.url}/echo/bob", timeout=10)
    assert response.status_code == 404
    assert "Allow" not in response.headers
    assert requests.get(f"{http_host.url}/things/a", timeout=10).status_code == 404
    assert requests.delete(f"{http_host.url}/things/a", timeout=10).status_code == 204


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "TRACE", "PROPFIND"])
def test_http_undeclared_head_options_and_trace_are_404(http_host: SampleHost,
                                                        method: str) -> None:
    # The same method constraint: HEAD is not GET, and Kestrel routes TRACE like any method
    # (http.server would answer 501, a 5xx, for a method it has no handler for).
    response = requests.request(method, f"{http_host.url}/echo/bob", timeout=10)
    assert response.status_code == 404
    assert "Allow" not in response.headers


def test_http_repeated_headers_are_joined_with_a_comma(http_host: SampleHost) -> None:
    # ToRpcHttp passes each header's StringValues as one string: values joined with ",".
    raw = _raw_request(http_host, b"GET /api/echo/bob HTTP/1.1\r\nHost: h\r\n"
                       b"X-Test: one\r\nX-Test: two\r\nConnection: close\r\n\r\n")
    assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["headers"]["x-test"] == "one,two"


def test_http_chunked_body_without_content_length_reaches_the_function_empty(
        http_host: SampleHost) -> None:
    # ToRpcHttp sends a body only when Content-Length > 0.
    raw = _raw_request(http_host, b"POST /api/echo/bob HTTP/1.1\r\nHost: h\r\n"
                       b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                       b"5\r\nhello\r\n0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.0 200")
    assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["body"] == ""


def test_http_body_over_the_limit_is_413_before_it_is_read(http_host: SampleHost) -> None:
    # Kestrel's MaxRequestBodySize, which the host sets from FUNCTIONS_REQUEST_BODY_SIZE_LIMIT
    # (100 MB by default): a larger declared length is answered 413 with nothing read, so a
    # huge Content-Length costs no memory.
    raw = _raw_request(http_host, b"POST /api/echo/bob HTTP/1.1\r\nHost: h\r\n"
                       b"Content-Length: 999999999999999\r\nConnection: close\r\n\r\nabc")
    assert raw.startswith(b"HTTP/1.0 413 Payload Too Large")
    chunked = _raw_request(http_host, b"POST /api/echo/bob HTTP/1.1\r\nHost: h\r\n"
                           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                           + (b"200\r\n" + b"x" * 0x200 + b"\r\n") * 3 + b"0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.0 413")
    at_limit = requests.post(f"{http_host.url}/echo/bob", data=b"x" * HTTP_BODY_LIMIT,
                             timeout=10)
    assert at_limit.status_code == 200
    assert len(at_limit.json()["body"]) == HTTP_BODY_LIMIT


@pytest.mark.parametrize("headers", [
    b"Host: a?b", b"Host: a#b", b"Host: a/b", b"Host: a@b", b"Host: :80", b"Host: h:",
    b"Host: [::1", b"Host: h\r\nHost: h", b"Host: h\r\nContent-Length: +3",
    b"Host: h\r\nContent-Length: 0_3", b"Host: h\r\nContent-Length: \xd9\xa3"])
def test_http_host_or_content_length_kestrel_refuses_is_400_before_any_function(
        http_host: SampleHost, headers: bytes) -> None:
    # HttpUtilities.IsHostHeaderValid (one Host, a reg-name or [IPv6], an optional port of
    # digits) and a Content-Length of ASCII digits, checked by Kestrel before routing.
    raw = _raw_request(http_host, b"POST /api/echo/bob HTTP/1.1\r\n" + headers
                       + b"\r\nConnection: close\r\n\r\nabc")
    assert raw.startswith(b"HTTP/1.0 400 Bad Request")


@pytest.mark.parametrize("host", [b"h", b"h:7071", b"[::1]:7071", b"a-b.c_d~e", b""])
def test_http_host_kestrel_takes_reaches_the_function(http_host: SampleHost, host: bytes
                                                      ) -> None:
    raw = _raw_request(http_host, b"POST /api/echo/bob HTTP/1.1\r\nHost: " + host
                       + b"\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
    assert raw.startswith(b"HTTP/1.0 200")
    assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["body"] == "abc"


def test_http_url_keeps_encoded_slash_and_decodes_the_rest(http_host: SampleHost) -> None:
    # The URL comes from ASP.NET's decoded PathString, in which %2F stays encoded.
    response = requests.get(f"{http_host.url}/echo/a%20b%2Fc?q=%20", timeout=10)
    seen = response.json()
    assert seen["url"] == f"{http_host.url}/echo/a b%2Fc?q=%20"
    assert seen["route_params"] == {"name": "a b%2Fc"}


def test_http_route_under_admin_is_in_error_and_not_served(http_host: SampleHost) -> None:
    # ScriptHost.ValidateHttpFunction refuses routes starting with "admin" or "runtime".
    assert requests.get(f"{http_host.url}/administration/status", timeout=10).status_code == 404
    assert ("The function reserved_route is in error: The specified route conflicts with one "
            "or more built in routes.") in http_host.process.stderr()


def test_http_duplicate_route_and_method_is_in_error(http_host: SampleHost) -> None:
    # ScriptHost.HttpRoutesConflict: same route (case and slashes aside), shared method.
    response = requests.put(f"{http_host.url}/echo/bob", timeout=10)
    assert response.status_code == 404  # echo_again (POST, PUT) was never mapped
    assert ("The function echo_again is in error: The route specified conflicts with the route "
            "defined by function 'echo'.") in http_host.process.stderr()


def _raw_request(host: SampleHost, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", host.process.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_http_function_without_methods_accepts_any_method(http_host: SampleHost) -> None:
    assert requests.delete(f"{http_host.url}/context", timeout=10).status_code == 200
    assert requests.patch(f"{http_host.url}/context", timeout=10).status_code == 200


def test_http_guid_constraint(http_host: SampleHost) -> None:
    ok = requests.get(f"{http_host.url}/items/{GUID}", timeout=10)
    assert (ok.status_code, ok.text) == (200, f"guid:{GUID}")
    assert requests.get(f"{http_host.url}/items/not-a-guid", timeout=10).status_code == 404


def test_http_int_constraint_and_literal_precedence(http_host: SampleHost) -> None:
    assert requests.get(f"{http_host.url}/numbers/12", timeout=10).text == "int:12"
    assert requests.get(f"{http_host.url}/numbers/latest", timeout=10).text == "latest"
    assert requests.get(f"{http_host.url}/numbers/twelve", timeout=10).status_code == 404


def test_http_optional_parameter(http_host: SampleHost) -> None:
    assert requests.get(f"{http_host.url}/optional", timeout=10).text == "(none)"
    assert requests.get(f"{http_host.url}/optional/ann", timeout=10).text == "ann"


def test_http_exception_is_500_without_detail_and_logged(http_host: SampleHost) -> None:
    response = requests.get(f"{http_host.url}/boom", timeout=10)
    assert response.status_code == 500
    assert response.content == b""
    assert "4711" not in str(response.headers)
    assert "RuntimeError: secret detail 4711" in http_host.process.stderr()


def test_http_requests_are_served_in_parallel_by_the_worker_pool(http_host: SampleHost) -> None:
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(
            lambda _: requests.get(f"{http_host.url}/slow?seconds=2", timeout=10), range(2)))
    assert [r.text for r in responses] == ["slept", "slept"]
    assert time.monotonic() - started < 3.9  # one after the other takes at least 4 s


def test_http_environment_variable_beats_local_settings(http_host: SampleHost) -> None:
    both = requests.get(f"{http_host.url}/settings/BOTH_PLACES", timeout=10)
    only_local = requests.get(f"{http_host.url}/settings/ONLY_LOCAL", timeout=10)
    assert both.text == "from-environment"
    assert only_local.text == "from-local-settings"


def test_http_queue_output_is_sent_before_the_response(http_host: SampleHost) -> None:
    marker = f"hello-{uuid.uuid4().hex}"
    response = requests.post(f"{http_host.url}/enqueue", data=marker, timeout=10)
    assert response.status_code == 202
    # No waiting: the message is in the queue (named by %OUTPUT_QUEUE%) before the reply.
    messages = list(http_host.queue("OUTPUT_QUEUE").peek_messages(max_messages=32))
    assert marker in [m.content for m in messages]
    collect(http_host.queue("OUTPUT_QUEUE"), count=len(messages))


def test_http_list_output_sends_one_message_each(http_host: SampleHost) -> None:
    tag = uuid.uuid4().hex
    requests.post(f"{http_host.url}/enqueue", data=f"a{tag},b{tag},c{tag}", timeout=10)
    received = collect(http_host.queue("OUTPUT_QUEUE"), count=3)
    assert sorted(received) == [f"a{tag}", f"b{tag}", f"c{tag}"]


def test_http_output_is_not_sent_when_the_function_raises(http_host: SampleHost) -> None:
    failed, kept = f"failed-{uuid.uuid4().hex}", f"kept-{uuid.uuid4().hex}"
    response = requests.post(f"{http_host.url}/enqueue?fail=1", data=failed, timeout=10)
    assert response.status_code == 500
    requests.post(f"{http_host.url}/enqueue", data=kept, timeout=10)
    received = collect(http_host.queue("OUTPUT_QUEUE"), count=1)
    assert received == [kept]


def test_http_context_is_passed_with_a_fresh_invocation_id(http_host: SampleHost) -> None:
    first = requests.get(f"{http_host.url}/context", timeout=10).json()
    second = requests.get(f"{http_host.url}/context", timeout=10).json()
    assert first["function_name"] == "with_context"
    assert first["function_directory"] == str(http_host.script_root)
    assert uuid.UUID(first["invocation_id"]).version == 4
    assert first["invocation_id"] != second["invocation_id"]


def test_http_async_function_is_awaited(http_host: SampleHost) -> None:
    assert requests.get(f"{http_host.url}/async", timeout=10).text == "async ok"


def test_http_startup_banner_lists_functions_like_func_start(http_host: SampleHost) -> None:
    port = http_host.process.port
    printed = http_host.process.stdout()
    assert printed.startswith("Functions:\n\n")
    assert f"        echo: [GET,POST] http://localhost:{port}/api/echo/{{name}}\n" in printed
    assert f"        boom: http://localhost:{port}/api/boom\n" in printed
    assert "        work: queueTrigger\n" in printed
    assert "        tick: timerTrigger\n" in printed
    assert "unsupported_blob" not in printed
    assert "Skipping function unsupported_blob" in http_host.process.stderr()
    assert printed.rstrip().endswith("Host started")


def test_http_json_error_bodies_are_not_rewritten(http_host: SampleHost) -> None:
    response = requests.get(f"{http_host.url}/echo/x?status=404", timeout=10)
    assert response.status_code == 404
    assert json.loads(response.content)["route_params"] == {"name": "x"}
