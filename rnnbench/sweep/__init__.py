"""Sweep files, read and checked against every registry below (tasks, cells, optimizers).

* ``parse``: :class:`Sweep`, :func:`parse_sweep` (a parsed TOML document) and :func:`load_sweep`
"""

from rnnbench.sweep.parse import GRID_AXES, Sweep, load_sweep, parse_sweep

__all__ = ["GRID_AXES", "Sweep", "load_sweep", "parse_sweep"]
