"""Smoke training of the interaction features on bouncing balls: does the loss fall?

    OMP_NUM_THREADS=1 python benchmarks/interactions_smoke.py [--budget 180] [--off] \\
        [--binary 1] [--no-velocity] [--out DIR]

Trains a small 16x16 config (3 balls of radius 2 at 1.5 px/frame, K = 4 slots, M = 2 unary
modules, B = ``--binary`` binary modules, a velocity in the state unless ``--no-velocity``;
``--off``: today's unary VIM on the same data) with the real trainer for ``--budget`` seconds
of training (``time_budget_s``: 150 pre-training steps, then dynamics on 6-frame videos), and
prints one JSON line: the mean loss (and ELBO terms) over windows of 25 steps, and held-out
numbers on 16 eight-frame videos: position error of the slots matched to the balls (px), the
matched slots' velocity error (px/frame, with a velocity; on frame 0, and on the frames reached
in free flight), module usage per event (free / wall /
collision, :data:`pyro_vim.data.BOUNCING_EVENTS`) and, with binary modules, a first collision
attribution: among the matched slots' (binary module, partner) choices with a partner, the
share whose partner is the slot of a ball it collides with within +-1 transition (precision),
and the share of collision events so attributed (recall).  Not the experiment of
docs/interactions.md: a check that the program trains.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim import metrics  # noqa: E402
from pyro_vim.config import VIMConfig  # noqa: E402
from pyro_vim.train import Trainer  # noqa: E402

WINDOW = 25


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=180.0, help="training seconds")
    p.add_argument("--off", action="store_true", help="today's unary VIM (interaction off)")
    p.add_argument("--binary", type=int, default=1)
    p.add_argument("--no-velocity", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run folder (log.jsonl, checkpoint.pt)")
    return p.parse_args(argv)


def smoke_config(args) -> VIMConfig:
    interaction = {} if args.off else {"num_binary_modules": args.binary,
                                       "velocity": not args.no_velocity}
    return VIMConfig(
        image_size=16, slot_dim=16, encoder_channels=16, decoder_channels=16, module_hidden=32,
        update_hidden=32, keyquery_dim=16, num_slots=4, num_modules=2, batch_size=16,
        pretrain_steps=150, steps=100_000, warmup_steps=50, seq_len_start=6, seq_len_max=6,
        eval_every=0, merge="none", time_budget_s=args.budget, seed=args.seed,
        data={"name": "bouncing", "num_objects": 3, "radius": 2, "speed": 1.5},
        interaction=interaction)


@torch.no_grad()
def held_out(vim, config) -> dict:
    batch = config.make_generator().generate(16, 8, 4_000_000_123)
    vim.eval()
    out = vim.infer(torch.from_numpy(batch.frames))
    masks = out["masks"].numpy()
    slot_pos = metrics.mask_centroids(masks)                                  # (N, T, K, 2)
    match = metrics.match_objects_to_slots(batch.positions[:, 0], slot_pos[:, 0])   # (N, O)
    n, t, o = batch.positions.shape[:3]
    idx = np.broadcast_to(match[:, None, :, None], (n, t, o, 2))
    err = metrics.position_error(np.take_along_axis(slot_pos, idx, 2), batch.positions)
    res = {"position_error_px": float(np.nanmean(err))}
    if "velocities" in out:
        vel = np.take_along_axis(out["velocities"].numpy(), idx, 2)
        verr = metrics.position_error(vel, batch.extra["velocities"])       # (N, T, O)
        # free flight into frame t (t >= 1): the true velocity at t is the last displacement,
        # which a slot's velocity (a finite difference) estimates
        free = np.concatenate([np.zeros((n, 1, o), bool), batch.moves[..., 0] == 0], 1)
        res["velocity_error_px"] = float(np.nanmean(verr))
        res["velocity_error_px_by_frame"] = np.round(np.nanmean(verr, (0, 2)), 3).tolist()
        res["velocity_error_px_frame0"] = float(np.nanmean(verr[:, 0]))
        res["velocity_error_px_free_flight"] = float(np.nanmean(verr[free]))
        res["true_speed_px"] = float(np.linalg.norm(batch.extra["velocities"], axis=-1).mean())
    sel = np.take_along_axis(out["selections"].numpy(), np.broadcast_to(
        match[:, None, :], (n, t - 1, o)), 2)                                # (N, T-1, O)
    events = batch.moves[..., 0]
    m = config.num_choices
    res["usage_by_event"] = {name: np.bincount(sel[events == e], minlength=m).tolist()
                             for e, name in enumerate(("free", "wall", "collision"))}
    if "partners" in out:
        partners = np.take_along_axis(out["partners"].numpy(), np.broadcast_to(
            match[:, None, :], (n, t - 1, o)), 2)                             # slot or -1
        slot_to_obj = np.full((n, config.num_slots), -1)
        for v in range(n):
            slot_to_obj[v, match[v]] = np.arange(o)
        coll = batch.extra["collisions"]                                     # (N, T-1, O, O)
        near = coll.copy()
        near[:, 1:] |= coll[:, :-1]
        near[:, :-1] |= coll[:, 1:]                                          # +-1 transition
        binary = (sel >= config.num_modules) & (partners >= 0)
        hits, total = 0, int(binary.sum())
        for v, s, i in zip(*np.nonzero(binary)):
            j = slot_to_obj[v, partners[v, s, i]]
            hits += bool(j >= 0 and near[v, s, i, j])
        found = 0
        events_ij = list(zip(*np.nonzero(coll)))
        for v, s, i, j in events_ij:
            for d in (-1, 0, 1):
                u = s + d
                if 0 <= u < t - 1 and binary[v, u, i] and slot_to_obj[v, partners[v, u, i]] == j:
                    found += 1
                    break
        res["attribution"] = {"binary_choices_with_partner": total,
                              "precision": hits / total if total else None,
                              "collision_events": len(events_ij),
                              "recall": found / len(events_ij) if events_ij else None}
    return res


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    config = smoke_config(args)
    trainer = Trainer(config, out_dir=args.out, device="cpu", progress=False,
                      checkpoint_every=0)
    records = []
    start = time.time()
    trainer.run(config.pretrain_steps + config.steps, callback=lambda t, r: records.append(r))
    wall = time.time() - start
    windows = []
    dyn = [r for r in records if r["phase"] == "dynamics"]
    for a in range(0, len(dyn), WINDOW):
        part = dyn[a:a + WINDOW]
        windows.append({"steps": f"{part[0]['step']}-{part[-1]['step']}",
                        **{k: round(float(np.mean([r[k] for r in part if k in r])), 1)
                           for k in ("loss", "recon", "kl_z", "kl_r", "kl_p") if k in part[0]}})
    print(json.dumps({"config": "off" if args.off else config.to_dict()["interaction"],
                      "pretrain_steps": config.pretrain_steps, "dynamics_steps": len(dyn),
                      "wall_s": round(wall, 1), "windows": windows,
                      "held_out": held_out(trainer.vim, config)}))


if __name__ == "__main__":
    main()
