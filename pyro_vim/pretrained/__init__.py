"""Checkpoints shipped with the package, loaded by name.

    import pyro_vim
    model = pyro_vim.pretrained("random_walk")      # the model, eval mode, model.config

This module is callable: ``pyro_vim.pretrained(name)`` is :func:`load`.  One concept a module:

* :mod:`~pyro_vim.pretrained.manifest` -- ``manifest.json``: each name's file, sha256, run,
  commit, training command and metrics; the size limit;
* :mod:`~pyro_vim.pretrained.loading` -- :func:`load` and :func:`names`;
* :mod:`~pyro_vim.pretrained.shipping` -- :func:`ship`, a complete run's checkpoint copied in;
* :mod:`~pyro_vim.pretrained.cli` -- ``python -m pyro_vim.pretrained list`` and
  ``python -m pyro_vim.pretrained ship RUN_DIR NAME``.
"""
import sys
import types

from .loading import load, names
from .manifest import MAX_TOTAL_BYTES, read_manifest
from .shipping import ship

__all__ = ["load", "names", "ship", "read_manifest", "MAX_TOTAL_BYTES"]


class _CallableModule(types.ModuleType):
    """This module, callable: ``pyro_vim.pretrained(name, map_location="cpu")``."""

    def __call__(self, name: str, map_location="cpu"):
        return load(name, map_location=map_location)


sys.modules[__name__].__class__ = _CallableModule
