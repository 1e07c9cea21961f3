"""Checkpoints: written atomically, loaded without unpickling arbitrary objects.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, serialised with
``torch.save`` in memory and written with :func:`pyro_vim.files.atomic_write` (a temporary file
in the target folder moved into place with ``os.replace``), so a crash (even ``kill -9``) at any
moment leaves the previous checkpoint intact.  Loading uses ``torch.load(weights_only=True)``,
which refuses to run code hidden in a pickle; every other failure (missing, truncated or foreign
file, malformed entries) is a clear ``FileNotFoundError``, ``TypeError`` or ``ValueError``.

Entries: ``format`` (:data:`FORMAT`), ``config`` (``VIMConfig.to_dict()``), ``model`` (the
state dict), ``step``, ``rng`` (see :func:`rng_state`), optionally ``optimizer`` and any extras.
"""
from __future__ import annotations

import io
import os
import pickle
import random
import warnings
from typing import Any, Dict, Mapping, Union

import numpy as np
import torch

from .config import VIMConfig
from .files import atomic_write
from .rundir import is_no_space, no_space_message

FORMAT = "pyro-vim-checkpoint-v1"

PathLike = Union[str, "os.PathLike[str]"]


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. the disk is full); the previous one is intact."""


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
    """Restore the RNGs saved by :func:`rng_state` (tensors may live on any device)."""
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].cpu().numpy().astype(np.uint32),
                         np_state["pos"], np_state["has_gauss"], np_state["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _check_path(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"checkpoint path must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def save_checkpoint(path: PathLike, model, optimizer=None, step: int = 0, **extra) -> None:
    """Atomically write ``model`` (its config and state), the optimiser, the RNGs and ``extra``.

    The payload goes to a temporary file next to ``path`` (flushed and fsync'ed) that is then
    renamed over ``path``: at every moment ``path`` is either the previous complete checkpoint
    or the new complete one.  On any failure the temporary file is removed and ``path`` is
    untouched.
    """
    path = _check_path(path)
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
    # serialise in memory first: a full disk then shows as the OSError of a plain write (torch's
    # own writer reports it as "unexpected pos ..."), and nothing half-written is left behind
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        os.makedirs(folder, exist_ok=True)
        atomic_write(path, buffer.getbuffer())
    except OSError as e:
        if is_no_space(e):
            raise CheckpointWriteError(e.errno, no_space_message(
                f"the checkpoint {path!r}", folder,
                "free some space, then resume (examples/train_random_walk.py --out DIR --resume, "
                "or run the same pyro_vim.run command again)")) from e
        raise


def _refused_global(message: str) -> str:
    """The useful line of torch's weights-only refusal (which global it would not load)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for ln in lines:
        if "global" in ln.lower() or "unsupported" in ln.lower():
            return ln[:200]
    return lines[0][:200] if lines else "unsupported pickle content"


def load_checkpoint(path: PathLike, map_location="cpu") -> Dict[str, Any]:
    """Load and check a checkpoint; clear errors for missing, truncated or foreign files.

    Raises:
        TypeError: ``path`` is not a str / os.PathLike.
        FileNotFoundError: there is no file at ``path``.
        ValueError: the file is truncated, is not a pyro-vim checkpoint, holds pickled
            objects other than tensors and plain containers (nothing from it is executed), or
            has malformed entries.
    """
    path = _check_path(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path!r} (expected a file written by "
                                "pyro_vim: VIM.save or the trainer's checkpoint.pt)")
    try:
        with warnings.catch_warnings():
            # e.g. "Detected pickle protocol 4": irrelevant, the load is refused or succeeds
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{path!r} is not a pyro-vim checkpoint: it holds pickled Python objects that a safe "
            f"(weights-only) load refuses ({_refused_global(str(e))}); nothing from it was "
            "executed") from None
    except Exception as e:  # torch raises RuntimeError/EOFError/KeyError/... on garbage
        detail = str(e).splitlines()[0][:200] if str(e).strip() else "unexpected end of file"
        raise ValueError(f"{path!r} is truncated or not a pyro-vim checkpoint "
                         f"({type(e).__name__}: {detail})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a pyro-vim checkpoint (expected a dict with "
                         f"format={FORMAT!r})")
    check_entries(ckpt, path)
    return ckpt


def check_entries(ckpt: Mapping[str, Any], path: str = "<checkpoint>") -> None:
    """Raise ValueError unless ``ckpt`` has well-formed ``config``/``model``/``step``/``rng``."""
    for key in ("config", "model", "step"):
        if key not in ckpt:
            raise ValueError(f"checkpoint {path!r} lacks the entry {key!r}")
    try:
        VIMConfig.from_saved(ckpt["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path!r} holds an invalid config: {e}") from None
    model = ckpt["model"]
    if not isinstance(model, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()):
        raise ValueError(f"checkpoint {path!r}: 'model' must be a state dict (str -> tensor)")
    step = ckpt["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"checkpoint {path!r}: 'step' must be a non-negative int, got {step!r}")
    if "optimizer" in ckpt and not isinstance(ckpt["optimizer"], dict):
        raise ValueError(f"checkpoint {path!r}: 'optimizer' must be an optimiser state dict")
    if "rng" in ckpt:
        rng = ckpt["rng"]
        ok = (isinstance(rng, dict) and isinstance(rng.get("torch"), torch.Tensor)
              and rng["torch"].dtype == torch.uint8 and isinstance(rng.get("python"), list)
              and len(rng["python"]) == 3 and isinstance(rng.get("numpy"), dict))
        if not ok:
            raise ValueError(f"checkpoint {path!r}: malformed RNG state 'rng'")


def config_differences(saved: VIMConfig, current: VIMConfig) -> Dict[str, Any]:
    """``{field: (checkpoint's value, current value)}`` for every field that differs."""
    now = current.flat_dict()
    return {k: (v, now.get(k)) for k, v in saved.flat_dict().items() if now.get(k) != v}


def check_config(ckpt: Mapping[str, Any], config: VIMConfig, what: str = "this model",
                 hint: str = "use the same config, or VIM.load to build the model from the "
                             "checkpoint") -> None:
    """Raise ValueError naming each field where the checkpoint's config differs from ``config``."""
    if not isinstance(config, VIMConfig):
        raise TypeError(f"expected a VIMConfig, got {type(config).__name__}")
    saved = VIMConfig.from_saved(ckpt["config"])
    diff = config_differences(saved, config)
    if diff:
        fields = ", ".join(f"{k}: {a!r} in the checkpoint vs {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"the checkpoint's config does not match {what}'s ({fields}); {hint}")


def load_model_state(model, ckpt: Union[PathLike, Mapping[str, Any]]) -> Dict[str, Any]:
    """Load a checkpoint (a path or a dict from :func:`load_checkpoint`) into an existing VIM.

    Raises ValueError when the checkpoint's config differs from ``model.config`` (naming the
    fields) or its state dict does not fit the model (e.g. another prior or guide); ``model``
    is unchanged then.  Returns the checkpoint dict.
    """
    if not isinstance(ckpt, Mapping):
        ckpt = load_checkpoint(ckpt)
    check_config(ckpt, model.config, "this model")
    state = model.state_dict()
    theirs = ckpt["model"]
    missing = sorted(set(state) - set(theirs))
    unexpected = sorted(set(theirs) - set(state))
    shapes = sorted(k for k in set(state) & set(theirs) if state[k].shape != theirs[k].shape)
    if missing or unexpected or shapes:
        parts = [f"{name}: {keys[:5]}{' ...' if len(keys) > 5 else ''}"
                 for name, keys in (("missing", missing), ("unexpected", unexpected),
                                    ("shape mismatch", shapes)) if keys]
        raise ValueError("the checkpoint's model state does not fit this model (another prior, "
                         f"guide or version?): {'; '.join(parts)}")
    model.load_state_dict(theirs)
    return ckpt
