"""Optional TensorBoard logging of a training run (``pip install "pyro-vim[tb]"``).

When the ``tensorboard`` package is installed, the trainer writes ``OUT/tb/`` event files:
scalars every step (the ELBO terms, learning rate, Gaussian-KL weight, gradient norm) and at
every evaluation the held-out metrics, a reconstruction strip (frames above their
reconstructions) and, for VIM, the module rollouts of one slot (one row per module, Fig. 2
right).  ``tensorboard --logdir OUT/tb`` shows them.  Without the package nothing is written and
nothing changes; ``PYRO_VIM_TENSORBOARD=0`` in the environment (or ``Trainer(tensorboard=False)``)
turns it off where it is installed.
"""
from __future__ import annotations

import importlib.util
import numbers
import os
from typing import Any, Dict, Optional

import torch

__all__ = ["available", "TensorBoardLogger"]

_SCALARS = ("loss", "recon", "kl_z", "kl_r", "kl_z0", "lr", "z_kl_weight", "grad_norm")


def available() -> bool:
    """True when the ``tensorboard`` package is importable."""
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoardLogger:
    """Writes a run's scalars and images; ``writer`` may be any object with SummaryWriter's
    ``add_scalar``/``add_image``/``flush``/``close`` (tests pass a recorder)."""

    def __init__(self, log_dir: str, writer=None):
        if writer is None:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(log_dir=log_dir)
        self.log_dir = log_dir
        self.writer = writer

    def scalars(self, step: int, record: Dict[str, Any]) -> None:
        phase = record.get("phase", "train")
        for key in _SCALARS:
            value = record.get(key)
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                self.writer.add_scalar(f"{phase}/{key}", float(value), step)
        for key, value in (record.get("eval") or {}).items():
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                self.writer.add_scalar(f"eval/{key}", float(value), step)
        error = (record.get("validation") or {}).get("error")
        if isinstance(error, numbers.Real) and not isinstance(error, bool):
            self.writer.add_scalar("eval/validation_error", float(error), step)

    @torch.no_grad()
    def images(self, step: int, model, frames: torch.Tensor) -> None:
        """``frames`` (T, 3, S, S): one held-out video; its reconstruction and module rollouts."""
        out = model.infer(frames.unsqueeze(0))
        strip = torch.cat([torch.cat(list(frames.cpu()), -1),
                           torch.cat(list(out["recon"][0].clamp(0, 1).cpu()), -1)], -2)
        self.writer.add_image("eval/reconstruction", strip, step)
        from .model import VIM
        if isinstance(model, VIM) and model.config.num_slots > 1:
            from .infer import module_rollouts
            roll = module_rollouts(model, frames[0], slot=1, num_steps=4)["frames"]
            grid = torch.cat([torch.cat(list(row.clamp(0, 1).cpu()), -1) for row in roll], -2)
            self.writer.add_image("eval/module_rollouts", grid, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def make_logger(out_dir: Optional[str], enabled: Optional[bool]) -> Optional[TensorBoardLogger]:
    """The trainer's logger: ``enabled=None`` means "when tensorboard is installed"."""
    if out_dir is None or enabled is False:
        return None
    if enabled is None and os.environ.get("PYRO_VIM_TENSORBOARD", "").lower() in (
            "0", "false", "no", "off"):
        return None
    if not available():
        if enabled:
            raise ValueError("tensorboard=True needs the tensorboard package: "
                             "pip install 'pyro-vim[tb]'")
        return None
    return TensorBoardLogger(os.path.join(out_dir, "tb"))
