"""The model reuses the guide's discovery p(z_0 | c) within one ELBO evaluation: the same loss
and gradients as recomputing it, one encoder pass fewer, and never a stale value."""
import pyro
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from pyro_vim import VIM

from .helpers import tiny_config


def frames_of(n=3, t=4):
    return torch.from_numpy(tiny_config().make_generator().generate(n, t, 0).frames)


def loss_and_grads(vim, frames, share, program="full"):
    vim.share_discovery = share
    vim.zero_grad()
    pyro.set_rng_seed(7)
    model, guide = (vim.model, vim.guide) if program == "full" else (vim._model, vim._guide)
    loss = Trace_ELBO().differentiable_loss(model, guide, frames)
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in vim.named_parameters()
                           if p.grad is not None}


def test_sharing_changes_neither_loss_nor_gradients():
    # float64: unshared, the z_0 terms of model and guide cancel only up to rounding, which in
    # float32 is visible on parameters with small gradients
    pyro.set_rng_seed(0)
    vim = VIM(tiny_config()).double()
    for program, frames in (("full", frames_of().double()),
                            ("pretrain", frames_of(4, 2).reshape(8, 1, 3, 16, 16).double())):
        a_loss, a_grads = loss_and_grads(vim, frames, True, program)
        b_loss, b_grads = loss_and_grads(vim, frames, False, program)
        assert torch.allclose(a_loss, b_loss, rtol=1e-6, atol=1e-4)
        assert a_grads.keys() == b_grads.keys() and a_grads
        for k in a_grads:
            err = (a_grads[k] - b_grads[k]).norm() / b_grads[k].norm().clamp_min(1e-6)
            assert err < 1e-8, (k, float(err))


def test_the_model_skips_the_second_encoder_pass():
    vim = VIM(tiny_config())
    calls = []
    vim.encoder.register_forward_hook(lambda *a: calls.append(1))
    frames = frames_of()
    for share, expected in ((True, 1), (False, 2)):
        vim.share_discovery = share
        calls.clear()
        Trace_ELBO().differentiable_loss(vim.model, vim.guide, frames)
        assert len(calls) == expected


def test_a_stale_discovery_is_never_reused():
    """After an optimiser step, or on other frames, the model computes its own p(z_0 | c)."""
    vim = VIM(tiny_config())
    frames = frames_of()
    guide_trace = poutine.trace(vim.guide).get_trace(frames)
    with torch.no_grad():
        for p in vim.encoder.parameters():
            p.add_(0.1)                     # what an optimiser step does (in place)
    replayed = poutine.trace(poutine.replay(vim.model, guide_trace)).get_trace(frames)
    fresh_guide = poutine.trace(vim.guide).get_trace(frames)
    assert torch.allclose(replayed.nodes["z_0"]["fn"].base_dist.loc,
                          fresh_guide.nodes["z_0"]["fn"].base_dist.loc)
    assert not torch.allclose(replayed.nodes["z_0"]["fn"].base_dist.loc,
                              guide_trace.nodes["z_0"]["fn"].base_dist.loc)
    # other frames: the cache of the guide's frames does not apply
    vim.guide(frames)
    other = frames_of(3, 4).flip(-1).contiguous()
    trace = poutine.trace(vim.model).get_trace(other)
    vim.share_discovery = False
    again = poutine.trace(poutine.replay(vim.model, trace)).get_trace(other)
    assert torch.allclose(trace.nodes["z_0"]["fn"].base_dist.loc,
                          again.nodes["z_0"]["fn"].base_dist.loc)
