"""The model protocol that the trainer, evaluation and the runner use, and the model factory.

A model family is a class registered with :func:`pyro_vim.registry.register_model` (VIM is
``"vim"``); ``VIMConfig.model`` names it.  The trainer needs nothing else from it than:

* ``config`` — the :class:`~pyro_vim.config.VIMConfig` it was built from (names included);
* ``programs(step)`` — the Pyro ``(model, guide)`` pair to train at global step ``step``; the
  trainer minimises ``Trace_ELBO`` over it (a deterministic baseline is a model with an observed
  ``x`` and an empty guide);
* ``infer(frames)`` — a dict of tensors for evaluation: ``positions`` (N, T, K, 2) in pixels,
  ``masks`` (N, T, K, H, W), ``recon`` (N, T, 3, H, W) and, for modular models, ``selections``
  (N, T-1, K) and ``slots``;
* ``save(path, **extra)`` and the classmethod ``load(path, map_location)``;
* ``from_config(config)`` — the classmethod that builds it;
* optionally ``perception_parameters()`` (what ``freeze_perception`` keeps fixed),
  ``evaluation_metrics(batch)`` (the trainer's periodic held-out metrics; default: rule
  identification, :func:`pyro_vim.evaluate.identification`) and ``summary_metrics(batch)`` (the
  held-out numbers :mod:`pyro_vim.run` records in ``metrics.json``; default:
  :func:`pyro_vim.evaluate.summary_metrics`, which needs slots and module selections).

:func:`build_model` and :func:`load_model` pick the class by the config's ``model`` name.
"""
from __future__ import annotations

from typing import Any, Dict, Protocol, Tuple, runtime_checkable

from . import registry
from .config import VIMConfig

__all__ = ["ModelProtocol", "build_model", "load_model", "check_model"]


@runtime_checkable
class ModelProtocol(Protocol):
    config: VIMConfig

    def programs(self, step: int) -> Tuple[Any, Any]: ...

    def infer(self, frames) -> Dict[str, Any]: ...

    def save(self, path: str, **extra) -> None: ...


def check_model(model) -> None:
    """TypeError naming what ``model`` lacks of :class:`ModelProtocol`."""
    missing = [name for name in ("config", "programs", "infer", "save", "parameters")
               if not hasattr(model, name)]
    if missing:
        raise TypeError(f"{type(model).__name__} does not follow pyro_vim's model protocol: it "
                        f"lacks {', '.join(missing)} (see pyro_vim.models)")
    if not isinstance(model.config, VIMConfig):
        raise TypeError(f"{type(model).__name__}.config must be a VIMConfig")


def build_model(config: VIMConfig, prior=None, guide=None):
    """The model ``config.model`` names, built from ``config`` (``prior``/``guide``: instances
    that replace the named parts, for the families that have them)."""
    if not isinstance(config, VIMConfig):
        raise TypeError(f"build_model expects a VIMConfig, got {type(config).__name__}")
    cls = registry.lookup("model", config.validate().model)
    parts = {k: v for k, v in (("prior", prior), ("guide", guide)) if v is not None}
    model = cls(config, **parts) if parts else cls.from_config(config)
    check_model(model)
    return model


def load_model(path: str, map_location="cpu", **parts):
    """Restore exactly what a checkpoint holds: the family its config names, with the config's
    parts and the saved state."""
    from .checkpoint import load_checkpoint
    ckpt = load_checkpoint(path, map_location="cpu")
    cls = registry.lookup("model", VIMConfig.from_saved(ckpt["config"]).model)
    return cls.load(path, map_location=map_location, **parts)

