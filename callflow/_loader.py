"""Collect the :class:`Flow` objects defined in the modules of a folder (no global registry)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
import types
from collections.abc import Iterable
from pathlib import Path

from callflow._flow import LOADER_PACKAGE_PREFIX, Flow
from callflow.voice import Prompts, TtsUnavailable, default_tts


class FlowLoadError(Exception):
    """The flows folder cannot be served: a module failed to import, two flows share a path,
    or there are no flows. The message names the file(s) and the reason."""


def package_name(folder: str | Path) -> str:
    """The private package name the modules of ``folder`` are imported under."""
    root = Path(folder).resolve()
    return f"{LOADER_PACKAGE_PREFIX}{hashlib.sha1(str(root).encode()).hexdigest()[:12]}"


def load_flows(folder: str | Path) -> list[Flow]:
    """Import every ``*.py`` module directly in ``folder`` and return its flows, by path.

    A module's flows are the module-level attributes that are :class:`Flow` values. Files whose
    name starts with ``_`` or ``.`` are skipped, and subfolders are not scanned for flows.

    The folder is imported as a package under a private name, so a flow folder never shadows an
    installed package, and flows import their helpers with relative imports: ``from .common
    import prices`` for ``common.py`` beside the flow files, ``from .lib.db import q`` for a
    subfolder ``lib/``. The same line works when tests import the folder as ``flows``
    (``from flows.support import support``). Each call imports the folder afresh (new module
    objects, so an edited file is seen); flows returned by an earlier call keep their code.

    Raises:
        FlowLoadError: the folder does not exist, a module raises on import (the traceback's
            last line and the file are named), two flows declare the same path, or no flow is
            found (the message lists the files looked at).
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise FlowLoadError(f"{folder}: not a folder")
    package = package_name(root)
    _forget(package)
    parent = types.ModuleType(package, f"the flow folder {root}")
    parent.__path__ = [str(root)]
    parent.__package__ = package
    sys.modules[package] = parent
    by_path: dict[str, tuple[Flow, Path]] = {}
    looked_at: list[str] = []
    for file in sorted(root.glob("*.py")):
        if file.name.startswith(("_", ".")):
            continue
        looked_at.append(file.name)
        module_name = f"{package}.{file.stem}"
        module = sys.modules.get(module_name)  # already imported by a sibling's relative import
        if module is None:
            module = _import(module_name, file, root)
        _check_voice(file, vars(module).values())
        for value in vars(module).values():
            if not isinstance(value, Flow):
                continue
            if value.path in by_path and by_path[value.path][0] is not value:
                other = by_path[value.path][1]
                raise FlowLoadError(
                    f"two flows on path {value.path!r}: {value.name} ({file.name}) and "
                    f"{by_path[value.path][0].name} ({other.name})"
                )
            by_path[value.path] = (value, file)
    if not by_path:
        seen = ", ".join(looked_at) if looked_at else "no *.py files"
        raise FlowLoadError(
            f"{folder}: no flows found: looked at {seen} (module-level @flow functions in "
            "*.py files directly in the folder; names starting with _ and subfolders are "
            "not scanned)"
        )
    return [f for f, _ in sorted(by_path.values(), key=lambda item: item[0].path)]


def _forget(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def _import(module_name: str, file: Path, root: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:  # pragma: no cover - only for odd files
        raise FlowLoadError(f"{file}: cannot be imported as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        last = traceback.format_exception_only(exc)[-1].strip()
        hint = ""
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing and "." not in missing and (root / f"{missing}.py").exists():
            hint = f" (a helper beside the flows is imported as: from .{missing} import …)"
        raise FlowLoadError(f"{file}: failed to import: {last}{hint}") from exc
    return module


def module_prompts(flow: Flow) -> list[Prompts]:
    """The module-level :class:`~callflow.voice.Prompts` of the module that defines ``flow``
    (its fixed text prompts), in definition order."""
    module = sys.modules.get(flow.handler.__module__)
    if module is None:
        return []
    return [value for value in vars(module).values() if isinstance(value, Prompts)]


def _check_voice(file: Path, values: Iterable[object]) -> None:
    """A module that declares text prompts needs its flows' engine now, not at the first call.

    Raises:
        FlowLoadError: naming the file, the flow and what to install.
    """
    items = list(values)
    if not any(isinstance(v, Prompts) for v in items):
        return
    for value in items:
        if isinstance(value, Flow):
            try:
                (value.tts or default_tts()).check()
            except TtsUnavailable as exc:
                raise FlowLoadError(
                    f"{file}: flow {value.path} declares text prompts, but {exc}"
                ) from exc
