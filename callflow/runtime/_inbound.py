"""What Plivo sends a call, as the flow takes it: keys (type-ahead), the caller's audio,
status callbacks and machine detection. The reader's dispatch (``_dispatch.py``) calls the
``_on_*`` handlers inline; they never block."""

from __future__ import annotations

import base64
import contextlib
import logging
from typing import TYPE_CHECKING

import trio

from callflow.audio import decode
from callflow.observe import call_label
from callflow.protocol import ProtocolError
from callflow.runtime import _warnings
from callflow.runtime._config import (
    CallInfo,
    KeyPolicy,
    RuntimeConfig,
    StatusEvent,
    check_key_policy,
)
from callflow.runtime._listen import InboundAudio
from callflow.runtime._results import MachineDetection
from callflow.runtime._state import CallState
from callflow.runtime._sync import Signal

log = logging.getLogger("callflow.call")


_MAX_STATUS = 256
"""Status callbacks kept for ``wait_status`` (the oldest is dropped beyond this)."""


class Inbound(CallState):
    """The inbound part of a :class:`~callflow.runtime.Call` (module docstring)."""

    if not TYPE_CHECKING:  # (mypy would take () as this class's only attributes)
        __slots__ = ()
    _SLOTS: tuple[str, ...] = (
        "_dtmf",
        "_dtmf_arrived",
        "_finish_key",
        "_listeners",
        "_log_key",
        "_machine",
        "_machine_arrived",
        "_status",
        "_status_arrived",
        "_uninterruptible_keys",
        "frames_received",
        "protocol_errors",
    )

    def __init__(self, info: CallInfo, config: RuntimeConfig | None) -> None:
        super().__init__(info, config)
        self._machine: MachineDetection | None = None
        self._machine_arrived = Signal()
        self._dtmf: list[str] = []  # (a deque's empty block is ~760 bytes a call)
        self._dtmf_arrived = Signal()
        self._uninterruptible_keys: KeyPolicy = self._config.uninterruptible_keys
        self._finish_key: tuple[str, float] | None = None  # (key, until): see _take_finish_key
        self._listeners: list[InboundAudio] = []  # (an empty set is 216 bytes, a list 56)
        self._status: list[StatusEvent] = []  # the latest _MAX_STATUS
        self._status_arrived = Signal()
        self.frames_received = 0
        """Inbound media frames seen (decoded or not)."""
        self.protocol_errors = 0
        """Messages from Plivo that could not be read (each logged, rate-limited)."""
        self._log_key = call_label(info.call_id)

    async def wait_dtmf(self) -> str:
        """The next key the caller pressed: one of ``0-9 * # A-D``.

        Keys pressed earlier are kept in order (type-ahead), so none is lost between calls.

        Raises:
            CallEnded: the call is over and no key is left.
        """
        while not self._dtmf:
            self._raise_if_ended()
            self._dtmf_arrived = Signal()
            await self._dtmf_arrived.wait()
        return self._dtmf.pop(0)

    @property
    def uninterruptible_keys(self) -> KeyPolicy:
        """What happens to keys pressed while a ``say`` that no key can stop is playing
        (``barge_in=False``, or speech only): ``"keep"`` keeps them as type-ahead for the
        next input, ``"discard"`` drops them, as VoiceXML does when ``bargein`` is false.
        Starts as ``RuntimeConfig.uninterruptible_keys`` (``"keep"``); set it for this call.
        Keys that stop a prompt, and keys pressed when no prompt plays, are always kept.

        Raises:
            ValueError: on setting anything but ``"keep"`` or ``"discard"``.
        """
        return self._uninterruptible_keys

    @uninterruptible_keys.setter
    def uninterruptible_keys(self, value: KeyPolicy) -> None:
        self._uninterruptible_keys = check_key_policy(value)

    def pending_dtmf(self) -> str:
        """The type-ahead keys not yet taken, oldest first (they stay pending)."""
        return "".join(self._dtmf)

    def flush_dtmf(self) -> str:
        """Discard the type-ahead keys; return them, oldest first."""
        keys = "".join(self._dtmf)
        self._dtmf.clear()
        return keys

    def listen(self, *, max_frames: int = 250) -> InboundAudio:
        """The caller's audio from now on, as frames of int16 PCM at the stream's rate.

        ``max_frames`` bounds the buffer (250 frames = 5 s); a slow consumer loses the oldest
        frames (counted in ``InboundAudio.dropped``). Use as ``async with call.listen() as
        frames: async for frame in frames: …``.
        """
        listener = InboundAudio(self, max_frames)
        self._listeners.append(listener)
        return listener

    async def wait_status(self, event: str | None = None) -> StatusEvent:
        """The next status callback for this call (PROTOCOL.md §6), optionally of one ``event``.

        Callbacks that arrived before the call waited are kept (up to 256).

        Raises:
            CallEnded: the call is over.
        """
        while True:
            for index, status in enumerate(self._status):
                if event is None or status.event == event:
                    del self._status[index]
                    return status
            self._raise_if_ended()
            self._status_arrived = Signal()
            await self._status_arrived.wait()

    async def wait_machine(self) -> MachineDetection:
        """Return when Plivo's machine detection reports an answering machine for this call
        (``Machine=true`` POSTed to the flow's ``<path>/machine``; seed ``004_…``), so the
        flow can switch to leaving a voicemail. Bound it with ``trio.move_on_after``.

        Raises:
            CallEnded: the call is over.
        """
        while self._machine is None:
            self._raise_if_ended()
            self._machine_arrived = Signal()
            await self._machine_arrived.wait()
        return self._machine

    def _take_finish_key(self, key: str, within_s: float) -> None:
        """A gather's entry is complete (``max_digits`` keys): the finish ``key`` typed right
        after it belongs to it. Taken now when it is the next key pending; when no key is
        pending, the next key is dropped if it is ``key`` and comes within ``within_s``
        seconds."""
        self._finish_key = None
        if self._dtmf:
            if self._dtmf[0] == key:
                self._dtmf.pop(0)
            return
        self._finish_key = (key, trio.current_time() + within_s)

    def _take_key(self, digit: str) -> None:
        """Consume the oldest pending ``digit`` (a key that ended a recording)."""
        with contextlib.suppress(ValueError):
            self._dtmf.remove(digit)

    @property
    def _wants_media(self) -> bool:
        """Whether anyone needs inbound audio now (a ``listen()``, or a speech VAD)."""
        return bool(self._listeners or self._frame_watchers)

    def _on_media(self, payload: str, track: str) -> None:
        """One inbound ``media`` frame, handed over only while :attr:`_wants_media`: decoded
        and given to listeners and watchers (the caller's track only). An undecodable
        ``media.payload`` (bad base64, or L16 of an odd number of bytes) is counted in
        :attr:`protocol_errors` and logged with the call id, like any unreadable message; the
        frame is skipped and the call goes on."""
        if track != "inbound":
            return
        try:
            frame = decode(base64.b64decode(payload), self._format)
        except ValueError as exc:  # binascii.Error is a ValueError
            self.protocol_errors += 1
            self._metrics.protocol_error("bad_payload")
            error = ProtocolError(
                f"payload is not {self._format.content_type} audio in base64 ({exc})",
                event="media",
                field="media.payload",
            )
            _warnings.UNREADABLE.warning(self._log_key, "unreadable message from Plivo: %s", error)
            return
        for listener in self._listeners:
            listener._push(frame)
        for watcher in list(self._frame_watchers):
            watcher(frame)

    def _on_dtmf(self, digit: str) -> None:
        if self._finish_key is not None:
            key, until = self._finish_key
            self._finish_key = None  # only the very next key can close the last entry
            if digit == key and trio.current_time() <= until:
                log.debug("call=%s finish key after a full entry: taken with it", self.call_id)
                return
        if self._uninterruptible_says and self._uninterruptible_keys == "discard":
            log.debug("call=%s key during a prompt no key can stop: discarded", self.call_id)
        else:
            if len(self._dtmf) >= self._config.dtmf_buffer:
                # The key itself is not logged: it may belong to a PIN a later
                # ``gather(sensitive=True)`` would have kept out of every log line.
                self._dtmf.pop(0)
                log.warning(
                    "call=%s type-ahead buffer full (%d keys); dropped the oldest key",
                    self.call_id,
                    self._config.dtmf_buffer,
                )
            self._dtmf.append(digit)
            self._dtmf_arrived.set()
        # Watchers see every key, kept or not (a recording's finish key may come in its beep).
        for watcher in list(self._key_watchers):
            watcher(digit)

    def _on_machine(self, detection: MachineDetection) -> None:
        self._machine = detection
        self._machine_arrived.set()

    def _on_status(self, status: StatusEvent) -> None:
        self._status.append(status)
        if len(self._status) > _MAX_STATUS:
            del self._status[0]
        self._status_arrived.set()

    def _on_end(self) -> None:
        for event in (self._dtmf_arrived, self._status_arrived, self._machine_arrived):
            event.set()
        for listener in list(self._listeners):
            listener._wake()
        super()._on_end()
