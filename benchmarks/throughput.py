"""Throughput of the pieces that bound training speed: data generation, one SVI step
(pre-training and dynamics) and evaluation, for a preset.

    python benchmarks/throughput.py --preset cpu
"""
import argparse
import json
import os
import platform
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=PRESETS, default="cpu")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
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
