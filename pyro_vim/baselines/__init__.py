"""Baselines of the VIM paper's comparisons, registered as model families on import."""
from .gswm import GSWM
from .med import med

__all__ = ["GSWM", "med"]
