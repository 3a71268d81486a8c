"""HTTP triggers: translate HTTP to `func.HttpRequest` and `func.HttpResponse` back to HTTP.

`HttpFrontDoor.handle` is the whole translation and needs no socket; `RequestHandler` is the
thin adapter that feeds it from `http.server`. Each connection is read in its own thread, but
the function itself runs in the worker's shared pool (devhost/invocation.py), as under the
real host, where Kestrel takes requests and the Python worker runs them.

The request conversion follows `ToRpcHttp` (GrpcMessageConversionExtensions in
Azure/azure-functions-host): a body only when Content-Length > 0, blank query values
dropped, repeated headers and query values joined with ",", and the URL built from the
decoded path, in which `%2F` stays encoded.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, cast
from urllib.parse import parse_qsl

import azure.functions as func

from devhost.catalog import FunctionSpec
from devhost.invocation import InvocationFailed, Invoker, TraceContext
from devhost.reasons import REASON_PHRASES, reason_phrase
from devhost.routing import NotFound, Router, decode_path

logger = logging.getLogger(__name__)

# Headers the server computes itself; a function's values for them are not forwarded.
_SERVER_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
_NO_BODY_STATUSES = frozenset({204, 304})
# Kestrel answers 400, before any function runs, to a Host that is not a host name of RFC
# 3986 reg-name characters or a bracketed IPv6 address, with an optional port of digits
# (HttpUtilities.IsHostHeaderValid, dotnet/aspnetcore
# src/Servers/Kestrel/Core/src/Internal/Infrastructure/HttpUtilities.cs); empty is valid.
_HOST = re.compile(r"(?:(?:[A-Za-z0-9!$&'()*+,;=._~-]+|\[[0-9A-Fa-f:.]{3,}\])(?::[0-9]+)?)?",
                   re.ASCII)
# and to a Content-Length that is anything but ASCII digits (HttpHeaders.ParseContentLength).
_CONTENT_LENGTH = re.compile(r"[0-9]+", re.ASCII)


@dataclass(frozen=True)
class IncomingRequest:
    """An HTTP request as read from the socket, before routing."""

    method: str
    target: str  #: path and query string, as on the request line
    headers: list[tuple[str, str]]
    body: bytes
    origin: str  #: scheme and authority, e.g. http://localhost:7071


@dataclass(frozen=True)
class Reply:
    """What to write back: status, headers (in order, repeats allowed) and body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class AdminApi(Protocol):
    """The host's own endpoints under /admin (the admin invoke endpoint)."""

    def handle(self, incoming: IncomingRequest, path: str) -> Reply | None:
        """Answer a request for a host endpoint, or None if `path` is not one."""


class HttpFrontDoor:
    """Routes a request to its function, invokes it and turns the result into a Reply."""

    def __init__(self, router: Router[FunctionSpec], invoker: Invoker,
                 admin: AdminApi | None = None) -> None:
        self._router = router
        self._invoker = invoker
        self._admin = admin

    def handle(self, incoming: IncomingRequest) -> Reply:
        """Answer one request: 404 when no route matches path and method, 500 if it raised."""
        raw_path, _, query = incoming.target.partition("?")
        path = decode_path(raw_path)
        if self._admin is not None:
            answered = self._admin.handle(incoming, path)
            if answered is not None:
                return answered
        found = self._router.resolve(incoming.method, path)
        if isinstance(found, NotFound):
            return Reply(404)
        request = to_http_request(incoming, path=path, query=query, route_params=found.params)
        reason = "This function was programmatically called via the host APIs."
        trace_context = TraceContext.for_request(request.headers.get("traceparent"),
                                                 request.headers.get("tracestate"))
        try:
            result = self._invoker.invoke(found.target, request, reason=reason,
                                          trace_context=trace_context)
        except InvocationFailed:
            return Reply(500)  # no detail: the traceback went to the host's log
        return to_reply(result, function=found.target.name)


def function_route(spec: FunctionSpec) -> str:
    """The function's route template; the host uses the function name when none is given."""
    return str(spec.trigger.get("route") or spec.name)


def function_methods(spec: FunctionSpec) -> frozenset[str] | None:
    """The methods the function declares, upper-case; None means every method."""
    methods = spec.trigger.get("methods")
    return frozenset(str(m).upper() for m in methods) if methods else None


def to_http_request(incoming: IncomingRequest, *, path: str, query: str,
                    route_params: dict[str, str]) -> func.HttpRequest:
    """Build the `func.HttpRequest` a function receives, as ToRpcHttp converts the request."""
    url = incoming.origin + path + (f"?{query}" if query else "")
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if v]
    return func.HttpRequest(
        incoming.method,
        url,
        headers=join_repeated(incoming.headers, separator=","),
        params=join_repeated(pairs, separator=","),
        route_params=route_params,
        body=incoming.body if declared_length(incoming.headers) > 0 else b"",
    )


def declared_length(headers: Iterable[tuple[str, str]]) -> int:
    """The request's Content-Length, 0 when absent (a chunked body has none)."""
    for name, value in headers:
        if name.lower() == "content-length" and _CONTENT_LENGTH.fullmatch(value.strip()):
            return int(value.strip())
    return 0


def join_repeated(pairs: Iterable[tuple[str, str]], *, separator: str) -> dict[str, str]:
    """Fold repeated names into one value, as ASP.NET hands them to the worker."""
    folded: dict[str, str] = {}
    for name, value in pairs:
        key = next((k for k in folded if k.lower() == name.lower()), name)
        folded[key] = f"{folded[key]}{separator}{value}" if key in folded else value
    return folded


def to_reply(result: Any, *, function: str) -> Reply:
    """Turn a function's return value into a Reply: status, headers and body unchanged."""
    if isinstance(result, str | bytes):
        body = result.encode("utf-8") if isinstance(result, str) else result
        return Reply(200, [("Content-Type", "text/plain; charset=utf-8")], body)
    if not isinstance(result, func.HttpResponse):
        logger.error("Function %s returned %s, not an HttpResponse: answering 500",
                     function, type(result).__name__)
        return Reply(500)
    headers = [(str(k), str(v)) for k, v in result.headers.items()]
    if not any(name.lower() == "content-type" for name, _ in headers):
        mimetype = str(result.mimetype)
        content_type = f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") \
            else mimetype
        headers.append(("Content-Type", content_type))
    return Reply(int(result.status_code), headers, result.get_body() or b"")


class BodyTooLarge(ValueError):
    """The request's body is larger than the host takes."""


class RequestHandler(BaseHTTPRequestHandler):
    """Adapter from `http.server` to `HttpFrontDoor`; one instance per connection."""

    # HTTP/1.0 closes each connection after its response, so no idle keep-alive
    # connection can hold up a graceful shutdown.
    protocol_version = "HTTP/1.0"
    timeout = 60  # seconds a client may take to send its request
    front_door: HttpFrontDoor  # set on the subclass made by `make_server`
    max_body_bytes: int  # likewise
    # Also the phrases of the errors http.server answers itself (send_error): the host's.
    responses = {status: (phrase, phrase) for status, phrase in REASON_PHRASES.items()}

    def serve(self) -> None:
        """Read the request, let the front door answer it, write the reply."""
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1 or not _HOST.fullmatch(hosts[0] if hosts else ""):
            self.close_connection = True
            self._write(Reply(400))
            return
        try:
            body = self._read_body()
        except BodyTooLarge:
            # Kestrel answers 413 once a body passes MaxRequestBodySize, which the host sets
            # from FUNCTIONS_REQUEST_BODY_SIZE_LIMIT; the rest is never read.
            self.close_connection = True
            self._write(Reply(413))
            return
        except ValueError:
            self._write(Reply(400))
            return
        incoming = IncomingRequest(self.command, self.path, list(self.headers.items()), body,
                                   self._origin())
        self._write(self.front_door.handle(incoming))

    def __getattr__(self, name: str) -> Any:
        # http.server looks up do_<METHOD> and answers 501 when it is missing; Kestrel takes
        # any method token (TRACE included) and leaves the answer to routing.
        if name.startswith("do_"):
            return self.serve
        raise AttributeError(name)

    def _origin(self) -> str:
        port = cast(HttpServer, self.server).server_port
        return f"http://{self.headers.get('Host') or f'localhost:{port}'}"

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunks()
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not _CONTENT_LENGTH.fullmatch(declared):
            raise ValueError(f"invalid Content-Length {declared!r}")
        length = int(declared)
        if length > self.max_body_bytes:
            raise BodyTooLarge(length)
        return self.rfile.read(length) if length else b""

    def _read_chunks(self) -> bytes:
        chunks = []
        total = 0
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            total += size
            if total > self.max_body_bytes:
                raise BodyTooLarge(total)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():
            pass  # trailers, which the Functions host does not pass on either
        return b"".join(chunks)

    def _write(self, reply: Reply) -> None:
        self.send_response_only(reply.status, reason_phrase(reply.status))
        headers = [(k, v) for k, v in reply.headers if k.lower() not in _SERVER_HEADERS]
        for name, value in headers:
            self.send_header(name, value)
        if not any(name.lower() == "date" for name, _ in headers):
            self.send_header("Date", formatdate(usegmt=True))
        has_body = reply.status not in _NO_BODY_STATUSES and reply.status >= 200
        if has_body:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if has_body and self.command != "HEAD":
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Send http.server's own messages (bad requests) to the debug log, not stderr."""
        logger.debug(format, *args)


class HttpServer(ThreadingHTTPServer):
    """A threading server whose `server_close` waits for requests still being answered."""

    daemon_threads = False
    block_on_close = True
    # socketserver's default backlog of 5 refuses connections under a burst of clients, and
    # each refused one costs the client a one-second SYN retry.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a failed request; a client that hung up is not worth a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.debug("Client %s hung up", client_address)
        else:
            logger.exception("Serving a request from %s failed", client_address)


def make_server(front_door: HttpFrontDoor, *, host: str, port: int,
                max_body_bytes: int) -> HttpServer:
    """Bind the HTTP server; it serves once `serve_forever` runs."""
    handler = type("BoundRequestHandler", (RequestHandler,),
                   {"front_door": front_door, "max_body_bytes": max_body_bytes})
    return HttpServer((host, port), handler)
