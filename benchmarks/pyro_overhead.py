"""What Pyro's bookkeeping costs: one SVI dynamics step (``Trace_ELBO`` over ``vim.model`` and
``vim.guide``) against the same ELBO written by hand in plain torch on the same networks.

    python benchmarks/pyro_overhead.py --repeats 10 --threads 2
    python benchmarks/pyro_overhead.py --set image_size=16 slot_dim=8 --repeats 2   # tiny

Both steps draw the same noise (same seed, same sampling order), so their losses must agree; the
script checks that before timing (``max_loss_difference``).  The hand-written ELBO is the
guide's recurrence with ``rsample`` and ``log_prob`` calls in place of ``pyro.sample``; it skips
the model's second discovery pass, whose KL term is 0 (the guide's q(z_0 | c) is the discovery
model), so the ratio also counts that duplicated work.  Prints JSON: seconds per step (forward +
backward) for each, and the ratio ``pyro / torch``.
"""
import argparse
import json
import os
import platform
import sys
import time

import pyro
import torch
import torch.distributions as tdist
from pyro import poutine

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim.config import PRESETS, VIMConfig  # noqa: E402
from pyro_vim.distributions import SafeRelaxedOneHotCategorical  # noqa: E402
from pyro_vim.model import VIM, SlotState  # noqa: E402
from pyro_vim.overrides import apply_overrides  # noqa: E402


def torch_elbo(vim: VIM, frames: torch.Tensor) -> torch.Tensor:
    """-ELBO of VIM summed over videos, in plain torch (one sample of every latent)."""
    n, t_len = frames.shape[:2]
    features = vim.encode(frames)
    loc, scale, colour = vim.discover(features[:, 0], frames[:, 0])
    z0 = tdist.Normal(loc, scale).rsample()           # q(z_0 | c) = p(z_0 | c): KL 0
    h = SlotState(z0[..., :2], z0[..., 2:])
    states, kl = [h], 0.0
    for t in range(1, t_len):
        obs = vim.observe(features[:, t], frames[:, t], h, colour)
        colour = obs.colour
        cand_pos, cand_feat = vim.candidates(h)
        q_r = SafeRelaxedOneHotCategorical(vim.temperature,
                                           logits=vim.posterior.selection_logits(
                                               h, cand_pos, cand_feat, obs))
        r = q_r.rsample()
        p_r = SafeRelaxedOneHotCategorical(vim.temperature, logits=vim.prior.logits(
            h.pos, h.feat, cand_pos, cand_feat))
        mix_pos, mix_feat = vim.mix(r, cand_pos, cand_feat)
        q_loc, q_scale = vim.posterior.update_posterior(h, mix_pos, mix_feat, obs)
        q_z = tdist.Independent(tdist.Normal(q_loc, q_scale), 1)
        z = q_z.rsample()
        p_z = tdist.Independent(tdist.Normal(*vim.latent_update_prior(mix_pos, mix_feat)), 1)
        kl = kl + (q_r.log_prob(r) - p_r.log_prob(r)).sum() \
            + vim.z_kl_weight * (q_z.log_prob(z) - p_z.log_prob(z)).sum()
        h = vim.update(mix_pos, mix_feat, z)
        states.append(h)
    recon = -vim.likelihood(states).log_prob(frames).sum()   # batch (N, T), event (3, H, W)
    return recon + kl


def pyro_elbo(vim: VIM, frames: torch.Tensor) -> torch.Tensor:
    return pyro.infer.Trace_ELBO().differentiable_loss(vim.model, vim.guide, frames)


def timed(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=PRESETS, default="cpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=4)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = apply_overrides(VIMConfig.preset(args.preset), args.overrides)
    pyro.set_rng_seed(0)
    vim = VIM(config)
    vim.z_kl_weight = 3.0
    frames = torch.from_numpy(config.make_generator().generate(
        args.batch_size, args.seq_len, 0).frames)

    def losses():
        pyro.set_rng_seed(1)
        a = pyro_elbo(vim, frames)
        pyro.set_rng_seed(1)
        with poutine.block():
            b = torch_elbo(vim, frames)
        return float(a.detach()), float(b.detach())

    a, b = losses()

    def step(fn):
        def run():
            vim.zero_grad(set_to_none=True)
            fn(vim, frames).backward()
        return run

    t_pyro = timed(step(pyro_elbo), args.repeats)
    t_torch = timed(step(torch_elbo), args.repeats)
    result = {"preset": args.preset, "overrides": args.overrides, "batch_size": args.batch_size,
              "seq_len": args.seq_len, "threads": torch.get_num_threads(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
                         f"{torch.__version__}",
              "loss_pyro": a, "loss_torch": b,
              "max_loss_difference": abs(a - b) / max(1.0, abs(a)),
              "pyro_step_s": t_pyro, "torch_step_s": t_torch, "ratio": t_pyro / t_torch}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
