"""Rule identification and tracking against sequence length, for a trained checkpoint.

    python benchmarks/long_sequences.py CKPT --lengths 10 20 50 100 --num-sequences 32

Held-out sequences of each length (data seed 3_000_000_000 + config.seed, as in
``python -m pyro_vim.evaluate``); prints one JSON line per length: rule-module accuracy, tracking
error (mean and on the last frame) and seconds.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim.evaluate import default_seed, identification  # noqa: E402
from pyro_vim.models import load_model  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--lengths", type=int, nargs="+", default=[10, 20, 50, 100])
    p.add_argument("--num-sequences", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if any(t < 2 for t in args.lengths) or args.num_sequences < 1:
        raise SystemExit("error: lengths must be >= 2 and --num-sequences >= 1")
    vim = load_model(args.checkpoint).eval()
    gen = vim.config.make_generator()
    rows = []
    for t in args.lengths:
        start = time.time()
        batch = gen.generate(args.num_sequences, t, default_seed(vim.config))
        report = identification(vim, batch)
        errors = np.asarray(report["position_error"], dtype=float)
        row = {"seq_len": t, "accuracy": report["rule_module_accuracy"],
               "tracking_error_mean": report["mean_position_error"],
               "tracking_error_last_frame": float(errors[-1]),
               "seconds": round(time.time() - start, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"checkpoint": os.path.abspath(args.checkpoint), "rows": rows,
              "num_sequences": args.num_sequences, "threads": torch.get_num_threads(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
                         f"{torch.__version__}"}
    return result


if __name__ == "__main__":
    main()
