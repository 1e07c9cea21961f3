"""Sampled futures scored against the truth: :func:`evaluate_predictions`."""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from ..data import VideoBatch
from ..files import json_ready

__all__ = ["evaluate_predictions"]


@torch.no_grad()
def evaluate_predictions(vim, batch: VideoBatch, context: int, horizon: int,
                         num_samples: int, chunk: int = 16):
    """Sample futures after ``context`` frames and score them on the next ``horizon`` frames.

    Returns ``(report, example)``: ``report`` the JSON-ready ``prediction`` block of
    ``metrics.json`` and ``example`` the sampled futures of the first video (numpy
    (num_samples, horizon, 3, S, S)).
    """
    from ..infer import match_predicted_slots, predict, prediction_metrics, selection_diversity

    if context < 1 or horizon < 1 or num_samples < 1:
        raise ValueError("context, horizon and num_samples must be positive")
    if context + horizon > batch.seq_len:
        raise ValueError(f"--context {context} + --horizon {horizon} needs sequences of at "
                         f"least {context + horizon} frames, got --seq-len {batch.seq_len}")
    device = next(vim.parameters()).device
    frames = batch.frames[:, :context + horizon]
    keys = ("frames", "positions", "selections", "context_positions")
    parts: Dict[str, list] = {k: [] for k in keys}
    for i in range(0, len(frames), chunk):
        ctx = torch.from_numpy(frames[i:i + chunk, :context]).to(device)
        pred = predict(vim, ctx, horizon, num_samples)
        for k in keys:
            parts[k].append(pred[k].cpu().numpy())
    pred = {k: np.concatenate(v, axis=1) for k, v in parts.items()}
    matching = match_predicted_slots(pred, batch.positions[:, context - 1])
    scores = prediction_metrics(pred, frames[:, context:],
                                batch.positions[:, context:context + horizon], matching)
    report = {
        "context": context,
        "horizon": horizon,
        "num_samples": num_samples,
        "mse": {"per_step_mean": scores["mse"].tolist(),
                "per_step_best": scores["mse_best"].tolist(),
                "mean": float(scores["mse"].mean()),
                "best": float(scores["mse_best"].mean())},
        "mse_per_pixel": {"per_step_mean": scores["mse_per_pixel"].tolist(),
                          "per_step_best": scores["mse_per_pixel_best"].tolist()},
        "position_error": {"per_step_mean": scores["position_error"].tolist(),
                           "per_step_best": scores["position_error_best"].tolist(),
                           "mean": float(np.nanmean(scores["position_error"]))
                           if np.isfinite(scores["position_error"]).any() else None,
                           "best": float(np.nanmean(scores["position_error_best"]))
                           if np.isfinite(scores["position_error_best"]).any() else None},
        "selection_diversity": selection_diversity(pred["selections"]),
        "note": "mean: over samples and sequences; best: per sequence the sample closest to the "
                "truth over the whole horizon; selection_diversity: fraction of sample pairs "
                "whose module choices differ",
    }
    return json_ready(report), pred["frames"][:, 0]
