"""``callflow dial ANSWER_URL``: a softphone for a running server, from a terminal.

Exit status: 0 when the flow ended normally (or you hung up), 1 when the call failed (no
server, a refused signature or stream, the flow raised: the server closed the stream with
1011, the ``--max-seconds`` limit), 2 for bad input (``--keys``, the URL), 130 on Ctrl-C.
Every failure is one line, ``callflow: error: …``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

import trio

from callflow.cli._common import UsageError


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dial``."""
    dial = commands.add_parser(
        "dial",
        help="call a running server as Plivo would: hear its prompts, press keys",
        description="Call ANSWER_URL the way Plivo does (signed with PLIVO_AUTH_TOKEN when "
        "set), connect to the stream WebSocket in its answer, and play the caller: show each "
        "prompt as it plays (named when it is a WAV under --prompts), press keys, play the "
        "call through the speaker when there is one, save what was heard as a WAV file. Exit "
        "status 0 only when the flow ended normally.",
    )
    dial.add_argument("answer_url", metavar="ANSWER_URL", help="e.g. http://127.0.0.1:8000/hello")
    dial.add_argument(
        "--keys",
        metavar="GROUPS",
        help="comma-separated key groups, each pressed when the prompt before it has played "
        "(e.g. '1,1234#'); without it, keys are read from stdin",
    )
    dial.add_argument("--out", metavar="WAV", type=Path, help="save what the caller heard")
    dial.add_argument(
        "--prompts",
        metavar="FOLDER",
        type=Path,
        help="WAV prompts to name what is heard (flows/prompts when it exists)",
    )
    dial.add_argument(
        "--max-seconds", type=float, default=120.0, help="hang up after this long (120)"
    )
    dial.add_argument(
        "--no-speaker", action="store_true", help="do not play the call through the speaker"
    )
    dial.add_argument(
        "-v", "--verbose", action="store_true", help="also print every message the flow sends"
    )
    dial.set_defaults(command_func=_dial)


def _dial(args: argparse.Namespace) -> int:
    from callflow.testing._caller import (
        DialError,
        check_answer_url,
        check_keys,
        load_prompts,
        run_caller,
    )

    try:
        keys = check_keys(args.keys) if args.keys is not None else None
        url = check_answer_url(args.answer_url)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    folder = args.prompts if args.prompts is not None else Path("flows/prompts")
    if args.prompts is not None and not folder.is_dir():
        raise UsageError(f"--prompts {folder}: not a folder")
    run = functools.partial(
        run_caller,
        url,
        keys=keys,
        auth_token=os.environ.get("PLIVO_AUTH_TOKEN") or None,
        out=args.out,
        max_s=args.max_seconds,
        say=functools.partial(print, flush=True),
        prompts=load_prompts(folder) if folder.is_dir() else None,
        live=sys.stdout.isatty(),
        verbose=args.verbose,
        speaker=not args.no_speaker,
        handle_ctrl_c=True,
    )
    try:
        result = trio.run(run)
    except DialError as exc:
        print(f"callflow: error: {exc}", file=sys.stderr)
        return 1
    wrote = f"; wrote {args.out}" if args.out is not None else ""
    summary = f"heard {result.heard_s:.2f} s{wrote}"
    if result.ok:
        print(f"call ended: {result.reason} (close code {result.close_code}); {summary}")
        return 0
    print(f"callflow: error: {result.reason}; {summary}", file=sys.stderr)
    return 130 if result.reason.startswith("interrupted") else 1
