"""`denoiselab serve`: the interactive playground (seed 002) as a local web app.

One page (static/index.html and plain JavaScript modules, no build step, nothing fetched from
the internet) over a JSON API (app.py and its routes_*.py routers) that runs denoiselab's real
schedules, samplers and trained runs; training jobs run in background processes (jobs.py).

The command line wires in with::

    from .serve import add_serve_arguments, run_serve
    add_serve_arguments(sub.add_parser("serve", help="..."))   # in build_parser
    COMMANDS["serve"] = run_serve
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]  # Host headers accepted on a loopback bind
HELP = "open the interactive playground in the browser (a local web app)"


def create_app(*args, **kwargs):
    """The FastAPI app (see app.create_app); imported lazily so the CLI starts fast."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 1..65535, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1..65535, got {value}")
    return value


def add_serve_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--runs", default="runs", metavar="DIR", help="folder of run folders to list and train into (default runs/)")
    parser.add_argument("--max-jobs", type=int, default=1, help="training jobs at once (default 1)")
    return parser


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_serve(args) -> int:
    """Start the app under uvicorn and print its URL; returns the exit status."""
    import uvicorn

    runs_dir = Path(args.runs)
    if runs_dir.exists() and not runs_dir.is_dir():
        print(f"denoiselab serve: error: --runs {runs_dir}: not a folder", file=sys.stderr)
        return 2
    if not 1 <= args.max_jobs <= 8:
        print(f"denoiselab serve: error: --max-jobs: expected 1..8, got {args.max_jobs}", file=sys.stderr)
        return 2
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    try:  # a clear one-line error instead of uvicorn's log when the port is taken
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((args.host, args.port))
    except OSError as exc:
        print(f"denoiselab serve: error: cannot listen on {args.host}:{args.port} ({exc.strerror or exc})", file=sys.stderr)
        return 2
    if not _is_loopback(args.host):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the playground and train models", file=sys.stderr)

    import torch

    # Sampling requests are small: a couple of threads each; training jobs set their own.
    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 2) // 2)))
    hosts = [*LOOPBACK_NAMES, args.host] if _is_loopback(args.host) else None
    app = create_app(runs_dir, max_jobs=args.max_jobs, allowed_hosts=hosts)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"denoiselab playground: http://{shown}:{args.port}/  (run folders in {runs_dir}/; Ctrl-C to stop)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "HELP", "add_serve_arguments", "create_app", "run_serve"]
