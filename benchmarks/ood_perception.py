"""Where does a checkpoint perceive unseen objects badly?  Frame-0 slot errors on Fig. 7's
held-out targets (unseen shapes, sizes and colours), grouped by shape and size and by colour.

    python benchmarks/ood_perception.py CKPT [--num-sequences 64] [--seed 3000000000]

Prints, per (shape, size), per colour and for dim (brightest channel <= 0.5) and bright
colours: the number of objects, the median distance from the object to its frame-0 matched slot
(decoded-mask centroid), the share farther than 2 px, and the mean share of the object's visible
pixels that the background slot (slot 0) wins on frame 0; then the background slot's learned
starting colour.
"""
import argparse

import numpy as np
import torch

from pyro_vim import metrics
from pyro_vim.data import SHAPES
from pyro_vim.evaluate import _infer_all
from pyro_vim.fidelity import transfer_test_batch
from pyro_vim.models import load_model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--num-sequences", type=int, default=64)
    ap.add_argument("--seed", type=int, default=3_000_000_000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.num_sequences < 1:
        ap.error("--num-sequences must be >= 1")
    torch.set_num_threads(args.threads)
    vim = load_model(args.checkpoint).eval()
    b = transfer_test_batch(vim.config, args.num_sequences, 2, args.seed)
    inf = _infer_all(vim, b.frames, 16)
    slots = metrics.mask_centroids(inf["masks"][:, :1])[:, 0]                 # (N, K, 2)
    match = metrics.match_objects_to_slots(b.positions[:, 0], slots)
    err = np.linalg.norm(np.take_along_axis(slots, match[..., None].repeat(2, -1), 1)
                         - b.positions[:, 0], axis=-1).reshape(-1)            # (N * O,)
    winner = inf["masks"][:, 0].argmax(1)                                    # (N, H, W)
    objects = b.masks[:, 0]                                                  # (N, O, H, W)
    visible = objects.reshape(*objects.shape[:2], -1).sum(-1).reshape(-1)
    to_bg = ((objects & (winner[:, None] == 0)).reshape(*objects.shape[:2], -1).sum(-1)
             .reshape(-1) / np.maximum(visible, 1))
    groups = {}
    shape, size = b.attributes["shape"].reshape(-1), b.attributes["size"].reshape(-1)
    for s, z in sorted(set(zip(shape.tolist(), size.tolist()))):
        groups[f"{SHAPES[s]} {z}"] = (shape == s) & (size == z)
    colour = b.attributes["color"].reshape(-1, 3)
    for c in np.unique(colour, axis=0):
        groups["colour " + str(np.round(c, 2).tolist())] = (colour == c).all(-1)
    summary = {"dim colours": colour.max(-1) <= 0.5, "bright colours": colour.max(-1) > 0.5}
    out, printed = {}, {}
    for name, sel in [*groups.items(), *summary.items()]:
        if not sel.any():
            continue
        seen = sel & (visible > 0)
        row = {"objects": int(sel.sum()), "median_px": float(np.median(err[sel])),
               "over_2px": float((err[sel] > 2).mean()),
               "won_by_background": float(to_bg[seen].mean()) if seen.any() else float("nan")}
        (out if name in groups else printed)[name] = row
        print(f"{name}: {row['objects']} objects, median {row['median_px']:.2f} px, > 2 px "
              f"{row['over_2px']:.2f}, pixels won by the background slot "
              f"{row['won_by_background']:.2f}")
    start = vim.slot_attention.init_colour[0].detach().tolist()
    print("background slot's learned starting colour", [round(v, 2) for v in start])
    return out      # per kind and per colour (the dim / bright summary is printed only)


if __name__ == "__main__":
    main()
