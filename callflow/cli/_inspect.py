"""``callflow routes`` and ``callflow xml``: what a folder of flows serves, without serving it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import attrs

from callflow._answer import answer_xml
from callflow._flow import Flow, StreamSettings
from callflow._loader import load_flows
from callflow.cli._common import DEFAULT_BASE, UsageError, add_folder, public_url


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``routes`` and ``xml``."""
    routes = commands.add_parser("routes", help="list the routes of the flows in FOLDER")
    add_folder(routes)
    routes.add_argument("--json", action="store_true", help="print JSON")
    routes.set_defaults(command_func=_routes)

    xml = commands.add_parser("xml", help="print the answer XML of the flow at PATH")
    add_folder(xml)
    xml.add_argument("path", metavar="PATH", help="the flow's answer path, e.g. /support")
    xml.add_argument(
        "--public-url",
        metavar="URL",
        default=DEFAULT_BASE,
        help=f"public base URL written into the XML ({DEFAULT_BASE})",
    )
    xml.set_defaults(command_func=_xml)


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


def route_lines(flows: Sequence[Flow], base: str | None) -> list[str]:
    """The routes table ``routes`` and ``serve`` print; with ``base``, each answer URL."""
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
    lines.append(f"  GET      {'/readyz':<{width}}  readiness (503 while draining)")
    lines.append(f"  GET      {'/livez':<{width}}  liveness")
    lines.append(f"  GET      {'/healthz':<{width}}  health check (alias of /readyz)")
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
        print("\n".join(route_lines(flows, None)))
    return 0


def _xml(args: argparse.Namespace) -> int:
    base = public_url(args.public_url)
    assert base is not None
    flows = load_flows(args.folder)
    match = [f for f in flows if f.path == args.path]
    if not match:
        known = ", ".join(f.path for f in flows)
        raise UsageError(f"no flow at {args.path!r} in {args.folder} (flows: {known})")
    flow = match[0]
    ws_base = "wss" + base[5:] if base.startswith("https:") else "ws" + base[4:]
    xml = answer_xml(
        flow,
        stream_url=f"{ws_base}{flow.stream_path}?t=PER_CALL_TOKEN",
        status_callback_url=base + flow.status_path,
    )
    print(xml.decode())
    return 0
