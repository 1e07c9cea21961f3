"""Evaluation of a trained VIM (Sec. 5.1): rule identification, tracking, reconstruction.

Library: :func:`identification` (used by the trainer), :func:`evaluate_batch` (every metric of a
checkpoint on one :class:`~pyro_vim.data.VideoBatch`), :func:`evaluate_predictions`.

Command line::

    python -m pyro_vim.evaluate CHECKPOINT --out DIR [--dataset random_walk|compositional|ood]
        [--num-sequences 32] [--seq-len 10] [--seed S] [--num-objects O] [--data FILE.npz]
        [--predict [--num-samples 8] [--context 3] [--horizon 5]] [--device cpu]

writes ``DIR/metrics.json`` and the figures ``confusion.png``, ``module_rollouts.png``,
``reconstruction.png``, ``sequence.gif`` (and ``predictions.png`` with ``--predict``).  The data
are generated with seed ``3_000_000_000 + config.seed`` by default, a seed that training
(``config.seed * 10_000_000 + step``) and the trainer's own evaluation
(``4_000_000_000 + config.seed``) never use.  Bad input (missing or foreign checkpoint, data of
another image size, impossible options) prints ``error: ...`` on stderr and exits with status 2
without writing anything; every file is written only once everything has been computed, and
``metrics.json`` last, atomically.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
from typing import Any, Dict, Optional, Sequence

import numpy as np
import pyro
import torch

from . import metrics
from .data import MOVE_VECTORS, MOVES, VideoBatch
from .files import json_ready, write_json

__all__ = ["identification", "evaluate_batch", "evaluate_predictions", "summary_metrics",
           "module_step_errors", "fidelity_metrics", "main", "DEFAULT_SEED_OFFSET", "default_seed"]

#: Default data seed = DEFAULT_SEED_OFFSET + config.seed (disjoint from the trainer's seeds).
DEFAULT_SEED_OFFSET = 3_000_000_000


def default_seed(config) -> int:
    """The default evaluation data seed of a config: never a training or trainer-eval seed."""
    return DEFAULT_SEED_OFFSET + int(config.seed)


@torch.no_grad()
def identification(vim, batch: VideoBatch, chunk: int = 64) -> Dict:
    """Run ``vim.infer`` on a ground-truth batch, score it with
    ``metrics.identification_report``; adds ``module_translation_px`` (M x 2, each module's
    mean translation of the slots matched to objects, in pixels)."""
    if not isinstance(batch, VideoBatch):
        raise TypeError(f"identification expects a VideoBatch, got {type(batch).__name__}")
    inf = _infer_all(vim, batch.frames, chunk)
    report = metrics.identification_report(batch.moves, batch.positions, inf["masks"],
                                           inf["selections"], vim.config.num_modules,
                                           visible=batch.visible)
    report["module_translation_px"] = _matched_translations(
        vim, inf["slots"], np.asarray(report["matching"]))
    return report


def _matched_translations(vim, slots: np.ndarray, matching: np.ndarray) -> list:
    """Each module's mean translation (M x 2, pixels) of the slots (N, T, K, S) matched to
    objects (``matching`` (N, O))."""
    from .infer import module_translations
    n, t, _, s = slots.shape
    index = np.broadcast_to(matching[:, None, :, None], (n, t, matching.shape[1], s))
    matched = torch.from_numpy(np.ascontiguousarray(np.take_along_axis(slots, index, 2)))
    return module_translations(vim, matched).cpu().tolist()


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
    ``prior_impossible_at_walls``.  Rollouts and calibration need a VIM."""
    assignment = report["assignment"]
    assignment = {(MOVES.index(r) if isinstance(r, str) else int(r)): int(m)
                  for r, m in assignment.items()}
    errors = module_step_errors(report["confusion"], assignment, report["module_translation_px"],
                                float(batch.config.get("step", 1)))
    out: Dict[str, Any] = {"module_step_error": errors,
                           "module_step_error_max": max(errors.values()) if errors else None}
    if not hasattr(vim, "transition") or batch.moves.shape[-1] != 1:
        return out
    from .fidelity import prior_calibration, rollout_errors
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


@torch.no_grad()
@torch.no_grad()
def _elbo_terms(vim, frames: np.ndarray, chunk: int = 32) -> Dict[str, float]:
    """Held-out ELBO terms per video (one posterior sample, Gaussian KL unscaled); no gradient
    is kept, so the model decodes long videos a few frames at a time.  The module-choice KL is
    the one the model trains with (``config.r_kl``): analytic between the categorical choices,
    or the Monte Carlo estimate on relaxed samples (whose single-sample values, differences of
    relaxed log-densities, can be large and of either sign)."""
    from .elbo import TermsELBO
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
    :func:`module_step_errors`) and its maximum ``module_step_error_max``, ``position_error``
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
                                    minlength=vim.config.num_modules).double()
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


# ------------------------------------------------------------------------------------------------
# Library
# ------------------------------------------------------------------------------------------------
@torch.no_grad()
def _infer_all(vim, frames: np.ndarray, chunk: int) -> Dict[str, np.ndarray]:
    device = next(vim.parameters()).device
    parts: Dict[str, list] = {}
    for i in range(0, len(frames), chunk):
        out = vim.infer(torch.from_numpy(frames[i:i + chunk]).to(device))
        for key in ("slots", "positions", "selections", "masks", "recon"):
            parts.setdefault(key, []).append(out[key].cpu().numpy())
    return {key: np.concatenate(v) for key, v in parts.items()}


def evaluate_batch(vim, batch: VideoBatch, chunk: int = 64):
    """Every Sec. 5.1 metric of ``vim`` on ``batch``.

    Returns ``(report, inferred)``: ``report`` a JSON-ready dict (see :func:`main` for the keys;
    non-finite numbers become None) and ``inferred`` the numpy arrays of ``vim.infer`` on the
    whole batch (``slots``, ``positions``, ``selections``, ``masks``, ``recon``) plus
    ``matching`` (N, O).
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
                                              inf["selections"], c.num_modules,
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
            module_usage=metrics.module_usage(matched_sel, c.num_modules).tolist(),
            note=(f"the data make up to {batch.moves.shape[-1]} moves per object between two "
                  "frames, so a selected module cannot be scored against a single rule: "
                  "rule_module_accuracy, confusion, assignment and nmi are not defined here; "
                  "module_usage counts the modules selected by the slots matched to objects"),
        )
    report.update(
        module_usage_all_slots=metrics.module_usage(inf["selections"], c.num_modules).tolist(),
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


@torch.no_grad()
def evaluate_predictions(vim, batch: VideoBatch, context: int, horizon: int,
                         num_samples: int, chunk: int = 16):
    """Sample futures after ``context`` frames and score them on the next ``horizon`` frames.

    Returns ``(report, example)``: ``report`` the JSON-ready ``prediction`` block of
    ``metrics.json`` and ``example`` the sampled futures of the first video (numpy
    (num_samples, horizon, 3, S, S)).
    """
    from .infer import match_predicted_slots, predict, prediction_metrics, selection_diversity

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


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------
class UsageError(Exception):
    """Bad input on the command line: reported on stderr, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pyro_vim.evaluate",
        description="Evaluate a trained VIM checkpoint: rule-module identification, tracking, "
                    "reconstruction, segmentation (and with --predict sampled futures); writes "
                    "DIR/metrics.json and figures.")
    p.add_argument("checkpoint", help="checkpoint file written by pyro_vim.train")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--dataset", choices=("random_walk", "compositional", "ood"), default=None,
                   help="generated evaluation data (default: the checkpoint's dataset)")
    p.add_argument("--data", default=None,
                   help="evaluate on a saved VideoBatch (.npz from pyro_vim.data) instead")
    p.add_argument("--num-sequences", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=10)
    p.add_argument("--num-objects", type=int, default=None,
                   help="objects per video (default: the checkpoint's num_objects)")
    p.add_argument("--seed", type=int, default=None,
                   help=f"data seed (default {DEFAULT_SEED_OFFSET} + config.seed)")
    p.add_argument("--predict", action="store_true", help="also sample and score futures")
    p.add_argument("--num-samples", type=int, default=8)
    p.add_argument("--context", type=int, default=3)
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--rollout-steps", type=int, default=5,
                   help="steps of each module's rollout in module_rollouts.png")
    p.add_argument("--compose", type=int, default=None, metavar="K",
                   help="also test VIM-K on Compositional Random Walk (1-5 moves per frame; "
                        "Fig. 5): composition errors by iteration, compositions.png")
    p.add_argument("--transfer", action="store_true",
                   help="also transfer the dynamics of unseen objects to known ones (Fig. 7): "
                        "transfer errors by horizon, transfer.png")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    return p


def _check_args(args) -> None:
    positive = [("--num-sequences", args.num_sequences), ("--seq-len", args.seq_len),
                ("--rollout-steps", args.rollout_steps)]
    if args.predict:
        positive += [("--num-samples", args.num_samples), ("--context", args.context),
                     ("--horizon", args.horizon)]
    if args.compose is not None:
        positive.append(("--compose", args.compose))
    for name, value in positive:
        if value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value}")
    if args.seq_len < 2 and args.data is None:
        raise UsageError(f"--seq-len must be at least 2, got {args.seq_len}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {args.seed}")
    if args.data is not None and args.dataset is not None:
        raise UsageError("give either --dataset or --data, not both")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out!r} exists and is not a folder")


def _load(args):
    from .models import load_model

    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        raise UsageError(f"bad --device {args.device!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was given but CUDA is not available")
    try:
        vim = load_model(args.checkpoint, map_location="cpu")
    except FileNotFoundError as e:
        raise UsageError(f"cannot load checkpoint: {e}") from None
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        raise UsageError(f"cannot load checkpoint {args.checkpoint!r}: {e}") from None
    if getattr(vim, "supports_identification", True) is False:
        raise UsageError(
            f"{args.checkpoint!r} holds a {vim.config.model!r} model, which has no slot "
            "positions or module selections for this command to score; score its "
            "reconstruction with pyro_vim.baselines.table1.table1_metrics (or python -m "
            "pyro_vim.run table1, which records it in metrics.json)")
    return vim.to(device).eval()


def _load_batch(args, config) -> VideoBatch:
    from .data import load_npz, make_dataset

    if args.data is not None:
        try:
            batch = load_npz(args.data)
        except (OSError, ValueError, KeyError) as e:
            raise UsageError(f"cannot load --data {args.data!r}: {e}") from None
        if batch.image_size != config.image_size:
            raise UsageError(f"--data {args.data!r} holds {batch.image_size}x{batch.image_size} "
                             f"frames but the checkpoint's model was built for image_size="
                             f"{config.image_size}")
        if batch.seq_len < 2:
            raise UsageError(f"--data {args.data!r} has sequences of {batch.seq_len} frame(s); "
                             "evaluation needs at least 2")
        if batch.num_sequences == 0:
            raise UsageError(f"--data {args.data!r} holds no sequences (an empty batch)")
        if not np.isfinite(batch.frames).all():
            raise UsageError(f"--data {args.data!r} has NaN or inf pixel values; frames must "
                             "be float32 in [0, 1]")
        if batch.frames.min() < 0 or batch.frames.max() > 1:
            raise UsageError(f"--data {args.data!r} has pixel values outside [0, 1] (got "
                             f"[{batch.frames.min():.3g}, {batch.frames.max():.3g}])")
    else:
        name = args.dataset or config.data.name
        objects = config.data.num_objects if args.num_objects is None else args.num_objects
        seed = default_seed(config) if args.seed is None else args.seed
        try:
            # the checkpoint's data settings (step, radius, colours, ...), on the chosen dataset
            data = dataclasses.replace(config.data, name=name, num_objects=objects)
            gen = make_dataset(name, **data.generator_kwargs(config.image_size))
            batch = gen.generate(args.num_sequences, args.seq_len, seed)
        except (TypeError, ValueError) as e:
            raise UsageError(f"cannot generate the {name!r} data: {e}") from None
    if batch.num_objects > config.num_slots:
        raise UsageError(f"the data have {batch.num_objects} objects per video but the model "
                         f"has only {config.num_slots} slots")
    if args.predict and args.context + args.horizon > batch.seq_len:
        raise UsageError(f"--context {args.context} + --horizon {args.horizon} needs sequences "
                         f"of at least {args.context + args.horizon} frames, got "
                         f"{batch.seq_len} (raise --seq-len)")
    return batch


def _render_figures(folder: str, vim, batch: VideoBatch, report: Dict, inferred: Dict,
                    predictions, args) -> None:
    from . import viz
    from .infer import module_rollouts

    viz.plot_confusion(report["confusion"], report["module_usage"], rules=MOVES,
                       path=os.path.join(folder, "confusion.png"),
                       title=_accuracy_title(report))
    # one slot matched to a ball (object 0 of video 0), every module applied from frame 0
    slot = int(inferred["matching"][0, 0])
    device = next(vim.parameters()).device
    rollout = module_rollouts(vim, torch.from_numpy(batch.frames[0, 0]).to(device), slot,
                              args.rollout_steps)
    rule_of = {m: r for r, m in (report["assignment"] or {}).items()}
    labels = [f"module {m}" + (f" ({rule_of[m]})" if m in rule_of else "")
              for m in range(vim.config.num_modules)]
    viz.plot_module_rollouts(rollout["renders"].cpu().numpy(), rollout["positions"].cpu().numpy(),
                             labels=labels, path=os.path.join(folder, "module_rollouts.png"),
                             title=f"slot {slot} (matched to object 0 of video 0)")
    viz.plot_reconstruction(batch.frames[0], inferred["recon"][0], inferred["masks"][0],
                            max_frames=min(batch.seq_len, 10),
                            path=os.path.join(folder, "reconstruction.png"))
    viz.save_gif([batch.frames[0], inferred["recon"][0]], os.path.join(folder, "sequence.gif"))
    if predictions is not None:
        c, h = args.context, args.horizon
        viz.plot_predictions(batch.frames[0, :c], batch.frames[0, c:c + h], predictions,
                             max_samples=args.num_samples,
                             path=os.path.join(folder, "predictions.png"))


def _compose_and_transfer(vim, config, args, seed: int) -> Dict[str, Any]:
    """``--compose K`` and ``--transfer``: Figs. 5 and 7 on held-out data of this seed."""
    from .fidelity import (
        composition_errors,
        composition_test_batch,
        transfer_errors,
        transfer_test_batch,
    )
    out: Dict[str, Any] = {}
    length = max(2, args.seq_len)
    try:
        if args.compose is not None:
            batch = composition_test_batch(config, args.num_sequences, length, seed)
            out["composition"] = json_ready(composition_errors(vim, batch, args.compose))
            out["_composition_batch"] = batch
        if args.transfer:
            targets = transfer_test_batch(config, args.num_sequences, length, seed)
            if targets.num_sequences == 0:
                raise UsageError("no unseen-object video could be drawn with known objects")
            out["transfer"] = json_ready(transfer_errors(vim, targets, config.make_generator()))
            out["_transfer_batch"] = targets
    except ValueError as e:
        raise UsageError(f"cannot run --compose/--transfer on this model's data: {e}") from None
    return out


def _render_extra_figures(folder: str, vim, extra: Dict[str, Any]) -> None:
    from . import viz
    from .infer import transfer
    device = next(vim.parameters()).device
    if "_composition_batch" in extra:
        batch = extra["_composition_batch"][:4]
        k = extra["composition"]["iterations"]
        out = vim.infer(torch.from_numpy(batch.frames).to(device), iterations=k)
        iteration_frames = vim.render(out["iteration_slots"][:, 0]).cpu().numpy()
        rows, titles = viz.composition_rows(batch.frames[:, :2], iteration_frames)
        viz.plot_image_rows(rows, titles, path=os.path.join(folder, "compositions.png"),
                            title=f"VIM-{k}: the frame after each iteration (first transition)")
    if "_transfer_batch" in extra:
        targets = extra["_transfer_batch"][:2]
        gen = vim.config.make_generator()
        source = gen.render(targets.positions[:, 0])
        out = transfer(vim, torch.from_numpy(targets.frames).to(device),
                       torch.from_numpy(source).to(device))
        frames = out["frames"].cpu().numpy()
        rows = []
        for n in range(targets.num_sequences):
            rows.append((f"target {n}", targets.frames[n]))
            rows.append((f"transferred {n}", np.concatenate([source[n:n + 1], frames[n]], 0)))
        viz.plot_image_rows(rows, [f"t={t}" for t in range(targets.seq_len)],
                            path=os.path.join(folder, "transfer.png"),
                            title="dynamics of unseen objects replayed on known objects")


def _accuracy_title(report: Dict) -> Optional[str]:
    acc = report.get("rule_module_accuracy")
    return None if acc is None else f"rule-module accuracy {acc:.3f}, NMI {report['nmi']:.3f}"


def _write_outputs(out_dir: str, metrics_json: Dict, render) -> None:
    """Render into a private temporary folder, then move everything into ``out_dir``;
    ``metrics.json`` last, atomically."""
    tmp = tempfile.mkdtemp(prefix="pyro-vim-eval-")
    try:
        render(tmp)
        os.makedirs(out_dir, exist_ok=True)
        for name in sorted(os.listdir(tmp)):
            shutil.move(os.path.join(tmp, name), os.path.join(out_dir, name))
        write_json(os.path.join(out_dir, "metrics.json"), metrics_json, indent=2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input).

    ``metrics.json`` keys: ``checkpoint``, ``dataset``, ``num_sequences``, ``seq_len``, ``seed``,
    ``num_objects``, ``image_size``, ``num_slots``, ``num_modules``, ``rules``;
    ``rule_module_accuracy``, ``confusion`` (4 x M counts, rows ``rules``), ``assignment``
    (rule -> module), ``nmi``, ``track_rule_module_accuracy`` (balls matched to slots on their
    visible tracks instead of on frame 0; all None with a ``note`` when objects make several
    moves per step); ``module_usage`` (M, the slots matched to objects), ``module_usage_all_slots``;
    ``recon_mse`` {``per_frame`` (T, squared error summed over pixels and channels, mean over
    sequences), ``mean``, ``std_over_sequences``, ``per_pixel``, ``per_pixel_per_frame``};
    ``position_error`` {``per_frame`` (T, pixels), ``mean``}; ``ari``, ``fg_ari``;
    ``module_translation_px`` (M x 2, each module's mean (x, y) translation of the matched
    slots, in pixels); on atomic data the fidelity metrics of :func:`fidelity_metrics`
    (``module_step_error``, ``rollout_error``, ``prior_calibration`` and their headlines); with
    ``--predict`` ``prediction`` (see :func:`evaluate_predictions`).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        _check_args(args)
        vim = _load(args)
        c = vim.config
        batch = _load_batch(args, c)
        seed = default_seed(c) if args.seed is None else args.seed
        pyro.set_rng_seed(seed % 2 ** 32)
        report, inferred = evaluate_batch(vim, batch)
        if report.get("confusion") is not None:
            report.update(json_ready(fidelity_metrics(vim, batch, report)))
        extra = _compose_and_transfer(vim, c, args, seed)
        report.update({k: v for k, v in extra.items() if not k.startswith("_")})
        predictions = None
        if args.predict:
            report["prediction"], predictions = evaluate_predictions(
                vim, batch, args.context, args.horizon, args.num_samples)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    header = {
        "checkpoint": os.path.abspath(args.checkpoint),
        "dataset": batch.config.get("name") if args.data else (args.dataset or c.data.name),
        "data": os.path.abspath(args.data) if args.data else None,
        "num_sequences": batch.num_sequences,
        "seq_len": batch.seq_len,
        "seed": batch.config.get("seed") if args.data else seed,
        "num_objects": batch.num_objects,
        "image_size": batch.image_size,
    }
    metrics_json = json_ready({**header, **report})

    def render(folder):
        _render_figures(folder, vim, batch, report, inferred, predictions, args)
        _render_extra_figures(folder, vim, extra)

    _write_outputs(args.out, metrics_json, render)
    print(f"wrote {os.path.join(args.out, 'metrics.json')}"
          + ("" if report["rule_module_accuracy"] is None
             else f" (rule-module accuracy {report['rule_module_accuracy']:.3f}; balls matched "
                  f"on their tracks {report['track_rule_module_accuracy']:.3f})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
