"""Learning curves: the validation error the trainer logs at every evaluation, over seeds.

A run's ``log.jsonl`` holds one record per step; the records of evaluations carry
``"validation": {"error", "minutes"}`` (:mod:`pyro_vim.train.stopping`: the one-step squared
error per frame on frames 1.. of the held-out validation videos, the same quantity for every
family; ``minutes`` of training time, evaluations excluded), and the last pre-training step's
record the pre-trained model's (``"before_learning": true``).  :func:`read_curve` reads one
run's, :func:`aggregate_curves` puts a group's runs together step by step: at each evaluated
step the mean and sample standard deviation of the error over the seeds that reached it, and
the mean of their training minutes (seeds evaluate at the same steps, at slightly different
minutes; a run stopped early simply ends).  :func:`validation_references` gives the model-free
reference errors on the same validation videos (the empty frame and the best deterministic
prediction, :func:`pyro_vim.baselines.table1.reference_errors`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .statistics import _scalar_stats

LOG_FILE = "log.jsonl"


def read_curve(log_path) -> Optional[Dict[str, Any]]:
    """One run's learning curve from its ``log.jsonl``: ``{"points": [[step, minutes, error],
    ...], "before": [step, minutes, error] or None}``; None when the log has no validation
    record (or is missing).  Lines that are not JSON (a half-written last line) are skipped."""
    path = Path(log_path)
    if not path.is_file():
        return None
    points: List[List[float]] = []
    before = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if '"validation"' not in line:        # most records: no need to parse them
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            val = record.get("validation")
            if not isinstance(val, dict) or not isinstance(record.get("step"), int):
                continue
            error, minutes = val.get("error"), val.get("minutes")
            if not _finite(minutes):
                continue
            point = [record["step"], float(minutes),
                     float(error) if _finite(error) else None]
            if val.get("before_learning"):
                before = point
            else:
                points.append(point)
    if not points and before is None:
        return None
    return {"points": points, "before": before}


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def aggregate_curves(curves: Sequence[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The group's curve from its runs' :func:`read_curve` results: ``steps`` (every step some
    run evaluated, sorted), per step ``minutes`` (mean over the runs there), ``mean``, ``std``
    (sample std, 0 for one run) and ``n`` of the error, and ``before`` (scalar statistics of the
    before-learning error) and ``runs`` (how many runs had a curve); None without any curve."""
    curves = [c for c in curves if c]
    if not curves:
        return None
    by_step: Dict[int, List[List[float]]] = {}
    for curve in curves:
        for step, minutes, error in curve["points"]:
            by_step.setdefault(int(step), []).append([minutes, error])
    steps = sorted(by_step)
    out: Dict[str, Any] = {"steps": steps, "minutes": [], "mean": [], "std": [], "n": [],
                           "runs": len(curves)}
    for step in steps:
        entries = by_step[step]
        errors = _scalar_stats([e for _, e in entries if e is not None])
        out["minutes"].append(sum(m for m, _ in entries) / len(entries))
        out["mean"].append(errors["mean"])
        out["std"].append(errors["std"])
        out["n"].append(errors["n"])
    before = [c["before"][2] for c in curves if c["before"] and c["before"][2] is not None]
    out["before"] = _scalar_stats(before)
    return out


def group_curve(root: Path, runs: Sequence[str]) -> Optional[Dict[str, Any]]:
    """:func:`aggregate_curves` of the runs (folders relative to ``root``) of one group."""
    return aggregate_curves([read_curve(Path(root) / run / LOG_FILE) for run in runs])


def validation_references(root, runs: Sequence[str]) -> Optional[Dict[str, Any]]:
    """Model-free errors on the validation videos of ``runs`` (folders relative to ``root``
    holding ``config.json``), averaged over their seeds: ``empty_frame`` (every frame predicted
    as the background) and, on Random Walk data, ``best_deterministic`` (the mean of the
    data's possible next frames given the true state: no deterministic predictor does better
    on average) -- :func:`pyro_vim.baselines.table1.reference_errors` over the same frames 1..
    as the validation error.  None when no run's config can generate its videos (recorded
    videos, a config this code cannot read)."""
    import numpy as np

    from ..baselines.table1 import reference_errors
    from ..config import VIMConfig
    from ..train.stopping import validation_batch
    found: Dict[str, List[float]] = {"empty_frame": [], "best_deterministic": []}
    seen = set()
    for run in runs:
        path = Path(root) / run / "config.json"
        try:
            with open(path, encoding="utf-8") as f:
                config = VIMConfig.from_saved(json.load(f))
            key = (json.dumps(config.data.__dict__, sort_keys=True, default=str), config.seed,
                   config.eval_sequences, config.eval_seq_len, config.image_size)
            if key in seen or config.data.name == "npz":
                continue
            seen.add(key)
            generator = config.make_generator()
            batch = validation_batch(config, generator)
            if config.data.name == "random_walk":
                ref = reference_errors(generator, batch, seq_len=None)
                found["empty_frame"].append(ref["background"]["per_frame"])
                found["best_deterministic"].append(ref["oracle_mean"]["per_frame"])
            else:
                frames = np.asarray(batch.frames, dtype=np.float64)
                background = np.broadcast_to(np.asarray(generator.background, np.float64),
                                             frames.shape[2:])
                se = ((frames[:, 1:] - background) ** 2).sum(axis=(2, 3, 4))
                found["empty_frame"].append(float(se.mean()))
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue
    out = {name: float(np.mean(v)) for name, v in found.items() if v}
    return out or None
