"""The public surface of callflow.protocol, and its place at the bottom of the layers."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import attrs

import callflow.protocol
from callflow import protocol

PUBLIC = {
    "MAX_MESSAGE_BYTES",
    "MAX_PAYLOAD_B64",
    "Checkpoint",
    "ClearAudio",
    "ClearedAudio",
    "Dtmf",
    "ExtraHeaders",
    "Format",
    "InboundEvent",
    "Media",
    "OutboundCommand",
    "PlayAudio",
    "PlayedStream",
    "ProtocolError",
    "SendDTMF",
    "Start",
    "Stop",
    "UnknownEvent",
    "encode",
    "encode_event",
    "load_event",
    "parse",
    "parse_command",
    "parse_loaded",
    "play_audio_message",
    "play_audio_prefix",
}

PACKAGE = Path(callflow.protocol.__file__).parent


def test_all_is_the_public_surface() -> None:
    assert set(protocol.__all__) == PUBLIC
    public_attributes = {n for n in vars(protocol) if not n.startswith(("_", "@"))}  # @: pytest
    assert public_attributes == PUBLIC


def test_every_public_class_and_function_is_documented() -> None:
    for name in PUBLIC:
        obj = getattr(protocol, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), name


def test_values_are_frozen_and_slotted() -> None:
    for name in PUBLIC:
        obj = getattr(protocol, name)
        if inspect.isclass(obj) and attrs.has(obj):
            assert "__slots__" in vars(obj), name
            assert obj.__setattr__ is not object.__setattr__, name  # frozen


def test_inbound_events_are_keyword_only() -> None:
    for cls in (
        protocol.Start,
        protocol.Media,
        protocol.Dtmf,
        protocol.PlayedStream,
        protocol.ClearedAudio,
        protocol.Stop,
        protocol.UnknownEvent,
    ):
        assert all(field.kw_only for field in attrs.fields(cls)), cls


def test_protocol_imports_only_itself_and_libraries() -> None:
    """Sans-IO (DESIGN.md layers): no trio, no other callflow layer but the bottom one
    (``callflow.observe``, for log-safe error texts)."""
    allowed = {"attrs", "cattrs", "binascii", "collections", "contextlib", "enum", "functools"}
    allowed |= {"json", "orjson", "types", "typing", "__future__"}
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                inside = module.startswith(("callflow.protocol", "callflow.observe"))
                assert inside or top in allowed, f"{path.name} imports {module}"
