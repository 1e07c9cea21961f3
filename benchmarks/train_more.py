"""Train a finished Table 1 run for more wall-clock time and score Table 1 again: does a model
improve past its budget (is the budget what limits it)?

    python benchmarks/train_more.py runs/table1/rim/seed=0/checkpoint.pt --minutes 15 --out DIR

The model's weights are loaded from the checkpoint; training goes on with a fresh optimiser and
the config's schedule from step 0 (the length curriculum restarts; the single-frame
pre-training too unless ``--no-pretraining``) for ``--minutes`` of wall clock, then the Table 1
error is computed on the runner's held-out Table 1 sequences of that config (``--sequences``, 64
as the runner).  Prints and writes ``DIR/result.json``.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim.baselines.table1 import SEQ_LEN, table1_metrics  # noqa: E402
from pyro_vim.evaluate import default_seed  # noqa: E402
from pyro_vim.models import load_model  # noqa: E402
from pyro_vim.train import Trainer  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--sequences", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="a new folder for the continued run")
    p.add_argument("--no-pretraining", action="store_true",
                   help="go on with the sequences at once (pretrain_steps = 0) instead of "
                        "repeating the config's single-frame pre-training")
    args = p.parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        p.error(f"no checkpoint at {args.checkpoint!r}")
    if args.minutes <= 0 or args.sequences < 1:
        p.error("--minutes and --sequences must be positive")
    if os.path.exists(os.path.join(args.out, "checkpoint.pt")):
        p.error(f"{args.out!r} already holds a run; choose another --out")
    torch.set_num_threads(args.threads)
    old = load_model(args.checkpoint)
    config = old.config.replace(time_budget_s=args.minutes * 60.0, steps=10 ** 9)
    if args.no_pretraining:
        config = config.replace(pretrain_steps=0)
    batch = config.make_generator().generate(args.sequences, SEQ_LEN, default_seed(config))
    before = table1_metrics(old, batch)["mse"]
    trainer = Trainer(config, out_dir=args.out, progress=False, tensorboard=False, device="cpu")
    trainer.model.load_state_dict(old.state_dict())
    trainer.run(config.pretrain_steps + config.steps)
    after = table1_metrics(trainer.model, batch)
    trainer.close()
    out = {"checkpoint": args.checkpoint, "model": config.model, "minutes": args.minutes,
           "steps_more": trainer.step, "table1_mse_before": before,
           "table1_mse_after": after["mse"], "per_pixel_after": after["mse_per_pixel"]}
    print(json.dumps(out))
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
