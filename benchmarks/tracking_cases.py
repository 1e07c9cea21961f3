"""How tracks are lost, case by case, on the held-out sequences of ``python -m pyro_vim.evaluate``
(data seed 3_000_000_000 + config.seed).

    python benchmarks/tracking_cases.py CKPT --what lost [--num-sequences 32 --seq-len 100]
    python benchmarks/tracking_cases.py CKPT --what coincident [--num-sequences 64 --seq-len 11]
    python benchmarks/tracking_cases.py CKPT --what visibility [--num-sequences 64 --seq-len 11]

``lost``: every ball whose frame-0 slot ends farther than its radius from it; the frame where it
strayed, and for the frames around it the ball's visible area (pixels), the distance to the
nearest other ball and the slot's distance from the ball.
``coincident``: the videos whose first frame has two balls on one pixel; per frame (first 5), the
balls' positions and visible areas, each slot's mask centroid and area, and the selections.
``visibility``: the tracking error of every ball on every frame, binned by the share of the ball
that is visible (its visible area over its largest area in the video), for the matched slot's
decoded-mask centroid (what ``position_error`` scores) and for its latent position.
``--reseed on|off`` and ``--hold on|off`` override the checkpoint's occlusion settings.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim import metrics  # noqa: E402
from pyro_vim.evaluate import _infer_all, default_seed  # noqa: E402
from pyro_vim.models import load_model  # noqa: E402


def track_errors(batch, slot_positions, match):
    """(N, T, O) distance from each ball to its frame-0-matched slot's position."""
    t = batch.positions.shape[1]
    idx = match[:, None, :, None].repeat(t, 1).repeat(2, -1)
    track = np.take_along_axis(slot_positions, idx, 2)
    return np.linalg.norm(track - batch.positions, axis=-1)


def lost(batch, inf, match):
    n, t, o = batch.positions.shape[:3]
    err = track_errors(batch, metrics.mask_centroids(inf["masks"]), match)       # (N, T, O)
    area = batch.masks.reshape(n, t, o, -1).sum(-1)
    p = batch.positions
    near = (np.linalg.norm(p[:, :, :, None] - p[:, :, None], axis=-1) + np.eye(o) * 1e9).min(-1)
    radius = np.asarray(batch.attributes["size"], dtype=float)
    cases = []
    for i, j in zip(*np.nonzero(err[:, -1] > radius)):
        f = int(np.argmax(err[i, :, j] > radius[i, j]))
        lo, hi = max(0, f - 3), min(t, f + 2)
        case = {"video": int(i), "ball": int(j), "lost_at": f,
                "visible_px": area[i, lo:hi, j].tolist(),
                "nearest_ball_px": np.round(near[i, lo:hi, j], 1).tolist(),
                "slot_error_px": np.round(err[i, lo:hi, j], 1).tolist()}
        cases.append(case)
        print(case)
    print(f"{len(cases)} of {n * o} balls lost on the last frame")
    return cases


VISIBLE_BINS = ((1.0, 1.0), (0.8, 1.0), (0.5, 0.8), (0.0, 0.5))


def visibility(batch, inf, match):
    n, t, o = batch.positions.shape[:3]
    errors = {"centroid": track_errors(batch, metrics.mask_centroids(inf["masks"]), match),
              "latent": track_errors(batch, inf["positions"], match)}
    area = batch.masks.reshape(n, t, o, -1).sum(-1).astype(float)
    visible = area / np.maximum(area.max(axis=1, keepdims=True), 1.0)
    rows = []
    for lo, hi in VISIBLE_BINS:
        sel = visible >= 1.0 if lo == hi else (visible >= lo) & (visible < hi)
        row = {"visible": f"{lo:.1f}" if lo == hi else f"[{lo:.1f}, {hi:.1f})",
               "share": float(sel.mean())}
        for name, err in errors.items():
            row[f"{name}_error_px"] = float(np.nanmean(err[sel])) if sel.any() else float("nan")
        rows.append(row)
        print(f"visible {row['visible']:>10}: share {row['share']:.3f}  mask-centroid error "
              f"{row['centroid_error_px']:.2f} px  latent-position error "
              f"{row['latent_error_px']:.2f} px")
    return rows


def coincident(batch, inf, match, frames=5):
    o = batch.num_objects
    p0 = batch.positions[:, 0]
    gap = np.linalg.norm(p0[:, :, None] - p0[:, None], axis=-1) + np.eye(o) * 1e9
    videos = np.nonzero(gap.min((1, 2)) == 0)[0]
    cent = metrics.mask_centroids(inf["masks"])
    area = inf["masks"].reshape(*inf["masks"].shape[:3], -1).sum(-1)
    out = []
    for i in videos:
        rows = []
        for t in range(min(frames, batch.seq_len)):
            row = {"t": t, "balls": batch.positions[i, t].astype(int).tolist(),
                   "visible_px": batch.masks[i, t].reshape(o, -1).sum(-1).tolist(),
                   "slots": np.round(cent[i, t], 1).tolist(),
                   "slot_area_px": np.round(area[i, t], 1).tolist()}
            if t < batch.seq_len - 1:
                row["selections"] = inf["selections"][i, t].tolist()
            rows.append(row)
            print(f"video {i}", row)
        out.append({"video": int(i), "matching": match[i].tolist(), "frames": rows})
    print(f"{len(videos)} videos start with two balls on one pixel")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--what", choices=("lost", "coincident", "visibility"), required=True)
    ap.add_argument("--num-sequences", type=int, default=None)
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--reseed", choices=("on", "off"), default=None)
    ap.add_argument("--hold", choices=("on", "off"), default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    n = args.num_sequences or (32 if args.what == "lost" else 64)
    t = args.seq_len or (100 if args.what == "lost" else 11)
    if n < 1 or t < 2:
        ap.error("--num-sequences must be >= 1 and --seq-len >= 2")
    torch.set_num_threads(args.threads)
    vim = load_model(args.checkpoint).eval()
    c = vim.config
    if args.reseed:
        c.reseed = args.reseed == "on"
    if args.hold:
        c.hold_hidden = args.hold == "on"
    batch = c.make_generator().generate(n, t, default_seed(c))
    inf = _infer_all(vim, batch.frames, 16)
    rep = metrics.identification_report(batch.moves, batch.positions, inf["masks"],
                                        inf["selections"], c.num_modules)
    match = np.asarray(rep["matching"])
    print(f"accuracy {rep['rule_module_accuracy']:.4f}")
    what = {"lost": lost, "coincident": coincident, "visibility": visibility}[args.what]
    return what(batch, inf, match)


if __name__ == "__main__":
    main()
