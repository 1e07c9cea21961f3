"""Sequences per second of the SVI step on one device, with and without bf16 autocast and
``torch.compile`` of the Pyro-free networks (encoder and decoder; the model and guide functions
are never compiled).

    python benchmarks/gpu.py --device cuda --out gpu.json          # both presets, 4 variants
    python benchmarks/gpu.py --device cpu --threads 2 --presets paper --variants fp32

For each preset and variant a fresh trainer (same seed, same batch) takes ``--warmup`` steps
(compilation happens there and is timed apart), then ``--repeats`` timed steps of pre-training
and of dynamics at the preset's longest sequence length.  Reported per point: seconds per step,
sequences per second (batch / dynamics step), peak device memory, compile/warm-up seconds, and
the dynamics loss of the first step against fp32's on the same batch (relative difference), so
that a faster variant that computes a different ELBO shows.  Results go to stdout and ``--out``.
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
from pyro_vim.overrides import apply_overrides  # noqa: E402
from pyro_vim.train import Trainer  # noqa: E402

VARIANTS = {"fp32": ("fp32", False), "bf16": ("bf16", False),
            "fp32+compile": ("fp32", True), "bf16+compile": ("bf16", True)}


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _steps(trainer: Trainer, step: int, count: int) -> float:
    """Seconds per train step at ``step`` (the step counter is reset, so the data and the
    curriculum stay those of ``step``)."""
    if count <= 0:
        return 0.0
    _sync(trainer.device)
    start = time.perf_counter()
    for _ in range(count):
        trainer.step = step
        trainer.train_step()
    _sync(trainer.device)
    return (time.perf_counter() - start) / count


def measure(config: VIMConfig, variant: str, device: str, warmup: int, repeats: int) -> dict:
    precision, compile_ = VARIANTS[variant]
    if compile_:
        torch._dynamo.reset()
    trainer = Trainer(config, device=device, progress=False, tensorboard=False,
                      precision=precision, compile=compile_)
    dev = trainer.device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    dynamics = config.pretrain_steps + 10 ** 7          # past the curriculum: seq_len_max
    # the first dynamics loss, before any update, on the same batch for every variant
    trainer.step = dynamics
    first_loss = None
    start = time.perf_counter()
    record = trainer.train_step()
    first_loss = record["loss"]
    pre_warm = _steps(trainer, 0, warmup) if config.pretrain_steps else 0.0
    dyn_warm = _steps(trainer, dynamics, max(warmup - 1, 0))
    warm_s = time.perf_counter() - start
    pre = _steps(trainer, 0, repeats) if config.pretrain_steps else None
    dyn = _steps(trainer, dynamics, repeats)
    out = {"variant": variant, "precision": precision, "compile": compile_,
           "pretrain_step_s": pre, "dynamics_step_s": dyn,
           "sequences_per_s": config.batch_size / dyn,
           "frames_per_s": config.batch_size * config.seq_len_max / dyn,
           "warmup_s": warm_s, "first_dynamics_loss": first_loss,
           "warmup_step_s": {"pretrain": pre_warm, "dynamics": dyn_warm}}
    if dev.type == "cuda":
        out["peak_memory_gb"] = torch.cuda.max_memory_allocated(dev) / 2 ** 30
    trainer.close()
    return out


def commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"],
                                       cwd=os.path.dirname(os.path.abspath(__file__)),
                                       stderr=subprocess.DEVNULL, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--presets", nargs="+", choices=PRESETS, default=["paper", "cpu"])
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="config overrides (tiny smoke runs)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.warmup < 1 or args.repeats < 1:
        p.error("--warmup and --repeats must be >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device} was asked for but CUDA is not available")
    return args


def main(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {"date": time.strftime("%Y-%m-%d"), "commit": commit(), "device": name,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
                         f"{torch.__version__}, {torch.get_num_threads()} threads",
              "points": []}
    print(f"{result['machine']}; device {name}; commit {result['commit']}", flush=True)
    print(f"{'preset':>6} {'variant':>13} {'pre s':>7} {'dyn s':>7} {'seq/s':>7} {'warm s':>7} "
          f"{'loss rel':>9} {'mem GB':>6}", flush=True)
    for preset in args.presets:
        sizes = {"batch_size": args.batch_size} if args.batch_size else {}
        config = apply_overrides(VIMConfig.preset(preset, **sizes), args.overrides)
        reference = None
        for variant in args.variants:
            try:
                point = measure(config, variant, args.device, args.warmup, args.repeats)
            except Exception as e:                    # a variant that fails is recorded
                point = {"variant": variant, "error": f"{type(e).__name__}: {e}"[:500]}
                print(f"{preset:>6} {variant:>13} FAILED {point['error']}", flush=True)
                result["points"].append({"preset": preset, **point})
                continue
            point["preset"] = preset
            if variant == "fp32":
                reference = point["first_dynamics_loss"]
            if reference is not None:
                point["loss_rel_diff_vs_fp32"] = abs(point["first_dynamics_loss"] - reference) \
                    / abs(reference)
            result["points"].append(point)
            rel = point.get("loss_rel_diff_vs_fp32")
            print(f"{preset:>6} {variant:>13} {point['pretrain_step_s'] or 0:7.3f} "
                  f"{point['dynamics_step_s']:7.3f} {point['sequences_per_s']:7.1f} "
                  f"{point['warmup_s']:7.1f} {rel if rel is not None else float('nan'):9.2e} "
                  f"{point.get('peak_memory_gb', float('nan')):6.2f}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main(parse_args())
