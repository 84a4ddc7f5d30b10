"""The servers the bench can run, and how to add a reference commit's callflow beside them.

:data:`SERVERS` maps each key of ``--servers`` to its command, its stream path and its kind
of load (``ivr``, the bench IVR; ``bare``, parse every message and answer nothing);
:func:`add_reference` adds ``callflow@REV`` (``--reference``). Used by :mod:`bench.runner`
and :mod:`bench.profile`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import attrs

__all__ = [
    "DEFAULT_SERVERS",
    "PY",
    "RATIOS_EXTRA",
    "RESULTS",
    "ROOT",
    "SERVERS",
    "Server",
    "add_reference",
    "write_prompts",
]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@attrs.frozen
class Server:
    """A server under test: how to start it and where its stream is.

    Attributes:
        key: short name used in the JSON (``callflow``, ``sdk``, ``bare``).
        label: the column title.
        argv: the command; ``{port}`` is replaced by 0 (any free port).
        path: the stream WebSocket's path.
        mode: ``ivr`` (the caller presses keys) or ``bare`` (media only).
        call_query: each stream URL names its call (``?CallUUID=…``).
        root: the source tree it runs from (its working directory and ``PYTHONPATH``);
            ``None`` for this checkout. A reference server (``--reference REV``) runs
            from a worktree of that commit.
    """

    key: str
    label: str
    argv: tuple[str, ...]
    path: str
    mode: str
    call_query: bool = False
    root: Path | None = None


PY = sys.executable
SERVERS: dict[str, Server] = {
    "callflow": Server(
        "callflow",
        "callflow serve",
        (PY, "-m", "callflow", "serve", "bench/flows", "--port", "0", "--log-level", "warning"),
        "/ivr/stream",
        "ivr",
    ),
    "sdk": Server(
        "sdk",
        "plivo-stream-sdk",
        (PY, "-m", "bench.servers.sdk_ivr", "--port", "0"),
        "/ivr/stream",
        "ivr",
    ),
    "bare": Server(
        "bare",
        "bare _wsfast + read loop (callflow's layer)",
        (PY, "-m", "bench.servers.wsfast_ivr", "--bare", "--port", "0"),
        "/ivr/stream",
        "bare",
    ),
    "bare_task": Server(
        "bare_task",
        "bare _wsfast, a task per socket",
        (PY, "-m", "bench.servers.wsfast_ivr", "--bare", "--no-read-loop", "--port", "0"),
        "/ivr/stream",
        "bare",
    ),
    "bare_trio_websocket": Server(
        "bare_trio_websocket",
        "bare trio-websocket",
        (PY, "-m", "bench.servers.bare_trio_websocket", "--port", "0"),
        "/ivr/stream",
        "bare",
    ),
    "node": Server(
        "node",
        "bare Node ws IVR",
        ("node", "bench/node/ivr_server.mjs", "--port", "0", "--prompts", "bench/results/prompts"),
        "/ivr/stream",
        "ivr",
    ),
    # The --workers comparison (docs/performance.md, "Workers"): the same server with one and
    # with two worker processes; the generator names each call in its stream URL (as
    # callflow's answer XML does), so every stream the kernel hands to the wrong worker is
    # handed over to its owner, and the CPU figure sums the supervisor and its workers.
    "callflow_w1": Server(
        "callflow_w1",
        "callflow serve --workers 1",
        (PY, "-m", "callflow", "serve", "bench/flows", "--port", "0", "--log-level", "warning"),
        "/ivr/stream",
        "ivr",
        call_query=True,
    ),
    "callflow_w2": Server(
        "callflow_w2",
        "callflow serve --workers 2",
        (
            PY,
            "-m",
            "callflow",
            "serve",
            "bench/flows",
            "--port",
            "0",
            "--log-level",
            "warning",
            "--workers",
            "2",
        ),
        "/ivr/stream",
        "ivr",
        call_query=True,
    ),
    "wsfast": Server(
        "wsfast",
        "runtime on _wsfast, no HTTP routes",
        (PY, "-m", "bench.servers.wsfast_ivr", "--port", "0"),
        "/ivr/stream",
        "ivr",
    ),
}
DEFAULT_SERVERS = ("callflow", "sdk", "bare", "node")


def add_reference(rev: str) -> str:
    """Add ``callflow serve`` at commit ``rev`` as the server ``callflow@REV`` (a detached git
    worktree under ``bench/results/``, made once and reused), so this checkout and a reference
    run side by side in one bench run. Returns the server's key.

    Raises:
        subprocess.CalledProcessError: ``rev`` is not a commit of this repository.
    """
    commit = subprocess.run(
        ["git", "rev-parse", "--short", f"{rev}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = RESULTS / f"ref-{commit}"
    if not (tree / "callflow").is_dir():
        RESULTS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--force", str(tree), commit],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    key = f"callflow@{commit}"
    base = SERVERS["callflow"]
    SERVERS[key] = attrs.evolve(base, key=key, label=f"callflow serve @{commit}", root=tree)
    RATIOS_EXTRA.append(("callflow", key))
    return key


RATIOS_EXTRA: list[tuple[str, str]] = []
"""Ratio columns added at run time (this checkout ÷ a ``--reference``)."""


def write_prompts() -> Path:
    """The bench flow's two prompts as raw μ-law files (``prompt0.ulaw``, ``prompt1.ulaw``)
    under ``bench/results/prompts``, for the Node IVR server to play the same bytes."""
    from bench.servers.sdk_ivr import PROMPTS

    folder = RESULTS / "prompts"
    folder.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(PROMPTS):
        (folder / f"prompt{i}.ulaw").write_bytes(data)
    return folder
