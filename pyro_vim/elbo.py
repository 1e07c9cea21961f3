"""``Trace_ELBO`` that also reports the paper's three ELBO terms (Sec. 3.3).

``TermsELBO().loss_and_terms(model, guide, frames)`` returns the same differentiable loss as
``Trace_ELBO().differentiable_loss`` (every site of VIM is reparameterised, so there is no
score-function term) together with, per video: ``recon`` (-log p(x | h)), ``kl_z`` (Gaussian KL
of the updates z_t, unscaled), ``kl_r`` (module KL of r_t), with binary modules ``kl_p``
(partner KL of p_t, :mod:`pyro_vim.interactions`; analytic too under ``categorical_r``) and
``kl_z0`` (zero when the guide uses the discovery model for z_0, as VIM's does).

``TermsELBO(categorical_r=True)`` replaces the Monte Carlo estimate of each module-choice KL,
log q(r) - log p(r) at the relaxed sample r (densities of the relaxed one-hot at temperature
tau), by the analytic KL between the two *categorical* choice distributions,
sum_m q_m (log q_m - log p_m).  The relaxed sample still carries the reconstruction gradient.  The
Monte Carlo relaxed KL is not minimised by a prior equal to the posterior's average choice
probabilities; the categorical KL is (``VIMConfig.r_kl = "categorical"``).
"""
from collections import defaultdict
from typing import Dict, Tuple

import torch
from pyro.infer import Trace_ELBO

from . import sites

_TERMS = {sites.X: "recon", sites.Z0: "kl_z0", "r": "kl_r", "z": "kl_z", "p": "kl_p"}
#: the choice terms (relaxed one-hot sites) that ``categorical_r`` makes analytic
_CHOICES = ("kl_r", "kl_p")


def _term(name: str) -> str:
    site = sites.parse(name)
    return _TERMS.get(site.symbol, "other") if site is not None else "other"


def categorical_kl(q_fn, p_fn) -> torch.Tensor:
    """KL(Cat(q) || Cat(p)) of two relaxed one-hot distributions' logits, batch-shaped."""
    log_q = q_fn.logits - q_fn.logits.logsumexp(-1, keepdim=True)
    log_p = p_fn.logits - p_fn.logits.logsumexp(-1, keepdim=True)
    return (log_q.exp() * (log_q - log_p)).sum(-1)


class TermsELBO(Trace_ELBO):
    def __init__(self, *args, categorical_r: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.categorical_r = categorical_r

    def loss_and_terms(self, model, guide, *args,
                       **kwargs) -> Tuple[torch.Tensor, Dict[str, float]]:
        loss = 0.0
        terms: Dict[str, float] = defaultdict(float)
        n_videos = None
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            particle = 0.0
            for name, site in model_trace.nodes.items():
                if site["type"] != "sample":
                    continue
                term = _term(name)
                if self.categorical_r and term in _CHOICES and name in guide_trace.nodes:
                    kl = (categorical_kl(guide_trace.nodes[name]["fn"], site["fn"])
                          * site["scale"]).sum()
                    particle = particle - kl
                    terms[term] += float(kl.detach()) / float(site["scale"])
                    continue
                lp = site["log_prob_sum"]
                particle = particle + lp
                terms[_term(name)] -= float(lp.detach()) / float(site["scale"])
                if site["is_observed"]:
                    n_videos = site["value"].shape[0]
            for name, site in guide_trace.nodes.items():
                if site["type"] != "sample" or site["is_observed"]:
                    continue
                if self.categorical_r and _term(name) in _CHOICES:
                    continue                      # counted analytically above
                lp = site["log_prob_sum"]
                particle = particle - lp
                terms[_term(name)] += float(lp.detach()) / float(site["scale"])
            loss = loss - particle / self.num_particles
        n = float(n_videos or 1) * self.num_particles
        return loss, {k: v / n for k, v in terms.items()}
