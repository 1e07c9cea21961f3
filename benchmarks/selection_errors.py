"""Where does a checkpoint's rule-module accuracy go?  Per-ball wrong selections on the
held-out set of ``python -m pyro_vim.evaluate`` (data seed 3_000_000_000 + config.seed).

    python benchmarks/selection_errors.py CKPT [--num-sequences 64 --seq-len 11]

Prints the accuracy, how the wrong selections spread over the balls (histogram of wrong
selections per ball), for the balls with >= 3 wrong selections their slot's distance on frame 0
and the distance to the nearest other ball on frame 0, and the accuracy (same rule-module
assignment) without the videos whose first frame has two balls on the same pixel (one hidden
behind the other, so that no model can tell which is which), and the accuracy with balls matched
to slots on their visible tracks instead (``track_rule_module_accuracy``). ``accuracy`` breaks
the frame-0 ties between balls on one pixel by their tracks (as ``evaluate`` does);
``accuracy_frame0_ties_by_slot_order`` leaves them to the slots' order, as the matching did
before that.
"""
import argparse

import numpy as np
import torch

from pyro_vim import metrics
from pyro_vim.evaluate import _infer_all, default_seed
from pyro_vim.models import load_model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--num-sequences", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=11)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.num_sequences < 1 or args.seq_len < 2:
        ap.error("--num-sequences must be >= 1 and --seq-len >= 2")
    torch.set_num_threads(args.threads)
    vim = load_model(args.checkpoint).eval()
    c = vim.config
    batch = c.make_generator().generate(args.num_sequences, args.seq_len, default_seed(c))
    inf = _infer_all(vim, batch.frames, 64)
    rep = metrics.identification_report(batch.moves, batch.positions, inf["masks"],
                                        inf["selections"], c.num_modules,
                                        visible=batch.visible)
    assign = {(metrics.MOVES.index(r) if isinstance(r, str) else int(r)): int(m)
              for r, m in rep["assignment"].items()}
    match = np.asarray(rep["matching"])                                   # (N, O)
    steps = args.seq_len - 1
    sel = np.take_along_axis(inf["selections"], match[:, None, :].repeat(steps, 1), 2)
    moves = batch.moves[..., 0] if batch.moves.ndim == 4 else batch.moves
    wanted = np.vectorize(lambda r: assign.get(int(r), -1))(moves)
    wrong = (sel != wanted) & (moves >= 0)
    per_ball = wrong.sum(1)                                               # (N, O)
    slot0 = metrics.mask_centroids(inf["masks"][:, :1])[:, 0]
    d0 = np.linalg.norm(np.take_along_axis(slot0, match[..., None].repeat(2, -1), 1)
                        - batch.positions[:, 0], axis=-1)
    pos0 = batch.positions[:, 0]
    o = pos0.shape[1]
    gap = np.linalg.norm(pos0[:, :, None] - pos0[:, None], axis=-1) + np.eye(o) * 1e9
    nearest = gap.min(-1)                                                 # (N, O)
    clean = nearest.min(-1) > 0
    clean_acc = metrics.assignment_accuracy(
        metrics.selection_confusion(batch.moves[clean], inf["selections"][clean], match[clean],
                                    c.num_modules), assign)
    by_order = metrics.match_objects_to_slots(pos0, slot0)    # frame-0 ties left to slot order
    order_acc, _ = metrics.rule_module_accuracy(metrics.selection_confusion(
        batch.moves, inf["selections"], by_order, c.num_modules))
    bad = per_ball >= 3
    out = {"accuracy": rep["rule_module_accuracy"],
           "accuracy_frame0_ties_by_slot_order": order_acc,
           "tied_balls": rep["tied_objects"], "wrong": int(wrong.sum()),
           "wrong_per_ball_histogram": np.bincount(per_ball.reshape(-1)).tolist(),
           "bad_balls_frame0_slot_distance": np.round(d0[bad], 2).tolist(),
           "bad_balls_nearest_other_ball": np.round(nearest[bad], 1).tolist(),
           "videos_with_coincident_start": int((~clean).sum()),
           "accuracy_without_them": clean_acc,
           "track_matching_accuracy": rep["track_rule_module_accuracy"],
           "balls_matched_differently_on_tracks": int(
               (np.asarray(rep["track_matching"]) != match).sum())}
    for k, v in out.items():
        print(f"{k}: {v}")
    return out


if __name__ == "__main__":
    main()
