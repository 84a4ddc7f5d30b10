"""``callflow graph FOLDER``: each flow's prompts and menus as a Mermaid (or Graphviz DOT)
diagram, read from the source: the ``say``/``play``/``gather``/``menu`` calls of the flow in
source order, a ``menu``'s choices as labelled edges (a sub-flow defined in the same module is
drawn after its edge), and the re-prompts (``no_input``/``invalid``) as notes."""

from __future__ import annotations

import ast
from pathlib import Path

from callflow.tools._source import Module, flow_files, keyword, label, module_value, parse_module

STEPS = ("say", "play", "gather", "menu", "record", "transfer", "hangup")


def graph_folder(folder: str | Path, *, dot: bool = False) -> str:
    """The diagram of every flow in ``folder``: Mermaid ``flowchart`` text, or DOT with
    ``dot=True``. Files that do not parse are left out.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    graph = _Graph()
    for file in flow_files(root):
        try:
            module = parse_module(file)
        except SyntaxError:
            continue
        for f in module.flows:
            start = graph.node(f"{f.path} ({file.stem}.{f.function.name})", "start")
            graph.steps(module, f.function, start, depth=0)
    return graph.dot() if dot else graph.mermaid()


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[tuple[str, str, str]] = []  # id, text, shape
        self.edges: list[tuple[str, str, str]] = []  # from, to, label

    def node(self, text: str, shape: str = "step") -> str:
        ident = f"n{len(self.nodes)}"
        self.nodes.append((ident, text, shape))
        return ident

    def steps(
        self,
        module: Module,
        function: ast.AsyncFunctionDef | ast.FunctionDef,
        after: str,
        depth: int,
    ) -> str:
        last = after
        for call in _step_calls(function):
            method = call.func.attr  # type: ignore[attr-defined]
            prompt = label(call.args[0]) if call.args else ""
            if method != "menu":
                here = self.node(f"{method} {prompt}".strip())
                self.edges.append((last, here, ""))
                last = here
                continue
            here = self.node(f"menu {prompt}", "choice")
            self.edges.append((last, here, ""))
            retry = [f"{k} {label(keyword(call, k))}" for k in ("no_input", "invalid")]
            retry = [r for r in retry if r.split()[1:]]
            if retry:
                note = self.node("re-prompt: " + ", ".join(retry), "note")
                self.edges.append((here, note, "no key / wrong key"))
            choices = call.args[1] if len(call.args) > 1 else keyword(call, "choices")
            if isinstance(choices, ast.Name):
                choices = module_value(module, choices.id)
            if isinstance(choices, ast.Dict):
                for key, value in zip(choices.keys, choices.values, strict=True):
                    target = self.node(label(value))
                    self.edges.append((here, target, label(key).strip("'\"")))
                    sub = module.functions.get(value.id) if isinstance(value, ast.Name) else None
                    if sub is not None and depth < 3:
                        self.steps(module, sub, target, depth + 1)
            last = here
        return last

    def mermaid(self) -> str:
        shapes = {
            "start": '(["{}"])',
            "step": '["{}"]',
            "choice": '{{"{}"}}',
            "note": '>"{}"]',
        }
        lines = ["flowchart TD"]
        for ident, text, shape in self.nodes:
            lines.append(f"  {ident}{shapes[shape].format(_escape(text))}")
        for a, b, text in self.edges:
            arrow = f' -- "{_escape(text)}" --> ' if text else " --> "
            lines.append(f"  {a}{arrow}{b}")
        return "\n".join(lines) + "\n"

    def dot(self) -> str:
        shapes = {"start": "oval", "step": "box", "choice": "diamond", "note": "note"}
        lines = ["digraph flows {", "  rankdir=TB;"]
        for ident, text, shape in self.nodes:
            lines.append(f'  {ident} [shape={shapes[shape]}, label="{_escape(text)}"];')
        for a, b, text in self.edges:
            extra = f' [label="{_escape(text)}"]' if text else ""
            lines.append(f"  {a} -> {b}{extra};")
        lines.append("}")
        return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


def _step_calls(function: ast.AST) -> list[ast.Call]:
    """The DSL calls directly in ``function`` (not in functions nested in it), in source
    order."""
    out = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.AsyncFunctionDef | ast.FunctionDef | ast.Lambda):
                continue
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr in STEPS
                and isinstance(child.func.value, ast.Name)
                and child.func.value.id == "call"
            ):
                out.append(child)
            visit(child)

    visit(function)
    return sorted(out, key=lambda c: (c.lineno, c.col_offset))
