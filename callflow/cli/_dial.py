"""``callflow dial ANSWER_URL``: call a running server as Plivo would, from a terminal."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

import trio


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dial``."""
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
