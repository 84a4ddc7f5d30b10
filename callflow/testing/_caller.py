"""The softphone behind ``callflow dial``: call a running server as Plivo would, from a
terminal; show each prompt as it plays, press keys (scripted or typed), hear it through the
speaker when there is one, and save what the caller heard as a WAV file."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import attrs
import httpx
import trio
import trio_websocket

from callflow.audio import Audio, read_wav, write_wav
from callflow.protocol import Checkpoint, ClearAudio, PlayAudio, SendDTMF
from callflow.testing._dial import AnswerError, dial
from callflow.testing._fake import FakePlivo, Received
from callflow.testing._speaker import Speaker

DTMF_KEYS = frozenset("0123456789*#ABCD")
"""The keys a caller can press (PROTOCOL.md §2): digits, ``*``, ``#`` and ``A``–``D``."""

FLOW_ERROR_CODE = 1011
"""The close code callflow's server uses when the flow raised (RFC 6455: unexpected
condition)."""


class DialError(Exception):
    """The call could not be made or did not end well: one line for the user."""


@attrs.frozen
class DialResult:
    """How a call made by :func:`run_caller` ended.

    Attributes:
        close_code: the server's WebSocket close code (1000 when the flow ended normally,
            1011 when it raised), ``None`` when the caller hung up first.
        heard_s: seconds of audio the caller heard.
        reason: why the call ended, in a few words.
        ok: True only when the flow ended normally or the user hung up on purpose.
    """

    close_code: int | None
    heard_s: float
    reason: str
    ok: bool


def check_keys(groups: str) -> list[str]:
    """``--keys`` as key groups: ``"1, 1234#"`` is ``["1", "1234#"]`` (``a``–``d`` upper-cased).

    Raises:
        ValueError: an empty group or a character that is not a DTMF key; the message names it.
    """
    out = []
    for raw in groups.split(","):
        group = raw.strip().upper()
        if not group:
            raise ValueError(f"--keys {groups!r}: an empty key group")
        bad = [key for key in group if key not in DTMF_KEYS]
        if bad:
            raise ValueError(f"--keys {groups!r}: {bad[0]!r} is not a DTMF key (0-9 * # A-D)")
        out.append(group)
    return out


def check_answer_url(url: str) -> str:
    """``url`` if it is an absolute ``http://`` or ``https://`` URL with a host.

    Raises:
        ValueError: anything else; the message quotes it.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http:// or https:// answer URL: {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise ValueError(f"bad port in answer URL: {url!r}") from None
    return url


def load_prompts(folder: Path) -> dict[str, Audio]:
    """Every WAV under ``folder`` by name (``bank/welcome`` for ``bank/welcome.wav``); files
    that cannot be read are left out."""
    prompts = {}
    for path in sorted(folder.rglob("*.wav")):
        try:
            prompts[path.relative_to(folder).with_suffix("").as_posix()] = read_wav(path)
        except Exception:
            continue
    return prompts


def _describe(item: Received, fake: FakePlivo) -> str:
    command = item.command
    if isinstance(command, PlayAudio):
        raw = len(command.payload) // 4 * 3 - command.payload[-2:].count("=")
        return f"playAudio  {fake.format.duration_s(raw):.2f} s of {command.content_type}"
    if isinstance(command, Checkpoint):
        return f"checkpoint {command.name}"
    if isinstance(command, ClearAudio):
        return "clearAudio (barge-in: queued audio dropped)"
    if isinstance(command, SendDTMF):
        return f"sendDTMF   {command.digits}"
    return type(command).__name__  # pragma: no cover - parse_command knows no other


def prompt_name(fake: FakePlivo, heard: bytes) -> tuple[str | None, float | None]:
    """The name and length (s) of the known prompt ``heard`` begins with, else ``(None,
    None)``."""
    for name, audio in fake._prompts.items():
        known = audio.encoded(fake.format)
        n = min(len(known), len(heard))
        if n >= fake.format.sample_width * 80 and heard[:n] == known[:n]:  # 10 ms at 8 kHz
            return name, audio.duration_s
    return None, None


class _Display:
    """Prompt lines (start, end with name and length), a live line on a terminal, keys."""

    def __init__(
        self, fake: FakePlivo, began: float, say: Callable[[str], None], live: bool
    ) -> None:
        self.fake, self.began, self.say, self.live = fake, began, say, live
        self._live_shown = False

    def at(self) -> str:
        return f"{trio.current_time() - self.began:7.2f}s"

    def line(self, text: str) -> None:
        if self._live_shown:
            sys.stdout.write("\r\x1b[K")
            self._live_shown = False
        self.say(f"{self.at()}  {text}")

    def live_line(self, text: str) -> None:
        if self.live:
            sys.stdout.write(f"\r\x1b[K{self.at()}  {text}")
            sys.stdout.flush()
            self._live_shown = True

    def describe(self, heard: bytes, cut: bool) -> str:
        fmt = self.fake.format
        seconds = fmt.duration_s(len(heard))
        name, length = prompt_name(self.fake, heard)
        what = f"prompt {name!r}" if name else "audio"
        if cut:
            of = f" of {length:.2f} s" if length else ""
            return f"■ {what}: {seconds:.2f} s{of}, cut (clearAudio)"
        if name and length is not None and seconds > length + 0.05:
            return f"■ {what} and {seconds - length:.2f} s more: {seconds:.2f} s"
        return f"■ {what}: {seconds:.2f} s"


class _PromptWatch:
    """Each prompt as it starts and ends, a live line while it plays, every message with
    ``verbose``; the heard audio to the speaker. :meth:`update` does one pass over what
    changed; the key presses call it too, so a prompt's end is shown before the key after
    it."""

    def __init__(
        self, fake: FakePlivo, display: _Display, speaker: Speaker | None, verbose: bool
    ) -> None:
        self.fake, self.display, self.speaker, self.verbose = fake, display, speaker, verbose
        self._shown = 0
        self._playing: tuple[int, int] | None = None  # (heard offset at start, clears then)
        self._starts_seen = 0
        self._fed = 0

    def update(self) -> None:
        fake, display = self.fake, self.display
        heard = fake._heard
        if self.speaker is not None and len(heard) > self._fed:
            self.speaker.play(bytes(heard[self._fed :]))
            self._fed = len(heard)
        if self.verbose:
            for item in fake.received[self._shown :]:
                display.line(f"← {_describe(item, fake)}")
            self._shown = len(fake.received)
        starts = fake._starts
        more = len(starts) > self._starts_seen
        silent = fake._playing_scope is None and not any(
            isinstance(item, bytes) for item in fake._queue
        )  # no chunk playing or queued (checkpoints may be): what played is all in _heard
        if self._playing is not None and (fake.hung_up_flag or silent or more):
            offset, clears = self._playing
            cut = len(fake.cleared) > clears
            end = starts[self._starts_seen].offset if more else len(heard)
            segment = bytes(heard[offset:end])
            _, length = prompt_name(fake, segment)
            if (
                length is not None
                and fake.format.duration_s(len(segment)) < length - 0.03
                and not (cut or fake.hung_up_flag)
            ):  # a known prompt not played to its end yet: its next chunk is on its way
                if more:
                    self._starts_seen += 1
                    more = len(starts) > self._starts_seen
            else:
                display.line(display.describe(segment, cut))
                self._playing = None
        if self._playing is None and more:
            self._playing = (starts[self._starts_seen].offset, len(fake.cleared))
            self._starts_seen += 1
            display.line("▶ playing")

    async def run(self) -> None:
        fake = self.fake
        while True:
            self.update()
            if fake.hung_up_flag:
                return
            if self._playing is None:
                await fake._wait_heard_change()
                continue
            offset = self._playing[0]
            name, length = prompt_name(fake, bytes(fake._heard[offset:]))
            so_far = fake.format.duration_s(len(fake._heard) - offset)
            total = f"/{length:.1f}" if length else ""
            self.display.live_line(f"▶ {name or 'audio'} {so_far:.1f}{total} s")
            with trio.move_on_after(0.1):
                await fake._wait_heard_change()


async def _typed_keys(fake: FakePlivo, display: _Display, hung_up: list[bool]) -> None:
    """Keys typed on stdin, a line at a time; an empty line or ``q`` hangs up. At the end of
    stdin (``< /dev/null``) the keys stop and the call goes on until the flow ends."""
    display.say("type keys (0-9 * # A-D) and Enter to press them; an empty line hangs up")
    while True:
        line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if not line:
            return
        keys = line.strip().upper()
        if not keys or keys == "Q":
            display.line("→ hanging up")
            hung_up.append(True)
            await fake.hang_up()
            return
        bad = [key for key in keys if key not in DTMF_KEYS]
        if bad:
            print(f"callflow: error: {bad[0]!r} is not a DTMF key (0-9 * # A-D)", file=sys.stderr)
            continue
        display.line(f"→ dtmf {keys}")
        await fake.press(keys)


async def _on_ctrl_c(cancel: trio.CancelScope, interrupted: list[bool]) -> None:
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async for _ in signals:
            interrupted.append(True)
            cancel.cancel()
            return


async def _close_at_end(sound: Speaker) -> None:
    try:
        await trio.sleep_forever()
    finally:
        sound.close()


def _connect_error(exc: BaseException, answer_url: str) -> DialError:
    parts = urlsplit(answer_url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    if isinstance(exc, httpx.ConnectError):
        return DialError(f"cannot connect to {where}: is `callflow serve` running there?")
    if isinstance(exc, httpx.TimeoutException):
        return DialError(f"no answer from {where} within 10 s")
    if isinstance(exc, AnswerError) and exc.status_code == 403:
        return DialError(
            f"{answer_url} refused the call (HTTP 403): the Plivo signature did not match; "
            "set PLIVO_AUTH_TOKEN to the server's token and dial the URL it is reached at"
        )
    if isinstance(exc, AnswerError) and exc.status_code == 404:
        return DialError(f"no flow at {answer_url} (HTTP 404): see `callflow routes FOLDER`")
    if isinstance(exc, trio_websocket.ConnectionRejected):
        return DialError(f"the server refused the stream WebSocket (HTTP {exc.status_code})")
    if isinstance(exc, trio_websocket.HandshakeError):
        return DialError(f"the stream WebSocket handshake failed: {exc}")
    return DialError(f"cannot call {answer_url}: {exc}")


async def run_caller(
    answer_url: str,
    *,
    keys: Sequence[str] | None,
    auth_token: str | None = None,
    out: Path | None = None,
    max_s: float = 120.0,
    say: Callable[[str], None] = print,
    prompts: Mapping[str, Audio] | None = None,
    live: bool = False,
    verbose: bool = False,
    speaker: bool = False,
    handle_ctrl_c: bool = False,
) -> DialResult:
    """Call ``answer_url`` and play the caller; return how the call ended.

    With ``keys`` (groups such as ``["1", "1234#"]``) each group is pressed once playback
    has gone idle (the prompt before it was heard); then the caller waits for the flow to
    end. Without ``keys`` the keys are read from stdin. The call is hung up after ``max_s``
    seconds, and on Ctrl-C with ``handle_ctrl_c``. What the caller heard is written to ``out``
    (16-bit mono WAV) however the call ended, once it was connected. ``prompts`` names the
    prompts heard; ``live`` draws a live line (for a terminal); ``speaker`` plays the call
    through the machine's speaker when it has one (see :class:`Speaker`).

    Raises:
        DialError: no server, a refused signature or stream, no such flow: one line.
    """
    began = trio.current_time()
    interrupted: list[bool] = []
    user_hung_up: list[bool] = []
    fake: FakePlivo | None = None
    reason, ok = "the flow ended", True
    try:
        async with trio.open_nursery() as outer:
            if handle_ctrl_c:
                outer.start_soon(_on_ctrl_c, outer.cancel_scope, interrupted)
            async with dial(answer_url, auth_token=auth_token, prompts=prompts) as fake:
                display = _Display(fake, began, say, live)
                say(f"connected: {fake.format.content_type}, call {fake.call_id}")
                sound = Speaker.open(fake.format) if speaker else None
                if speaker and sound is None:
                    say("(no speaker: `pip install 'callflow-plivo[audio]'` to hear the call)")
                if sound is not None:
                    outer.start_soon(_close_at_end, sound)
                watch = _PromptWatch(fake, display, sound, verbose)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch.run)
                    with trio.move_on_after(max_s) as limit:
                        if keys is None:
                            nursery.start_soon(_typed_keys, fake, display, user_hung_up)
                        else:
                            for group in keys:
                                await fake.hears(None)
                                if fake.hung_up_flag:
                                    break
                                watch.update()
                                display.line(f"→ dtmf {group}")
                                await fake.press(group)
                        await fake.hung_up()
                    if limit.cancelled_caught:
                        reason, ok = f"hung up after {max_s:g} s: the flow did not end", False
                        await fake.hang_up()
                    nursery.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    except* (OSError, httpx.HTTPError, AnswerError, trio_websocket.HandshakeError) as group:
        if fake is None:
            raise _connect_error(group.exceptions[0], answer_url) from None
        raise
    finally:
        if fake is not None and out is not None:
            write_wav(out, fake.heard)
    assert fake is not None or interrupted
    if interrupted:
        reason, ok = "interrupted (Ctrl-C): hung up", False
    elif user_hung_up:
        reason = "you hung up"
    elif fake is not None and fake.close_code == FLOW_ERROR_CODE:
        reason, ok = "the flow failed: the server closed the stream with 1011 (flow error)", False
    elif fake is not None and fake.close_code not in (None, 1000):
        reason, ok = f"the server closed the stream with code {fake.close_code}", False
    heard_s = fake.heard_s if fake is not None else 0.0
    return DialResult(fake.close_code if fake else None, heard_s, reason, ok)
