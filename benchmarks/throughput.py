"""Throughput of the pieces that bound training speed: data generation, one SVI step
(pre-training and dynamics) and evaluation, for a preset; and how the dynamics step scales.

    python benchmarks/throughput.py --preset cpu
    python benchmarks/throughput.py --scaling --threads 2 --out scaling.json

``--scaling`` times the dynamics step (forward + backward + optimiser) of the preset while one
of sequence length T (4..20), slots K (2..8; the data keep min(3, K - 1) balls), modules M
(1..8) and batch B (8..128) varies and the others keep the preset's values (T = seq_len_max),
each in a fresh process so that its
peak resident memory is its own.  It prints each curve's least-squares slope (seconds per unit)
and the ratio of the largest to the smallest value, whose linear expectation is given beside.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim.config import PRESETS, VIMConfig  # noqa: E402
from pyro_vim.train import Trainer  # noqa: E402


def timed(fn, repeats):
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


SCALING = {"seq_len": (4, 8, 12, 16, 20), "num_slots": (2, 4, 6, 8),
           "num_modules": (1, 2, 4, 8), "batch_size": (8, 32, 64, 128)}


def dynamics_step_time(config: VIMConfig, repeats: int, device: str = "cpu") -> float:
    """Seconds per dynamics SVI step of ``config`` at its longest sequence length."""
    trainer = Trainer(config, device=device, progress=False)
    offset = config.pretrain_steps + 10 ** 7          # past the curriculum: seq_len_max

    def run():
        trainer.step = offset
        trainer.train_step()
    return timed(run, repeats)


def _one_point(preset: str, key: str, value: int, repeats: int, device: str) -> dict:
    changes = {"seq_len_start": value, "seq_len_max": value} if key == "seq_len" \
        else {key: value}
    if key == "num_slots":     # slot 0 is the background: K slots track at most K - 1 balls
        changes["data"] = {"num_objects": min(3, value - 1)}
    config = VIMConfig.preset(preset, **changes)
    seconds = dynamics_step_time(config, repeats, device)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"key": key, "value": value, "step_s": seconds, "peak_rss_mb": peak_mb}


def scaling(args) -> dict:
    curves = {}
    for key, values in SCALING.items():
        if args.only and key not in args.only:
            continue
        points = []
        for v in values[:args.max_points]:
            cmd = [sys.executable, os.path.abspath(__file__), "--point", key, str(v),
                   "--preset", args.preset, "--repeats", str(args.repeats), "--threads",
                   str(args.threads), "--device", args.device]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"{key}={v} failed:\n{proc.stderr[-2000:]}")
            out = proc.stdout
            points.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(points[-1]), flush=True)
        xs = [pt["value"] for pt in points]
        ys = [pt["step_s"] for pt in points]
        n = len(xs)
        mx, my = sum(xs) / n, sum(ys) / n
        var = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0
        curves[key] = {"points": points, "slope_s_per_unit": slope,
                       "intercept_s": my - slope * mx,
                       "ratio_last_first": ys[-1] / ys[0],
                       "linear_ratio": xs[-1] / xs[0]}
    return curves


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=PRESETS, default="cpu")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--scaling", action="store_true", help="step time against T, K, M, B")
    p.add_argument("--only", nargs="+", choices=list(SCALING), default=None,
                   help="with --scaling: these curves only")
    p.add_argument("--max-points", type=int, default=None,
                   help="with --scaling: the first points of each curve only (smoke runs)")
    p.add_argument("--point", nargs=2, metavar=("KEY", "VALUE"), help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help="also write the result as JSON here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.point:
        result = _one_point(args.preset, args.point[0], int(args.point[1]), args.repeats,
                            args.device)
        print(json.dumps(result))
        return result
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    if args.scaling:
        result = {"preset": args.preset, "device": args.device,
                  "threads": torch.get_num_threads(), "machine": machine}
        args.threads = torch.get_num_threads()
        result["scaling"] = scaling(args)
        print(json.dumps(result, indent=1))
        if args.out:
            with open(args.out, "w") as fh:
                json.dump(result, fh, indent=1)
        return result
    config = VIMConfig.preset(args.preset)
    trainer = Trainer(config, device=args.device, progress=False)
    gen = trainer.data
    result = {"preset": args.preset, "device": args.device, "threads": torch.get_num_threads(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"}
    result["generate_32x10_ms"] = 1e3 * timed(lambda: gen.generate(32, 10, 0), args.repeats)

    def step_at(step):
        def run():
            trainer.step = step
            trainer.train_step()
        return run

    result["pretrain_step_s"] = timed(step_at(0), args.repeats)
    for length in sorted({config.seq_len_start, config.seq_len_max}):
        offset = config.pretrain_steps + config.seq_len_every * (
            (length - config.seq_len_start) // max(1, config.seq_len_increment))
        result[f"dynamics_step_T{length}_s"] = timed(step_at(offset), args.repeats)
    batch = trainer.evaluation_batch()
    frames = torch.from_numpy(batch.frames).to(trainer.device)
    trainer.vim.eval()
    result["infer_32x10_s"] = timed(lambda: trainer.vim.infer(frames), max(1, args.repeats // 2))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
