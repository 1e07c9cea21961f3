"""The dynamics step with object slots decoded in a window (``decode_window``) against the whole
frame, with and without bf16 autocast, interleaved step by step in one process.

    python benchmarks/decode_window.py --threads 2 --window 16          # cpu preset, batch 32
    python benchmarks/decode_window.py --threads 1 --repeats 3 --set image_size=16 ...

Every variant is a fresh trainer of the same config and seed, at the preset's longest sequence
(past the length curriculum); after ``--warmup`` steps each, one timed step of every variant in
turn, ``--repeats`` rounds, so that a machine whose load changes slows all variants alike.
Reported: seconds per dynamics step (median over the rounds), the speed-up against the first
variant (the whole frame in fp32: the code before the option), and the first step's loss (the
windowed model is a different model, so its loss differs; bf16 changes it by rounding only).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gpu import commit  # noqa: E402  (benchmarks/gpu.py)

from pyro_vim.config import PRESETS, VIMConfig  # noqa: E402
from pyro_vim.overrides import apply_overrides  # noqa: E402
from pyro_vim.train import Trainer  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=PRESETS, default="cpu")
    p.add_argument("--device", default="cpu")
    p.add_argument("--window", type=int, default=16, help="decode_window in pixels")
    p.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--out", default=None, help="write the results as JSON")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device} was asked for but CUDA is not available")
    if args.warmup < 0 or args.repeats < 1 or args.window < 2:
        p.error("--warmup must be >= 0, --repeats >= 1 and --window >= 2")
    return args


def main(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    base = apply_overrides(VIMConfig.preset(args.preset), args.overrides)
    variants = [(w, prec) for w in (0, args.window) for prec in args.precisions]
    trainers, first_loss, times = {}, {}, {}
    dynamics = base.pretrain_steps + 10 ** 7                 # past the curriculum
    for w, prec in variants:
        trainer = Trainer(base.replace(decode_window=w), device=args.device, progress=False,
                          tensorboard=False, precision=prec)
        trainer.step = dynamics
        first_loss[(w, prec)] = trainer.train_step()["loss"]     # same batch for every variant
        for _ in range(args.warmup):
            trainer.step = dynamics
            trainer.train_step()
        trainers[(w, prec)], times[(w, prec)] = trainer, []
    sync = torch.cuda.synchronize if torch.device(args.device).type == "cuda" else (lambda: None)
    for _ in range(args.repeats):
        for key, trainer in trainers.items():
            trainer.step = dynamics
            sync()
            start = time.perf_counter()
            trainer.train_step()
            sync()
            times[key].append(time.perf_counter() - start)
    reference = statistics.median(times[variants[0]])
    result = {"date": time.strftime("%Y-%m-%d"), "commit": commit(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
                         f"{torch.__version__}, {torch.get_num_threads()} threads",
              "preset": args.preset, "batch_size": base.batch_size, "seq_len": base.seq_len_max,
              "overrides": list(args.overrides), "points": []}
    print(f"{result['machine']}; commit {result['commit']}; {args.preset} preset, batch "
          f"{base.batch_size}, {base.seq_len_max} frames")
    for (w, prec), trainer in trainers.items():
        step = statistics.median(times[(w, prec)])
        point = {"decode_window": w, "precision": prec, "dynamics_step_s": step,
                 "speedup": reference / step, "first_dynamics_loss": first_loss[(w, prec)],
                 "step_times_s": times[(w, prec)]}
        result["points"].append(point)
        print(f"window {w or 'frame':>5} {prec}: {step:.3f} s per dynamics step "
              f"({reference / step:.2f}x), first loss {first_loss[(w, prec)]:.1f}")
        trainer.close()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main(parse_args())
