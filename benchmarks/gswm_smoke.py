"""Smoke training of the compact G-SWM: does the loss fall?

    OMP_NUM_THREADS=1 python benchmarks/gswm_smoke.py [--budget 100] [--old] [--out DIR]

Trains a small 16x16 G-SWM (K = 4 slots, 3 balls of radius 2 moving 2 px a frame on Random
Walk, 4-frame videos, batch 16) with the real trainer for ``--budget`` seconds of training
(``time_budget_s``, no pre-training, as the ``gswm`` experiment) at the ``gswm`` experiment's
lr, with today's defaults (discovery on every frame with dropout, per-step presence, rejection,
interaction, constant background) or, ``--old``, the settings of the model before them
(:data:`pyro_vim.baselines.gswm.BEFORE_FIELD`).  Prints one JSON line: the mean loss (and its
reconstruction term) over windows of 25 steps, whether the last window's loss is below the
first's, and held-out single-step MED on Compositional Random Walk (1-5 moves a frame, 8 videos
of 5 frames; pixels).  A check that the program trains, not a measurement: its numbers are not
results (the ``gswm`` experiment is).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim.baselines.gswm import BEFORE_FIELD  # noqa: E402
from pyro_vim.baselines.med import model_med  # noqa: E402
from pyro_vim.config import VIMConfig  # noqa: E402
from pyro_vim.experiments import GSWM_SETTINGS  # noqa: E402
from pyro_vim.fidelity import composition_test_batch  # noqa: E402
from pyro_vim.train import Trainer  # noqa: E402

WINDOW = 25


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=100.0, help="training seconds")
    p.add_argument("--old", action="store_true",
                   help="the settings before discovery/presence/rejection/interaction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run folder (log.jsonl, checkpoint.pt)")
    return p.parse_args(argv)


def smoke_config(args) -> VIMConfig:
    extra = {"glimpse_size": 6, "z_dyna_dim": 8, **(BEFORE_FIELD if args.old else {})}
    return VIMConfig(
        image_size=16, slot_dim=16, encoder_channels=16, decoder_channels=16, module_hidden=32,
        num_slots=4, batch_size=16, pretrain_steps=0, steps=100_000, warmup_steps=20,
        lr=GSWM_SETTINGS["lr"], seq_len_start=4, seq_len_max=4, eval_every=0,
        time_budget_s=args.budget, seed=args.seed, model="gswm", extra=extra,
        data={"name": "random_walk", "num_objects": 3, "radius": 2, "step": 2})


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
    for a in range(0, len(records), WINDOW):
        part = records[a:a + WINDOW]
        windows.append({"steps": f"{part[0]['step']}-{part[-1]['step']}",
                        **{k: round(float(np.mean([r[k] for r in part if k in r])), 1)
                           for k in ("loss", "recon") if k in part[0]}})
    vim = trainer.vim
    vim.eval()
    batch = composition_test_batch(config, 8, 5, 4_000_000_321)
    single = model_med(vim, batch, 1)
    result = {"settings": "old" if args.old else "paper", "steps": len(records),
              "wall_s": round(wall, 1), "windows": windows,
              "loss_fell": bool(len(windows) > 1 and windows[-1]["loss"] < windows[0]["loss"]),
              "compositional_med_single_px": round(single["med"], 2),
              "compositional_med_per_frame_px": [round(v, 2) for v in single["per_frame"]]}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
