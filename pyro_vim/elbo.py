"""``Trace_ELBO`` that also reports the paper's three ELBO terms (Sec. 3.3).

``TermsELBO().loss_and_terms(model, guide, frames)`` returns the same differentiable loss as
``Trace_ELBO().differentiable_loss`` (every site of VIM is reparameterised, so there is no
score-function term) together with, per video: ``recon`` (-log p(x | h)), ``kl_z`` (Gaussian KL
of the updates z_t, unscaled), ``kl_r`` (module KL of r_t) and ``kl_z0`` (zero when the guide uses
the discovery model for z_0, as VIM's does).
"""
from collections import defaultdict
from typing import Dict, Tuple

import torch
from pyro.infer import Trace_ELBO

from . import sites

_TERMS = {sites.X: "recon", sites.Z0: "kl_z0", "r": "kl_r", "z": "kl_z"}


def _term(name: str) -> str:
    site = sites.parse(name)
    return _TERMS.get(site.symbol, "other") if site is not None else "other"


class TermsELBO(Trace_ELBO):
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
                lp = site["log_prob_sum"]
                particle = particle + lp
                terms[_term(name)] -= float(lp.detach()) / float(site["scale"])
                if site["is_observed"]:
                    n_videos = site["value"].shape[0]
            for name, site in guide_trace.nodes.items():
                if site["type"] != "sample" or site["is_observed"]:
                    continue
                lp = site["log_prob_sum"]
                particle = particle - lp
                terms[_term(name)] += float(lp.detach()) / float(site["scale"])
            loss = loss - particle / self.num_particles
        n = float(n_videos or 1) * self.num_particles
        return loss, {k: v / n for k, v in terms.items()}
