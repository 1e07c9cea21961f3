"""The per-run numbers: held-out ELBO terms, the runner's summary, reconstruction without truth.

:func:`summary_metrics`: what the experiment runner records in ``metrics.json``'s ``metrics``
(identification, tracking, reconstruction, ELBO terms, module fidelity);
:func:`reconstruction_metrics`: what can be scored on videos without ground truth (the
trainer's evaluation on recorded data); :func:`_elbo_terms`: the held-out ELBO terms both use.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np
import torch

from ..data import MOVES, VideoBatch
from ..files import json_ready
from .modules import fidelity_metrics
from .scoring import evaluate_batch

__all__ = ["summary_metrics", "reconstruction_metrics"]


@torch.no_grad()
def _elbo_terms(vim, frames: np.ndarray, chunk: int = 32) -> Dict[str, float]:
    """Held-out ELBO terms per video (one posterior sample, Gaussian KL unscaled); no gradient
    is kept, so the model decodes long videos a few frames at a time.  The module-choice KL is
    the one the model trains with (``config.r_kl``): analytic between the categorical choices,
    or the Monte Carlo estimate on relaxed samples (whose single-sample values, differences of
    relaxed log-densities, can be large and of either sign)."""
    from ..elbo import TermsELBO
    device = next(vim.parameters()).device
    weight, vim.z_kl_weight = getattr(vim, "z_kl_weight", 1.0), 1.0
    totals: Dict[str, float] = {}
    try:
        for i in range(0, len(frames), chunk):
            part = torch.from_numpy(frames[i:i + chunk]).to(device)
            elbo = TermsELBO(categorical_r=getattr(vim.config, "r_kl", "sample") == "categorical")
            _, terms = elbo.loss_and_terms(vim.model, vim.guide, part)
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + v * len(part)
    finally:
        vim.z_kl_weight = weight
    return {k: v / len(frames) for k, v in totals.items()}


def summary_metrics(vim, batch: VideoBatch, fidelity: bool = True,
                    calibration_sequences: int = 32) -> Dict[str, Any]:
    """The per-run numbers the experiment runner records (``metrics.json``'s ``metrics``).

    ``rule_module_accuracy`` (balls matched to slots on frame 0, the paper's; ties between
    balls on one pixel broken by their tracks), ``tied_objects`` (how many such balls),
    ``track_rule_module_accuracy`` (matched on their visible tracks,
    :func:`pyro_vim.metrics.match_tracks_to_slots`), ``nmi``, ``confusion`` (4 x M),
    ``module_usage``, ``rules``,
    ``module_translation_px`` (M x 2), ``module_step_error`` (rule -> px, see
    :func:`~pyro_vim.evaluate.modules.module_step_errors`) and its maximum
    ``module_step_error_max``, ``position_error``
    (tracking, px), ``recon_mse`` (squared error per frame, summed over pixels and channels),
    ``recon_mse_per_pixel``, and the held-out ELBO terms per transition step ``kl_z`` and
    ``kl_r`` (and ``nll_x`` = -log p(x | z) per frame).  With ``fidelity`` (VIM, atomic data):
    ``rollout_error`` (:func:`pyro_vim.fidelity.rollout_errors`, up to 7 steps) and its mean
    ``rollout_error_mean``, and ``prior_calibration`` (:func:`pyro_vim.fidelity.prior_calibration`
    on the first ``calibration_sequences`` videos, 32 samples each) with its headline numbers
    ``prior_max_deviation`` and ``prior_impossible_at_walls``."""
    report, _ = evaluate_batch(vim, batch)
    steps = batch.seq_len - 1
    terms = _elbo_terms(vim, batch.frames)
    out: Dict[str, Any] = {
        "rules": list(MOVES),
        "position_error": report["position_error"]["mean"],
        "recon_mse": report["recon_mse"]["mean"],
        "recon_mse_per_pixel": report["recon_mse"]["per_pixel"],
        "nll_x": terms.get("recon", float("nan")) / batch.seq_len,
        "kl_z": terms.get("kl_z", float("nan")) / steps,
        "kl_r": terms.get("kl_r", float("nan")) / steps,
        "module_translation_px": report["module_translation_px"],
    }
    if report.get("confusion") is not None:
        out.update(rule_module_accuracy=report["rule_module_accuracy"], nmi=report["nmi"],
                   track_rule_module_accuracy=report["track_rule_module_accuracy"],
                   tied_objects=report["tied_objects"],
                   confusion=report["confusion"], module_usage=report["module_usage"])
        out.update(fidelity_metrics(vim, batch, report, rollout=fidelity,
                                    calibration=fidelity,
                                    calibration_sequences=calibration_sequences))
    return json_ready(out)


@torch.no_grad()
def reconstruction_metrics(vim, frames: np.ndarray, chunk: int = 32) -> Dict[str, Any]:
    """What can be scored on videos without ground truth (a researcher's recorded data):
    ``recon_mse`` (the inference model's squared error per frame, summed over pixels and
    channels), ``recon_mse_per_pixel``, the held-out ELBO terms per transition step ``kl_z`` /
    ``kl_r``, ``nll_x`` per frame, and the ``module_usage`` of the guide's choices."""
    device = next(vim.parameters()).device
    errors, usage = [], None
    for i in range(0, len(frames), chunk):
        part = torch.from_numpy(frames[i:i + chunk]).to(device)
        out = vim.infer(part)
        errors.append(((out["recon"] - part) ** 2).sum((-3, -2, -1)).cpu())
        if "selections" in out:
            counts = torch.bincount(out["selections"].reshape(-1).cpu(),
                                    minlength=vim.config.num_choices).double()
            usage = counts if usage is None else usage + counts
    per_frame = torch.cat(errors)
    pixels = frames.shape[-1] * frames.shape[-2] * frames.shape[-3]
    terms = _elbo_terms(vim, frames)
    steps, length = frames.shape[1] - 1, frames.shape[1]
    out = {"accuracy": None, "recon_mse": float(per_frame.mean()),
           "recon_mse_per_pixel": float(per_frame.mean()) / pixels,
           "nll_x": terms.get("recon", float("nan")) / length,
           "kl_z": terms.get("kl_z", float("nan")) / steps,
           "kl_r": terms.get("kl_r", float("nan")) / steps}
    if usage is not None:
        out["module_usage"] = (usage / usage.sum()).tolist()
    return out
