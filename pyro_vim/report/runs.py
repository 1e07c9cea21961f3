"""Finding the runs of a sweep folder, and the group (experiment, variant) each belongs to.

``DIR`` is the folder written by the experiment runner.  Every folder under it that holds a
``metrics.json`` is one run (nothing inside a run folder is searched further); the run's parent
folder names its group:

* ``DIR/<experiment>/seed=<s>/metrics.json`` (an experiment without variants), or
* ``DIR/<experiment>/<variant>/seed=<s>/metrics.json``
  (e.g. ``DIR/module_count/num_modules=2/seed=0/metrics.json``).

``DIR`` may also be one experiment's folder (``DIR/seed=0/...`` or ``DIR/<variant>/seed=0/...``):
the experiment is then named after the folder.  A folder not named ``seed=...`` that holds a
``metrics.json`` is itself a group with a single run, whose seed is read from the JSON.  A
``seed=...`` folder without ``metrics.json`` (an unfinished run) is listed as incomplete.
Hidden folders and symbolic links to folders are not searched.  Folders are listed in natural
order (``num_modules=2`` before ``num_modules=10``).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

PathLike = Union[str, "os.PathLike[str]"]


METRICS_FILE = "metrics.json"


_SEED_PREFIX = "seed="


_DIGITS = re.compile(r"(\d+)", re.ASCII)


def _natural_key(text: str):
    """``"num_modules=2"`` before ``"num_modules=10"``: digit runs compare as numbers."""
    parts = _DIGITS.split(text)
    # re.split with one capturing group alternates text (even) and digits (odd).
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], text


def _seed_key(seed: Any):
    if isinstance(seed, int):
        return 0, seed, ""
    return 1, 0, str(seed)


def _scan(root: Path) -> Tuple[List[Path], List[Path]]:
    """(run folders holding metrics.json, seed folders without it), in natural order."""
    runs: List[Path] = []
    incomplete: List[Path] = []

    def visit(folder: Path, is_root: bool) -> None:
        if (folder / METRICS_FILE).is_file():
            runs.append(folder)
            return
        if not is_root and folder.name.startswith(_SEED_PREFIX):
            incomplete.append(folder)
            return
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: _natural_key(e.name))
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            visit(Path(entry.path), False)

    visit(root, True)
    return runs, incomplete


def _load_metrics(path: Path) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def _group_dir(run: Path) -> Path:
    return run.parent if run.name.startswith(_SEED_PREFIX) else run


def _parts(root: Path, folder: Path) -> Tuple[str, ...]:
    """Path of ``folder`` below ``root`` as names; () for root itself or a folder above it."""
    rel = os.path.relpath(folder, root)
    if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return ()
    return Path(rel).parts


def _root_is_experiment(root_name: str, depth1: List[Tuple[Tuple[str, ...], Optional[dict]]],
                        depths: set) -> bool:
    """Whether ``root`` is one experiment's folder (its sub-folders: variants) or a sweep."""
    if 0 in depths:
        return True
    if any(d >= 2 for d in depths):
        return False
    # Every group one level down: DIR/<experiment>/seed=s or DIR/<variant>/seed=s.  The
    # runner's "experiment" and "variant" entries decide; failing them, "=" marks a variant.
    as_experiment = as_sweep = 0
    for parts, data in depth1:
        if data is None:
            continue
        exp, var = data.get("experiment"), data.get("variant")
        if isinstance(var, str) and var and var == parts[0]:
            as_experiment += 1
        elif isinstance(exp, str) and exp == parts[0]:
            as_sweep += 1
        elif isinstance(exp, str) and exp == root_name:
            as_experiment += 1
    if as_experiment != as_sweep:
        return as_experiment > as_sweep
    return all("=" in parts[0] for parts, _ in depth1)


def _seed_of(run: Path, data: Optional[dict]) -> Any:
    if run.name.startswith(_SEED_PREFIX):
        text = run.name[len(_SEED_PREFIX):]
        try:
            return int(text)
        except ValueError:
            return text
    seed = None if data is None else data.get("seed")
    if isinstance(seed, bool):
        return None
    if isinstance(seed, (int, str)):
        return seed
    return None


def _relative(root: Path, path: Path) -> str:
    parts = _parts(root, path)
    return "/".join(parts) if parts else "."


def _check_root(root: PathLike) -> Path:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"the sweep folder must be a str or os.PathLike, got {type(root).__name__}")
    path = Path(root)
    if not path.exists():
        raise FileNotFoundError(f"{os.fspath(root)}: no such folder")
    if not path.is_dir():
        raise ValueError(f"{os.fspath(root)} is not a folder")
    return path
