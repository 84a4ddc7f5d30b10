"""The bench's load generators and how to run each: ``c`` (bench/cgen/loadgen.c, compiled on
first use), ``node`` (bench/node/loadgen.mjs) and ``python`` (:mod:`bench.loadgen`). All three
take the same options and write the same JSON (the C and Node ones add ``"generator"``).

The C generator is built with the system's C compiler into ``bench/results/cgen/loadgen``,
again whenever a source under ``bench/cgen/`` is newer than the binary::

    cc -O2 -Wall -Wextra -o bench/results/cgen/loadgen bench/cgen/loadgen.c
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CGEN_SOURCES = ROOT / "bench" / "cgen"
CGEN_BINARY = ROOT / "bench" / "results" / "cgen" / "loadgen"
KINDS = ("c", "node", "python")


class BuildError(RuntimeError):
    """The C generator could not be built (no compiler, or it failed)."""


def compiler() -> str | None:
    """The C compiler on PATH (``cc``, else ``gcc``, else ``clang``), or ``None``."""
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def build_cgen(force: bool = False) -> Path:
    """Compile the C generator if its binary is missing or older than a source; its path.

    Raises:
        BuildError: no C compiler, or the build failed (its output in the message).
    """
    sources = sorted(CGEN_SOURCES.glob("*.[ch]"))
    newest = max(p.stat().st_mtime for p in sources)
    if not force and CGEN_BINARY.exists() and CGEN_BINARY.stat().st_mtime >= newest:
        return CGEN_BINARY
    cc = compiler()
    if cc is None:
        raise BuildError("no C compiler (cc, gcc or clang) on PATH")
    CGEN_BINARY.parent.mkdir(parents=True, exist_ok=True)
    argv = [cc, "-O2", "-Wall", "-Wextra", "-o", str(CGEN_BINARY), str(CGEN_SOURCES / "loadgen.c")]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return CGEN_BINARY


def resolve(kind: str, say: Callable[[str], None]) -> str:
    """The generator to use for ``kind``: ``c`` is built here, and falls back to ``node``
    (with a line through ``say`` saying so) when it cannot be."""
    if kind != "c":
        return kind
    try:
        build_cgen()
    except BuildError as exc:
        say(f"load generator: the C generator cannot be built ({exc}); using node instead")
        return "node"
    return "c"


def argv(kind: str) -> list[str]:
    """The command that runs generator ``kind`` (the run's options follow it)."""
    if kind == "c":
        return [str(build_cgen())]
    if kind == "node":
        return ["node", str(ROOT / "bench" / "node" / "loadgen.mjs")]
    return [sys.executable, "-m", "bench.loadgen"]
