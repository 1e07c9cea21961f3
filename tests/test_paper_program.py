"""With every part at the paper's choice the program is the paper's (Sec. 3, Eqs. 2-4): its sample
sites, their shapes, and the ELBO of a tiny case recomputed by hand from the densities' formulas."""
import math

import pyro
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from pyro_vim import VIM
from pyro_vim.config import PAPER_PARTS
from pyro_vim.guides import KeyQueryGuide
from pyro_vim.priors import KeyQueryPrior
from pyro_vim.tracking import PaperTracking

from .helpers import tiny_config


def _frames(config, n=2, t=3):
    return torch.as_tensor(config.make_generator().generate(n, t, seed=3).frames).float()


def _normal(v, loc, scale):
    """log N(v | loc, scale) summed over the last (event) dimension."""
    v, loc, scale = v.double(), loc.double(), scale.double()
    return (-0.5 * ((v - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)


def _concrete(y, logits, tau):
    """The Concrete / Gumbel-softmax density (Maddison et al. 2017, Eq. 9), product form:
    (M-1)! tau^(M-1) prod_m (pi_m y_m^(-tau-1)) / (sum_m pi_m y_m^(-tau))^M."""
    y, pi, tau = y.double(), logits.double().softmax(-1), float(tau)
    m = y.shape[-1]
    return (math.lgamma(m) + (m - 1) * math.log(tau) + (pi.log() - (tau + 1) * y.log()).sum(-1)
            - m * (pi * y.pow(-tau)).sum(-1).log())


def _mixture(x, means, mask_logits, sigma):
    """log prod_pixels sum_k m_k N(x_pixel | mu_k, sigma^2 I): x (..., 3, H, W), means
    (..., K, 3, H, W), mask_logits (..., K, H, W)."""
    x, means = x.double(), means.double()
    masks = mask_logits.double().softmax(-3)
    dens = torch.exp(-0.5 * ((x.unsqueeze(-4) - means) / sigma) ** 2) / (
        sigma * math.sqrt(2 * math.pi))
    return (masks * dens.prod(-3)).sum(-3).log().sum((-2, -1))


def _sample_sites(trace):
    """Names of the sample sites, plates' subsample sites left out."""
    return [name for name, site in trace.nodes.items() if site["type"] == "sample"
            and type(site["fn"]).__name__ != "_Subsample"]


def test_paper_parts_build_the_papers_program():
    vim = VIM(tiny_config(**PAPER_PARTS))
    assert type(vim.prior) is KeyQueryPrior and type(vim.posterior) is KeyQueryGuide
    assert type(vim.tracking) is PaperTracking and not vim.tracking.hold
    assert vim.config.merge == "none" and vim.config.r_kl == "sample"


def test_paper_program_sites_shapes_and_elbo_by_hand():
    config = tiny_config(**PAPER_PARTS, sigma_x=0.3)
    vim = VIM(config)
    frames = _frames(config)
    n, t_len = frames.shape[:2]
    k, m, s, size = config.num_slots, config.num_modules, config.state_dim, config.image_size

    pyro.set_rng_seed(7)
    loss = Trace_ELBO().loss(vim.model, vim.guide, frames)
    pyro.set_rng_seed(7)                       # the same draws as Trace_ELBO's one particle
    guide = poutine.trace(vim.guide).get_trace(frames)
    model = poutine.trace(poutine.replay(vim.model, trace=guide)).get_trace(frames)

    latent = ["z_0"] + [f"{sym}_{t}" for t in range(1, t_len) for sym in ("r", "z")]
    model_sites = _sample_sites(model)
    guide_sites = _sample_sites(guide)
    assert [f.name for f in model.nodes["z_0"]["cond_indep_stack"]] == ["videos", "slots"]
    assert model_sites == latent + ["x"] and guide_sites == latent
    assert model.nodes["x"]["is_observed"]
    for name in latent:
        shape = (n, k, m) if name.startswith("r") else (n, k, s)
        assert guide.nodes[name]["value"].shape == shape, name
        assert model.nodes[name]["value"] is guide.nodes[name]["value"]
    assert model.nodes["x"]["value"].shape == (n, 1, t_len, 3, size, size)

    elbo = torch.zeros((), dtype=torch.float64)
    for name in latent:
        p, q = model.nodes[name]["fn"], guide.nodes[name]["fn"]
        v = guide.nodes[name]["value"]
        if name.startswith("r"):
            assert float(p.temperature) == float(q.temperature) == 1.0   # A.1: fixed at 1
            term = _concrete(v, p.logits, p.temperature) - _concrete(v, q.logits, q.temperature)
        else:
            term = (_normal(v, p.base_dist.loc, p.base_dist.scale)
                    - _normal(v, q.base_dist.loc, q.base_dist.scale))
        elbo = elbo + term.sum()
    x = model.nodes["x"]
    mixture = x["fn"].base_dist
    elbo = elbo + _mixture(x["value"], mixture.means, mixture.mask_logits, config.sigma_x).sum()
    elbo = float(elbo.detach())
    assert math.isfinite(elbo)
    assert abs(-loss - elbo) <= 1e-4 * abs(elbo) + 1e-2


def test_model_computes_its_own_discovery():
    """p(z_0 | c) in the model and q(z_0 | c) in the guide are the same network on the same
    frame, computed by each program (nothing passes between them)."""
    config = tiny_config(**PAPER_PARTS)
    vim = VIM(config)
    frames = _frames(config)
    guide = poutine.trace(vim.guide).get_trace(frames)
    model = poutine.trace(poutine.replay(vim.model, trace=guide)).get_trace(frames)
    p, q = model.nodes["z_0"]["fn"].base_dist, guide.nodes["z_0"]["fn"].base_dist
    assert p.loc is not q.loc
    torch.testing.assert_close(p.loc, q.loc, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(p.scale, q.scale)
