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
from callflow.runtime._rest import PlivoRest, RestError
from callflow.runtime._results import (
    BargeIn,
    Digits,
    GatherResult,
    Invalid,
    MachineDetection,
    NoInput,
    Recording,
    Speech,
)
from callflow.runtime._session import LiveCalls, run_call
from callflow.runtime._transport import (
    ABNORMAL_CLOSE,
    LOST_LINK_CODES,
    Dispatch,
    InlineDispatch,
    MemoryTransport,
    Parkable,
    Transport,
    TransportClosed,
    Woken,
    is_lost_link,
    memory_transport_pair,
    receive_until,
)
from callflow.runtime._vad import VadSettings

__all__ = [
    "ABNORMAL_CLOSE",
    "LOST_LINK_CODES",
    "AudioSource",
    "BargeIn",
    "Call",
    "CallEnded",
    "CallInfo",
    "CallflowError",
    "Digits",
    "Dispatch",
    "GatherResult",
    "InboundAudio",
    "InlineDispatch",
    "Invalid",
    "LiveCalls",
    "MachineDetection",
    "MemoryTransport",
    "NoInput",
    "Parkable",
    "Playback",
    "PlivoRest",
    "Recording",
    "RestError",
    "RuntimeConfig",
    "Speech",
    "StatusEvent",
    "Transport",
    "TransportClosed",
    "VadSettings",
    "Woken",
    "is_lost_link",
    "memory_transport_pair",
    "receive_until",
    "run_call",
]
