"""The ``callflow`` command: ``serve``, ``routes`` and ``xml`` for a folder of flows.

::

    callflow serve FOLDER [--host 127.0.0.1] [--port 8000] [--public-url URL]
                          [--log-level info] [--drain-timeout 10]
    callflow routes FOLDER [--json]
    callflow xml FOLDER PATH [--public-url URL]

``serve`` reads the Plivo auth token from ``PLIVO_AUTH_TOKEN``; without it, signatures are
not checked (development). It prints the routes, the URLs to paste into Plivo, and then
``listening on http://HOST:PORT`` (the real port with ``--port 0``). SIGINT or SIGTERM stops
it gracefully: no new calls, live calls get ``--drain-timeout`` seconds, exit status 0.

Exit status 2 for bad input (a flow folder that cannot be loaded, a bad option), 1 when the
port cannot be bound. Logging is set up here only; library modules just use
``logging.getLogger("callflow.…")``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from callflow._answer import answer_xml
from callflow._flow import Flow, StreamSettings
from callflow._loader import FlowLoadError, load_flows
from callflow.runtime import PlivoRest
from callflow.server import ServerInfo, check_public_url, serve_flows
from callflow.server._app import DEFAULT_DRAIN_TIMEOUT

log = logging.getLogger("callflow.cli")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
DEFAULT_BASE = "http://127.0.0.1:8000"


class _UsageError(Exception):
    """Bad input from the command line: one line on stderr, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``callflow`` command with ``argv`` (default ``sys.argv[1:]``); the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command_func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        status: int = args.command_func(args)
    except (_UsageError, FlowLoadError) as exc:
        print(f"callflow: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `callflow routes … | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callflow",
        description="Serve and inspect Plivo audio-stream call flows.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve the flows in FOLDER (answer webhook, stream WebSocket, status callback)",
        description="Serve the flows in FOLDER on one HTTP + WebSocket port. The Plivo auth "
        "token is read from PLIVO_AUTH_TOKEN; without it signatures are not checked.",
    )
    serve.add_argument("folder", metavar="FOLDER", help="folder of flow modules")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port, 0 for any (8000)")
    serve.add_argument(
        "--public-url",
        metavar="URL",
        help="https://host as Plivo reaches this server (e.g. your ngrok URL)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (info)",
    )
    serve.add_argument(
        "--drain-timeout",
        type=float,
        default=DEFAULT_DRAIN_TIMEOUT,
        metavar="SECONDS",
        help=f"on SIGINT/SIGTERM, seconds live calls get to finish ({DEFAULT_DRAIN_TIMEOUT:.0f})",
    )
    serve.set_defaults(command_func=_serve)

    routes = commands.add_parser("routes", help="list the routes of the flows in FOLDER")
    routes.add_argument("folder", metavar="FOLDER", help="folder of flow modules")
    routes.add_argument("--json", action="store_true", help="print JSON")
    routes.set_defaults(command_func=_routes)

    xml = commands.add_parser("xml", help="print the answer XML of the flow at PATH")
    xml.add_argument("folder", metavar="FOLDER", help="folder of flow modules")
    xml.add_argument("path", metavar="PATH", help="the flow's answer path, e.g. /support")
    xml.add_argument(
        "--public-url",
        metavar="URL",
        default=DEFAULT_BASE,
        help=f"public base URL written into the XML ({DEFAULT_BASE})",
    )
    xml.set_defaults(command_func=_xml)

    dial = commands.add_parser(
        "dial",
        help="call a running server as Plivo would: hear its prompts, press keys",
        description="Call ANSWER_URL the way Plivo does (signed with PLIVO_AUTH_TOKEN when "
        "set), connect to the stream WebSocket in its answer, and play the caller: print "
        "every message the flow sends, press keys, save what was heard as a WAV file.",
    )
    dial.add_argument("answer_url", metavar="ANSWER_URL", help="e.g. http://127.0.0.1:8000/support")
    dial.add_argument(
        "--keys",
        metavar="GROUPS",
        help="comma-separated key groups, each pressed when the prompt before it has played "
        "(e.g. '1,1234#'); without it, keys are read from stdin",
    )
    dial.add_argument("--out", metavar="WAV", type=Path, help="save what the caller heard")
    dial.add_argument(
        "--max-seconds", type=float, default=120.0, help="hang up after this long (120)"
    )
    dial.set_defaults(command_func=_dial)
    return parser


def _public_url(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_public_url(value)
    except ValueError as exc:
        raise _UsageError(f"--public-url: {exc}") from None


# -- routes / xml ------------------------------------------------------------------------


def _stream_json(settings: StreamSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in attrs.fields(StreamSettings):
        value = getattr(settings, field.name)
        if field.name == "format":
            value = settings.format.content_type
        elif field.name == "extra_headers":
            value = dict(value)
        out[field.name] = value
    return out


def _route_lines(flows: Sequence[Flow], base: str | None) -> list[str]:
    width = max(len(f.machine_path) for f in flows)
    lines = []
    for f in flows:
        external = f.stream.status_callback_url
        lines.append(
            f"  POST|GET {f.path:<{width}}  answer webhook  -> flow {f.name} "
            f"({f.format.content_type})"
        )
        lines.append(f"  WS       {f.stream_path:<{width}}  stream WebSocket")
        status_note = f"  (unused: the flow posts to {external})" if external else ""
        lines.append(f"  POST|GET {f.status_path:<{width}}  status callback{status_note}")
        lines.append(f"  POST|GET {f.machine_path:<{width}}  machine detection callback")
        if base is not None:
            lines.append(f"           answer URL for Plivo: {base}{f.path}  (POST or GET)")
    lines.append(f"  GET      {'/healthz':<{width}}  health check")
    return lines


def _routes(args: argparse.Namespace) -> int:
    flows = load_flows(args.folder)
    if args.json:
        table = [
            {
                "path": f.path,
                "stream_path": f.stream_path,
                "status_path": f.status_path,
                "machine_path": f.machine_path,
                "flow": f.name,
                "stream": _stream_json(f.stream),
            }
            for f in flows
        ]
        print(json.dumps(table, indent=2))
    else:
        print("\n".join(_route_lines(flows, None)))
    return 0


def _xml(args: argparse.Namespace) -> int:
    base = _public_url(args.public_url)
    assert base is not None
    flows = load_flows(args.folder)
    match = [f for f in flows if f.path == args.path]
    if not match:
        known = ", ".join(f.path for f in flows)
        raise _UsageError(f"no flow at {args.path!r} in {args.folder} (flows: {known})")
    flow = match[0]
    ws_base = "wss" + base[5:] if base.startswith("https:") else "ws" + base[4:]
    xml = answer_xml(
        flow,
        stream_url=f"{ws_base}{flow.stream_path}?t=PER_CALL_TOKEN",
        status_callback_url=base + flow.status_path,
    )
    print(xml.decode())
    return 0


# -- dial --------------------------------------------------------------------------------


def _dial(args: argparse.Namespace) -> int:
    import trio_websocket

    from callflow.testing._caller import run_caller
    from callflow.testing._dial import AnswerError

    keys = [group.strip() for group in args.keys.split(",")] if args.keys else None
    run = functools.partial(
        run_caller,
        args.answer_url,
        keys=keys,
        auth_token=os.environ.get("PLIVO_AUTH_TOKEN") or None,
        out=args.out,
        max_s=args.max_seconds,
        say=functools.partial(print, flush=True),
    )
    failure = ""
    code = 0
    try:
        code = trio.run(run)
    except* (OSError, AnswerError, trio_websocket.HandshakeError) as group:
        failure = str(group.exceptions[0])
    if failure:
        print(f"callflow: error: cannot call {args.answer_url}: {failure}", file=sys.stderr)
        return 1
    return 0 if code in (0, 1000) else 1


# -- serve -------------------------------------------------------------------------------


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format=LOG_FORMAT,
        datefmt=LOG_DATE_FORMAT,
        stream=sys.stderr,
    )


def _serve(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level)
    public_url = _public_url(args.public_url)
    flows = load_flows(args.folder)
    # Everything imported so far (libraries, flows, prompts) lives for the whole process: move
    # it out of the collector's reach, so a collection during a burst of new calls does not
    # pause every live call while it walks them (docs/performance.md, time to first audio).
    gc.freeze()
    auth_token = os.environ.get("PLIVO_AUTH_TOKEN") or None
    rest = PlivoRest.from_env()
    if rest is None:
        print(
            "callflow: PLIVO_AUTH_ID/PLIVO_AUTH_TOKEN not both set: hangup() closes the stream "
            "(the <Hangup/> after <Stream> ends the call); transfer() is unavailable",
            file=sys.stderr,
        )
    run = functools.partial(
        serve_flows,
        flows,
        host=args.host,
        port=args.port,
        public_url=public_url,
        auth_token=auth_token,
        drain_timeout=args.drain_timeout,
        rest=rest,
    )
    failure = ""
    try:
        trio.run(_serve_until_signal, run, flows, args.drain_timeout)
    except* OSError as group:
        failure = "; ".join(str(exc) for exc in group.exceptions)
    if failure:
        print(
            f"callflow: error: cannot listen on {args.host}:{args.port}: {failure}", file=sys.stderr
        )
        return 1
    return 0


async def _serve_until_signal(
    run: functools.partial[Any], flows: Sequence[Flow], drain_timeout: float
) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            info: ServerInfo = await nursery.start(run)
            base = info.public_url or info.url
            print(f"callflow: serving {len(flows)} flow(s)")
            print("\n".join(_route_lines(flows, base)))
            if info.public_url is None:
                print("  (Plivo needs a public URL: run a tunnel and pass --public-url https://…)")
            print(f"listening on {info.url}", flush=True)
            async for signum in signals:
                log.info(
                    "%s: stopping; live calls get up to %.0f s to finish",
                    signal.Signals(signum).name,
                    drain_timeout,
                )
                nursery.cancel_scope.cancel()
