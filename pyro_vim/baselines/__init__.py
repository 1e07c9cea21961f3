"""Baselines of the VIM paper's comparisons, registered as model families on import.

* RIM and SCOFF (``model="rim"`` / ``"scoff"``): deterministic next-frame predictors of Table 1,
  with the Table 1 reconstruction metric (:mod:`pyro_vim.baselines.table1`);
* G-SWM (``model="gswm"``): the object-centric world model of Fig. 4, with G-SWM's MED metric
  (:mod:`pyro_vim.baselines.med`).

All follow the model protocol of :mod:`pyro_vim.models`.
"""
from .gswm import GSWM
from .med import med
from .rim import RIM
from .scoff import DEFAULTS, SCOFF, ObjectFiles

__all__ = ["RIM", "SCOFF", "ObjectFiles", "DEFAULTS", "GSWM", "med"]
