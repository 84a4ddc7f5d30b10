"""callflow: write Plivo audio-stream call flows as async Python functions.

The public surface; everything else lives in private modules::

    from callflow import Call, Format, flow
    from callflow.audio import Audio

    @flow("/hello", format=Format.MULAW_8K)
    async def hello(call: Call) -> None:
        await call.say(Audio.from_wav("hello.wav"))
"""

from callflow._answer import answer_xml
from callflow._flow import Flow, StreamSettings, flow
from callflow._loader import FlowLoadError, load_flows
from callflow.protocol import Format, ProtocolError
from callflow.runtime import (
    BargeIn,
    Call,
    CallEnded,
    CallflowError,
    CallInfo,
    Digits,
    InboundAudio,
    Invalid,
    MachineDetection,
    NoInput,
    Playback,
    PlivoRest,
    Recording,
    RestError,
    RuntimeConfig,
    Speech,
    StatusEvent,
    VadSettings,
)

__all__ = [
    "BargeIn",
    "Call",
    "CallEnded",
    "CallInfo",
    "CallflowError",
    "Digits",
    "Flow",
    "FlowLoadError",
    "Format",
    "InboundAudio",
    "Invalid",
    "MachineDetection",
    "NoInput",
    "Playback",
    "PlivoRest",
    "ProtocolError",
    "Recording",
    "RestError",
    "RuntimeConfig",
    "Speech",
    "StatusEvent",
    "StreamSettings",
    "VadSettings",
    "answer_xml",
    "flow",
    "load_flows",
]
