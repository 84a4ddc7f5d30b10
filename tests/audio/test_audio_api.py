"""The public surface of callflow.audio: what is exported, documented, and imported."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import callflow.audio

PACKAGE = Path(callflow.audio.__file__).resolve().parent

PUBLIC = {
    "DTMF_FREQUENCIES",
    "MAX_B64",
    "Audio",
    "AudioError",
    "PromptFolder",
    "beep",
    "chunk_bytes",
    "chunk_payloads",
    "decode",
    "dtmf_tone",
    "encode",
    "encode_count",
    "frame_bytes",
    "l16_decode",
    "l16_encode",
    "read_wav",
    "resample",
    "silence",
    "ulaw_decode",
    "ulaw_encode",
    "write_wav",
}


def test_all_is_the_public_surface() -> None:
    assert set(callflow.audio.__all__) == PUBLIC
    assert len(callflow.audio.__all__) == len(PUBLIC)
    for name in PUBLIC:
        assert hasattr(callflow.audio, name), name


def test_public_callables_are_documented() -> None:
    for name in PUBLIC:
        obj = getattr(callflow.audio, name)
        if callable(obj):
            assert inspect.getdoc(obj), name
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if not attr.startswith("_") and callable(member):
                        assert inspect.getdoc(member), f"{name}.{attr}"


def test_private_modules_are_private() -> None:
    for path in PACKAGE.glob("*.py"):
        assert path.name == "__init__.py" or path.name.startswith("_"), path.name


def test_audio_imports_no_trio() -> None:
    allowed_roots = {"numpy", "soxr", "attrs", "callflow", "__future__"}
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                assert root != "trio", f"{path.name} imports {name}"
                if root == "callflow":
                    assert name.startswith(("callflow.audio", "callflow.protocol")), name
                else:
                    assert root in allowed_roots or root in _STDLIB, f"{path.name}: {name}"


_STDLIB = {"base64", "os", "pathlib", "struct", "wave", "collections", "typing"}
