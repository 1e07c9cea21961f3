"""The command line of the evaluation (``python -m pyro_vim.evaluate``).

Usage::

    python -m pyro_vim.evaluate CHECKPOINT --out DIR [--dataset random_walk|compositional|ood]
        [--num-sequences 32] [--seq-len 10] [--seed S] [--num-objects O] [--data FILE.npz]
        [--predict [--num-samples 8] [--context 3] [--horizon 5]] [--rollout-steps 5]
        [--compose K] [--transfer] [--device cpu]

writes ``DIR/metrics.json`` and the figures ``confusion.png``, ``module_rollouts.png``,
``reconstruction.png``, ``sequence.gif`` (and ``predictions.png`` with ``--predict``,
``compositions.png`` with ``--compose``, ``transfer.png`` with ``--transfer``).  The data are
generated with seed :func:`~pyro_vim.evaluate.default_seed` by default.  Bad input (missing or
foreign checkpoint, data of another image size, impossible options) prints ``error: ...`` on
stderr and exits with status 2 without writing anything; every file is written only once
everything has been computed, and ``metrics.json`` last, atomically
(:func:`pyro_vim.files.write_json`).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
from typing import Any, Dict, Optional, Sequence

import numpy as np
import pyro
import torch

from ..data import MOVES, VideoBatch
from ..files import json_ready, write_json
from .interactions import HORIZONS, interaction_metrics, is_bouncing
from .modules import fidelity_metrics
from .prediction import evaluate_predictions
from .scoring import evaluate_batch
from .seeds import DEFAULT_SEED_OFFSET, default_seed

__all__ = ["main", "UsageError"]


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
    p.add_argument("--dataset", choices=("random_walk", "compositional", "ood", "glyphs"),
                   default=None,
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
    from ..models import load_model

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
    from ..data import load_npz, make_dataset

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
    from .. import viz
    from ..infer import module_rollouts

    viz.plot_confusion(report["confusion"], report["module_usage"], rules=MOVES,
                       path=os.path.join(folder, "confusion.png"),
                       title=_accuracy_title(report))
    # one slot matched to a ball (object 0 of video 0), every module applied from frame 0
    # (not with a velocity in the state: module_rollouts starts from one frame)
    if not getattr(vim.config, "velocity", False):
        slot = int(inferred["matching"][0, 0])
        device = next(vim.parameters()).device
        rollout = module_rollouts(vim, torch.from_numpy(batch.frames[0, 0]).to(device), slot,
                                  args.rollout_steps)
        rule_of = {m: r for r, m in (report["assignment"] or {}).items()}
        labels = [f"module {m}" + (f" ({rule_of[m]})" if m in rule_of else "")
                  for m in range(vim.config.num_modules)]
        viz.plot_module_rollouts(rollout["renders"].cpu().numpy(),
                                 rollout["positions"].cpu().numpy(), labels=labels,
                                 path=os.path.join(folder, "module_rollouts.png"),
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
    from ..fidelity import (
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
    from .. import viz
    from ..infer import transfer
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
    ``--predict`` ``prediction`` (see :func:`evaluate_predictions`); on bouncing balls
    ``interactions`` (:func:`pyro_vim.evaluate.interactions.interaction_metrics`: rollouts
    after 2 context frames at the horizons 1, 5, 10, 20 that ``--seq-len`` allows, with
    ``--num-samples`` samples; collision attribution; free vs wall; baselines).
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
        if is_bouncing(batch) and batch.seq_len >= 3 and hasattr(vim, "transition"):
            # bouncing balls: rollouts after 2 context frames (the horizons of HORIZONS that
            # --seq-len allows: 22 frames give all four), attribution, free vs wall, baselines
            report["interactions"] = json_ready(interaction_metrics(
                vim, batch, 2, HORIZONS, args.num_samples))
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
