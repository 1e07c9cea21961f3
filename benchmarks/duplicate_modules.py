"""Does the module KL penalise a rule split between two identical modules?

Sec. 3.3 of the paper says the module KL "prevents the model to learn duplicate transition
modules". This measures the claim on the objective itself, with no training: M modules for R
rules (M > R), one rule's observations split between its module and a spare copy (share
``s`` on the copy), every other rule's observations on its own module.  The posterior q of
each observation is that (near one-hot) choice; the prior is the one that minimises the KL
over the data, the average of q (exact for the categorical KL; for the Monte Carlo estimate of
the relaxed KL the script also fits the prior by gradient descent, ``--fit-steps``).

For each share it prints the mean module KL per observation, (a) analytic between the
categorical choices (``VIMConfig.r_kl="categorical"``) and (b) Trace_ELBO's Monte Carlo estimate
log q(r) - log p(r) at relaxed samples r (``r_kl="sample"``), at temperature ``--tau``.  The
reconstruction term is the same for every share (the two copies predict the same frame), so a
KL that is flat in ``s`` leaves the split to the training dynamics.

    python benchmarks/duplicate_modules.py [--modules 5 --rules 4 --tau 1 --samples 100000]
"""
import argparse
import math

import torch

from pyro_vim.distributions import SafeRelaxedOneHotCategorical


def posteriors(share: float, modules: int, rules: int, off: float) -> torch.Tensor:
    """(R, M) choice probabilities: rule 0 split between modules 0 and R (the spare copy)."""
    logits = torch.full((rules, modules), off)
    for r in range(rules):
        logits[r, r] = 0.0
    if share > 0:
        logits[0, 0] = math.log(1.0 - share)
        logits[0, rules] = math.log(share)
    return logits.log_softmax(-1)


def categorical_kl(log_q: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    return (log_q.exp() * (log_q - log_p)).sum(-1)


def relaxed_kl(log_q: torch.Tensor, log_p: torch.Tensor, tau: float, samples: int,
               generator: torch.Generator) -> torch.Tensor:
    q = SafeRelaxedOneHotCategorical(torch.tensor(tau), logits=log_q)
    p = SafeRelaxedOneHotCategorical(torch.tensor(tau), logits=log_p.expand_as(log_q))
    gumbel = -torch.empty(samples, *log_q.shape).exponential_(generator=generator).log()
    y = ((log_q + gumbel) / tau).softmax(-1).clamp_min(1e-30)
    y = y / y.sum(-1, keepdim=True)
    return (q.log_prob(y) - p.log_prob(y)).mean(0)


def main(argv=None):
    """Print the table; returns its rows as dicts (share, categorical, relaxed, fitted)."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    print(f"M = {args.modules} modules, R = {args.rules} rules, tau = {args.tau}, "
          f"{args.samples} relaxed samples per observation")
    print("share on the copy | categorical KL | relaxed MC KL (prior = mean q) | "
          "relaxed MC KL (prior fitted)")
    rows = []
    for share in args.shares:
        log_q = posteriors(share, args.modules, args.rules, args.off)
        log_p = log_q.exp().mean(0).log()
        cat = float(categorical_kl(log_q, log_p).mean())
        mc = float(relaxed_kl(log_q, log_p, args.tau, args.samples, gen).mean())
        fitted = float("nan")
        if args.fit_steps:
            prior_logits = log_p.clone().requires_grad_(True)
            opt = torch.optim.Adam([prior_logits], lr=0.05)
            for _ in range(args.fit_steps):
                opt.zero_grad()
                loss = relaxed_kl(log_q, prior_logits.log_softmax(-1), args.tau,
                                  args.samples // 10, gen).mean()
                loss.backward()
                opt.step()
            with torch.no_grad():
                fitted = float(relaxed_kl(log_q, prior_logits.log_softmax(-1), args.tau,
                                          args.samples, gen).mean())
        print(f"{share:17.2f} | {cat:14.4f} | {mc:30.3f} | {fitted:28.3f}")
        rows.append({"share": share, "categorical": cat, "relaxed": mc, "fitted": fitted})
    return rows


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modules", type=int, default=5)
    ap.add_argument("--rules", type=int, default=4)
    ap.add_argument("--tau", type=float, default=1.0)
    ap.add_argument("--off", type=float, default=-8.0,
                    help="logit of the modules an observation does not choose")
    ap.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.1, 0.3, 0.5])
    ap.add_argument("--samples", type=int, default=100000)
    ap.add_argument("--fit-steps", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.modules <= args.rules or args.rules < 1:
        ap.error(f"--modules must exceed --rules >= 1 (a spare module to copy a rule), got "
                 f"{args.modules} and {args.rules}")
    if not all(0.0 <= s < 1.0 for s in args.shares):
        ap.error(f"--shares must lie in [0, 1), got {args.shares}")
    if args.tau <= 0 or args.samples < 10:
        ap.error("--tau must be > 0 and --samples >= 10")
    return args


if __name__ == "__main__":
    main()
