"""Time to rule identification: train the ``cpu`` preset from scratch and evaluate every few
minutes on held-out sequences (a seed never used in training), printing minutes vs accuracy.

    python benchmarks/time_to_identification.py --minutes 15 --out runs/tti
    python benchmarks/time_to_identification.py --set pretrain_steps=600 data.step=4 num_slots=5

Writes OUT/checkpoint.pt, OUT/log.jsonl and OUT/curve.json (minutes, step, accuracy, NMI,
position error, module usage, each module's mean translation in pixels, and what the modules do:
module step error per rule, the 7-step rollout error, the prior's calibration of sampled moves;
see pyro_vim.fidelity).  Evaluation time is
excluded from the training clock.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim.config import PRESETS, VIMConfig  # noqa: E402
from pyro_vim.evaluate import fidelity_metrics, identification  # noqa: E402
from pyro_vim.nn.accel import PRECISIONS  # noqa: E402
from pyro_vim.overrides import apply_overrides  # noqa: E402
from pyro_vim.train import Trainer, eval_seed  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=15.0, help="training wall-clock budget")
    p.add_argument("--eval-every-minutes", type=float, default=1.0)
    p.add_argument("--preset", choices=PRESETS, default="cpu")
    p.add_argument("--eval-sequences", type=int, default=64)
    p.add_argument("--eval-seq-len", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-modules", type=int, default=None, help="M (default: the preset's)")
    p.add_argument("--num-slots", type=int, default=None, help="K (default: the preset's)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="bf16: encoder and decoder under bf16 autocast")
    p.add_argument("--compile", action="store_true", help="torch.compile encoder and decoder")
    p.add_argument("--target", type=float, default=None,
                   help="stop at the first evaluation whose accuracy reaches this")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="config overrides (python -m pyro_vim.run --keys)")
    p.add_argument("--out", default="runs/time_to_identification")
    return p.parse_args(argv)


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(args):
    if args.minutes <= 0 or args.eval_every_minutes <= 0:
        raise SystemExit("--minutes and --eval-every-minutes must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = {k: v for k, v in (("num_modules", args.num_modules), ("num_slots", args.num_slots))
             if v is not None}
    try:
        config = apply_overrides(VIMConfig.preset(args.preset, seed=args.seed, **sizes),
                                 args.overrides)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}")
    held_out = config.make_generator().generate(
        args.eval_sequences, args.eval_seq_len, eval_seed(config) + 1)
    trainer = Trainer(config, out_dir=args.out, device=args.device, progress=False,
                      checkpoint_every=0, precision=args.precision, compile=args.compile)
    trainer.config.eval_every = 0  # evaluation is done here, off the training clock
    curve, merges, train_time, next_eval = [], [], 0.0, args.eval_every_minutes * 60
    budget = args.minutes * 60
    print(f"{'minutes':>8} {'step':>6} {'phase':>9} {'accuracy':>9} {'nmi':>6} {'pos_err':>8} "
          f"{'step_err':>8} {'rollout':>8} {'prior_dev':>9}")
    while train_time < budget:
        start = time.time()
        while time.time() - start < min(next_eval, budget) - train_time:
            record = trainer.train_step()
            if "merged" in record:                   # a duplicated module was reset
                merges.append({"step": record["step"], "merged": record["merged"]})
                print(f"step {record['step']}: reset duplicated modules {record['merged']} "
                      f"(copy: kept)", flush=True)
        train_time += time.time() - start
        phase = "pretrain" if trainer.step <= config.pretrain_steps else "dynamics"
        trainer.vim.eval()
        report = identification(trainer.vim, held_out)
        fidelity = fidelity_metrics(trainer.vim, held_out, report)
        trainer.vim.train()
        point = {"minutes": round(train_time / 60, 2), "step": trainer.step, "phase": phase,
                 "accuracy": report["rule_module_accuracy"], "nmi": report["nmi"],
                 "track_accuracy": report["track_rule_module_accuracy"],
                 "position_error": report["mean_position_error"],
                 "module_usage": report["module_usage"],
                 "module_translation_px": report["module_translation_px"],
                 "module_step_error": fidelity["module_step_error"],
                 "module_step_error_max": fidelity["module_step_error_max"],
                 "rollout_error": fidelity["rollout_error"]["per_step"],
                 "rollout_error_mean": fidelity["rollout_error_mean"],
                 "prior_calibration": fidelity["prior_calibration"]}
        curve.append(point)
        print(f"{point['minutes']:8.2f} {point['step']:6d} {phase:>9} {point['accuracy']:9.3f} "
              f"{point['nmi']:6.3f} {point['position_error']:8.2f} "
              f"{point['module_step_error_max']:8.2f} {point['rollout_error_mean']:8.2f} "
              f"{point['prior_calibration']['max_deviation'] or float('nan'):9.3f}", flush=True)
        next_eval += args.eval_every_minutes * 60
        if args.target is not None and phase == "dynamics" and point["accuracy"] >= args.target:
            print(f"reached accuracy {point['accuracy']:.3f} >= {args.target} after "
                  f"{point['minutes']:.2f} training minutes", flush=True)
            break
    trainer.save()
    result = {"curve": curve, "preset": args.preset, "seed": args.seed, "commit": commit(),
              "overrides": list(args.overrides), "config": config.to_dict(),
              "num_modules": config.num_modules, "num_slots": config.num_slots,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
                         f"{torch.__version__}, {torch.get_num_threads()} threads",
              "device": str(trainer.device) + (f" ({torch.cuda.get_device_name(trainer.device)})"
                                               if trainer.device.type == "cuda" else ""),
              "precision": args.precision, "compile": bool(args.compile),
              "target": args.target, "merges": merges,
              "date": time.strftime("%Y-%m-%d"), "held_out_sequences": args.eval_sequences}
    with open(os.path.join(args.out, "curve.json"), "w") as f:
        json.dump(result, f, indent=1)
    best = max(curve, key=lambda p: p["accuracy"])
    print(json.dumps({"final_accuracy": curve[-1]["accuracy"], "best_accuracy": best["accuracy"],
                      "best_minutes": best["minutes"],
                      "final_module_translation_px": [[round(v, 2) for v in m] for m in
                                                      curve[-1]["module_translation_px"]]}))
    return result


if __name__ == "__main__":
    main(parse_args())
