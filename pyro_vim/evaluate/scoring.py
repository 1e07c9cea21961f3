"""The Sec. 5.1 metrics of a model's inference on a ground-truth :class:`~pyro_vim.data.VideoBatch`.

:func:`evaluate_batch`: rule identification, tracking, reconstruction and segmentation (every
key of ``metrics.json`` but the fidelity and prediction blocks); :func:`identification`: the
identification report alone (used by the trainer).  The model's inference runs a chunk of
videos at a time (:func:`_infer_all`).
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np
import torch

from .. import metrics
from ..data import MOVES, VideoBatch
from ..files import json_ready

__all__ = ["evaluate_batch", "identification"]


@torch.no_grad()
def identification(vim, batch: VideoBatch, chunk: int = 64) -> Dict:
    """Run ``vim.infer`` on a ground-truth batch, score it with
    ``metrics.identification_report``; adds ``module_translation_px`` (M x 2, each module's
    mean translation of the slots matched to objects, in pixels)."""
    if not isinstance(batch, VideoBatch):
        raise TypeError(f"identification expects a VideoBatch, got {type(batch).__name__}")
    inf = _infer_all(vim, batch.frames, chunk)
    report = metrics.identification_report(batch.moves, batch.positions, inf["masks"],
                                           inf["selections"], vim.config.num_choices,
                                           visible=batch.visible)
    report["module_translation_px"] = _matched_translations(
        vim, inf["slots"], np.asarray(report["matching"]), inf.get("velocities"))
    return report


def _matched_translations(vim, slots: np.ndarray, matching: np.ndarray,
                          velocities=None) -> list:
    """Each module's mean translation (M x 2, pixels) of the slots (N, T, K, S) matched to
    objects (``matching`` (N, O)); ``velocities`` (N, T, K, 2) with a velocity."""
    from ..infer import module_translations

    def matched(x):
        n, t, _, s = x.shape
        index = np.broadcast_to(matching[:, None, :, None], (n, t, matching.shape[1], s))
        return torch.from_numpy(np.ascontiguousarray(np.take_along_axis(x, index, 2)))

    vel = None if velocities is None else matched(velocities)
    return module_translations(vim, matched(slots), vel).cpu().tolist()


@torch.no_grad()
def _infer_all(vim, frames: np.ndarray, chunk: int) -> Dict[str, np.ndarray]:
    device = next(vim.parameters()).device
    parts: Dict[str, list] = {}
    for i in range(0, len(frames), chunk):
        out = vim.infer(torch.from_numpy(frames[i:i + chunk]).to(device))
        for key in ("slots", "positions", "selections", "masks", "recon", "velocities"):
            if key in out:
                parts.setdefault(key, []).append(out[key].cpu().numpy())
    return {key: np.concatenate(v) for key, v in parts.items()}


def evaluate_batch(vim, batch: VideoBatch, chunk: int = 64):
    """Every Sec. 5.1 metric of ``vim`` on ``batch``.

    Returns ``(report, inferred)``: ``report`` a JSON-ready dict (see
    :func:`pyro_vim.evaluate.cli.main` for the keys; non-finite numbers become None) and
    ``inferred`` the numpy arrays of ``vim.infer`` on the whole batch (``slots``, ``positions``,
    ``selections``, ``masks``, ``recon``) plus ``matching`` (N, O).
    """
    if not isinstance(batch, VideoBatch):
        raise TypeError(f"evaluate_batch expects a VideoBatch, got {type(batch).__name__}")
    c = vim.config
    if batch.image_size != c.image_size:
        raise ValueError(f"the data are {batch.image_size}x{batch.image_size} images but the "
                         f"checkpoint's model was built for image_size={c.image_size}")
    if batch.seq_len < 2:
        raise ValueError(f"evaluation needs sequences of at least 2 frames, got {batch.seq_len}")
    if batch.num_objects > c.num_slots:
        raise ValueError(f"the data have {batch.num_objects} objects but the model only "
                         f"{c.num_slots} slots")
    inf = _infer_all(vim, batch.frames, chunk)
    n, t = batch.frames.shape[:2]
    # tracking: mask centroids, objects matched to slots on frame 0 and kept (Sec. 5.1)
    slot_pos = metrics.mask_centroids(inf["masks"])                     # (N, T, K, 2)
    matching = metrics.match_objects_to_slots(batch.positions[:, 0], slot_pos[:, 0])
    o = matching.shape[1]
    idx = np.broadcast_to(matching[:, None, :, None], (n, t, o, 2))
    err = metrics.position_error(np.take_along_axis(slot_pos, idx, axis=2), batch.positions)
    err_per_frame = metrics._finite_mean(err.transpose(1, 0, 2).reshape(t, -1), axis=1)
    # reconstruction: squared error summed over pixels and channels per frame (Table 1)
    se = ((inf["recon"].astype(np.float64) - batch.frames) ** 2).sum(axis=(2, 3, 4))  # (N, T)
    pixels = float(np.prod(batch.frames.shape[2:]))
    ari = metrics.adjusted_rand_index(batch.masks, inf["masks"])
    fg_ari = metrics.adjusted_rand_index(batch.masks, inf["masks"], foreground_only=True)
    matched_sel = np.take_along_axis(inf["selections"],
                                     np.broadcast_to(matching[:, None, :], (n, t - 1, o)), 2)
    report: Dict[str, Any] = {
        "rules": list(MOVES),
        "num_modules": c.num_modules,
        "num_slots": c.num_slots,
    }
    if batch.moves.shape[-1] == 1:
        ident = metrics.identification_report(batch.moves, batch.positions, inf["masks"],
                                              inf["selections"], c.num_choices,
                                              visible=batch.visible)
        report.update(
            rule_module_accuracy=ident["rule_module_accuracy"],
            track_rule_module_accuracy=ident["track_rule_module_accuracy"],
            tied_objects=ident["tied_objects"],
            confusion=ident["confusion"],
            assignment={MOVES[r]: m for r, m in sorted(ident["assignment"].items())},
            nmi=ident["nmi"],
            module_usage=ident["module_usage"],
        )
    else:
        report.update(
            rule_module_accuracy=None, track_rule_module_accuracy=None, confusion=None,
            assignment=None, nmi=None,
            module_usage=metrics.module_usage(matched_sel, c.num_choices).tolist(),
            note=(f"the data make up to {batch.moves.shape[-1]} moves per object between two "
                  "frames, so a selected module cannot be scored against a single rule: "
                  "rule_module_accuracy, confusion, assignment and nmi are not defined here; "
                  "module_usage counts the modules selected by the slots matched to objects"),
        )
    report.update(
        module_usage_all_slots=metrics.module_usage(inf["selections"], c.num_choices).tolist(),
        recon_mse={
            "per_frame": se.mean(0).tolist(),
            "mean": float(se.mean()),
            "std_over_sequences": float(se.mean(1).std()),
            "per_pixel": float(se.mean() / pixels),
            "per_pixel_per_frame": (se.mean(0) / pixels).tolist(),
        },
        position_error={
            "per_frame": err_per_frame.tolist(),
            "mean": float(metrics._finite_mean(err.reshape(-1))),
        },
        ari=float(metrics._finite_mean(ari.reshape(-1))),
        fg_ari=float(metrics._finite_mean(fg_ari.reshape(-1))),
    )
    report["module_translation_px"] = _matched_translations(vim, inf["slots"], matching)
    inf["matching"] = matching
    return json_ready(report), inf
