"""Model-free reference scores for Table 1 on the runner's held-out Table 1 sequences.

    python benchmarks/table1_references.py                    # seeds 0, 1, 2 of `table1`
    python benchmarks/table1_references.py --seeds 0 --sequences 16 --draws 16

For each seed, the same 5-frame held-out sequences that ``python -m pyro_vim.run table1`` scores
(64 by default), the squared error per frame (frames 1..4, summed over pixels and channels) of:
the empty background, the previous frame, a perfect sampler (true positions, moves drawn as the
data draws them) and the average of its draws (the best deterministic prediction from the true
state).  See :func:`pyro_vim.baselines.table1.reference_errors`.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim.baselines.table1 import SEQ_LEN, reference_errors  # noqa: E402
from pyro_vim.evaluate import default_seed  # noqa: E402
from pyro_vim.experiments import get_experiment  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--sequences", type=int, default=64, help="as the runner's --eval-sequences")
    p.add_argument("--draws", type=int, default=64)
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="config overrides, as for the runner")
    p.add_argument("--out", default=None, help="write the results as JSON")
    args = p.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        p.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if not seeds or args.sequences < 1 or args.draws < 1:
        p.error("--seeds, --sequences and --draws must be non-empty / positive")
    results = {}
    for seed in seeds:
        # every variant of table1 shares the data: any gives the held-out sequences
        config = get_experiment("table1").config("vim@converged", seed, args.overrides)
        generator = config.make_generator()
        batch = generator.generate(args.sequences, SEQ_LEN, default_seed(config))
        ref = reference_errors(generator, batch, num_draws=args.draws, seed=seed)
        results[seed] = {k: v["per_frame"] for k, v in ref.items() if isinstance(v, dict)}
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.2f}" for k, v in results[seed].items()))
    names = list(next(iter(results.values())))
    summary = {k: (float(np.mean([r[k] for r in results.values()])),
                   float(np.std([r[k] for r in results.values()], ddof=1))
                   if len(results) > 1 else 0.0) for k in names}
    print("mean ± std: " + ", ".join(f"{k} {m:.1f} ± {s:.1f}" for k, (m, s) in summary.items()))
    out = {"seeds": results, "summary": summary, "sequences": args.sequences,
           "draws": args.draws}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
