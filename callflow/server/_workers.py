"""``callflow serve --workers N``: N worker processes on one port, and their supervisor.

The supervisor (the process the operator started) loads nothing it serves itself: it makes a
private folder, reserves the port (a socket bound with ``SO_REUSEPORT`` but not listening,
so ``--port 0`` works), and starts N copies of ``callflow serve`` with ``--workers 1`` and
the real port, each told its index through :data:`WORKER_ENV`. Every worker binds its own
listening socket on the port with ``SO_REUSEPORT`` (the kernel spreads connections over
them) and hands each connection of a call it does not own to the owner
(:mod:`callflow.server._handoff`). Workers share no memory except the replay-protection
table and the metrics files, both files in the supervisor's folder
(``CALLFLOW_NONCE_FILE``, ``PROMETHEUS_MULTIPROC_DIR``).

* A worker that dies is restarted (after 1 s if it lived under 5 s, so a crash loop does not
  spin); only its own calls are lost. Its metrics files are marked dead.
* SIGTERM or SIGINT to the supervisor drains every worker (each gets SIGTERM and follows the
  drain timeline of :mod:`callflow.server._drain`); nothing is restarted from then on. A
  second signal kills the workers and exits at once. Workers run in their own session, so a
  terminal's Ctrl-C reaches only the supervisor; a worker whose supervisor dies (its parent
  pid changes) sends itself SIGTERM and drains.
* The supervisor's exit status is the worst of its workers' (0, 3, 4, 5: see
  ``callflow.cli._stop``); a worker still alive at the hard deadline is killed (status 5).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from callflow._flow import Flow
from callflow.observe._metrics import MULTIPROC_ENV
from callflow.server._app import ServerInfo, serve_listeners
from callflow.server._drain import HARD_DEADLINE
from callflow.server._replay import NONCE_FILE_ENV

log = logging.getLogger("callflow.server")

WORKER_ENV = "CALLFLOW_WORKER"
"""``index/count/folder``: set by the supervisor for each worker it starts."""


START_TIMEOUT = 30.0
"""Seconds every worker gets to print ``listening on`` at startup."""

RESTART_BACKOFF = 1.0
"""Seconds before restarting a worker that lived less than :data:`QUICK_DEATH` seconds."""

QUICK_DEATH = 5.0

EXIT_FORCED = 4
EXIT_HARD_DEADLINE = 5


@attrs.frozen
class WorkerRole:
    """What a worker process was told by its supervisor (:data:`WORKER_ENV`)."""

    index: int
    count: int
    folder: Path

    @classmethod
    def from_env(cls) -> WorkerRole | None:
        """This process's role, or ``None`` when it is not a supervised worker."""
        text = os.environ.get(WORKER_ENV)
        if not text:
            return None
        index, count, folder = text.split("/", 2)
        return cls(int(index), int(count), Path(folder))

    def env(self) -> str:
        return f"{self.index}/{self.count}/{self.folder}"


def worker_count(text: str) -> int:
    """``--workers``: a count of at least 1, or ``auto`` (the number of CPUs).

    Raises:
        ValueError: anything else.
    """
    if text == "auto":
        return os.cpu_count() or 1
    count = int(text, 10)
    if count < 1:
        raise ValueError(f"--workers must be 1 or more, or auto, not {count}")
    return count


def _reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def reuseport_listener(host: str, port: int) -> trio.SocketListener:
    """A listener on ``host:port`` that shares the port with the other workers.

    Raises:
        OSError: the address cannot be bound.
    """
    sock = _reuseport_socket(host, port)
    sock.listen(socket.SOMAXCONN)
    sock.setblocking(False)
    return trio.SocketListener(trio.socket.from_stdlib_socket(sock))


async def serve_worker(
    role: WorkerRole, flows: Sequence[Flow], *, host: str, port: int, **kwargs: Any
) -> None:
    """Run one supervised worker: :func:`~callflow.server._app.serve_listeners` on a
    ``SO_REUSEPORT`` listener, handing connections to their owners; ``kwargs`` as for
    ``serve_listeners``.

    Raises:
        OSError: the address cannot be bound.
    """
    arm_parent_death_signal()
    listener = reuseport_listener(host, port)
    await serve_listeners(
        flows,
        [listener],
        worker=role.index,
        workers=role.count,
        handoff_folder=role.folder,
        **kwargs,
    )


def arm_parent_death_signal(poll_s: float = 1.0) -> None:
    """Send this process SIGTERM (so it drains) once its supervisor has gone: a daemon thread
    polls the parent pid every ``poll_s`` seconds. (Not ``prctl(PR_SET_PDEATHSIG)``: that
    fires when the supervisor's *thread* that started the worker ends, and trio starts
    processes from its thread cache.)"""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="callflow-parent-watch", daemon=True).start()


def worker_argv(argv: Sequence[str], port: int) -> list[str]:
    """``argv`` of ``callflow serve …`` for a worker: ``--workers`` and ``--port`` replaced."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--workers", "--port"):
            skip = True
            continue
        if arg.startswith(("--workers=", "--port=")):
            continue
        out.append(arg)
    return [*out, "--port", str(port), "--workers", "1"]


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: trio.Process | None = None
        self.started_at = 0.0
        self.ready = trio.Event()
        self.status: int | None = None
        self.done = trio.Event()


class Supervisor:
    """Starts, watches, restarts and drains the workers (one per ``callflow serve``)."""

    def __init__(
        self, argv: Sequence[str], count: int, host: str, port: int, drain_timeout: float
    ) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="callflow-workers-"))
        (self.folder / "metrics").mkdir()
        self._reserve = _reuseport_socket(host, port)
        self.host = host
        self.port = int(self._reserve.getsockname()[1])
        self.argv = worker_argv(argv, self.port)
        self.count = count
        self.drain_timeout = drain_timeout
        self.workers = [_Worker(i) for i in range(count)]
        self.draining = False
        self.restarts = 0

    def _env(self, index: int) -> dict[str, str]:
        env = dict(os.environ)
        env[WORKER_ENV] = WorkerRole(index, self.count, self.folder).env()
        env[NONCE_FILE_ENV] = str(self.folder / "nonces")
        env[MULTIPROC_ENV] = str(self.folder / "metrics")
        return env

    async def _start(self, worker: _Worker, nursery: trio.Nursery) -> None:
        worker.ready = trio.Event()
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "callflow", *self.argv],
            stdout=subprocess.PIPE,
            env=self._env(worker.index),
            start_new_session=True,
        )
        worker.process = process
        worker.started_at = time.monotonic()
        nursery.start_soon(self._read_stdout, worker, process)

    async def _read_stdout(self, worker: _Worker, process: trio.Process) -> None:
        assert process.stdout is not None
        seen = b""
        async with process.stdout:
            while chunk := await process.stdout.receive_some():
                if not worker.ready.is_set():
                    seen = (seen + chunk)[-4096:]
                    if b"listening on " in seen and seen.endswith(b"\n"):
                        worker.ready.set()

    async def _watch(self, worker: _Worker, nursery: trio.Nursery) -> None:
        """Wait for the worker to exit; restart it unless draining."""
        while True:
            process = worker.process
            assert process is not None
            status = await process.wait()
            _mark_dead(self.folder / "metrics", process.pid)
            if self.draining:
                worker.status = status
                worker.done.set()
                return
            lived = time.monotonic() - worker.started_at
            log.warning(
                "worker %d (pid %d) died with status %d after %.1f s; its calls are lost; "
                "restarting it",
                worker.index,
                process.pid,
                status,
                lived,
            )
            self.restarts += 1
            if lived < QUICK_DEATH:
                await trio.sleep(RESTART_BACKOFF)
            if self.draining:
                worker.status = 0
                worker.done.set()
                return
            await self._start(worker, nursery)

    def _signal_all(self, signum: int) -> None:
        for worker in self.workers:
            process = worker.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signum)

    def _exit_now(self, message: str, status: int) -> None:
        self._signal_all(signal.SIGKILL)
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
        shutil.rmtree(self.folder, ignore_errors=True)
        os._exit(status)

    async def _end_when_drained(self, scope: trio.CancelScope) -> None:
        for worker in self.workers:
            await worker.done.wait()
        scope.cancel()

    def _exit_status(self) -> int:
        statuses = [w.status if w.status is not None else EXIT_HARD_DEADLINE for w in self.workers]
        if any(s < 0 or s == EXIT_HARD_DEADLINE for s in statuses):
            return EXIT_HARD_DEADLINE
        return max(statuses)

    async def run(self, on_started: Callable[[ServerInfo], None]) -> int:
        """Run the workers until a signal has drained them all; the exit status."""
        timer: threading.Timer | None = None
        try:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async with trio.open_nursery() as nursery:
                    for worker in self.workers:
                        await self._start(worker, nursery)
                    with trio.move_on_after(START_TIMEOUT) as startup:
                        for worker in self.workers:
                            await worker.ready.wait()
                    if startup.cancelled_caught:
                        self._exit_now("callflow: error: workers did not start in time", 1)
                    for worker in self.workers:
                        nursery.start_soon(self._watch, worker, nursery)
                    on_started(ServerInfo(host=self.host, port=self.port))
                    log.info("supervising %d workers on port %d", self.count, self.port)
                    async for signum in signals:
                        name = signal.Signals(signum).name
                        if self.draining:
                            alive = sum(
                                w.process is not None and w.process.returncode is None
                                for w in self.workers
                            )
                            self._exit_now(
                                f"callflow: second {name} during the drain: exiting now, "
                                f"{alive} worker(s) killed",
                                EXIT_FORCED,
                            )
                        log.info(
                            "%s: draining %d workers; live calls get up to %.0f s "
                            "(a second signal exits at once)",
                            name,
                            self.count,
                            self.drain_timeout,
                        )
                        self.draining = True
                        self._signal_all(signal.SIGTERM)
                        timer = threading.Timer(
                            self.drain_timeout + HARD_DEADLINE + 1.0,
                            self._exit_now,
                            (
                                "callflow: hard deadline: workers still running; killed",
                                EXIT_HARD_DEADLINE,
                            ),
                        )
                        timer.daemon = True
                        timer.start()
                        nursery.start_soon(self._end_when_drained, nursery.cancel_scope)
        finally:
            if timer is not None:
                timer.cancel()
            self._reserve.close()
            shutil.rmtree(self.folder, ignore_errors=True)
        return self._exit_status()


def _mark_dead(folder: Path, pid: int) -> None:
    """Tell prometheus-client's multiprocess mode that ``pid`` is gone (its live gauges stop
    counting)."""
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]
    except Exception:  # the metrics are best effort; the supervisor goes on
        log.debug("could not mark worker %d dead in %s", pid, folder, exc_info=True)
