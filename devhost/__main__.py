"""Command line: `python -m devhost [--script-root DIR] [--host ADDR] [--port N]
[--host-json-override FILE]`. SIGINT or SIGTERM stops it gracefully; a second one kills it."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from types import FrameType

from devhost.catalog import find_app, import_script
from devhost.errors import CatalogError, HostError
from devhost.host import FunctionsHost, HostOptions, build_host
from devhost.settings import apply_local_values, load_local_settings

logger = logging.getLogger("devhost")

# The storage SDK logs every request at INFO; queue polling would drown the app's own logs.
_CHATTY_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy",)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(prog="python -m devhost",
                                     description="Local Azure Functions host (Python v2 model).")
    parser.add_argument("--script-root", type=Path, default=Path.cwd(),
                        help="folder holding function_app.py and host.json (default: cwd)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=None,
                        help="HTTP port (default: Host.LocalHttpPort in local.settings.json, "
                             "else 7071)")
    parser.add_argument("--host-json-override", type=Path, default=None,
                        help="JSON file deep-merged over host.json")
    return parser.parse_args(argv)


def configure_logging() -> None:
    """Make sure log records reach stderr; an app that set up its own handlers keeps them."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    for name in _CHATTY_LOGGERS:
        chatty = logging.getLogger(name)
        if chatty.level == logging.NOTSET:
            chatty.setLevel(logging.WARNING)


def create_host(args: argparse.Namespace) -> FunctionsHost:
    """Apply local settings, import the app, set up logging, and build the host."""
    script_root = args.script_root.resolve()
    local_settings = load_local_settings(script_root)
    # Before the import: the app may read its settings at import time.
    apply_local_values(local_settings, os.environ)
    app = find_app(import_script(script_root, os.environ))
    # After the import, so that an app which configures logging itself keeps its setup.
    configure_logging()
    options = HostOptions(script_root=script_root, address=args.host, port=args.port,
                          host_json_override=args.host_json_override)
    return build_host(app, options, local_settings=local_settings, environ=os.environ)


def install_signal_handlers(stop_requested: threading.Event) -> None:
    """First SIGINT/SIGTERM asks for a graceful stop; the handlers then revert to default."""

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)


def main(argv: list[str] | None = None) -> int:
    """Run the host until a signal; return the process exit code."""
    args = parse_args(argv)
    stop_requested = threading.Event()
    install_signal_handlers(stop_requested)
    try:
        host = create_host(args)
    except HostError as e:
        if isinstance(e, CatalogError) and e.__cause__ is not None:
            traceback.print_exception(e.__cause__)
        print(f"devhost: {e}", file=sys.stderr)
        return 1
    host.start()
    print(host.banner(), flush=True)
    print("Host started", flush=True)
    # A timed wait keeps the main thread responsive to signals.
    while not stop_requested.wait(0.2):
        pass
    host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
