"""Which module set does VIM-k's objective prefer on k-move compositions? (Fig. 6 diagnosis)

    python benchmarks/composition_factorisations.py               # 2 moves, the two sets below
    python benchmarks/composition_factorisations.py --moves 2 --step 3 --restarts 20

VIM-2 trained on Compositional Random Walk with exactly two moves per frame sees a ball move by
m1 + m2, with m1, m2 drawn uniformly from {up, down, left, right}.  A module set explains the data
exactly when every such displacement is the sum of two of its modules.  Two sets do:

* atomic: {U, D, L, R} (+ a spare that is never needed);
* diagonal: {UL, UR, DL, DR, identity}: a straight 2-move is two diagonals, a diagonal 2-move a
  diagonal and the identity, no move the identity twice.

Both reconstruct every frame exactly, so the likelihood and the Gaussian-update KL cannot tell
them apart; the ELBO differs only in the module-choice KL.  Away from the walls the selection prior
p(r_i | h_{i-1}) sees where the slot is, not the displacement still to come, so the best it can do
is the marginal of the guide's choices at each iteration.  With a guide policy q(a | d) for the
first module (the second is then b = d - a), the smallest expected module-choice KL per ball and
frame is

    I(A; D) + H(B)  =  H(A) - H(A | D) + H(B),

minimised here over policies (every deterministic policy, and gradient descent on stochastic ones
from random starts).  A lower value is a higher ELBO.  Since D is a function of (A, B),
I(A; D) + H(B) >= I(A; D) + I(B; D | A) = I(A, B; D) = H(D): no exact set can cost less than the
entropy of the displacements, and a set that reaches H(D) is as good as any other.  With a
uniform prior instead, every exact set costs k log M, which favours the smaller set.

With ``--iteration-prior start`` the k choices of a transition share one prior, p(r | h_{t-1})
(``VIMConfig.iteration_prior="start"``): the best one is the average of the iterations'
marginals.  The data's own moves are i.i.d. given the position, so the atomic set still reaches
H(D); the diagonal set's two iterations have different marginals (the identity is mostly the
second choice) and it cannot.

The third set, ``atomic+identity``, is what VIM-2 runs that find the atomic moves actually learn:
the spare module becomes an identity, and the planner (closest candidate to the observation at
each iteration) then explains "no move" as the identity twice.  Its planner cost is compared with
the diagonal set's under each prior; ``--lookahead`` scores the planner's earlier iterations by
the best next module instead (the retired ``plan_lookahead`` option, CHANGELOG.md).
"""
import argparse
import itertools
import json
import math
import sys
from collections import defaultdict

import torch

ATOMIC = {"U": (0, -1), "D": (0, 1), "L": (-1, 0), "R": (1, 0)}
SETS = {
    "atomic": {"U": (0, -1), "D": (0, 1), "L": (-1, 0), "R": (1, 0)},
    "diagonal": {"UL": (-1, -1), "UR": (1, -1), "DL": (-1, 1), "DR": (1, 1), "I": (0, 0)},
    # the atomic moves with the spare as an identity (a merged duplicate is reset to it, and a
    # near-identity module wins every zero displacement): the planner then explains "no move" as
    # identity twice instead of a move and its opposite
    "atomic+identity": {"U": (0, -1), "D": (0, 1), "L": (-1, 0), "R": (1, 0), "I": (0, 0)},
}


def displacements(moves: int):
    """{displacement: probability} of the sum of ``moves`` uniform atomic moves (unit steps)."""
    out = defaultdict(float)
    for seq in itertools.product(ATOMIC.values(), repeat=moves):
        d = (sum(m[0] for m in seq), sum(m[1] for m in seq))
        out[d] += 1.0 / 4 ** moves
    return dict(out)


def plans(modules: dict, data: dict, k: int):
    """For each displacement, the ordered k-tuples of module indices whose sum is it."""
    vecs = list(modules.values())
    out = {}
    for d in data:
        out[d] = [p for p in itertools.product(range(len(vecs)), repeat=k)
                  if (sum(vecs[i][0] for i in p), sum(vecs[i][1] for i in p)) == d]
        if not out[d]:
            return None                     # this set cannot explain displacement d
    return out


def kl_cost(weights, plan_lists, probs, num_modules: int, k: int,
            shared: bool = False) -> torch.Tensor:
    """Expected module-choice KL per ball and frame, nats, of a guide that draws plan p for
    displacement d with probability weights[d][p], against the best position-only prior
    (each iteration's marginal).  The guide's choice at iteration i is a distribution over
    modules given d and the modules chosen before; its KL to the prior's marginal is summed.

    ``shared``: one prior for all k iterations (``VIMConfig.iteration_prior="start"``: every
    choice drawn from p(r | h_{t-1})); the best such prior is the average of the iterations'
    marginals, and each iteration pays its cross-entropy to it."""
    total = torch.zeros((), dtype=torch.float64)
    marginals = []
    for i in range(k):
        # marginal of the i-th choice, and the conditional entropy of it given (d, earlier choices)
        marginal = torch.zeros(num_modules, dtype=torch.float64)
        cond_entropy = torch.zeros((), dtype=torch.float64)
        for d, plist in plan_lists.items():
            w = weights[d]
            groups = defaultdict(lambda: torch.zeros(num_modules, dtype=torch.float64))
            for p, wp in zip(plist, w):
                groups[p[:i]] = groups[p[:i]] + wp * torch.nn.functional.one_hot(
                    torch.tensor(p[i]), num_modules).double()
            for g in groups.values():
                mass = g.sum()
                cond = g / mass.clamp_min(1e-300)
                cond_entropy = cond_entropy - probs[d] * mass * (
                    cond * torch.log(cond.clamp_min(1e-300))).sum()
                marginal = marginal + probs[d] * g
        h_marginal = -(marginal * torch.log(marginal.clamp_min(1e-300))).sum()
        total = total + (0.0 if shared else h_marginal) - cond_entropy
        marginals.append(marginal)
    if shared:
        mean = torch.stack(marginals).mean(0)
        total = total - k * (mean * torch.log(mean.clamp_min(1e-300))).sum()
    return total


def planner_weights(modules: dict, plan_lists: dict, k: int, lookahead: bool = False) -> dict:
    """The policy of VIM-k's guide in the limit of a sharp selection score: at each iteration the
    module that brings the slot closest to the observed displacement, ties split evenly.  With
    ``lookahead`` (the retired ``plan_lookahead`` option) every iteration but the last scores a
    module by the distance the best next module reaches from it."""
    vecs = list(modules.values())
    out = {}
    for d, plist in plan_lists.items():
        w = []
        for p in plist:
            prob, at = 1.0, (0, 0)
            for step, i in enumerate(p):
                if lookahead and step < k - 1:
                    dist = [min(math.dist((at[0] + v[0] + u[0], at[1] + v[1] + u[1]), d)
                                for u in vecs) for v in vecs]
                else:
                    dist = [math.dist((at[0] + v[0], at[1] + v[1]), d) for v in vecs]
                best = [j for j, x in enumerate(dist) if x <= min(dist) + 1e-9]
                if i not in best:
                    prob = 0.0
                    break
                prob /= len(best)
                at = (at[0] + vecs[i][0], at[1] + vecs[i][1])
            w.append(prob)
        w = torch.tensor(w, dtype=torch.float64)
        if w.sum() <= 0:
            raise ValueError(f"the greedy planner cannot reach {d} with {list(modules)}")
        out[d] = w / w.sum()
    return out


def best_cost(modules: dict, moves: int, k: int, restarts: int, seed: int = 0,
              shared: bool = False, lookahead: bool = False):
    data = displacements(moves)
    plan_lists = plans(modules, data, k)
    if plan_lists is None:
        return None
    m = len(modules)
    best = math.inf
    best_policy = None
    # every deterministic policy (one plan per displacement), when there are few
    choices = [range(len(plan_lists[d])) for d in plan_lists]
    count = math.prod(len(c) for c in choices)
    if count <= 200_000:
        for pick in itertools.product(*choices):
            w = {d: torch.nn.functional.one_hot(torch.tensor(j), len(plan_lists[d])).double()
                 for d, j in zip(plan_lists, pick)}
            c = float(kl_cost(w, plan_lists, data, m, k, shared))
            if c < best - 1e-12:
                best, best_policy = c, {d: plan_lists[d][j] for d, j in zip(plan_lists, pick)}
    deterministic = best if count <= 200_000 else None
    # stochastic policies: gradient descent on softmax weights from random starts
    gen = torch.Generator().manual_seed(seed)
    for _ in range(restarts):
        logits = {d: torch.randn(len(p), generator=gen, dtype=torch.float64).requires_grad_()
                  for d, p in plan_lists.items()}
        opt = torch.optim.Adam(list(logits.values()), lr=0.1)
        for _ in range(300):
            w = {d: torch.softmax(v, 0) for d, v in logits.items()}
            loss = kl_cost(w, plan_lists, data, m, k, shared)
            opt.zero_grad()
            loss.backward()
            opt.step()
        c = float(loss.detach())
        if c < best - 1e-9:
            best, best_policy = c, "stochastic"
    planner = float(kl_cost(planner_weights(modules, plan_lists, k, lookahead), plan_lists,
                            data, m, k, shared))
    entropy = -sum(q * math.log(q) for q in data.values())
    return {"kl_nats": min(best, planner), "deterministic_nats": deterministic,
            "planner_nats": planner, "displacement_entropy_nats": entropy,
            "uniform_prior_nats": k * math.log(m), "num_modules": m,
            "policy": None if not isinstance(best_policy, dict) else
            {str(d): [list(modules)[i] for i in p] for d, p in best_policy.items()}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--moves", type=int, default=2, help="atomic moves per frame in the data")
    p.add_argument("--iterations", type=int, default=None, help="k (default: --moves)")
    p.add_argument("--restarts", type=int, default=5)
    p.add_argument("--iteration-prior", choices=("current", "start"), default="current",
                   help="'current': a prior per iteration (its marginal); 'start': one prior "
                        "for all k choices of a transition (VIMConfig.iteration_prior)")
    p.add_argument("--lookahead", action="store_true",
                   help="the planner looks one module ahead (the retired plan_lookahead option)")
    p.add_argument("--out", default=None, help="write the results as JSON")
    args = p.parse_args(argv)
    if args.moves < 1 or args.restarts < 0:
        p.error("--moves must be >= 1 and --restarts >= 0")
    k = args.iterations or args.moves
    results = {}
    for name, modules in SETS.items():
        r = best_cost(modules, args.moves, k, args.restarts,
                      shared=args.iteration_prior == "start", lookahead=args.lookahead)
        results[name] = r
        if r is None:
            print(f"{name:9s} cannot explain {args.moves}-move compositions in {k} iterations")
        else:
            det = r["deterministic_nats"]
            print(f"{name:9s} M={r['num_modules']}: smallest module-choice KL "
                  f"{r['kl_nats']:.4f} nats per ball and frame (deterministic guide "
                  f"{'n/a' if det is None else f'{det:.4f}'}; the planner's policy"
                  f"{' (one module ahead)' if args.lookahead else ' (greedy)'}, ties split "
                  f"evenly, {r['planner_nats']:.4f}; uniform prior "
                  f"{r['uniform_prior_nats']:.4f}; H(D) = {r['displacement_entropy_nats']:.4f})")
    a, d = results.get("atomic"), results.get("diagonal")
    if a and d:
        print(f"difference (atomic - diagonal): {a['kl_nats'] - d['kl_nats']:+.4f} nats per ball "
              "and frame: positive means the learned prior's ELBO prefers the diagonal set")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
