"""``callflow check FOLDER`` (a linter for flows) and ``callflow graph FOLDER`` (their menus
as a diagram); both read the source and import nothing of it."""

from __future__ import annotations

import argparse

from callflow.cli._common import UsageError, add_folder


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``check`` and ``graph``."""
    check = commands.add_parser(
        "check",
        help="find mistakes in the flows in FOLDER (exit status 1 when there are any)",
        description="Read the flows in FOLDER and report, each as FILE:LINE: [code] message: "
        "missing prompt files, text prompts no engine can render, gather/menu without a path "
        "for NoInput or Invalid, menu choices that are not one key, duplicate paths, prompts "
        "the flow's format cannot carry without loss, and PIN or card input without "
        "sensitive=True. Exit status 1 when there are findings.",
    )
    add_folder(check)
    check.set_defaults(command_func=_check)

    graph = commands.add_parser(
        "graph",
        help="draw each flow's prompts and menus (Mermaid, or Graphviz DOT with --dot)",
    )
    add_folder(graph)
    graph.add_argument("--dot", action="store_true", help="Graphviz DOT instead of Mermaid")
    graph.set_defaults(command_func=_graph)


def _check(args: argparse.Namespace) -> int:
    from callflow.tools import check_folder

    try:
        findings = check_folder(args.folder)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    for finding in findings:
        print(finding)
    if findings:
        print(f"callflow check: {len(findings)} finding(s) in {args.folder}")
        return 1
    print(f"callflow check: {args.folder}: no findings")
    return 0


def _graph(args: argparse.Namespace) -> int:
    from callflow.tools import graph_folder

    try:
        print(graph_folder(args.folder, dot=args.dot), end="")
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    return 0
