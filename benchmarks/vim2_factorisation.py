"""Which factorisation did a VIM-k checkpoint learn, and what does its objective say about it?

    python benchmarks/vim2_factorisation.py CKPT [CKPT ...] [--num-sequences 128 --seq-len 10]

For each checkpoint (a VIM-2 of ``python -m pyro_vim.run vim2_compositions``), on held-out
sequences of its own training data (Compositional Random Walk, data seed 12345, not the atomic
test data):

* the held-out ELBO per video and its terms (``recon`` = -log p(x | z), the module-choice KL
  ``kl_r`` and the Gaussian-update KL ``kl_z``, unscaled), averaged over ``--repeats`` posterior
  samples, with the spread over the repeats;
* for each true displacement between two frames (in pixels), the module pairs the guide chooses
  (``vim.infer(frames, iterations=k)``, balls matched to slots on frame 0) and the matched slot's
  position error after the last iteration.

A module set that explains every 2-move displacement as a diagonal plus the identity (the
"diagonal" factorisation, ``benchmarks/composition_factorisations.py``) shows up here as one
module used for each diagonal displacement followed by the same identity module.
"""
import argparse
import json
from collections import Counter, defaultdict

import numpy as np
import pyro
import torch

from pyro_vim import metrics
from pyro_vim.evaluate import _elbo_terms
from pyro_vim.models import load_model


def factorisation(vim, num_sequences: int, seq_len: int, repeats: int, seed: int = 12345):
    c = vim.config
    batch = c.make_generator().generate(num_sequences, seq_len, seed)
    pyro.set_rng_seed(0)
    terms = [_elbo_terms(vim, batch.frames) for _ in range(repeats)]
    elbo = [-(t.get("recon", 0.0) + t.get("kl_r", 0.0) + t.get("kl_z", 0.0) + t.get("kl_z0", 0.0))
            for t in terms]
    with torch.no_grad():
        out = vim.infer(torch.from_numpy(batch.frames), iterations=c.iterations)
    pos = out["positions"].cpu().numpy()
    choices = out["iteration_selections"].cpu().numpy()          # N, T-1, k, K
    after = out["iteration_positions"].cpu().numpy()             # N, T-1, k, K, 2
    match = metrics.match_objects_to_slots(batch.positions[:, 0], pos[:, 0])
    pairs, errors = defaultdict(Counter), defaultdict(list)
    n, t_len, objects = batch.positions.shape[:3]
    for v in range(n):
        for t in range(t_len - 1):
            for o in range(objects):
                s = match[v, o]
                d = tuple(int(x) for x in np.round(batch.positions[v, t + 1, o]
                                                   - batch.positions[v, t, o]))
                pairs[d][tuple(int(m) for m in choices[v, t, :, s])] += 1
                errors[d].append(float(np.linalg.norm(after[v, t, -1, s]
                                                      - batch.positions[v, t + 1, o])))
    table = {}
    for d in sorted(pairs):
        total = sum(pairs[d].values())
        table[str(d)] = {"count": total, "error_px": float(np.mean(errors[d])),
                         "pairs": [[list(p), round(k / total, 3)]
                                   for p, k in pairs[d].most_common(4)]}
    mean = {k: float(np.mean([t[k] for t in terms])) for k in terms[0]}
    return {"elbo": float(np.mean(elbo)), "elbo_spread": float(np.std(elbo)), "terms": mean,
            "num_modules": c.num_modules, "iterations": c.iterations, "displacements": table}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--num-sequences", type=int, default=128)
    ap.add_argument("--seq-len", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the results as JSON")
    args = ap.parse_args(argv)
    if args.num_sequences < 1 or args.seq_len < 2 or args.repeats < 1:
        ap.error("--num-sequences and --repeats must be >= 1, --seq-len >= 2")
    torch.set_num_threads(args.threads)
    results = {}
    for path in args.checkpoints:
        vim = load_model(path).eval()
        r = factorisation(vim, args.num_sequences, args.seq_len, args.repeats)
        results[path] = r
        t = r["terms"]
        print(f"{path}: ELBO {r['elbo']:.1f} ± {r['elbo_spread']:.1f} per video "
              f"(recon {t.get('recon', float('nan')):.1f}, kl_r {t.get('kl_r', float('nan')):.1f},"
              f" kl_z {t.get('kl_z', float('nan')):.1f}); module {r['num_modules']} = 'stay'")
        for d, row in r["displacements"].items():
            top = ", ".join(f"{tuple(p)} {w:.2f}" for p, w in row["pairs"])
            print(f"  displacement {d:>9s} ({row['count']:4d} balls, error "
                  f"{row['error_px']:.2f} px): {top}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
