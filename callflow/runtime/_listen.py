"""``InboundAudio``: the caller's audio as frames, from :meth:`Call.listen`."""

from __future__ import annotations

import collections
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import trio

from callflow.runtime._errors import CallEnded
from callflow.runtime._sync import Signal

if TYPE_CHECKING:
    from callflow.runtime._inbound import Inbound


class InboundAudio:
    """The caller's audio, frame by frame, from :meth:`Call.listen`.

    An async iterator of 1-D ``np.int16`` arrays at the stream's sample rate (each about
    20 ms: 160 samples at 8 kHz, 320 at 16 kHz). It holds at most ``max_frames`` frames; when
    a slow consumer lets it fill, the *oldest* frame is dropped and counted in ``dropped``, so
    the call's reader never waits. Use it as an async context manager: while it is open the
    runtime decodes media frames; once closed, none are decoded for it.
    """

    def __init__(self, call: Inbound, max_frames: int) -> None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, not {max_frames}")
        self._call = call
        self._frames: collections.deque[npt.NDArray[np.int16]] = collections.deque(
            maxlen=max_frames
        )
        self._arrived = Signal()
        self._closed = False
        self.dropped = 0
        """Frames lost because the consumer fell behind."""
        self.sample_rate = call.info.format.sample_rate
        """Samples per second (Hz) of every frame."""

    def _push(self, frame: npt.NDArray[np.int16]) -> None:
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(frame)
        self._arrived.set()

    def _wake(self) -> None:
        self._arrived.set()

    async def receive(self) -> npt.NDArray[np.int16]:
        """The next frame.

        Raises:
            CallEnded: the call is over and every buffered frame has been taken.
            trio.ClosedResourceError: this listener was closed.
        """
        while not self._frames:
            if self._closed:
                raise trio.ClosedResourceError("listener is closed")
            self._call._raise_if_ended()
            self._arrived = Signal()
            await self._arrived.wait()
        return self._frames.popleft()

    def close(self) -> None:
        """Stop receiving: the runtime stops decoding for this listener."""
        self._closed = True
        listeners = self._call._listeners
        if self in listeners:
            listeners.remove(self)
        self._arrived.set()

    def __aiter__(self) -> InboundAudio:
        return self

    async def __anext__(self) -> npt.NDArray[np.int16]:
        try:
            return await self.receive()
        except (CallEnded, trio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def __aenter__(self) -> InboundAudio:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
