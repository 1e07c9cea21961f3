"""VIM-k: k module selections/updates between two frames (Sec. 5.2)."""
import numpy as np
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from pyro_vim import VIM, SafeRelaxedOneHotCategorical
from pyro_vim.data import CompositionalRandomWalk, RandomWalk
from pyro_vim.metrics import match_objects_to_slots

from .helpers import tiny_config, v1_dict
from .test_fidelity import hand_set_vim

S = 24


def latent_sites(trace):
    return {n: s for n, s in trace.nodes.items() if s["type"] == "sample"
            and not s["is_observed"] and n not in ("videos", "slots")}


@pytest.mark.parametrize("k", [1, 2, 3])
def test_traces_for_k_iterations(k):
    c = tiny_config(iterations=k)
    vim = VIM(c)
    frames = torch.from_numpy(RandomWalk(image_size=16).generate(2, 3, 0).frames)
    guide_trace = poutine.trace(vim.guide).get_trace(frames)
    model_trace = poutine.trace(poutine.replay(vim.model, trace=guide_trace)).get_trace(frames)
    suffix = [""] if k == 1 else [f"_{i}" for i in range(1, k + 1)]
    expected = sorted(["z_0"] + [f"{p}_{t}{s}" for t in (1, 2) for s in suffix for p in "rz"])
    assert sorted(latent_sites(model_trace)) == expected
    assert sorted(latent_sites(guide_trace)) == expected         # guide = model latents
    for name, site in latent_sites(guide_trace).items():
        if name.startswith("r_"):
            assert type(site["fn"]) is SafeRelaxedOneHotCategorical
            assert site["value"].shape == (2, c.num_slots, c.num_modules)
        elif name != "z_0":
            assert isinstance(site["fn"], dist.Independent)
            assert site["value"].shape == (2, c.num_slots, c.state_dim)
    # only the state after the last iteration is rendered: one frame per time step
    assert model_trace.nodes["x"]["value"].shape == (2, 1, 3, 3, 16, 16)


def test_elbo_finite_and_gradient_reaches_every_parameter_for_k_2():
    vim = VIM(tiny_config(iterations=2))
    frames = torch.from_numpy(CompositionalRandomWalk(image_size=16, radius=2, step=2,
                                                      min_moves=2, max_moves=2)
                              .generate(2, 3, 0).frames)
    loss = Trace_ELBO()(vim.model, vim.guide)(frames)
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in vim.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing, missing


def test_eight_iterations_reach_a_five_move_composition():
    vim = hand_set_vim(3.0)
    data = CompositionalRandomWalk(image_size=S, num_objects=2, min_moves=5, max_moves=5,
                                   radius=2).generate(6, 2, seed=1)
    out = vim.infer(torch.from_numpy(data.frames), iterations=8)
    assert out["iteration_positions"].shape == (6, 1, 8, vim.config.num_slots, 2)
    assert out["iteration_selections"].shape == (6, 1, 8, vim.config.num_slots)
    start = out["positions"][:, 0].numpy()
    matching = match_objects_to_slots(data.positions[:, 0], start)
    take = np.broadcast_to(matching[:, None, :, None], (6, 8, 2, 2))
    track = np.take_along_axis(out["iteration_positions"][:, 0].numpy(), take, 2)  # N, 8, O, 2
    offset = np.take_along_axis(start, matching[..., None].repeat(2, -1), 1) \
        - data.positions[:, 0]
    error = np.linalg.norm(track - (data.positions[:, 1] + offset)[:, None], axis=-1)
    per_iteration = error.mean(axis=(0, 2))
    assert per_iteration[-1] < 1e-3                  # exactly the composition (slot offset kept)
    assert np.all(np.diff(per_iteration) <= 1e-4)     # never moves away from the observation
    assert per_iteration[0] > 1.0                      # one module alone does not get there
    # after reaching the target the planner stays (choice index M)
    assert (out["iteration_selections"][:, 0, -1] == vim.config.num_modules).any()


def test_infer_iterations_are_checked_and_k1_keeps_its_outputs():
    vim = VIM(tiny_config())
    frames = torch.from_numpy(RandomWalk(image_size=16).generate(2, 3, 0).frames)
    out = vim.infer(frames)
    assert out["iteration_positions"].shape == (2, 2, 1, 4, 2)
    assert torch.equal(out["iteration_selections"][:, :, 0], out["selections"])
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="iterations must be a positive int"):
            vim.infer(frames, iterations=bad)


def test_composition_errors_of_perfect_modules():
    from pyro_vim.fidelity import composition_errors
    data = CompositionalRandomWalk(image_size=S, num_objects=2, radius=2).generate(8, 4, 0)
    out = composition_errors(hand_set_vim(3.0), data, iterations=8)
    assert len(out["per_iteration"]) == 8 and out["iterations"] == 8
    assert out["final"] < 0.2 < out["start"]          # only the slot/ball offset remains
    assert out["per_iteration"][0] > out["final"] and set(out["by_moves"]) <= {1, 2, 3, 4, 5}
    short = composition_errors(hand_set_vim(2.0), data, iterations=8)
    assert short["final"] > out["final"] + 0.3        # 2 px modules cannot compose 3 px moves


def test_using_iterations_is_temporary():
    vim = VIM(tiny_config(iterations=2))
    frames = torch.from_numpy(RandomWalk(image_size=16).generate(1, 2, 0).frames)
    with vim.using_iterations(1):
        names = set(poutine.trace(vim.guide).get_trace(frames).nodes)
        assert "r_1" in names and "r_1_1" not in names
    assert vim.config.iterations == 2
    assert "r_1_2" in poutine.trace(vim.guide).get_trace(frames).nodes


@pytest.mark.parametrize("iteration_prior", ["current", "start"])
def test_iteration_prior_scores_the_transitions_first_state_or_the_current_one(iteration_prior):
    vim = VIM(tiny_config(iterations=2, iteration_prior=iteration_prior))
    frames = torch.from_numpy(RandomWalk(image_size=16).generate(2, 3, 0).frames)
    guide_trace = poutine.trace(vim.guide).get_trace(frames)
    model_trace = poutine.trace(poutine.replay(vim.model, trace=guide_trace)).get_trace(frames)
    for t in (1, 2):
        first, second = (model_trace.nodes[f"r_{t}_{i}"]["fn"].logits for i in (1, 2))
        # "start": both choices drawn from p(r | h_{t-1}); "current": the second from the
        # state the first module (and its update) produced
        assert torch.equal(first, second) == (iteration_prior == "start")
    loss = Trace_ELBO()(vim.model, vim.guide)(frames)
    loss.backward()
    assert all(p.grad is not None for p in vim.prior.parameters())


def test_iteration_prior_must_be_named_and_old_configs_keep_theirs():
    with pytest.raises(ValueError, match="iteration_prior"):
        tiny_config(iteration_prior="previous")
    assert tiny_config().iteration_prior == "start"
    old = v1_dict(tiny_config(iterations=2))
    del old["iteration_prior"]                     # a config saved before the field existed
    assert type(tiny_config()).from_saved(old).iteration_prior == "current"


