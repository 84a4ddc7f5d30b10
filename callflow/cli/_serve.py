"""``callflow serve FOLDER``: the answer webhook, stream WebSocket and status callback on one port.

``serve`` reads the Plivo auth token from ``PLIVO_AUTH_TOKEN``; without it, signatures are
not checked (development). It prints the routes, the URLs to paste into Plivo, and then
``listening on http://HOST:PORT`` (the real port with ``--port 0``), once. SIGINT or SIGTERM
drains it (readiness false, new answers get ``--drain-answer``, live calls get
``--drain-timeout`` seconds); a second signal exits at once. The exit status says how the
calls ended (:mod:`callflow.cli._stop`); 1 when the port cannot be bound.
"""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from callflow._flow import Flow
from callflow._loader import load_flows
from callflow.cli import _workers
from callflow.cli._common import UsageError, add_folder, port_number, public_url, setup_logging
from callflow.cli._inspect import route_lines
from callflow.cli._stop import serve_until_signal
from callflow.dev import DEV_PATH, dev_pages
from callflow.runtime import LiveCalls, PlivoRest
from callflow.server import ServerInfo, serve_flows
from callflow.server._app import DEFAULT_DRAIN_TIMEOUT
from callflow.server._drain import Drain, DrainAnswer
from callflow.server._keepalive import DEFAULT_PING_INTERVAL, DEFAULT_PONG_TIMEOUT, Keepalive
from callflow.server._watchdog import DEFAULT_STALL_THRESHOLD
from callflow.server._workers import WorkerRole
from callflow.voice import TTS_ENV

log = logging.getLogger("callflow.cli")

GC_YOUNG_THRESHOLD = 20_000
"""The collector's generation-0 threshold under ``callflow serve`` (CPython's default: 700).

A call's prompt in flight holds a few dozen tracked objects for seconds (its scopes, waits and
checkpoints). At the default, hundreds of calls trigger a young collection about every 45 ms,
and each one promotes whatever is in flight, so the old generations fill with objects that
die a moment later and their collections come every few seconds: at 1470 calls, 59
generation-1 collections (3 ms each) and 5 full ones (up to 90 ms) a minute, and keys that
land on them wait (barge-in p99 7.5 ms). At 20 000 what is in flight is mostly gone before a
collection sees it: in the same minute 14 young collections, 1 of generation 1, none full,
the collector's time 1.5 → 0.2 s, barge-in p99 1.9 ms (docs/performance.md, "The tail").
Once calls stand (no call starting or ending), no collection runs at all: 0 in 25 s at 1530
calls. Garbage cycles (a call's teardown leaves about 50 objects in them: ``python -m
bench.memory --ended``) wait a little longer: at most this many tracked allocations."""

GC_MIDDLE_THRESHOLD = 1
"""Young collections per generation-1 collection, plus one (CPython's default: 10).

While calls start, what they keep is young: at CPython's 10, a generation-1 collection walks up
to ten young collections' worth (200 000 objects), 59-63 ms at 1530 calls, the moment the burst
ends, and a key pressed then waits for it. At 1 it walks at most two (27 ms at the same load),
and a standing call's objects reach the oldest generation, which is walked only when it has
grown by a quarter (CPython's rule), after two young collections instead of ten."""


def tune_collector() -> None:
    """Set the collector for a server process: everything imported so far (libraries, flows,
    prompts) lives for the whole process, so it moves out of the collector's reach
    (``gc.freeze``: a collection during a burst of new calls does not walk it); young
    collections wait for :data:`GC_YOUNG_THRESHOLD` allocations and generation 1 for
    :data:`GC_MIDDLE_THRESHOLD` of them. The full collection keeps CPython's threshold."""
    gc.freeze()
    oldest = gc.get_threshold()[2]
    gc.set_threshold(GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD, oldest)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve``."""
    serve = commands.add_parser(
        "serve",
        help="serve the flows in FOLDER (answer webhook, stream WebSocket, status callback)",
        description="Serve the flows in FOLDER on one HTTP + WebSocket port. The Plivo auth "
        "token is read from PLIVO_AUTH_TOKEN; without it signatures are not checked.",
    )
    add_folder(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument(
        "--dev",
        action="store_true",
        help="also serve the dev phone at /dev: call a flow from the browser (never in "
        "production: it lets anyone who reaches the port place calls)",
    )
    serve.add_argument(
        "--reload",
        action="store_true",
        help="import FOLDER again when a file in it changes: new calls get the new flows, "
        "live calls finish on theirs, a file that fails to import keeps the old ones",
    )
    serve.add_argument(
        "--port", type=port_number, default=8000, help="TCP port 0-65535, 0 for any (8000)"
    )
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
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text lines, or one JSON object per line with call_id, stream_id, flow (text)",
    )
    serve.add_argument(
        "--drain-timeout",
        type=float,
        default=DEFAULT_DRAIN_TIMEOUT,
        metavar="SECONDS",
        help=f"on SIGINT/SIGTERM, seconds live calls get to finish ({DEFAULT_DRAIN_TIMEOUT:.0f})",
    )
    serve.add_argument(
        "--loop-stall-threshold",
        type=_seconds,
        default=DEFAULT_STALL_THRESHOLD,
        metavar="SECONDS",
        help="log (once, with its stack) anything that holds the event loop this long; 0: off "
        f"({DEFAULT_STALL_THRESHOLD})",
    )
    serve.add_argument(
        "--drain-answer",
        default="503",
        metavar="ANSWER",
        help="what new answer webhooks get while draining: 503 (Plivo uses the number's "
        "fallback URL), speak:TEXT (<Speak> then <Hangup/>) or redirect:URL (<Redirect>); "
        "default 503",
    )
    serve.add_argument(
        "--ping-interval",
        type=_seconds,
        default=DEFAULT_PING_INTERVAL,
        metavar="SECONDS",
        help=f"seconds between WebSocket pings on every call's socket; 0: none "
        f"({DEFAULT_PING_INTERVAL:g})",
    )
    serve.add_argument(
        "--pong-timeout",
        type=_positive_seconds,
        default=DEFAULT_PONG_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds a ping waits for its pong before the socket is given up as lost "
        f"({DEFAULT_PONG_TIMEOUT:g})",
    )
    _workers.add_option(serve)
    serve.add_argument(
        "--tts",
        metavar="ENGINE",
        default=None,
        help="text-to-speech engine for flows that name none: piper, piper:MODEL.onnx, "
        "espeak-ng, espeak-ng:VOICE (default: $CALLFLOW_TTS, else auto: Piper with its "
        "bundled voice, else espeak-ng)",
    )
    serve.set_defaults(command_func=_serve)


def _seconds(text: str) -> float:
    """An argparse type: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds, more than 0."""
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def _serve(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    base_url = public_url(args.public_url)
    try:
        drain_answer = DrainAnswer.parse(args.drain_answer)
    except ValueError as exc:
        raise UsageError(f"--drain-answer: {exc}") from None
    if args.tts:
        os.environ[TTS_ENV] = args.tts  # read by "auto" when it resolves (workers inherit it)
    workers = _workers.count(args)
    if args.reload and workers > 1:
        raise UsageError("--reload serves from one process: leave out --workers")
    role = WorkerRole.from_env()
    flows = load_flows(args.folder)
    if role is None and workers > 1:
        return _workers.supervise(args, workers, functools.partial(_print_started, flows, args.dev))
    tune_collector()
    auth_token = os.environ.get("PLIVO_AUTH_TOKEN") or None
    rest = PlivoRest.from_env()
    if rest is None:
        print(
            "callflow: PLIVO_AUTH_ID/PLIVO_AUTH_TOKEN not both set: hangup() closes the stream "
            "(the <Hangup/> after <Stream> ends the call); transfer() is unavailable",
            file=sys.stderr,
        )
    options: dict[str, Any] = dict(
        pages=dev_pages(flows) if args.dev else None,
        host=args.host,
        port=args.port,
        public_url=base_url,
        auth_token=auth_token,
        drain_timeout=args.drain_timeout,
        drain_answer=drain_answer,
        rest=rest,
        loop_stall_threshold=args.loop_stall_threshold or None,
        keepalive=(
            Keepalive(ping_interval=args.ping_interval, pong_timeout=args.pong_timeout)
            if args.ping_interval
            else None
        ),
    )
    run: Callable[..., Awaitable[None]] = (
        functools.partial(serve_flows, flows, **options)
        if role is None
        else _workers.worker_run(role, {"flows": flows, **options})
    )
    if args.reload:
        from callflow.cli._reload import serve_with_reload

        run = functools.partial(serve_with_reload, run, args.folder)
    failure = ""
    status = 0
    try:
        status = trio.run(
            functools.partial(
                serve_until_signal,
                run,
                functools.partial(_print_started, flows, args.dev),
                drain=Drain(),
                drain_timeout=args.drain_timeout,
                live_calls=LiveCalls(),
            )
        )
    except* OSError as group:
        failure = "; ".join(str(exc) for exc in group.exceptions)
    if failure:
        print(
            f"callflow: error: cannot listen on {args.host}:{args.port}: {failure}", file=sys.stderr
        )
        return 1
    return status


def _print_started(flows: Sequence[Flow], pages: bool, info: ServerInfo) -> None:
    base = info.public_url or info.url
    print(f"callflow: serving {len(flows)} flow(s)")
    print("\n".join(route_lines(flows, base)))
    if info.public_url is None:
        print("  (Plivo needs a public URL: run a tunnel and pass --public-url https://…)")
    if pages:
        print(f"  dev phone: {info.url}{DEV_PATH}  (--dev: call a flow from the browser)")
    print(f"listening on {info.url}", flush=True)
