"""Numerically safe distributions used by VIM.

* :class:`SafeRelaxedOneHotCategorical` — the relaxed one-hot (Gumbel-softmax, Jang et al. 2016)
  distribution of the module choices ``r_{t}``.  Its density is evaluated in log space on a clamped
  value, so it stays finite at low temperature and at exact one-hot values (the plain class
  underflows and returns NaN there, Pyro issue 3304), which makes ``poutine.condition`` on hard
  module choices usable.  Model and guide must both use this class.
* :class:`SpatialGaussianMixture` — the observation model p(x_t | h_t): each pixel is a mixture over
  slots of Gaussians with the slot's decoded RGB as mean, weighted by the slots' softmax masks
  (Fig. 1 right).
"""
import math

import torch
from pyro.distributions import RelaxedOneHotCategorical, TorchDistribution
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all


class SafeRelaxedOneHotCategorical(RelaxedOneHotCategorical):
    """``RelaxedOneHotCategorical`` whose ``log_prob`` is finite everywhere on the simplex.

    log p(x) = log Gamma(M) + (M-1) log tau + sum_i s_i - M logsumexp(s) - sum_i log x_i,
    with s_i = logits_i - tau log x_i and x clamped to [tiny, 1] before the log.
    """

    def rsample(self, sample_shape=torch.Size()):
        x = super().rsample(sample_shape)
        return x / x.sum(-1, keepdim=True)  # exact simplex despite float rounding

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits = self.base_dist.logits
        tau = self.temperature
        num = logits.size(-1)
        tiny = torch.finfo(value.dtype).tiny
        log_x = value.clamp(min=tiny).log()
        score = logits - tau * log_x
        log_norm = math.lgamma(num) + (num - 1) * torch.log(tau)
        log_p = log_norm + score.sum(-1) - num * score.logsumexp(-1)
        return log_p - log_x.sum(-1)

    @property
    def probs_mode(self) -> torch.Tensor:
        """The hard (argmax) one-hot choice, used at evaluation time."""
        logits = self.base_dist.logits
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.size(-1)).to(logits.dtype)


class SpatialGaussianMixture(TorchDistribution):
    """Per-pixel Gaussian mixture over K slots.

    means: (..., K, C, H, W) in [0, 1]; mask_logits: (..., K, H, W) (softmax over K);
    scale: a float.  Batch shape ``...``, event shape (C, H, W).
    """

    arg_constraints = {"means": constraints.real, "mask_logits": constraints.real}
    support = constraints.independent(constraints.real, 3)
    has_rsample = False

    def __init__(self, means, mask_logits, scale, validate_args=None):
        if means.dim() < 4 or mask_logits.shape != means.shape[:-3] + means.shape[-2:]:
            raise ValueError(
                f"SpatialGaussianMixture expects means (..., K, C, H, W) and mask_logits "
                f"(..., K, H, W); got {tuple(means.shape)} and {tuple(mask_logits.shape)}")
        self.means, self.mask_logits = means, mask_logits
        self.scale = float(scale)
        batch_shape = means.shape[:-4]
        event_shape = means.shape[-3:]
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @property
    def masks(self) -> torch.Tensor:
        return self.mask_logits.softmax(-3)

    @property
    def mean(self) -> torch.Tensor:
        return (self.masks.unsqueeze(-3) * self.means).sum(-4)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value, _ = broadcast_all(value, self.mean)
        diff = (value.unsqueeze(-4) - self.means) / self.scale
        log_norm = -0.5 * math.log(2 * math.pi) - math.log(self.scale)
        comp = (-0.5 * diff.pow(2) + log_norm).sum(-3)                # (..., K, H, W)
        log_masks = self.mask_logits.log_softmax(-3)
        return (log_masks + comp).logsumexp(-3).sum((-2, -1))

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)
            logits = self.mask_logits.movedim(-3, -1)                    # (..., H, W, K)
            idx = torch.distributions.Categorical(logits=logits).sample(sample_shape)
            means = self.means.expand(torch.Size(sample_shape) + self.means.shape)
            idx = idx.unsqueeze(-3).unsqueeze(-4)                        # (..., 1, 1, H, W)
            idx = idx.expand(*means.shape[:-4], 1, means.shape[-3], *means.shape[-2:])
            chosen = means.gather(-4, idx).squeeze(-4)
            return (chosen + self.scale * torch.randn(shape, device=chosen.device)).reshape(shape)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        means = self.means.expand(batch_shape + self.means.shape[-4:])
        logits = self.mask_logits.expand(batch_shape + self.mask_logits.shape[-3:])
        return SpatialGaussianMixture(means, logits, self.scale, validate_args=False)
