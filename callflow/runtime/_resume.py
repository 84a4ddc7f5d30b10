"""What a call's playback does when its socket drops and when Plivo reconnects.

What Plivo's queue holds after a reconnect is not documented, so callflow assumes nothing
survived: every ``playAudio`` not confirmed played by a checkpoint ack is unknown. At the
drop, playback is taken to stand at the last acknowledged checkpoint (to within one chunk of
what the caller heard, never past it: ``say`` sends a checkpoint after every chunk); on the
new socket, callflow sends everything after that point again, with every pending checkpoint
in its place, so waiting ``say``/``checkpoint`` calls are answered by the new
socket's acks as if nothing had happened. A ``clearAudio`` still waiting for
``clearedAudio`` is complete at the drop: nothing it was clearing can play any more.
"""

from __future__ import annotations

import base64

import attrs

from callflow.protocol import Checkpoint, encode, play_audio_message
from callflow.runtime._playback import Player


@attrs.frozen
class Resent:
    """What a re-attach sent again: ``audio_s`` seconds of audio from ``from_s`` seconds on
    the sent timeline, and ``checkpoints`` pending checkpoints."""

    audio_s: float
    from_s: float
    checkpoints: int

    def __str__(self) -> str:
        if not self.audio_s and not self.checkpoints:
            return "nothing to re-send"
        return (
            f"re-sent {self.audio_s:.2f} s of audio from {self.from_s:.2f} s "
            f"and {self.checkpoints} checkpoint(s)"
        )


def detached(call: Player, now: float) -> float:
    """The socket dropped at ``now``: freeze playback where it was and complete the clears in
    flight. Returns the position heard (seconds on the sent timeline)."""
    heard = call._ledger.pause(now)
    for _ in range(call._ledger.clears_pending):
        call._on_cleared()
    return heard


def resend(call: Player) -> tuple[list[str], Resent]:
    """The messages that rebuild Plivo's queue on a new socket (module docstring), in wire
    order, and what they hold."""
    marks, audio = call._ledger.resume_plan()
    fmt = call._format
    messages: list[str] = []
    stream_id = call.info.stream_id
    pending = iter(marks)
    mark = next(pending, None)
    audio_s = 0.0
    for sent, from_s in audio:
        while mark is not None and mark.position_s <= sent.start_s:
            messages.append(encode(Checkpoint(stream_id=stream_id, name=mark.name)))
            mark = next(pending, None)
        payload = sent.payload
        if from_s > sent.start_s:
            raw = base64.b64decode(payload)
            cut = int((from_s - sent.start_s) * fmt.sample_rate) * fmt.sample_width
            if cut >= len(raw):
                continue
            payload = base64.b64encode(raw[cut:]).decode("ascii")
        messages.append(play_audio_message(call._prefix, payload))
        audio_s += sent.end_s - from_s
    while mark is not None:
        messages.append(encode(Checkpoint(stream_id=stream_id, name=mark.name)))
        mark = next(pending, None)
    start = audio[0][1] if audio else call._ledger.heard_position(0.0)
    return messages, Resent(audio_s, start, len(marks))
