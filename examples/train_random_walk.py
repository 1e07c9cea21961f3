"""Train VIM on the Random Walk dataset (paper Sec. 5.1).

    python examples/train_random_walk.py                      # cpu preset (default without CUDA)
    python examples/train_random_walk.py --preset paper --device cuda
    python examples/train_random_walk.py --out runs/rw --resume

Writes OUT/checkpoint.pt and OUT/log.jsonl and prints the final rule-module accuracy.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim.config import PRESETS, VIMConfig  # noqa: E402
from pyro_vim.train import Trainer  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="experiment preset (default: paper with CUDA, cpu otherwise)")
    p.add_argument("--steps", type=int, default=None,
                   help="total optimisation steps, pre-training included (default: preset's)")
    p.add_argument("--pretrain-steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seq-len", type=int, default=None,
                   help="fix the sequence length (disables the curriculum)")
    p.add_argument("--num-modules", type=int, default=None)
    p.add_argument("--num-slots", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/random_walk")
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--skip-nonfinite", action="store_true",
                   help="skip steps with a non-finite ELBO or gradient instead of stopping")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def build_config(args) -> VIMConfig:
    preset = args.preset or ("paper" if torch.cuda.is_available() else "cpu")
    overrides = {"seed": args.seed}
    for field in ("pretrain_steps", "batch_size", "num_modules", "num_slots", "eval_every"):
        value = getattr(args, field)
        if value is not None:
            overrides[field] = value
    if args.seq_len is not None:
        overrides.update(seq_len_start=args.seq_len, seq_len_max=args.seq_len)
    return VIMConfig.preset(preset, **overrides)


def main(args) -> dict:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but CUDA is not available")
    config = build_config(args)
    trainer = Trainer(config, out_dir=args.out, device=args.device, resume=args.resume,
                      checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
                      skip_nonfinite=args.skip_nonfinite)
    steps = args.steps if args.steps is not None else config.pretrain_steps + config.steps
    trainer.run(steps)
    result = {"step": trainer.step, "checkpoint": trainer.checkpoint_path}
    if trainer.step > config.pretrain_steps:
        result.update(trainer.evaluate())
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(parse_args())
