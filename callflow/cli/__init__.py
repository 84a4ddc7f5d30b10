"""The ``callflow`` command: one module per group of subcommands.

::

    callflow new DIR
    callflow serve FOLDER [--host 127.0.0.1] [--port 8000] [--public-url URL]
                          [--log-level info] [--drain-timeout 10]
    callflow routes FOLDER [--json]
    callflow xml FOLDER PATH [--public-url URL]
    callflow dial ANSWER_URL [--keys GROUPS] [--out WAV]
    callflow check FOLDER
    callflow graph FOLDER [--dot]
    callflow prompts build FOLDER [--tts ENGINE] [--cache DIR]

Each subcommand lives in its own module (``_serve``, ``_inspect``, ``_dial``, …) with an
``add_commands(commands)`` function that adds its parsers to the ``argparse`` subparsers and sets
``command_func``. A command returns its exit status; it raises :class:`UsageError` (or
:class:`~callflow._loader.FlowLoadError`) for bad input, which :func:`main` prints as one line
``callflow: error: …`` with exit status 2. Logging is set up here only; library modules just use
``logging.getLogger("callflow.…")``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from callflow._loader import FlowLoadError
from callflow.cli import _dial, _inspect, _new, _prompts, _serve, _tools
from callflow.cli._common import UsageError

__all__ = ["UsageError", "main"]

#: The modules whose ``add_commands`` build the subcommands, in the order ``--help`` lists them.
COMMAND_MODULES = (_new, _serve, _inspect, _dial, _tools, _prompts)


def package_version() -> str:
    """The installed distribution's version, or ``"unknown"`` when run from a bare checkout."""
    for name in ("callflow-plivo", "callflow"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "unknown"  # pragma: no cover - only without any installed metadata


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``callflow`` command with ``argv`` (default ``sys.argv[1:]``); the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command_func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        status: int = args.command_func(args)
    except (UsageError, FlowLoadError) as exc:
        print(f"callflow: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `callflow routes … | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status


def build_parser() -> argparse.ArgumentParser:
    """The ``callflow`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="callflow",
        description="Serve and inspect Plivo audio-stream call flows.",
    )
    parser.add_argument("--version", action="version", version=f"callflow {package_version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_commands(commands)
    return parser
