"""Checkpoints: written atomically, loaded without unpickling arbitrary objects.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, saved with
``torch.save`` to a temporary file in the target folder and moved into place with ``os.replace``,
so a crash at any moment leaves the previous checkpoint intact.  Loading uses
``torch.load(weights_only=True)``, which refuses to run code hidden in a pickle.
"""
from __future__ import annotations

import os
import pickle
import random
import tempfile
from typing import Any, Dict

import numpy as np
import torch

FORMAT = "pyro-vim-checkpoint-v1"


def rng_state() -> Dict[str, Any]:
    """Every RNG the training loop draws from, as weights-only-loadable values."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached": float(np_state[4])},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32),
                         np_state["pos"], np_state["has_gauss"], np_state["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str, model, optimizer=None, step: int = 0, **extra) -> None:
    """Atomically write ``model`` (its config and state), the optimiser, the RNGs and ``extra``."""
    payload = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "model": model.state_dict(),
        "step": int(step),
        "rng": rng_state(),
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    payload.update(extra)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str, map_location="cpu") -> Dict[str, Any]:
    """Load and check a checkpoint; clear errors for missing, truncated or foreign files."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"checkpoint path must be a str or os.PathLike, got {type(path).__name__}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path!r}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path!r} is not a pyro-vim checkpoint (it holds objects that a "
                         f"weights-only load refuses: {str(e).splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise ValueError(f"{path!r} is truncated or not a pyro-vim checkpoint: {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a pyro-vim checkpoint (expected format {FORMAT!r})")
    for key in ("config", "model", "step"):
        if key not in ckpt:
            raise ValueError(f"checkpoint {path!r} lacks the entry {key!r}")
    return ckpt
