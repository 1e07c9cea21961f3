"""Why does a learned selection prior sample impossible moves at the walls?

Three measurements on a trained checkpoint (held-out Random Walk of the checkpoint's data
settings):

``--what walls``    the posterior's and the prior's probability of the impossible moves for
                    balls at a wall (one step, 32 videos of 6 frames): is the target (q) right
                    and the prior short of it?
``--what sampling`` ``prior_calibration`` with the relaxed module choice (as training
                    mixes it: ``test_choices="relaxed"``) and with a hard categorical choice
                    (the argmax of the same relaxed sample, an exact categorical draw), each
                    with the update z sampled or at its mean: is the relaxed mixing of
                    candidates to blame?
``--what mixing``   the mean weight that the relaxed posterior sample (temperature tau, 200
                    Gumbel draws per choice) gives the most probable module of each ball's slot,
                    and q's own largest probability: the shrinkage of the mixed candidate that
                    training applies (a module must overshoot by 1 / weight to compensate).
``--what refit``    re-fit the prior alone, offline, by the categorical cross-entropy the
                    analytic module KL gives it (targets: the trained guide's choice
                    probabilities on 512 training videos of 6 frames, batches of 32 videos),
                    reporting the impossible-move probability at the walls every
                    ``steps / 5`` steps: how fast can this prior learn the walls, from its
                    trained weights (``--octaves keep``) or from a fresh prior with the given
                    number of octave position features (``--octaves 0`` = raw positions)?

    python benchmarks/prior_diagnosis.py CKPT --what walls
    python benchmarks/prior_diagnosis.py CKPT --what refit --octaves 4 --lr 1e-3 --steps 800
"""
import argparse
import copy
import sys

import numpy as np
import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger

from pyro_vim import metrics, sites
from pyro_vim.data import MOVE_VECTORS, make_dataset
from pyro_vim.distributions import SafeRelaxedOneHotCategorical
from pyro_vim.evaluate import default_seed
from pyro_vim.fidelity import prior_calibration
from pyro_vim.models import load_model
from pyro_vim.priors import KeyQueryPrior


class _Sampling(Messenger):
    """Hard categorical module choices and/or mean updates in a sampled run."""

    def __init__(self, hard_r: bool, mean_z: bool):
        super().__init__()
        self.hard_r, self.mean_z = hard_r, mean_z

    def _pyro_sample(self, msg):
        if msg["is_observed"] or msg["value"] is not None:
            return
        fn, site = msg["fn"], sites.parse(msg["name"])
        if site is None:
            return
        if self.hard_r and isinstance(fn, SafeRelaxedOneHotCategorical):
            x = fn.rsample()
            msg["value"] = torch.nn.functional.one_hot(x.argmax(-1), x.shape[-1]).to(x.dtype)
            msg["done"] = True
        elif self.mean_z and site.symbol == "z":
            msg["value"] = fn.mean.expand(fn.shape())
            msg["done"] = True


def _generator(vim):
    c = vim.config
    return make_dataset(c.data.name, **c.data.generator_kwargs(c.image_size))


def _record(vim, n, seed, seq_len=6):
    """Guide run on ``n`` videos: the prior's inputs at every step, the guide's choice
    probabilities q, the ball-to-slot matching and which moves are legal."""
    c = vim.config
    batch = _generator(vim).generate(n, seq_len, seed)
    frames = torch.from_numpy(batch.frames)
    inputs = []
    logits = vim.prior.logits

    def spy(*args):
        inputs.append([a.detach().clone() for a in args])
        return logits(*args)

    vim.prior.logits = spy
    try:
        with torch.no_grad():
            guide = poutine.trace(vim.guide).get_trace(frames)
            poutine.replay(vim.model, trace=guide)(frames)
            slots = vim.infer(frames)["positions"].numpy()
    finally:
        del vim.prior.logits
    q = torch.stack([guide.nodes[sites.r_site(t)]["fn"].logits.softmax(-1)
                     for t in range(1, seq_len)], 1)                       # (N, T-1, K, M)
    inputs = [torch.stack([step[i] for step in inputs], 1) for i in range(4)]
    matching = metrics.match_objects_to_slots(batch.positions[:, 0], slots[:, 0])   # (N, O)
    start = batch.positions[:, :-1]                                        # (N, T-1, O, 2)
    half = batch.attributes["size"][:, None, :, None, None]
    step = float(batch.config.get("step", 1))
    cand = start[..., None, :] + step * MOVE_VECTORS
    legal = np.all((cand >= half) & (cand <= c.image_size - 1 - half), -1)  # (N, T-1, O, 4)
    moves = batch.moves[..., 0] if batch.moves.ndim == 4 else batch.moves
    return inputs, q, matching, legal, moves


def _by_rule(probs, matching, moves, assign=None):
    """Per-ball probabilities (..., 4) of the modules assigned to the four rules."""
    take = np.take_along_axis(probs, matching[:, None, :, None], 2)        # (N, T-1, O, M)
    if assign is None:
        chosen, true = take.argmax(-1).reshape(-1), moves.reshape(-1)
        assign = [int(np.bincount(chosen[true == r], minlength=probs.shape[-1]).argmax())
                  for r in range(4)]
    return take[..., assign].reshape(-1, 4), assign


def walls(vim, videos=32):
    inputs, q, matching, legal, moves = _record(vim, videos, default_seed(vim.config) + 1)
    with torch.no_grad():
        p = vim.prior.logits(*inputs).softmax(-1).numpy()
    qr, assign = _by_rule(q.numpy(), matching, moves)
    pr, _ = _by_rule(p, matching, moves, assign)
    legal = legal.reshape(-1, 4)
    wall = ~legal.all(1)
    print(f"rule -> module {assign}; {int(wall.sum())} ball-steps at a wall, "
          f"{int((~wall).sum())} away")
    out = {"q_impossible_at_walls": float((qr[wall] * ~legal[wall]).sum(1).mean()),
           "p_impossible_at_walls": float((pr[wall] * ~legal[wall]).sum(1).mean()),
           "p_away": pr[~wall].mean(0).tolist()}
    print(f"q(impossible) at walls {out['q_impossible_at_walls']:.4f}   "
          f"p(impossible) at walls {out['p_impossible_at_walls']:.4f}")
    print("p away from walls (up, down, left, right):", np.round(pr[~wall].mean(0), 3))
    return out


def sampling(vim, videos=32):
    c = vim.config
    batch = _generator(vim).generate(videos, 11, default_seed(c))
    out = {}
    saved = vim.config
    for hard in (False, True):
        for mean_z in (False, True):
            torch.manual_seed(0)
            # the relaxed arm mixes the candidates by the relaxed sample, as training does
            vim.config = saved.replace(test_choices="hard" if hard else "relaxed")
            try:
                with _Sampling(hard, mean_z):
                    r = prior_calibration(vim, batch)
            finally:
                vim.config = saved
            away = [round(v, 3) for v in r["away"].values()]
            print(f"r {'hard' if hard else 'relaxed'}, z {'mean' if mean_z else 'sampled'}: "
                  f"away {away} max deviation {r['max_deviation']:.3f} impossible at walls "
                  f"{r['impossible_at_walls']:.3f}")
            out[(hard, mean_z)] = r
    return out


def mixing(vim, videos=32, draws=200):
    inputs, q, matching, legal, moves = _record(vim, videos, default_seed(vim.config) + 7)
    logits = q.log()                                                      # (N, T-1, K, M)
    gen = torch.Generator().manual_seed(0)
    u = torch.rand((draws,) + logits.shape, generator=gen).clamp(1e-12, 1 - 1e-12)
    w = torch.softmax((logits - (-u.log()).log()) / vim.temperature, -1).mean(0).numpy()
    take = matching[:, None, :, None]
    top_w = np.take_along_axis(w, take, 2).max(-1)
    top_q = np.take_along_axis(q.numpy(), take, 2).max(-1)
    out = {"relaxed_weight": float(top_w.mean()), "q_max": float(top_q.mean())}
    print(f"mean relaxed weight of the chosen module (tau={float(vim.temperature):g}): "
          f"{out['relaxed_weight']:.3f}; q's largest probability: {out['q_max']:.3f}")
    return out


def refit(vim, octaves, lr, steps, videos=512, test_videos=64):
    c = vim.config
    train = _record(vim, videos, 1234)
    test_inputs, test_q, matching, legal, moves = _record(vim, test_videos, 999)
    _, assign = _by_rule(test_q.numpy(), matching, moves)
    if octaves == "keep":
        prior = copy.deepcopy(vim.prior)
    else:
        torch.manual_seed(0)
        prior = KeyQueryPrior(c.state_dim, c.update_hidden, c.keyquery_dim, int(octaves))
    legal = legal.reshape(-1, 4)
    wall = ~legal.all(1)

    def score():
        with torch.no_grad():
            p = prior.logits(*test_inputs).softmax(-1).numpy()
        pr, _ = _by_rule(p, matching, moves, assign)
        return ((pr[wall] * ~legal[wall]).sum(1).mean(),
                np.abs(pr[~wall].mean(0) - 0.25).max())

    opt = torch.optim.Adam(prior.parameters(), lr=lr)
    inputs, q = train[0], train[1]
    gen = torch.Generator().manual_seed(0)
    curve = [(0, *score())]
    print("step 0: impossible at walls %.3f, away max deviation %.3f" % curve[0][1:])
    for s in range(1, steps + 1):
        idx = torch.randint(0, q.shape[0], (32,), generator=gen)
        logp = prior.logits(*[x[idx] for x in inputs]).log_softmax(-1)
        loss = -(q[idx] * logp).sum(-1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if s % max(1, steps // 5) == 0:
            curve.append((s, *score()))
            print(f"step {s}: impossible at walls %.3f, away max deviation %.3f" % curve[-1][1:],
                  flush=True)
    return curve


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--what", choices=("walls", "sampling", "mixing", "refit"), default="walls")
    ap.add_argument("--octaves", default="keep",
                    help="refit: 'keep' (the checkpoint's prior) or an int (a fresh prior)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--videos", type=int, default=None,
                    help="held-out videos (walls, sampling: 32) or training videos (refit: 512)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.octaves != "keep" and not args.octaves.isdigit():
        ap.error(f"--octaves must be 'keep' or an int >= 0, got {args.octaves!r}")
    if args.steps < 1 or not args.lr > 0 or (args.videos is not None and args.videos < 1):
        ap.error("--steps and --videos must be >= 1 and --lr > 0")
    torch.set_num_threads(args.threads)
    vim = load_model(args.checkpoint).eval()
    if not hasattr(vim, "prior"):
        ap.error(f"{args.checkpoint!r} holds a {vim.config.model!r} model without a selection "
                 "prior")
    print(f"{args.checkpoint}: r_kl={vim.config.r_kl}, prior_octaves="
          f"{vim.config.prior_octaves_resolved}")
    if args.what == "walls":
        return walls(vim, args.videos or 32)
    if args.what == "mixing":
        return mixing(vim, args.videos or 32)
    if args.what == "sampling":
        return sampling(vim, args.videos or 32)
    return refit(vim, args.octaves, args.lr, args.steps, args.videos or 512,
                 min(64, args.videos or 64))


if __name__ == "__main__":
    main()
    sys.exit(0)
