"""Running a synthesis program: blocking, or streamed under trio with a kill on close.

The engines here are separate programs (espeak-ng and Piper are GPL: callflow calls them, it
never links them). Text goes in on standard input, never on the command line, so no text can be
read as an option.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncGenerator, Sequence

import trio

from callflow.voice._errors import TtsError

__all__ = ["run_program", "stream_program"]

_STDERR_TAIL = 300
_READ = 16384


def _failure(program: str, code: int, stderr: bytes) -> TtsError:
    tail = stderr.decode("utf-8", "replace").strip()[-_STDERR_TAIL:]
    return TtsError(f"{program} exited with code {code}" + (f": {tail!r}" if tail else ""))


def run_program(argv: Sequence[str], stdin: bytes, *, timeout_s: float = 120.0) -> bytes:
    """Run ``argv`` with ``stdin``; return its standard output.

    Raises:
        TtsError: the program is missing, exits non-zero, or runs past ``timeout_s``.
    """
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TtsError(f"{argv[0]} failed: {exc}") from None
    if done.returncode != 0:
        raise _failure(argv[0], done.returncode, done.stderr)
    return done.stdout


async def stream_program(argv: Sequence[str], stdin: bytes) -> AsyncGenerator[bytes, None]:
    """Run ``argv`` with ``stdin`` and yield its standard output as it comes.

    Closing the generator early (a barge-in, a cancelled ``say``) kills the program and reaps
    it; nothing is left running. Standard error is kept (its last bytes name a failure).

    Raises:
        TtsError: the program is missing or exits non-zero.
    """
    try:
        process = await trio.lowlevel.open_process(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise TtsError(f"{argv[0]} failed to start: {exc}") from None
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    finished = False
    try:
        # The text (at most MAX_TEXT_CHARS) fits in a pipe's buffer, so this never waits on
        # the program reading it; closing stdin tells the program the text is complete.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await process.stdin.send_all(stdin)
        await process.stdin.aclose()
        while data := await process.stdout.receive_some(_READ):
            yield bytes(data)
        finished = True
        code = await process.wait()
        if code != 0:
            raise _failure(argv[0], code, bytes(await process.stderr.receive_some(_READ)))
    finally:
        if not finished or process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
            for stream in (process.stdin, process.stdout, process.stderr):
                await stream.aclose()
