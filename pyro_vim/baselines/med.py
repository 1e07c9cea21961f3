"""MED, G-SWM's tracking metric (Lin et al. 2020): mean Euclidean distance of matched objects.

Each ground-truth object is matched to one predicted object on the **first** frame (exact
linear assignment on the Euclidean distance, :func:`pyro_vim.metrics.match_objects_to_slots`:
one-to-one, Hungarian), and that matching is kept for the whole sequence.  MED is then the mean
Euclidean distance, in the positions' unit (pixels in pyro-vim), between each object and its
matched prediction over all **later** frames 1..T-1; ``per_frame`` is the same mean at each of
those frames (the curve of the paper's Fig. 4).  A prediction that swaps two objects after frame
0 is therefore penalised, whereas a relabelling of the predicted objects (a permutation of the K
axis) does not change MED.

Positions follow :mod:`pyro_vim.metrics`' convention: ``(x, y) = (column, row)``.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import metrics

__all__ = ["med", "model_med"]


def _array(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}") from None
    return arr


def med(pred_positions, true_positions, pred_presence=None,
        presence_threshold: float = 0.5) -> Dict[str, Any]:
    """G-SWM's MED of ``pred_positions`` (N, T, K, 2) against ``true_positions`` (N, T, O, 2).

    ``pred_presence`` (N, K) or (N, T, K), optional: predicted objects whose presence on the
    first frame is below ``presence_threshold`` are matched only when there are fewer present
    predictions than true objects (their distance is replaced by a large penalty in the
    assignment; their predicted positions are still what is scored).

    Returns a dict: ``med`` (float, mean over videos, objects and frames 1..T-1),
    ``per_frame`` (list of T-1 floats: the mean distance at frames 1..T-1), ``first_frame``
    (the mean distance at frame 0, after matching) and ``matching`` ((N, O) int array: the
    predicted object matched to each true object).

    Raises ValueError for shapes that do not fit, fewer than 2 frames, K < O or non-finite
    positions.
    """
    pred = _array(pred_positions, "pred_positions")
    true = _array(true_positions, "true_positions")
    if pred.ndim != 4 or pred.shape[-1] != 2:
        raise ValueError(f"pred_positions must have shape (N, T, K, 2), got {pred.shape}")
    if true.ndim != 4 or true.shape[-1] != 2:
        raise ValueError(f"true_positions must have shape (N, T, O, 2), got {true.shape}")
    if pred.shape[:2] != true.shape[:2]:
        raise ValueError(f"pred_positions and true_positions must have the same (N, T), got "
                         f"{pred.shape[:2]} and {true.shape[:2]}")
    n, t, k = pred.shape[:3]
    o = true.shape[2]
    if t < 2:
        raise ValueError(f"MED needs at least 2 frames (matching on frame 0, distances on the "
                         f"later ones), got {t}")
    if k < o:
        raise ValueError(f"MED needs at least as many predicted objects as true ones, got K={k} "
                         f"< O={o}")
    if not (np.isfinite(pred).all() and np.isfinite(true).all()):
        raise ValueError("pred_positions and true_positions must be finite")
    first = pred[:, 0].copy()
    if pred_presence is not None:
        pres = _array(pred_presence, "pred_presence")
        if pres.shape == (n, t, k):
            pres = pres[:, 0]
        if pres.shape != (n, k):
            raise ValueError(f"pred_presence must have shape (N, K) = {(n, k)} or (N, T, K), "
                             f"got {pres.shape}")
        first[pres < presence_threshold] = np.nan   # matched only when unavoidable
    matching = metrics.match_objects_to_slots(true[:, 0], first)          # (N, O)
    index = np.broadcast_to(matching[:, None, :, None], (n, t, o, 2))
    matched = np.take_along_axis(pred, index, axis=2)                     # (N, T, O, 2)
    dist = np.sqrt(((matched - true) ** 2).sum(-1))                       # (N, T, O)
    per_frame = dist[:, 1:].mean(axis=(0, 2))
    return {"med": float(dist[:, 1:].mean()), "per_frame": per_frame.tolist(),
            "first_frame": float(dist[:, 0].mean()), "matching": matching}


def model_med(model, batch, iterations: int = 1, chunk: int = 32) -> Dict[str, Any]:
    """MED of a model's inferred positions on a :class:`~pyro_vim.data.VideoBatch`.

    ``model.infer(frames, iterations=iterations)`` must return ``positions`` (N, T, K, 2) in
    pixels and may return ``presence`` (N, T, K) (G-SWM does; VIM does not, and then every slot
    may be matched).  ``iterations`` k > 1: k propagation (or selection-update) iterations
    between two frames (multi-step G-SWM, VIM-k).  Returns :func:`med`'s ``med``,
    ``per_frame`` and ``first_frame``, with ``iterations``.
    """
    import torch
    device = next(model.parameters()).device
    positions, presence = [], []
    with torch.no_grad():
        for i in range(0, len(batch.frames), chunk):
            out = model.infer(torch.from_numpy(batch.frames[i:i + chunk]).to(device),
                              iterations=iterations)
            positions.append(out["positions"].cpu().numpy())
            if "presence" in out:
                presence.append(out["presence"].cpu().numpy())
    scores = med(np.concatenate(positions), batch.positions,
                 np.concatenate(presence) if presence else None)
    return {"med": scores["med"], "per_frame": scores["per_frame"],
            "first_frame": scores["first_frame"], "iterations": int(iterations)}
