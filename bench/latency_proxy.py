"""A loopback HTTP proxy that adds a storage round trip's latency to every request.

Azurite on the same machine answers in well under a millisecond; Azure Table and Queue calls
take several. The proxy sits between the app (or the local host) and Azurite, one listening
port per service, and holds each HTTP request for `delay` seconds, with uniform jitter of
`jitter` x delay either way, before forwarding it. Responses flow back untouched.

It reads just enough HTTP/1.1 to find where each request ends (the head, then a
Content-Length or chunked body), so keep-alive connections carry many requests and each is
delayed once. It listens on 127.0.0.1 only.

    python -m bench.latency_proxy --delay-ms 20 --jitter 0.25 PORT=TARGET_PORT ...

prints `ready PORT...` once listening and exits on SIGTERM or SIGINT. `Proxy` runs it in a
subprocess, so its CPU is not the measured process's; `proxied_connection_string` points a
connection string's endpoints at it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field

from bench.stats import cpu_seconds
from tests.support.azurite import free_port

HOST = "127.0.0.1"
LENGTH = re.compile(rb"^content-length:\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)
CHUNKED = re.compile(rb"^transfer-encoding:.*chunked", re.IGNORECASE | re.MULTILINE)
ENDPOINT = re.compile(r"(BlobEndpoint|QueueEndpoint|TableEndpoint)=http://127\.0\.0\.1:(\d+)")


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One whole HTTP request (head and body) from `reader`; b"" at end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        return e.partial
    if CHUNKED.search(head):
        return head + await _read_chunks(reader)
    length = LENGTH.search(head)
    return head + (await reader.readexactly(int(length.group(1))) if length else b"")


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        body += size_line
        size = int(size_line.split(b";")[0].strip(), 16)
        body += await reader.readexactly(size + 2)  # the chunk and its CRLF
        if size == 0:
            return body


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with suppress(ConnectionError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with suppress(OSError):
        writer.close()


def pick_delay(delay: float, jitter: float, rng: random.Random) -> float:
    """`delay` seconds, spread uniformly by `jitter` x delay either way; never negative."""
    return max(0.0, delay * (1 + rng.uniform(-jitter, jitter)))


@dataclass
class Forwarder:
    """Forwards the connections of one listening port to one target port."""

    target: int
    delay: float
    jitter: float
    rng: random.Random = field(default_factory=random.Random)

    async def handle(self, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(HOST, self.target)
        except OSError:
            client_w.close()
            return
        answers = asyncio.create_task(_pipe(server_r, client_w))
        with suppress(ConnectionError, asyncio.IncompleteReadError):
            while request := await read_request(client_r):
                if self.delay:
                    await asyncio.sleep(pick_delay(self.delay, self.jitter, self.rng))
                server_w.write(request)
                await server_w.drain()
        with suppress(OSError):
            server_w.close()
        await answers


async def serve(routes: dict[int, int], *, delay: float, jitter: float) -> None:
    """Listen on each key port, forward to its value port, until SIGTERM or SIGINT."""
    servers = [await asyncio.start_server(Forwarder(target, delay, jitter).handle, HOST, port)
               for port, target in routes.items()]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Nothing to flush or save: exit at once. Tearing down the loop with connections
        # half-open races asyncio's stream callbacks and prints tracebacks for nothing.
        loop.add_signal_handler(sig, os._exit, 0)
    print("ready", *routes, flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


@dataclass
class Proxy:
    """The proxy in a subprocess, in front of every endpoint of a connection string."""

    connection_string: str
    delay_ms: float
    jitter: float = 0.25
    process: subprocess.Popen[str] | None = None
    routes: dict[int, int] = field(default_factory=dict)

    def start(self) -> str:
        """Start forwarding; the connection string that goes through the proxy."""
        self.routes = {free_port(): int(port)
                       for _, port in ENDPOINT.findall(self.connection_string)}
        args = [sys.executable, "-m", "bench.latency_proxy", "--delay-ms", str(self.delay_ms),
                "--jitter", str(self.jitter), *(f"{p}={t}" for p, t in self.routes.items())]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)  # noqa: S603
        assert self.process.stdout is not None  # noqa: S101 - set by stdout=PIPE
        line = self.process.stdout.readline()
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"the latency proxy did not start: {line!r}")
        return proxied_connection_string(self.connection_string, self.routes)

    def stop(self) -> None:
        """Stop the proxy process."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def cpu_seconds(self) -> float:
        """The proxy process's CPU time so far (user + system)."""
        return 0.0 if self.process is None else cpu_seconds(self.process.pid)


def proxied_connection_string(connection_string: str, routes: dict[int, int]) -> str:
    """`connection_string` with each endpoint's port replaced by its proxy port."""
    back = {target: port for port, target in routes.items()}
    return ENDPOINT.sub(lambda m: f"{m.group(1)}=http://{HOST}:{back[int(m.group(2))]}",
                        connection_string)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse `--delay-ms`, `--jitter` and PORT=TARGET pairs, then serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--jitter", type=float, default=0.25)
    parser.add_argument("routes", nargs="+", help="LISTEN_PORT=TARGET_PORT")
    args = parser.parse_args(argv)
    routes = {int(a): int(b) for a, b in (r.split("=", 1) for r in args.routes)}
    asyncio.run(serve(routes, delay=args.delay_ms / 1000, jitter=args.jitter))


if __name__ == "__main__":
    main()
