"""What the subcommands share: the usage error, option types and logging setup."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from callflow.observe import JsonFormatter
from callflow.server import check_public_url

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
DEFAULT_BASE = "http://127.0.0.1:8000"


class UsageError(Exception):
    """Bad input from the command line: one line on stderr, exit status 2."""


def port_number(value: str) -> int:
    """An ``argparse`` type: a TCP port 0–65535 (0 asks the OS for a free one)."""
    try:
        port = int(value, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 0-65535")
    return port


def public_url(value: str | None) -> str | None:
    """``--public-url`` checked (``https://host``), or ``None``.

    Raises:
        UsageError: not an absolute http(s) URL without path, query or fragment.
    """
    if value is None:
        return None
    try:
        return check_public_url(value)
    except ValueError as exc:
        raise UsageError(f"--public-url: {exc}") from None


def setup_logging(level: str, log_format: str = "text") -> None:
    """Log records at ``level`` and above to stderr, one line each: plain text, or with
    ``log_format="json"`` one JSON object per line carrying the call id, stream id and flow
    path of the call it belongs to (:class:`callflow.observe.JsonFormatter`)."""
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])
        return
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format=LOG_FORMAT,
        datefmt=LOG_DATE_FORMAT,
        stream=sys.stderr,
    )


def add_folder(parser: argparse.ArgumentParser, **kwargs: Any) -> None:
    """The ``FOLDER`` positional argument: a folder of flow modules."""
    parser.add_argument("folder", metavar="FOLDER", help="folder of flow modules", **kwargs)
