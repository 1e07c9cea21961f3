"""The aggregate of a sweep: every group's runs, mean ± std over seeds (:func:`aggregate`).

For each group (experiment, variant; see :mod:`pyro_vim.report.runs`) the numbers of
``metrics`` and ``before_learning`` are aggregated over seeds (:mod:`pyro_vim.report.statistics`)
after each run's per-module numbers are aligned to the rules
(:mod:`pyro_vim.report.alignment`); ``rules`` is kept from the first run.  ``steps``,
``train_seconds`` and ``train_minutes`` are aggregated the same way; ``commits`` and
``machines`` are listed, ``stopped_by`` counts what ended the runs' training (``steps``,
``time_budget``, ``plateau``) and ``learning_curve`` is the validation error over steps and
minutes (:mod:`pyro_vim.report.curves`), when the runs logged it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .alignment import _align_modules
from .curves import group_curve
from .runs import (
    METRICS_FILE,
    PathLike,
    _check_root,
    _group_dir,
    _load_metrics,
    _natural_key,
    _parts,
    _relative,
    _root_is_experiment,
    _scan,
    _seed_key,
    _seed_of,
)
from .statistics import _array_stats, _as_float, _flatten, _is_number, _scalar_stats

SECTIONS = ("metrics", "before_learning")


def _aggregate_section(blocks: List[Any]) -> Dict[str, Any]:
    """Aggregate one section (``metrics`` or ``before_learning``) over the runs' blocks."""
    scalars: Dict[str, List[float]] = {}
    arrays: Dict[str, List[np.ndarray]] = {}
    rules = None
    for block in blocks:
        if not isinstance(block, dict):
            continue
        run_scalars: Dict[str, Optional[float]] = {}
        run_arrays: Dict[str, np.ndarray] = {}
        for key, value in _align_modules(block).items():
            if key == "rules":
                if rules is None and isinstance(value, list):
                    rules = list(value)
                continue
            _flatten(value, str(key), run_scalars, run_arrays)
        for name, x in run_scalars.items():
            values = scalars.setdefault(name, [])
            if x is not None:
                values.append(x)
        for name, arr in run_arrays.items():
            arrays.setdefault(name, []).append(arr)
    out: Dict[str, Any] = {}
    for name in sorted(set(scalars) | set(arrays), key=_natural_key):
        values = scalars.get(name, [])
        if name in arrays and not values:
            out[name] = _array_stats(arrays[name])
        else:   # a scalar in some runs and null (or, oddly, a list) in others
            out[name] = _scalar_stats(values)
    if rules is not None:
        out["rules"] = rules
    return out


def _aggregate_group(root: Path, runs: List[Tuple[Path, dict]],
                     incomplete: List[Path]) -> Dict[str, Any]:
    runs = sorted(runs, key=lambda r: (_seed_key(_seed_of(r[0], r[1])), _natural_key(r[0].name)))
    seeds = [_seed_of(path, data) for path, data in runs]

    def top_level(key: str) -> Dict[str, Any]:
        values = [_as_float(d.get(key)) if _is_number(d.get(key)) else None for _, d in runs]
        return _scalar_stats([v for v in values if v is not None])

    def distinct(key: str) -> List[str]:
        found: List[str] = []
        for _, data in runs:
            value = data.get(key)
            if isinstance(value, str) and value and value not in found:
                found.append(value)
        return found

    stopped_by: Dict[str, int] = {}
    for _, data in runs:
        by = data.get("stopped", {}).get("by") if isinstance(data.get("stopped"), dict) else None
        if isinstance(by, str):
            stopped_by[by] = stopped_by.get(by, 0) + 1
    relative = [_relative(root, path) for path, _ in runs]
    out = {
        "n": len(runs),
        "seeds": sorted((s for s in seeds if s is not None), key=_seed_key),
        "runs": relative,
        "incomplete": [_relative(root, path) for path in incomplete],
        "commits": distinct("commit"),
        "machines": distinct("machine"),
        "steps": top_level("steps"),
        "train_seconds": top_level("train_seconds"),
        "train_minutes": top_level("train_minutes"),
        "stopped_by": dict(sorted(stopped_by.items())),
        "metrics": _aggregate_section([d.get("metrics") for _, d in runs]),
        "before_learning": _aggregate_section([d.get("before_learning") for _, d in runs]),
    }
    curve = group_curve(root, relative)
    if curve is not None:
        out["learning_curve"] = curve
    return out


def aggregate(root: PathLike) -> Dict[str, Any]:
    """Aggregate the runs under ``root`` (:mod:`pyro_vim.report.runs` describes the layout).

    Returns ``{"root": str(root), "experiments": {experiment: {variant: group}}}``, experiments
    and variants in natural order (``num_modules=2`` before ``num_modules=10``; ``""`` for an
    experiment without variants).  A group holds ``n`` (runs aggregated), ``seeds`` (sorted),
    ``runs`` and ``incomplete`` (run folders relative to ``root``), ``commits``, ``machines``,
    ``steps`` and ``train_seconds`` (scalar statistics) and ``metrics`` and ``before_learning``:
    ``{name: {"mean", "std", "n", "values"}}`` for scalars, ``{name: {"mean", "std", "n"}}`` with
    nested lists for arrays (element-wise; ``"note"`` and null mean when the shapes differ), and
    ``rules`` as in the first run.  Every float is finite or None.

    Raises ``FileNotFoundError`` (no such ``root``), ``ValueError`` (``root`` is not a folder,
    holds no ``metrics.json``, or one of them is not a JSON object).
    """
    path = _check_root(root)
    run_dirs, unfinished = _scan(path)
    if not run_dirs:
        extra = f" ({len(unfinished)} unfinished runs)" if unfinished else ""
        raise ValueError(f"no {METRICS_FILE} under {os.fspath(root)}{extra}")
    loaded = [(run, _load_metrics(run / METRICS_FILE)) for run in run_dirs]

    group_of = {run: _parts(path, _group_dir(run)) for run in run_dirs + unfinished}
    depths = {len(parts) for parts in group_of.values()}
    depth1 = [(group_of[run], data) for run, data in loaded if len(group_of[run]) == 1]
    depth1 += [(group_of[run], None) for run in unfinished if len(group_of[run]) == 1]
    root_name = path.resolve().name or os.fspath(root)
    root_is_experiment = _root_is_experiment(root_name, depth1, depths)

    # Runs only straight in root (or root a run): root may be an experiment's folder, a
    # variant's folder or a seed folder; the runner's own names decide when they fit.
    single = None
    if depths == {0}:
        base = _group_dir(loaded[0][0].resolve()).name or root_name
        single = (base, "")
        exps = {d.get("experiment") for _, d in loaded}
        vars_ = {d.get("variant") for _, d in loaded}
        if len(exps) == 1 and len(vars_) == 1:
            exp, var = exps.pop(), vars_.pop()
            if isinstance(exp, str) and exp and isinstance(var, str) and \
                    (var == base if var else exp == base):
                single = (exp, var)

    def key_of(run: Path) -> Tuple[str, str]:
        parts = group_of[run]
        if single is not None:
            return single
        if root_is_experiment:
            return root_name, "/".join(parts)
        return parts[0], "/".join(parts[1:])

    groups: Dict[Tuple[str, str], Tuple[list, list]] = {}
    for run, data in loaded:
        groups.setdefault(key_of(run), ([], []))[0].append((run, data))
    for run in unfinished:
        groups.setdefault(key_of(run), ([], []))[1].append(run)

    experiments: Dict[str, Dict[str, Any]] = {}
    for exp, var in sorted(groups, key=lambda k: (_natural_key(k[0]), _natural_key(k[1]))):
        done, todo = groups[(exp, var)]
        experiments.setdefault(exp, {})[var] = _aggregate_group(path, done, todo)
    return {"root": os.fspath(root), "experiments": experiments}


def _variant_label(variant: str) -> str:
    return variant if variant else "—"
