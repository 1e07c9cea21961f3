"""Rule identification and tracking against sequence length, for a trained checkpoint.

    python benchmarks/long_sequences.py CKPT --lengths 10 20 50 100 --num-sequences 32

Held-out sequences of each length (data seed 3_000_000_000 + config.seed, as in
``python -m pyro_vim.evaluate``); prints one JSON line per length: rule-module accuracy, tracking
error (mean and on the last frame), where the errors come from (the median ball's error on the
last frame, and the share of balls ``lost``: farther than their radius from their slot on the
last frame), the accuracy on the first and on the last 9 transitions, and seconds.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim import metrics  # noqa: E402
from pyro_vim.evaluate import _infer_all, default_seed  # noqa: E402
from pyro_vim.models import load_model  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--lengths", type=int, nargs="+", default=[10, 20, 50, 100])
    p.add_argument("--num-sequences", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if any(t < 2 for t in args.lengths) or args.num_sequences < 1:
        raise SystemExit("error: lengths must be >= 2 and --num-sequences >= 1")
    vim = load_model(args.checkpoint).eval()
    gen = vim.config.make_generator()
    rows = []
    for t in args.lengths:
        start = time.time()
        batch = gen.generate(args.num_sequences, t, default_seed(vim.config))
        inf = _infer_all(vim, batch.frames, 64)
        report = metrics.identification_report(batch.moves, batch.positions, inf["masks"],
                                               inf["selections"], vim.config.num_modules,
                                               visible=batch.visible)
        errors = np.asarray(report["position_error"], dtype=float)
        # per ball, last frame: the slot matched on frame 0 vs the ball
        slot_pos = metrics.mask_centroids(inf["masks"][:, -1:])[:, 0]       # (N, K, 2)
        matching = np.asarray(report["matching"])
        ball = np.take_along_axis(slot_pos, matching[..., None].repeat(2, -1), 1)
        last = np.linalg.norm(ball - batch.positions[:, -1], axis=-1)       # (N, O)
        radius = np.asarray(batch.attributes["size"], dtype=float)
        window = min(9, t - 1)

        def accuracy(sl):                       # scored with the whole run's assignment
            return metrics.assignment_accuracy(
                metrics.selection_confusion(batch.moves[:, sl], inf["selections"][:, sl],
                                            matching, vim.config.num_modules),
                report["assignment"])

        # the frame where each lost ball's slot first strays beyond its radius, and whether
        # another ball was then within two radii of it (a crossing)
        all_pos = metrics.mask_centroids(inf["masks"])                     # (N, T, K, 2)
        track = np.take_along_axis(all_pos, matching[:, None, :, None].repeat(t, 1)
                                   .repeat(2, -1), 2)                     # (N, T, O, 2)
        err = np.linalg.norm(track - batch.positions, axis=-1)             # (N, T, O)
        gaps = np.linalg.norm(batch.positions[:, :, :, None] - batch.positions[:, :, None],
                              axis=-1)
        gaps = gaps + np.eye(gaps.shape[-1]) * 1e9
        crossing, lost_at = [], []
        for i, j in zip(*np.nonzero(last > radius)):
            f = int(np.argmax(err[i, :, j] > radius[i, j]))
            lost_at.append(f)
            crossing.append(bool(gaps[i, max(0, f - 1):f + 1, j].min() <= 2 * radius[i, j]))
        row = {"seq_len": t, "accuracy": report["rule_module_accuracy"],
               "track_accuracy": report["track_rule_module_accuracy"],
               "tracking_error_mean": report["mean_position_error"],
               "tracking_error_last_frame": float(errors[-1]),
               "median_error_last_frame": float(np.nanmedian(last)),
               "lost_last_frame": float(np.nanmean(last > radius)),
               "accuracy_first_transitions": accuracy(slice(0, window)),
               "accuracy_last_transitions": accuracy(slice(t - 1 - window, t - 1)),
               "lost_frames": lost_at,
               "lost_at_crossing": float(np.mean(crossing)) if crossing else None,
               "seconds": round(time.time() - start, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"checkpoint": os.path.abspath(args.checkpoint), "rows": rows,
              "num_sequences": args.num_sequences, "threads": torch.get_num_threads(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
                         f"{torch.__version__}"}
    return result


if __name__ == "__main__":
    main()
