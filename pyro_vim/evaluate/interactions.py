"""Metrics and baselines of the interaction experiment on bouncing balls (docs/interactions.md).

Model metrics (each runs the model, then scores with a Pyro-free function of numpy arrays):

* :func:`rollout_errors` -- futures sampled from the learned prior
  (:func:`pyro_vim.infer.predict`) after ``context`` true frames, slots matched to balls on the
  last context frame; position error (px) after 1, 5, 10 and 20 predicted frames, of the mean
  of the samples' positions (``mean``) and the best sample (``best``), over all videos and over
  those with a ball-ball collision within the horizon (:func:`score_rollouts`);
* :func:`collision_attribution` -- precision and recall of "slot i chose a binary module with
  partner j at transition t" against the true collision pairs within +-``tolerance``
  transitions (:func:`attribution_scores`);
* :func:`unary_identification` -- free flight vs wall bounce among the unary modules, on the
  transitions without a collision (:func:`unary_scores`).

Baselines on the same videos (no learning): :func:`constant_velocity_rollout` (the last two
true positions' displacement, forever) and :func:`walls_only_rollout` (the generator's physics
from the same start with ball-ball collisions off: what perfect unary modules could reach).
:func:`interaction_metrics` gathers everything (the runner's "interactions" evaluation and the
``interactions`` block of ``python -m pyro_vim.evaluate`` on bouncing data).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

from .. import metrics
from ..data import VideoBatch

__all__ = ["HORIZONS", "rollout_errors", "score_rollouts", "collision_attribution",
           "attribution_scores", "unary_identification", "unary_scores",
           "constant_velocity_rollout", "walls_only_rollout", "baseline_rollouts",
           "interaction_metrics", "is_bouncing"]

#: Predicted frames after which the rollout error is reported.
HORIZONS = (1, 5, 10, 20)


def is_bouncing(batch: VideoBatch) -> bool:
    """Whether ``batch`` carries the bouncing balls' ground truth (collisions, wall bounces)."""
    extra = getattr(batch, "extra", None) or {}
    return "collisions" in extra and "wall_bounces" in extra


def _check_bouncing(batch) -> None:
    if not isinstance(batch, VideoBatch) or not is_bouncing(batch):
        raise ValueError("interaction metrics need a bouncing-balls VideoBatch (extra "
                         "'collisions' and 'wall_bounces'; data.name=bouncing)")


def _horizons(horizons: Sequence[int], context: int, seq_len: int):
    hs = sorted({int(h) for h in horizons if context + int(h) <= seq_len})
    if not hs or min(hs) < 1:
        raise ValueError(f"no horizon of {list(horizons)} fits {seq_len}-frame videos after "
                         f"{context} context frames")
    return hs


def _collided_within(collisions: np.ndarray, context: int, horizon: int) -> np.ndarray:
    """(N,) bool: a ball-ball collision on the transitions into predicted frames 1..horizon
    (transitions ``context - 1 .. context + horizon - 2``)."""
    return collisions[:, context - 1:context - 1 + horizon].any(axis=(1, 2, 3))


# -- rollouts ----------------------------------------------------------------------------------
def score_rollouts(predicted, true, collided=None, horizons: Sequence[int] = HORIZONS
                   ) -> Dict[str, Any]:
    """Score sampled (or deterministic) futures of matched objects.

    Args:
        predicted: (S, N, H, O, 2) positions (px) of the slots matched to the O balls, S samples
            (S = 1 for a deterministic baseline).
        true: (N, H, O, 2) true positions of the predicted frames.
        collided: optional (N, H) bool: the video has a ball-ball collision within the first
            h + 1 predicted frames (column h); adds the ``collision`` split.
        horizons: 1-based predicted frames to report.

    Returns:
        ``{"horizons", "all": {"mean": {h: px}, "best": {h: px}, "videos": n}, "collision":
        {... , "videos": {h: n}}}``: ``mean`` is the error of the samples' mean position
        (averaged over balls and videos), ``best`` per video and horizon the smallest over
        samples of the error averaged over its balls, then averaged over videos.
    """
    pred = metrics._as_float(predicted, "predicted")
    truth = metrics._as_float(true, "true")
    if pred.ndim != 5 or pred.shape[1:] != truth.shape:
        raise ValueError(f"predicted must be (S, N, H, O, 2) and true (N, H, O, 2), got "
                         f"{pred.shape} and {truth.shape}")
    h_len = truth.shape[1]
    hs = [h for h in horizons if 1 <= h <= h_len]
    mean_err = metrics.position_error(pred.mean(0), truth).mean(-1)          # (N, H)
    sample_err = metrics.position_error(pred, np.broadcast_to(truth, pred.shape)).mean(-1)
    best_err = sample_err.min(0)                                             # (N, H)

    def block(rows):
        def avg(e, h):
            v = e[rows[:, h - 1], h - 1]
            return float(v.mean()) if v.size else None
        return {"mean": {str(h): avg(mean_err, h) for h in hs},
                "best": {str(h): avg(best_err, h) for h in hs}}

    everything = np.ones(mean_err.shape, bool)
    out: Dict[str, Any] = {"horizons": hs, "all": {**block(everything),
                                                   "videos": int(truth.shape[0])}}
    if collided is not None:
        col = np.asarray(collided, bool)
        out["collision"] = {**block(col), "videos": {str(h): int(col[:, h - 1].sum())
                                                     for h in hs}}
    return out


def _collided_table(batch: VideoBatch, context: int, h_len: int) -> np.ndarray:
    coll = batch.extra["collisions"]
    return np.stack([_collided_within(coll, context, h) for h in range(1, h_len + 1)], 1)


def rollout_errors(model, batch: VideoBatch, context: int = 2,
                   horizons: Sequence[int] = HORIZONS, samples: int = 8, chunk: int = 16
                   ) -> Dict[str, Any]:
    """Rollout error of ``model``'s prior (:func:`score_rollouts`): ``samples`` futures of
    ``max(horizons)`` frames from the first ``context`` frames (2: a velocity needs two), slots
    matched one-to-one to balls per sample on the last context frame
    (:func:`pyro_vim.infer.match_predicted_slots`).  Horizons longer than the videos allow are
    left out."""
    import torch

    from ..infer import match_predicted_slots, predict

    _check_bouncing(batch)
    hs = _horizons(horizons, context, batch.seq_len)
    h_len = max(hs)
    device = next(model.parameters()).device
    parts, ctx_parts = [], []
    with torch.no_grad():
        for i in range(0, batch.num_sequences, chunk):
            ctx = torch.from_numpy(batch.frames[i:i + chunk, :context]).to(device)
            pred = predict(model, ctx, h_len, samples)
            parts.append(pred["positions"].cpu().numpy())
            ctx_parts.append(pred["context_positions"].cpu().numpy())
    pred = {"positions": np.concatenate(parts, 1),                   # (S, N, H, K, 2)
            "context_positions": np.concatenate(ctx_parts, 1)}       # (S, N, K, 2)
    matching = match_predicted_slots(pred, batch.positions[:, context - 1])   # (S, N, O)
    s, n, h, _, _ = pred["positions"].shape
    o = matching.shape[-1]
    idx = np.broadcast_to(matching[:, :, None, :, None], (s, n, h, o, 2))
    matched = np.take_along_axis(pred["positions"], idx, axis=3)
    out = score_rollouts(matched, batch.positions[:, context:context + h_len],
                         _collided_table(batch, context, h_len), hs)
    out.update(context=context, samples=samples)
    return out


# -- baselines ---------------------------------------------------------------------------------
def constant_velocity_rollout(batch: VideoBatch, context: int = 2, horizon: int = 20
                              ) -> np.ndarray:
    """(N, horizon, O, 2): x_{c-1} + k v with v = x_{c-1} - x_{c-2}, the last two true
    positions (an oracle tracker), k = 1..horizon; no walls, no collisions."""
    if context < 2:
        raise ValueError("constant velocity needs context >= 2 frames")
    pos = batch.positions.astype(np.float64)
    last, vel = pos[:, context - 1], pos[:, context - 1] - pos[:, context - 2]
    k = np.arange(1, horizon + 1, dtype=np.float64)[None, :, None, None]
    return last[:, None] + k * vel[:, None]


def _generator_of(batch: VideoBatch):
    from ..data.bouncing import BouncingBalls
    c = batch.config or {}
    kwargs = {k: c[k] for k in ("num_objects", "image_size", "radius", "speed", "substeps")
              if c.get(k) is not None}
    kwargs.setdefault("num_objects", batch.num_objects)
    kwargs.setdefault("image_size", batch.image_size)
    return BouncingBalls(**kwargs)


def walls_only_rollout(batch: VideoBatch, context: int = 2, horizon: int = 20,
                       generator=None) -> np.ndarray:
    """(N, horizon, O, 2): the generator's physics (``generator``, default rebuilt from
    ``batch.config``) with ball-ball collisions off (``simulate(..., collisions=False)``), from
    the last true position with the last two true positions' displacement as velocity; exact
    where no collision happens (and no wall bounce on the last context transition)."""
    if context < 2:
        raise ValueError("the walls-only baseline needs context >= 2 frames")
    gen = generator if generator is not None else _generator_of(batch)
    pos = batch.positions.astype(np.float64)
    lo, hi = gen.bounds
    last = np.clip(pos[:, context - 1], lo, hi)
    vel = pos[:, context - 1] - pos[:, context - 2]
    sim = gen.simulate(last, vel, horizon + 1, collisions=False)
    return sim["positions"][:, 1:]


def baseline_rollouts(batch: VideoBatch, context: int = 2, horizons: Sequence[int] = HORIZONS,
                      generator=None) -> Dict[str, Any]:
    """:func:`score_rollouts` of :func:`constant_velocity_rollout` and
    :func:`walls_only_rollout` (deterministic: ``mean`` = ``best``)."""
    _check_bouncing(batch)
    hs = _horizons(horizons, context, batch.seq_len)
    h_len = max(hs)
    truth = batch.positions[:, context:context + h_len]
    collided = _collided_table(batch, context, h_len)
    return {"constant_velocity": score_rollouts(
                constant_velocity_rollout(batch, context, h_len)[None], truth, collided, hs),
            "walls_only": score_rollouts(
                walls_only_rollout(batch, context, h_len, generator)[None], truth, collided,
                hs)}


# -- inference-based metrics -------------------------------------------------------------------
def _infer(model, frames: np.ndarray, chunk: int = 32) -> Dict[str, np.ndarray]:
    import torch

    device = next(model.parameters()).device
    parts: Dict[str, list] = {}
    with torch.no_grad():
        for i in range(0, len(frames), chunk):
            out = model.infer(torch.from_numpy(frames[i:i + chunk]).to(device))
            for key in ("selections", "partners", "masks"):
                if key in out:
                    parts.setdefault(key, []).append(np.asarray(out[key].cpu()))
    return {k: np.concatenate(v) for k, v in parts.items()}


def _matching(batch: VideoBatch, masks: np.ndarray) -> np.ndarray:
    """(N, O) slot per ball, matched on frame 0 by mask centroids (ties broken by the tracks)."""
    slot_pos = metrics.mask_centroids(masks)
    cost = metrics.track_distances(batch.positions, slot_pos, batch.visible)
    return metrics.match_objects_to_slots(batch.positions[:, 0], slot_pos[:, 0], tie_break=cost)


def attribution_scores(selections, partners, matching, collisions, num_unary: int,
                       tolerance: int = 1) -> Dict[str, Any]:
    """Collision attribution of matched slots' (binary module, partner) choices.

    Args:
        selections: (N, T-1, K) module index per slot (unary ``< num_unary``, binary after).
        partners: (N, T-1, K) partner slot per slot (-1 none), or None (no binary modules).
        matching: (N, O) slot of each ball.
        collisions: (N, T-1, O, O) bool, true collision pairs per transition.
        num_unary: M.
        tolerance: a choice at t counts for a collision at t - tolerance .. t + tolerance.

    Returns:
        ``precision`` = correct / predicted interactions (a matched slot choosing a binary
        module with a partner at t; correct if the partner's slot is matched to a ball that
        collides with this one within +-tolerance), ``recall`` = collision events (i, j, t)
        (both directions) with a choice by i of partner j within +-tolerance / all events,
        ``partner_accuracy`` = correct / predicted interactions at transitions where the
        ball collides (at t), ``chance_precision`` = the precision of a partner drawn
        uniformly among the other balls, and the counts.  None where undefined.
    """
    sel = metrics._as_int(selections, "selections")
    mt = metrics._as_int(matching, "matching")
    coll = np.asarray(collisions, bool)
    n, steps, k = sel.shape
    o = mt.shape[1]
    if coll.shape != (n, steps, o, o):
        raise ValueError(f"collisions must be (N, T-1, O, O) = ({n}, {steps}, {o}, {o}), got "
                         f"{coll.shape}")
    near = coll.copy()
    for d in range(1, int(tolerance) + 1):
        near[:, d:] |= coll[:, :-d]
        near[:, :-d] |= coll[:, d:]
    idx = np.broadcast_to(mt[:, None, :], (n, steps, o))
    msel = np.take_along_axis(sel, idx, 2)                                  # (N, T-1, O)
    if partners is None:
        ppart = np.full((n, steps, o), -1)
    else:
        ppart = np.take_along_axis(metrics._as_int(partners, "partners"), idx, 2)
    slot_to_obj = np.full((n, k + 1), -1)            # column k: partner -1 ("none")
    for v in range(n):
        slot_to_obj[v, mt[v]] = np.arange(o)
    pobj = np.take_along_axis(slot_to_obj[:, None, :].repeat(steps, 1),
                              np.where(ppart >= 0, ppart, k), 2)            # (N, T-1, O)
    predicted = (msel >= num_unary) & (ppart >= 0)
    safe = np.where(pobj >= 0, pobj, 0)
    hit = predicted & (pobj >= 0) & np.take_along_axis(near, safe[..., None], 3)[..., 0]
    # recall: event (v, t, i, j) found if i chose partner j within +-tolerance
    chose = np.zeros((n, steps, o, o), bool)
    v_, t_, i_ = np.nonzero(predicted & (pobj >= 0))
    chose[v_, t_, i_, pobj[v_, t_, i_]] = True
    chose_near = chose.copy()
    for d in range(1, int(tolerance) + 1):
        chose_near[:, d:] |= chose[:, :-d]
        chose_near[:, :-d] |= chose[:, d:]
    events = int(coll.sum())
    found = int((coll & chose_near).sum())
    colliding = coll.any(-1)                                                # (N, T-1, O)
    at_collision = predicted & colliding
    chance = near.sum(-1) / max(o - 1, 1)
    total = int(predicted.sum())
    return {"precision": hit.sum() / total if total else None,
            "recall": found / events if events else None,
            "partner_accuracy": (hit & colliding).sum() / at_collision.sum()
            if at_collision.sum() else None,
            "chance_precision": float(chance.mean()) if chance.size else None,
            "predicted_interactions": total, "collision_events": events,
            "binary_share_at_collisions": float((msel[colliding] >= num_unary).mean())
            if colliding.any() else None,
            "tolerance": int(tolerance)}


def collision_attribution(model, batch: VideoBatch, tolerance: int = 1) -> Dict[str, Any]:
    """:func:`attribution_scores` of ``model.infer``'s hard choices on ``batch``, balls
    matched to slots on frame 0 (mask centroids)."""
    _check_bouncing(batch)
    inf = _infer(model, batch.frames)
    return attribution_scores(inf["selections"], inf.get("partners"),
                              _matching(batch, inf["masks"]), batch.extra["collisions"],
                              model.config.num_modules, tolerance)


def unary_scores(moves, selections, matching, num_unary: int, num_choices: int
                 ) -> Dict[str, Any]:
    """Free flight (label 0) vs wall bounce (1) among the unary modules, on the transitions
    without a collision (label 2 left out).

    ``accuracy``: best one-to-one assignment of {free, wall} to unary modules
    (:func:`pyro_vim.metrics.rule_module_accuracy` on the 2 x M block), over all such
    transitions (those that chose a binary module count as wrong); ``confusion`` 2 x
    ``num_choices``; ``assignment``; ``binary_share`` of these transitions."""
    mv = metrics._moves_3d(moves)
    mv = np.where(mv == 2, -1, mv)
    conf = metrics.selection_confusion(mv, selections, matching, num_choices, num_rules=2)
    total = conf.sum()
    block = conf[:, :num_unary]
    rows, cols = metrics.linear_sum_assignment(-block.astype(np.float64))
    acc = float(block[rows, cols].sum() / total) if total else None
    return {"accuracy": acc, "confusion": conf.tolist(),
            "assignment": {("free", "wall")[r]: int(m) for r, m in zip(rows, cols)},
            "binary_share": float(conf[:, num_unary:].sum() / total) if total else None,
            "transitions": int(total)}


def unary_identification(model, batch: VideoBatch) -> Dict[str, Any]:
    """:func:`unary_scores` of ``model.infer``'s choices on ``batch`` (balls matched on
    frame 0)."""
    _check_bouncing(batch)
    inf = _infer(model, batch.frames)
    c = model.config
    return unary_scores(batch.moves, inf["selections"], _matching(batch, inf["masks"]),
                        c.num_modules, c.num_choices)


def interaction_metrics(model, batch: VideoBatch, context: int = 2,
                        horizons: Sequence[int] = HORIZONS, samples: int = 8,
                        transfer: Optional[VideoBatch] = None) -> Dict[str, Any]:
    """Every metric above on ``batch`` (``rollout``, ``attribution``, ``unary``,
    ``baselines``), and with ``transfer`` (e.g. 5 balls for a model trained on 3) the rollouts
    and baselines there too (``transfer``, with ``rollout_ratio`` = its rollout error / the
    ``batch``'s, per horizon, best of the samples)."""
    _check_bouncing(batch)
    inf = _infer(model, batch.frames)                 # one inference for both choice metrics
    matching = _matching(batch, inf["masks"])
    c = model.config
    out: Dict[str, Any] = {
        "rollout": rollout_errors(model, batch, context, horizons, samples),
        "attribution": attribution_scores(inf["selections"], inf.get("partners"), matching,
                                          batch.extra["collisions"], c.num_modules),
        "unary": unary_scores(batch.moves, inf["selections"], matching, c.num_modules,
                              c.num_choices),
        "baselines": baseline_rollouts(batch, context, horizons),
    }
    if transfer is not None:
        roll = rollout_errors(model, transfer, context, horizons, samples)
        ratio = {}
        for h, v in roll["all"]["best"].items():
            ref = out["rollout"]["all"]["best"].get(h)
            ratio[h] = v / ref if v is not None and ref else None
        out["transfer"] = {"num_objects": transfer.num_objects, "rollout": roll,
                           "rollout_ratio": ratio,
                           "baselines": baseline_rollouts(transfer, context, horizons)}
    return out
