"""``callflow check FOLDER``: find mistakes in a folder of flows by reading their source.

Each :class:`Finding` names the file and line. What is checked:

* ``missing-prompt``: ``PROMPTS.name`` where ``PROMPTS = Audio.folder(__file__, SUB)`` has no
  ``name.wav`` (or the folder is missing);
* ``text-prompt``: a text prompt (a string or ``Text(…)`` to ``say``/``play``/``gather``/
  ``menu``) that no engine can render: SSML that is not well-formed, or no text-to-speech
  engine on this machine;
* ``no-input-path`` / ``invalid-path``: a ``gather`` or ``menu`` with no ``no_input=`` /
  ``invalid=`` prompt whose function never handles ``NoInput`` / ``Invalid`` (nor checks
  for ``Digits``): the caller would hear nothing;
* ``menu-key``: a ``menu`` choice that is not one DTMF key (``0-9 * # A-D``), or given twice;
* ``duplicate-path``: two flows on one path;
* ``lossy-prompt``: a prompt WAV that the flow's format cannot carry without loss (a higher
  sample rate, more channels, more than 16 bits), saying which;
* ``sensitive``: a ``gather`` for what its names say is a PIN, card number, CVV, SSN or
  password, without ``sensitive=True`` (the digits would be logged).
"""

from __future__ import annotations

import ast
import re
import struct
from pathlib import Path

import attrs

from callflow.protocol import Format
from callflow.tools._source import (
    Module,
    calls,
    flow_files,
    keyword,
    label,
    module_value,
    parse_module,
)

DTMF_KEYS = frozenset("0123456789*#ABCDabcd")
SENSITIVE_WORDS = re.compile(r"pin|card|cvv|cvc|ssn|passw|passcode|secret", re.IGNORECASE)
PROMPT_METHODS = ("say", "play", "gather", "menu")
FOLDER_MEMBERS = frozenset({"path", "names", "load_all"})


@attrs.frozen(order=True)
class Finding:
    """One problem: ``file:line: [code] message``."""

    file: Path
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: [{self.code}] {self.message}"


def check_folder(folder: str | Path) -> list[Finding]:
    """Every finding in the flow modules of ``folder``, by file and line.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    findings: list[Finding] = []
    paths: dict[str, tuple[Path, int]] = {}
    text_prompts: list[tuple[Path, int, str]] = []
    for file in flow_files(root):
        try:
            module = parse_module(file)
        except SyntaxError as exc:
            findings.append(Finding(file, exc.lineno or 1, "syntax", str(exc.msg)))
            continue
        findings += _prompts(module)
        findings += _gathers(module)
        findings += _menus(module)
        findings += _lossy(module)
        text_prompts += _texts(module)
        for f in module.flows:
            if f.path in paths:
                other, line = paths[f.path]
                findings.append(
                    Finding(file, f.line, "duplicate-path", f"{f.path} is also {other}:{line}")
                )
            else:
                paths[f.path] = (file, f.line)
    findings += _render(text_prompts)
    return sorted(findings)


def _prompts(module: Module) -> list[Finding]:
    out = []
    for name, folder in module.folders.items():
        if not folder.is_dir():
            line = _assign_line(module, name)
            out.append(Finding(module.file, line, "missing-prompt", f"no folder {folder}"))
            continue
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == name
                and node.attr not in FOLDER_MEMBERS
                and not (folder / f"{node.attr}.wav").is_file()
            ):
                there = ", ".join(sorted(p.stem for p in folder.glob("*.wav"))) or "none"
                out.append(
                    Finding(
                        module.file,
                        node.lineno,
                        "missing-prompt",
                        f"{name}.{node.attr}: no {folder / node.attr}.wav (there: {there})",
                    )
                )
    return out


def _assign_line(module: Module, name: str) -> int:
    for node in module.tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return node.lineno
    return 1


def _functions(module: Module) -> list[ast.AsyncFunctionDef | ast.FunctionDef]:
    return [
        n for n in ast.walk(module.tree) if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)
    ]


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def _gathers(module: Module) -> list[Finding]:
    out = []
    for function, call in _calls_in_functions(module.tree, ("gather", "menu")):
        names = _names(function)
        method = call.func.attr  # type: ignore[attr-defined]
        handles_digits = method == "gather" and "Digits" in names
        for kw, result, code in (
            ("no_input", "NoInput", "no-input-path"),
            ("invalid", "Invalid", "invalid-path"),
        ):
            if keyword(call, kw) is None and result not in names and not handles_digits:
                out.append(
                    Finding(
                        module.file,
                        call.lineno,
                        code,
                        f"{method}() has no path for {result}: pass {kw}= (a prompt) "
                        f"or handle {result}()",
                    )
                )
        if method == "gather":
            out += _sensitive(module, function, call)
    return out


def _calls_in_functions(
    tree: ast.AST, methods: tuple[str, ...]
) -> list[tuple[ast.AsyncFunctionDef | ast.FunctionDef, ast.Call]]:
    """Each ``x.<method>(…)`` call with the innermost function that holds it."""
    out = []

    def visit(node: ast.AST, function: ast.AsyncFunctionDef | ast.FunctionDef | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.AsyncFunctionDef | ast.FunctionDef) else None
            if (
                function is not None
                and isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr in methods
            ):
                out.append((function, child))
            visit(child, inner or function)

    visit(tree, None)
    return out


def _sensitive(
    module: Module, function: ast.AsyncFunctionDef | ast.FunctionDef, call: ast.Call
) -> list[Finding]:
    value = keyword(call, "sensitive")
    if isinstance(value, ast.Constant) and value.value is True:
        return []
    if value is not None and not isinstance(value, ast.Constant):
        return []  # decided at run time
    words = [function.name, label(call.args[0] if call.args else keyword(call, "prompt"))]
    for node in ast.walk(function):
        if isinstance(node, ast.Assign | ast.AnnAssign) and any(n is call for n in ast.walk(node)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            words += [ast.unparse(t) for t in targets]
    hit = next((w for w in words if SENSITIVE_WORDS.search(w)), None)
    if hit is None:
        return []
    return [
        Finding(
            module.file,
            call.lineno,
            "sensitive",
            f"gather() for {hit!r} looks like a secret: pass sensitive=True so the digits "
            "stay out of logs",
        )
    ]


def _menus(module: Module) -> list[Finding]:
    out = []
    for call in calls(module.tree, "menu"):
        choices = call.args[1] if len(call.args) > 1 else keyword(call, "choices")
        if isinstance(choices, ast.Name):
            choices = module_value(module, choices.id)
        if not isinstance(choices, ast.Dict):
            continue
        seen: set[str] = set()
        for key in choices.keys:
            if not isinstance(key, ast.Constant) or not isinstance(key.value, str):
                continue
            text = key.value
            line = key.lineno if key.lineno else call.lineno
            if len(text) != 1 or text not in DTMF_KEYS:
                out.append(
                    Finding(
                        module.file,
                        line,
                        "menu-key",
                        f"menu choice {text!r} is not reachable by one key (0-9 * # A-D)",
                    )
                )
            elif text.upper() in seen:
                out.append(
                    Finding(module.file, line, "menu-key", f"menu choice {text!r} given twice")
                )
            seen.add(text.upper())
    return out


def wav_header(path: Path) -> tuple[int, int, int, int] | None:
    """``(format tag, channels, sample rate Hz, bits per sample)`` of a RIFF/WAVE file, or
    None when it is not one."""
    data = path.read_bytes()[:4096]
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    at = 12
    while at + 8 <= len(data):
        chunk, size = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])[0]
        if chunk == b"fmt " and size >= 16:
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[at + 8 : at + 24])
            if tag == 0xFFFE and size >= 40:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's tag
                tag = struct.unpack("<H", data[at + 32 : at + 34])[0]
            return tag, channels, rate, bits
        at += 8 + size + (size & 1)
    return None


def _lossy(module: Module) -> list[Finding]:
    formats = {f.format for f in module.flows if f.format is not None}
    out = []
    for node in ast.walk(module.tree):
        if not (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in module.folders
        ):
            continue
        wav = module.folders[node.value.id] / f"{node.attr}.wav"
        header = wav_header(wav) if wav.is_file() else None
        if header is None:
            continue
        for fmt in sorted(formats, key=lambda f: f.content_type):
            losses = _losses(header, fmt)
            if losses:
                out.append(
                    Finding(
                        module.file,
                        node.lineno,
                        "lossy-prompt",
                        f"{wav} in {fmt.content_type}: {'; '.join(losses)}",
                    )
                )
    return _dedupe(out)


def _losses(header: tuple[int, int, int, int], fmt: Format) -> list[str]:
    tag, channels, rate, bits = header
    losses = []
    if rate > fmt.sample_rate:
        losses.append(
            f"resampled from {rate} Hz to {fmt.sample_rate} Hz, losing what is above "
            f"{fmt.sample_rate // 2} Hz"
        )
    if channels > 1:
        losses.append(f"{channels} channels mixed down to mono")
    if tag == 3 or bits > 16:
        kind = "float" if tag == 3 else f"{bits}-bit"
        losses.append(f"{kind} samples cut to 16 bits")
    return losses


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    out = []
    for f in findings:
        if (f.code, f.message) not in seen:
            seen.add((f.code, f.message))
            out.append(f)
    return out


def _texts(module: Module) -> list[tuple[Path, int, str]]:
    out = []
    for call in calls(module.tree, *PROMPT_METHODS):
        first = call.args[0] if call.args else None
        if isinstance(first, ast.Call) and getattr(first.func, "id", "") == "Text":
            first = first.args[0] if first.args else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            out.append((module.file, call.lineno, first.value))
    return out


def _render(texts: list[tuple[Path, int, str]]) -> list[Finding]:
    if not texts:
        return []
    from callflow.voice import Text, TtsUnavailable, plain_segments, resolve_tts

    out = []
    try:
        resolve_tts("auto")
        engine_error = ""
    except TtsUnavailable as exc:
        engine_error = str(exc)
    for file, line, text in texts:
        try:
            plain_segments(Text(text))
        except ValueError as exc:
            out.append(Finding(file, line, "text-prompt", f"text prompt cannot be read: {exc}"))
            continue
        if engine_error:
            out.append(
                Finding(file, line, "text-prompt", f"no engine can render it: {engine_error}")
            )
    return out
