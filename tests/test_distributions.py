import math

import pyro.distributions as dist
import pytest
import torch

from pyro_vim.distributions import SafeRelaxedOneHotCategorical, SpatialGaussianMixture


def test_safe_relaxed_matches_torch_where_torch_is_finite():
    logits = torch.randn(5, 4)
    for temperature in (0.5, 1.0, 2.0):
        t = torch.tensor(temperature)
        safe = SafeRelaxedOneHotCategorical(t, logits=logits)
        plain = dist.RelaxedOneHotCategorical(t, logits=logits)
        x = plain.sample()
        assert torch.allclose(safe.log_prob(x), plain.log_prob(x), atol=1e-3, rtol=1e-4)


def test_safe_relaxed_is_finite_on_hard_one_hots_and_low_temperature():
    logits = torch.randn(6, 5)
    hard = torch.nn.functional.one_hot(torch.arange(6) % 5, 5).float()
    for temperature in (1.0, 0.1, 0.01):
        d = SafeRelaxedOneHotCategorical(torch.tensor(temperature), logits=logits)
        assert torch.isfinite(d.log_prob(hard)).all()
        assert torch.isfinite(d.log_prob(d.rsample())).all()
    plain = dist.RelaxedOneHotCategorical(torch.tensor(1.0), logits=logits)
    assert not torch.isfinite(plain.log_prob(hard)).all()  # the failure we guard against


def test_safe_relaxed_prefers_the_likelier_vertex():
    d = SafeRelaxedOneHotCategorical(torch.tensor(0.5), logits=torch.tensor([3.0, 0.0, 0.0]))
    a = torch.tensor([1.0, 0.0, 0.0])
    b = torch.tensor([0.0, 1.0, 0.0])
    assert d.log_prob(a) > d.log_prob(b)
    assert torch.equal(d.probs_mode, a)


def test_spatial_mixture_log_prob_matches_manual_and_mean():
    torch.manual_seed(0)
    means = torch.rand(2, 3, 3, 4, 5)          # batch 2, K=3, C=3, 4x5
    logits = torch.randn(2, 3, 4, 5)
    d = SpatialGaussianMixture(means, logits, 0.1)
    assert d.batch_shape == (2,) and d.event_shape == (3, 4, 5)
    x = torch.rand(2, 3, 4, 5)
    masks = logits.softmax(1)
    comp = torch.distributions.Normal(means, 0.1).log_prob(x[:, None]).sum(2).exp()
    manual = (masks * comp).sum(1).log().sum((-2, -1))
    assert torch.allclose(d.log_prob(x), manual, rtol=1e-4)
    assert torch.allclose(d.mean, (masks[:, :, None] * means).sum(1))
    assert d.sample().shape == (2, 3, 4, 5)
    assert d.expand((4, 2)).batch_shape == (4, 2)


def test_spatial_mixture_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="mask_logits"):
        SpatialGaussianMixture(torch.rand(2, 3, 3, 4, 5), torch.rand(2, 3, 4, 4), 0.1)


def test_spatial_mixture_single_component_is_a_gaussian():
    means = torch.rand(1, 1, 3, 2, 2)
    d = SpatialGaussianMixture(means, torch.zeros(1, 1, 2, 2), 0.2)
    x = torch.rand(1, 3, 2, 2)
    expected = torch.distributions.Normal(means[:, 0], 0.2).log_prob(x).sum((-3, -2, -1))
    assert torch.allclose(d.log_prob(x), expected, atol=1e-4)
    assert math.isfinite(float(d.log_prob(x)))
