"""What the tools read from a flow module's source: its prompt folders and its flows."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import attrs

from callflow.protocol import Format


@attrs.frozen
class FlowDef:
    """A module-level ``@flow(PATH, format=Format.X)`` function."""

    path: str
    format: Format | None
    function: ast.AsyncFunctionDef
    line: int


@attrs.frozen
class Module:
    """One parsed flow module."""

    file: Path
    tree: ast.Module
    folders: dict[str, Path]  # name of an Audio.folder(__file__, "sub") value -> the folder
    flows: list[FlowDef]
    functions: dict[str, ast.AsyncFunctionDef | ast.FunctionDef]


def flow_files(folder: Path) -> list[Path]:
    """The modules ``callflow serve`` imports: ``*.py`` directly in ``folder``, not ``_*``."""
    return [f for f in sorted(folder.glob("*.py")) if not f.name.startswith(("_", "."))]


def parse_module(file: Path) -> Module:
    """Parse ``file``. Raises ``SyntaxError`` for a file Python cannot parse."""
    tree = ast.parse(file.read_text(), filename=str(file))
    folders: dict[str, Path] = {}
    flows: list[FlowDef] = []
    functions: dict[str, ast.AsyncFunctionDef | ast.FunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Name) and _is_audio_folder(value):
                assert isinstance(value, ast.Call)
                sub = value.args[1] if len(value.args) > 1 else None
                subdir = sub.value if isinstance(sub, ast.Constant) else ""
                folders[target.id] = file.parent / str(subdir)
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
            functions[node.name] = node
            for decorator in node.decorator_list:
                found = _flow_decorator(decorator)
                if found is not None and isinstance(node, ast.AsyncFunctionDef):
                    path, fmt = found
                    flows.append(FlowDef(path, fmt, node, decorator.lineno))
    return Module(file, tree, folders, flows, functions)


def _is_audio_folder(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "folder"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "Audio"
        and bool(node.args)
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == "__file__"
    )


def _flow_decorator(node: ast.expr) -> tuple[str, Format | None] | None:
    if not isinstance(node, ast.Call):
        return None
    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
    if name != "flow" or not node.args or not isinstance(node.args[0], ast.Constant):
        return None
    fmt = None
    for keyword in node.keywords:
        if keyword.arg == "format" and isinstance(keyword.value, ast.Attribute):
            fmt = Format.__members__.get(keyword.value.attr)
    return str(node.args[0].value), fmt


def calls(node: ast.AST, *methods: str) -> Iterator[ast.Call]:
    """Every ``<something>.<method>(…)`` call under ``node`` for the given method names."""
    for child in ast.walk(node):
        if (
            isinstance(child, ast.Call)
            and isinstance(child.func, ast.Attribute)
            and child.func.attr in methods
        ):
            yield child


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    """The value of keyword argument ``name``, or None."""
    return next((k.value for k in call.keywords if k.arg == name), None)


def label(node: ast.expr | None) -> str:
    """Source text for a node, short."""
    if node is None:
        return ""
    text = ast.unparse(node)
    return text if len(text) <= 40 else text[:37] + "..."


def module_value(module: Module, name: str) -> ast.expr | None:
    """The value of the first module-level ``name = …`` assignment, or None."""
    for node in module.tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == name
        ):
            return node.value
    return None
