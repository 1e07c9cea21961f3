"""What the learned modules do, given an identification report on atomic data.

:func:`module_step_errors`: per rule, the distance between its module's mean translation and
the true move; :func:`fidelity_metrics`: those, plus the modules' rollouts and the prior's
calibration (:mod:`pyro_vim.fidelity`).
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict

import numpy as np

from ..data import MOVE_VECTORS, MOVES, VideoBatch

__all__ = ["module_step_errors", "fidelity_metrics"]


def module_step_errors(confusion, assignment, translations, step: float) -> Dict[str, float]:
    """Per rule, |mean translation of the rule's module - the true move| in pixels (Euclidean).

    The rule's module is its ``assignment`` (rule index -> module) when it has one, else the
    module its moves chose most often (a monolithic or small-M model shares modules).
    ``translations``: (M, 2) mean (x, y) translation of each module on the slots matched to
    objects; ``step``: the data's atomic move in pixels.  Rules never observed are left out."""
    conf = np.asarray(confusion, dtype=np.float64)
    trans = np.asarray(translations, dtype=np.float64)
    out = {}
    for rule, name in enumerate(MOVES):
        if conf[rule].sum() == 0:
            continue
        module = assignment.get(rule, int(conf[rule].argmax()))
        true = step * MOVE_VECTORS[rule].astype(np.float64)
        out[name] = float(np.linalg.norm(trans[module] - true))
    return out


def fidelity_metrics(vim, batch: VideoBatch, report: Dict[str, Any], rollout: bool = True,
                     calibration: bool = True, calibration_sequences: int = 32,
                     horizon: int = 7) -> Dict[str, Any]:
    """What the modules do, given an identification ``report`` on atomic data (its
    ``confusion``, ``assignment`` and ``module_translation_px``): ``module_step_error`` (rule ->
    px) and ``module_step_error_max``; with ``rollout``, ``rollout_error`` (a rule without a
    module of its own uses the module it chose most)
    (:func:`pyro_vim.fidelity.rollout_errors`, ``horizon`` steps) and ``rollout_error_mean``; with
    ``calibration``, ``prior_calibration`` (:func:`pyro_vim.fidelity.prior_calibration` on the
    first ``calibration_sequences`` videos) and its ``prior_max_deviation`` and
    ``prior_impossible_at_walls``.  Rollouts and calibration need a VIM.  Bouncing balls (whose
    "rules" are events: free flight, wall bounce, collision; no atomic move) have none of
    these: ``{}`` (their metrics are :mod:`pyro_vim.evaluate.interactions`')."""
    if "collisions" in (getattr(batch, "extra", None) or {}):
        return {}
    assignment = report["assignment"]
    assignment = {(MOVES.index(r) if isinstance(r, str) else int(r)): int(m)
                  for r, m in assignment.items()}
    errors = module_step_errors(report["confusion"], assignment, report["module_translation_px"],
                                float(batch.config.get("step", 1)))
    out: Dict[str, Any] = {"module_step_error": errors,
                           "module_step_error_max": max(errors.values()) if errors else None}
    if not hasattr(vim, "transition") or batch.moves.shape[-1] != 1:
        return out
    from ..fidelity import prior_calibration, rollout_errors
    atomic = vim.using_iterations(1) if vim.config.iterations > 1 else contextlib.nullcontext()
    with atomic:                  # atomic data: one module per step (a VIM-k tested on rules)
        if rollout and batch.seq_len > 1:
            # rules without a module of their own (M < 4) roll out with their most chosen module
            conf = np.asarray(report["confusion"])
            full = {r: assignment.get(r, int(conf[r].argmax())) for r in range(len(MOVES))}
            result = rollout_errors(vim, batch, full, horizon=min(horizon, batch.seq_len - 1))
            out.update(rollout_error=result, rollout_error_mean=result["mean"])
        calib = prior_calibration(vim, batch[:calibration_sequences]) if calibration else None
    if calibration:
        out.update(prior_calibration=calib, prior_max_deviation=calib["max_deviation"],
                   prior_impossible_at_walls=calib["impossible_at_walls"],
                   prior_move_error=calib["move_error"])
    return out
