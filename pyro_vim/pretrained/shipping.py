"""Shipping a run's checkpoint with the package (:func:`ship`).

``ship("runs/vim2_compositions/seed=0", "vim2_compositions")`` copies the complete run's
``checkpoint.pt`` to ``pyro_vim/pretrained/vim2_compositions.pt`` and records it in the
manifest (:mod:`pyro_vim.pretrained.manifest`) with the run's provenance, the command that
trains it and its metrics.  The command line: ``python -m pyro_vim.pretrained ship RUN_DIR
NAME``.  Refused, with nothing written: a folder that is not a complete run, a name that is
not lower-case letters, digits and ``_``, a name already shipped (unless ``replace``), and a
checkpoint that would take the shipped files beyond
:data:`~pyro_vim.pretrained.manifest.MAX_TOTAL_BYTES`.  The copy is written atomically, then
the manifest (the manifest names a file only once it is complete).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any, Dict, Optional

from ..files import atomic_write, json_ready, write_json
from .manifest import FOLDER, MANIFEST, MAX_TOTAL_BYTES, read_manifest, sha256

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _scalars(block: Any) -> Optional[Dict[str, float]]:
    if not isinstance(block, dict):
        return None
    return {k: v for k, v in block.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _command(result: Dict[str, Any], run_dir: str) -> str:
    from ..config import VIMConfig
    from ..run.commands import overrides_for, runner_command
    from ..run.provenance import split_machine
    experiment, variant = result.get("experiment") or "", result.get("variant") or ""
    with open(os.path.join(run_dir, "config.json")) as f:
        saved = VIMConfig.from_saved(json.load(f))
    sets = overrides_for(experiment, variant, saved)
    if sets is None:
        raise ValueError(f"{run_dir!r} records experiment {experiment!r} / variant "
                         f"{variant!r}, which python -m pyro_vim.run does not know: no command "
                         "trains it")
    return runner_command(experiment, "runs", variant, [saved.seed], sets,
                          result.get("precision") or "fp32", split_machine(result)[2])


def ship(run_dir: str, name: str, folder: Optional[str] = None,
         replace: bool = False) -> Dict[str, Any]:
    """Copy the complete run in ``run_dir`` to ``folder`` (default: the package's
    ``pyro_vim/pretrained``) as ``name`` and record it in the manifest; returns the entry."""
    from ..checkpoint import load_checkpoint
    from ..run.provenance import split_machine
    folder = folder or FOLDER
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"bad name {name!r}: lower-case letters, digits and '_', starting "
                         "with a letter")
    metrics_path = os.path.join(run_dir, "metrics.json")
    checkpoint = os.path.join(run_dir, "checkpoint.pt")
    for path, what in ((metrics_path, "metrics.json: the run is not complete"),
                       (checkpoint, "checkpoint.pt"), (os.path.join(run_dir, "config.json"),
                                                       "config.json")):
        if not os.path.isfile(path):
            raise ValueError(f"{run_dir!r} has no {what}")
    with open(metrics_path) as f:
        result = json.load(f)
    load_checkpoint(checkpoint)                  # a real checkpoint (ValueError otherwise)
    manifest = read_manifest(folder)
    if name in manifest and not replace:
        raise ValueError(f"{name!r} is already shipped ({manifest[name]['file']}); pass "
                         "replace=True (--replace) to ship another run under that name")
    size = os.path.getsize(checkpoint)
    others = sum(int(e.get("bytes", 0)) for n, e in manifest.items() if n != name)
    if others + size > MAX_TOTAL_BYTES:
        raise ValueError(f"shipping {checkpoint} ({size / 1e6:.2f} MB) would take the shipped "
                         f"checkpoints to {(others + size) / 1e6:.2f} MB, over the "
                         f"{MAX_TOTAL_BYTES / 1e6:g} MB limit; remove one first")
    machine, version, threads = split_machine(result)
    entry = {"file": f"{name}.pt", "bytes": size, "sha256": None,
             "experiment": result.get("experiment"), "variant": result.get("variant"),
             "seed": result.get("seed"), "commit": result.get("commit"),
             "command": _command(result, run_dir), "steps": result.get("steps"),
             "train_minutes": (round(result["train_seconds"] / 60.0, 2)
                               if isinstance(result.get("train_seconds"), (int, float))
                               else result.get("train_minutes")),
             "machine": machine, "torch": version, "threads": threads,
             "precision": result.get("precision"), "eval": result.get("eval"),
             "metrics": _scalars(result.get("metrics")),
             "before_learning": _scalars(result.get("before_learning"))}
    target = os.path.join(folder, entry["file"])
    with open(checkpoint, "rb") as src:
        atomic_write(target, lambda f: shutil.copyfileobj(src, f))
    entry["sha256"] = sha256(target)
    manifest[name] = json_ready(entry)
    write_json(os.path.join(folder, MANIFEST), dict(sorted(manifest.items())), indent=1)
    return manifest[name]
