"""Deterministic next-frame baselines of Table 1: RIM and SCOFF (``VIMConfig(model="rim")``,
``VIMConfig(model="scoff")``), and the Table 1 reconstruction metric
(:mod:`pyro_vim.baselines.table1`).

Both follow the model protocol of :mod:`pyro_vim.models` (an observed ``x``, an empty guide) and
register themselves when :mod:`pyro_vim` is imported.
"""
from .rim import RIM
from .scoff import DEFAULTS, SCOFF, ObjectFiles

__all__ = ["RIM", "SCOFF", "ObjectFiles", "DEFAULTS"]
