"""The per-call runtime: :class:`Call`, the session that runs a flow, and the transport seam."""

from callflow.runtime._call import (
    AudioSource,
    Call,
    CallInfo,
    InboundAudio,
    Playback,
    RuntimeConfig,
    StatusEvent,
)
from callflow.runtime._errors import CallEnded, CallflowError
from callflow.runtime._session import LiveCalls, run_call
from callflow.runtime._transport import (
    MemoryTransport,
    Transport,
    TransportClosed,
    memory_transport_pair,
)

__all__ = [
    "AudioSource",
    "Call",
    "CallEnded",
    "CallInfo",
    "CallflowError",
    "InboundAudio",
    "LiveCalls",
    "MemoryTransport",
    "Playback",
    "RuntimeConfig",
    "StatusEvent",
    "Transport",
    "TransportClosed",
    "memory_transport_pair",
    "run_call",
]
