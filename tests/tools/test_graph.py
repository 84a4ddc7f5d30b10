"""``callflow graph``: each flow's menus drawn from the source, in Mermaid and DOT."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from callflow.cli import main
from callflow.tools import graph_folder
from tests.support.debian import require_binary

ROOT = Path(__file__).resolve().parents[2]


def test_mermaid_has_each_flow_and_its_menu_keys() -> None:
    text = graph_folder(ROOT / "flows")
    assert text.startswith("flowchart TD\n")
    for start in ('"/support (support.support)"', '"/bank (bank.bank)"', '"/echo (echo.echo)"'):
        assert start in text
    assert '{"menu PROMPTS.menu"}' in text
    for key in ('-- "1" -->', '-- "2" -->', '-- "9" -->'):
        assert key in text
    assert '["gather BANK.pin"]' in text  # the sub-flow behind key 1 of /bank


def test_dot_renders_with_graphviz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(ROOT / "flows"), "--dot"]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith("digraph flows {")
    dot_program = require_binary("dot", package="graphviz")
    svg = subprocess.run(
        [dot_program, "-Tsvg"],
        input=dot,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "<svg" in svg
    assert "menu PROMPTS.menu" in svg
