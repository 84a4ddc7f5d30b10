"""Collect the :class:`Flow` objects defined in the modules of a folder (no global registry)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from pathlib import Path

from callflow._flow import LOADER_PACKAGE_PREFIX, Flow


class FlowLoadError(Exception):
    """The flows folder cannot be served: a module failed to import, two flows share a path,
    or there are no flows. The message names the file(s) and the reason."""


def load_flows(folder: str | Path) -> list[Flow]:
    """Import every ``*.py`` module directly in ``folder`` and return its flows, by path.

    A module's flows are the module-level attributes that are :class:`Flow` values. Files whose
    name starts with ``_`` or ``.`` are skipped. Modules are imported under a private package
    name, so a flow folder never shadows an installed package.

    Raises:
        FlowLoadError: the folder does not exist, a module raises on import (the traceback's
            last line and the file are named), two flows declare the same path, or no flow is
            found.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise FlowLoadError(f"{folder}: not a folder")
    by_path: dict[str, tuple[Flow, Path]] = {}
    package = f"{LOADER_PACKAGE_PREFIX}{hashlib.sha1(str(root).encode()).hexdigest()[:12]}"
    for file in sorted(root.glob("*.py")):
        if file.name.startswith(("_", ".")):
            continue
        module_name = f"{package}.{file.stem}"
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
            raise FlowLoadError(f"{file}: failed to import: {last}") from exc
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
        raise FlowLoadError(f"{folder}: no flows found (no module defines an @flow)")
    return [f for f, _ in sorted(by_path.values(), key=lambda item: item[0].path)]
