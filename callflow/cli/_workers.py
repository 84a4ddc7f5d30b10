"""``callflow serve --workers N``: the command-line side of the supervisor and its workers
(:mod:`callflow.server._workers` does the work)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

import trio

from callflow.cli._common import LOG_DATE_FORMAT, LOG_FORMAT, UsageError
from callflow.observe import JsonFormatter
from callflow.server import ServerInfo
from callflow.server._workers import Supervisor, WorkerRole, serve_worker, worker_count


def add_option(serve: argparse.ArgumentParser) -> None:
    """Add ``--workers``."""
    serve.add_argument(
        "--workers",
        default="1",
        metavar="N",
        help="worker processes on the one port (SO_REUSEPORT); auto: one per CPU (1)",
    )


def count(args: argparse.Namespace) -> int:
    """``--workers`` as a number.

    Raises:
        UsageError: not a count of 1 or more nor ``auto``.
    """
    try:
        return worker_count(args.workers)
    except ValueError as exc:
        raise UsageError(f"--workers: {exc}") from None


def worker_run(role: WorkerRole, run_kwargs: dict[str, Any]) -> Callable[..., Any]:
    """What ``serve_until_signal`` runs in a supervised worker instead of ``serve_flows``:
    the same options, on a shared port. Each log line names the worker (``worker=N``, or
    ``"worker": N`` in JSON logs)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.fields["worker"] = role.index
        elif type(handler.formatter) is logging.Formatter:  # the plain-text format
            handler.setFormatter(
                logging.Formatter(
                    LOG_FORMAT.replace("%(name)s", f"%(name)s worker={role.index}"),
                    LOG_DATE_FORMAT,
                )
            )
    flows = run_kwargs.pop("flows")

    async def run(**kwargs: Any) -> None:
        await serve_worker(role, flows, **run_kwargs, **kwargs)

    return run


def supervise(
    args: argparse.Namespace, workers: int, on_started: Callable[[ServerInfo], None]
) -> int:
    """Run ``workers`` worker processes under a supervisor until drained; the exit status."""
    try:
        supervisor = Supervisor(sys.argv[1:], workers, args.host, args.port, args.drain_timeout)
    except OSError as exc:
        print(f"callflow: error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    status: int = trio.run(supervisor.run, on_started)
    return status
