"""``callflow new DIR``: a new project with one flow, its prompts and a passing test.

The files are copied from ``template/`` beside this module; ``pyproject.toml`` and
``README.md`` get the project's name (the folder's name).
"""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "template"
"""The files of a new project, as they are written (``*.tmpl`` files get the name filled in)."""


class ScaffoldError(Exception):
    """The project cannot be written: the message names the folder and why."""


def project_name(folder: Path) -> str:
    """A distribution name for ``folder`` (its name, lower case, runs of other characters
    as ``-``)."""
    name = re.sub(r"[^a-z0-9]+", "-", folder.resolve().name.lower()).strip("-")
    return name or "callflow-project"


def new_project(folder: str | Path) -> list[Path]:
    """Write a new callflow project into ``folder`` (created; it may exist if empty).

    Returns the files written, relative to ``folder``.

    Raises:
        ScaffoldError: ``folder`` is a file, or a folder that is not empty.
    """
    root = Path(folder)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ScaffoldError(f"{folder}: exists and is not an empty folder")
    name = project_name(root)
    written = []
    for source in sorted(TEMPLATE.rglob("*")):
        if source.is_dir() or "__pycache__" in source.parts:
            continue
        relative = source.relative_to(TEMPLATE)
        if relative.suffix == ".tmpl":
            relative = relative.with_suffix("")
            data = source.read_text().replace("{{name}}", name).encode()
        else:
            data = source.read_bytes()
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(relative)
    return written
