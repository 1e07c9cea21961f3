"""Tracking through occlusion: a checkpoint evaluated with and without the guide's occlusion
mechanisms (``hold_hidden``: a slot that wins almost no pixel keeps its position and colour;
``reseed``: a duplicated slot restarts on pixels no slot explains; ``reseed_median``: so does an
object slot that holds the frame's median colour, a second background).

    python benchmarks/occlusion.py CKPT --lengths 11 100 [--num-sequences 64 32] [--threads 1]

The options change the guide's tracking only, so a checkpoint trained without them can be
evaluated with them.  For every length and each of the five settings (the four on/off
combinations of the first two with ``reseed_median`` off, then all three on), on the held-out
sequences of ``python -m pyro_vim.evaluate`` (data seed 3_000_000_000 + config.seed): the
rule-module accuracy, the same without the videos whose first frame has two balls on one pixel
(one hidden, so frame-0 matching cannot tell which slot is whose), the accuracy with balls
matched on their visible tracks, the mean tracking error, and the share of balls whose frame-0
slot ends farther than their radius from them (lost).  One JSON line per (length, setting).
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

SETTINGS = ((False, False, False), (True, False, False), (False, True, False),
            (True, True, False), (True, True, True))


def score(vim, batch):
    """Accuracy, accuracy without coincident-start videos, tracking error, lost share."""
    c = vim.config
    inf = _infer_all(vim, batch.frames, 16)
    rep = metrics.identification_report(batch.moves, batch.positions, inf["masks"],
                                        inf["selections"], c.num_modules,
                                        visible=batch.visible)
    match = np.asarray(rep["matching"])
    pos0 = batch.positions[:, 0]
    o = pos0.shape[1]
    gap = np.linalg.norm(pos0[:, :, None] - pos0[:, None], axis=-1) + np.eye(o) * 1e9
    clean = gap.min((1, 2)) > 0
    clean_acc = metrics.assignment_accuracy(
        metrics.selection_confusion(batch.moves[clean], inf["selections"][clean], match[clean],
                                    c.num_modules), rep["assignment"])
    last = metrics.mask_centroids(inf["masks"][:, -1:])[:, 0]
    ball = np.take_along_axis(last, match[..., None].repeat(2, -1), 1)
    dist = np.linalg.norm(ball - batch.positions[:, -1], axis=-1)
    radius = np.asarray(batch.attributes["size"], dtype=float)
    return {"accuracy": rep["rule_module_accuracy"], "accuracy_without_coincident": clean_acc,
            "coincident_videos": int((~clean).sum()),
            "track_accuracy": rep["track_rule_module_accuracy"],
            "tracking_error_mean": rep["mean_position_error"],
            "lost_last_frame": float(np.nanmean(dist > radius))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--lengths", type=int, nargs="+", default=[11, 100])
    p.add_argument("--num-sequences", type=int, nargs="+", default=[64, 32],
                   help="one count, or one per length")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    counts = args.num_sequences
    if len(counts) == 1:
        counts = counts * len(args.lengths)
    if len(counts) != len(args.lengths):
        p.error("--num-sequences takes one count or one per length")
    if any(t < 2 for t in args.lengths) or any(n < 1 for n in counts):
        p.error("lengths must be >= 2 and counts >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    vim = load_model(args.checkpoint).eval()
    names = ("hold_hidden", "reseed", "reseed_median")
    trained = {name: getattr(vim.config, name) for name in names}
    rows = []
    try:
        for t, n in zip(args.lengths, counts):
            batch = vim.config.make_generator().generate(n, t, default_seed(vim.config))
            for setting in SETTINGS:
                start = time.time()
                for name, value in zip(names, setting):
                    setattr(vim.config, name, value)
                row = {"seq_len": t, "num_sequences": n, **dict(zip(names, setting)),
                       **score(vim, batch), "seconds": round(time.time() - start, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        for name, value in trained.items():
            setattr(vim.config, name, value)
    return {"checkpoint": os.path.abspath(args.checkpoint), "trained_with": trained,
            "rows": rows, "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
                                     f"{torch.__version__}"}


if __name__ == "__main__":
    main()
