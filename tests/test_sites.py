"""Site names live in one place; model and guide share one transition step; evaluation is the
guide under a handler."""
import pytest
import torch
from pyro import poutine

from pyro_vim import VIM, sites
from pyro_vim.handlers import UseMeans

from .helpers import tiny_config


def frames_of(n=2, t=4):
    return torch.from_numpy(tiny_config().make_generator().generate(n, t, 0).frames)


def test_names_and_parse():
    assert (sites.r_site(3), sites.z_site(3)) == ("r_3", "z_3")
    assert (sites.r_site(2, 1), sites.z_site(2, 4)) == ("r_2_1", "z_2_4")
    assert sites.parse("r_12") == sites.Site("r", 12, None)
    assert sites.parse("z_2_3") == sites.Site("z", 2, 3)
    assert sites.parse("z_0") == sites.Site("z_0") and sites.parse("x") == sites.Site("x")
    assert sites.parse("future_frames") is None and sites.parse("videos") is None
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="time index"):
            sites.r_site(bad)
    with pytest.raises(ValueError, match="iteration index"):
        sites.z_site(1, 0)


def test_model_and_guide_go_through_one_transition_step(monkeypatch):
    vim = VIM(tiny_config())
    calls = []
    real = VIM.transition_step

    def spy(self, t, h, select, update_dist, i=None, stay=False):
        calls.append(t)
        return real(self, t, h, select, update_dist, i, stay)

    monkeypatch.setattr(VIM, "transition_step", spy)
    frames = frames_of(t=4)
    guide_trace = poutine.trace(vim.guide).get_trace(frames)
    assert calls == [1, 2, 3]
    poutine.trace(poutine.replay(vim.model, trace=guide_trace)).get_trace(frames, horizon=2)
    assert calls == [1, 2, 3, 1, 2, 3, 4, 5]


def test_infer_is_the_guide_under_use_means():
    vim = VIM(tiny_config())
    frames = frames_of()
    out = vim.infer(frames)
    with UseMeans():
        trace = poutine.trace(vim.guide).get_trace(frames)
    for t in (1, 2, 3):
        r = trace.nodes[f"r_{t}"]
        assert torch.equal(r["value"].argmax(-1), out["selections"][:, t - 1])
        assert torch.equal(r["value"], r["fn"].probs_mode)          # hard one-hots
        z = trace.nodes[f"z_{t}"]
        assert torch.equal(z["value"], z["fn"].mean)
    z0 = trace.nodes["z_0"]
    assert torch.allclose(out["slots"][:, 0], z0["value"])
    # and a sampled guide run differs (the handler, not the program, made it deterministic)
    sampled = poutine.trace(vim.guide).get_trace(frames)
    assert not torch.equal(sampled.nodes["z_1"]["value"], trace.nodes["z_1"]["value"])


def test_use_means_on_named_sites_only():
    vim = VIM(tiny_config())
    frames = frames_of()
    with UseMeans(["z_2"]):
        trace = poutine.trace(vim.guide).get_trace(frames)
    assert torch.equal(trace.nodes["z_2"]["value"], trace.nodes["z_2"]["fn"].mean)
    assert not torch.equal(trace.nodes["z_1"]["value"], trace.nodes["z_1"]["fn"].mean)
