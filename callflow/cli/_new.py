"""``callflow new DIR``: scaffold a project (a flow, its prompts, a passing test)."""

from __future__ import annotations

import argparse
from pathlib import Path

from callflow.cli._common import UsageError
from callflow.scaffold import ScaffoldError, new_project


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``new``."""
    new = commands.add_parser(
        "new",
        help="make a new project in DIR: a flow, its prompts and a passing test",
        description="Write a new callflow project into DIR (created; it may exist if empty): "
        "pyproject.toml, flows/hello.py with its prompts in flows/prompts/, a helper module "
        "flows/common.py, and tests/test_hello.py. Then: cd DIR && pytest.",
    )
    new.add_argument("folder", metavar="DIR", type=Path, help="the new project's folder")
    new.set_defaults(command_func=_new)


def _new(args: argparse.Namespace) -> int:
    try:
        written = new_project(args.folder)
    except ScaffoldError as exc:
        raise UsageError(str(exc)) from None
    shown = [p for p in written if p.suffix != ".wav"]
    prompts = len(written) - len(shown)
    print(f"created {args.folder}/:")
    for path in shown:
        print(f"  {path.as_posix()}")
    print(f"  flows/prompts/ ({prompts} WAV prompts)")
    print("next:")
    print(f"  cd {args.folder}")
    print("  pytest")
    print("  callflow serve flows/")
    return 0
