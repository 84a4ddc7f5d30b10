"""Tools that read a folder of flows without running it: :func:`check_folder` (a linter)
and :func:`graph_folder` (each flow's menus as a Mermaid or Graphviz diagram). Both read the
source with :mod:`ast`; neither imports the flows."""

from callflow.tools._check import Finding, check_folder
from callflow.tools._graph import graph_folder

__all__ = ["Finding", "check_folder", "graph_folder"]
