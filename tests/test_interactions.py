"""Interacting objects (``config.interaction``, pyro_vim/interactions.py): a velocity in the slot
state, binary modules chosen with a partner slot (site ``p_{t}``), in the same Pyro program.

Off by default, the program is the paper's unary VIM (tests/test_training_trace.py and
tests/test_checkpoint_fixtures.py hold its numbers); here: the sites, the partner distribution,
prediction, SVI under Pyro validation with warnings as errors (tests/conftest.py, pyproject.toml)
and gradients."""
import json

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO

from pyro_vim import VIM, sites
from pyro_vim.config import VIMConfig
from pyro_vim.distributions import SafeRelaxedOneHotCategorical
from pyro_vim.elbo import TermsELBO
from pyro_vim.handlers import UseMeans
from pyro_vim.infer import counterfactual, predict
from pyro_vim.interactions import Interactions, others_index
from pyro_vim.train import Trainer

from .helpers import tiny_config

B = 2          # binary modules in these tests


def config(**overrides) -> VIMConfig:
    """The tests' tiny config on bouncing balls (16x16, K=4 slots, M=4 unary modules)."""
    base = dict(data={"name": "bouncing", "radius": 2, "speed": 1.5},
                interaction={"num_binary_modules": B, "velocity": True})
    base.update(overrides)
    return tiny_config(**base)


def frames_of(c, n=2, t=4, seed=0):
    return torch.from_numpy(c.make_generator().generate(n, t, seed).frames)


def traces(vim, frames):
    guide = poutine.trace(vim.guide).get_trace(frames)
    model = poutine.trace(poutine.replay(vim.model, trace=guide)).get_trace(frames)
    return model, guide


def sample_sites(trace):
    return [name for name, site in trace.nodes.items()
            if site["type"] == "sample" and name not in ("videos", "slots")]


@pytest.mark.parametrize("velocity", [False, True])
def test_trace_sites_and_shapes_with_binary_modules(velocity):
    c = config(interaction={"num_binary_modules": B, "velocity": velocity})
    vim = VIM(c)
    n, t, k, m = 2, 4, c.num_slots, c.num_modules
    frames = frames_of(c, n, t)
    model, guide = traces(vim, frames)
    per_step = [[sites.r_site(s), sites.p_site(s), sites.z_site(s)] for s in range(1, t)]
    want = [sites.Z0] + sum(per_step, [])
    assert sample_sites(guide) == want
    assert sample_sites(model) == want + [sites.X]
    state = 2 + (2 if velocity else 0) + c.slot_dim
    assert state == c.latent_dim
    for trace in (model, guide):
        assert trace.nodes["z_0"]["value"].shape == (n, k, state)
        for s in range(1, t):
            r, p = trace.nodes[f"r_{s}"], trace.nodes[f"p_{s}"]
            assert r["value"].shape == (n, k, m + B)
            assert p["value"].shape == (n, k, k)                  # K-1 other slots + "none"
            assert trace.nodes[f"z_{s}"]["value"].shape == (n, k, state)
            # the same relaxed class in model and guide (finite densities at one-hots)
            assert type(r["fn"]) is SafeRelaxedOneHotCategorical
            assert type(p["fn"]) is SafeRelaxedOneHotCategorical
    model.compute_log_prob()
    assert torch.isfinite(model.log_prob_sum())
    assert sites.parse("p_3") == sites.Site("p", 3, None)
    assert sites.parse("p_2_1") == sites.Site("p", 2, 1)


def test_default_off_is_todays_program():
    """No ``interaction`` settings: the paper's sites, sizes and parameters."""
    c = tiny_config()
    assert c.interaction.num_binary_modules == 0 and not c.interaction.velocity
    assert c.latent_dim == c.state_dim and c.num_choices == c.num_modules
    vim = VIM(c)
    assert vim.interactions is None
    assert not any("interactions" in key for key in vim.state_dict())
    frames = frames_of(tiny_config(), t=3)
    model, guide = traces(vim, frames)
    assert sample_sites(guide) == ["z_0", "r_1", "z_1", "r_2", "z_2"]
    assert sample_sites(model) == ["z_0", "r_1", "z_1", "r_2", "z_2", "x"]
    assert guide.nodes["r_1"]["value"].shape[-1] == c.num_modules
    assert guide.nodes["z_0"]["value"].shape[-1] == c.state_dim
    # a velocity alone adds no site: z_0 and z_t grow by the velocity
    vel = VIM(tiny_config(velocity=True))
    model, guide = traces(vel, frames)
    assert sample_sites(guide) == ["z_0", "r_1", "z_1", "r_2", "z_2"]
    assert guide.nodes["z_1"]["value"].shape[-1] == c.state_dim + 2


def test_interaction_config_section():
    c = VIMConfig(num_binary_modules=3, velocity=True)
    assert c.interaction.num_binary_modules == 3 and c.num_choices == c.num_modules + 3
    assert VIMConfig(**{"interaction.velocity": True}).velocity is True
    assert VIMConfig.from_dict(c.to_dict()) == c
    old = VIMConfig().to_dict()
    old.pop("interaction")                         # a version-2 file written before the section
    assert VIMConfig.from_dict(old) == VIMConfig()
    with pytest.raises(ValueError, match="iterations=1"):
        VIMConfig(velocity=True, iterations=2)
    with pytest.raises(ValueError, match="num_binary_modules"):
        VIMConfig(num_binary_modules=-1)


def test_partner_choice_factorises_the_pair_softmax():
    """p(r = b) p(p = j | r = b) = softmax over the valid (module, partner) pairs, and a unary
    module's partner is "none"."""
    k, m = 3, 2
    inter = Interactions(num_slots=k, num_modules=m, num_binary=B, slot_dim=4, hidden=8)
    assert others_index(3).tolist() == [[1, 2], [0, 2], [0, 1]]
    scores = torch.randn(5, k, m + B * k)
    r_logp = inter.module_logits(scores).log_softmax(-1)
    pair_logp = scores.log_softmax(-1)                                   # the joint
    unary, pairs = pair_logp[..., :m], pair_logp[..., m:].unflatten(-1, (B, k))
    for a in range(m + B):
        r = torch.nn.functional.one_hot(torch.tensor(a), m + B).float().expand(5, k, m + B)
        p_logp = inter.partner_logits(scores, r).log_softmax(-1)
        if a < m:
            assert torch.allclose(r_logp[..., a], unary[..., a], atol=1e-5)
            assert torch.allclose(p_logp[..., -1], torch.zeros(()), atol=1e-6)   # "none"
        else:
            joint = r_logp[..., a, None] + p_logp
            assert torch.allclose(joint, pairs[..., a - m, :], atol=1e-5)
    # weights of the candidates sum to one for relaxed choices too
    r = torch.softmax(torch.randn(5, k, m + B), -1)
    p = torch.softmax(torch.randn(5, k, k), -1)
    w = inter.pair_weights(r, p)
    assert w.shape == (5, k, m + B * k) and torch.allclose(w.sum(-1), torch.ones(5, k))
    # partner categories -> slots: never the slot itself, -1 for "none"
    choice = torch.tensor([[0, 1, 2], [1, 0, 2]])
    assert inter.partner_slots(choice).tolist() == [[1, 2, -1], [2, 0, -1]]


def test_module_first_gives_every_module_equal_odds_at_equal_scores():
    """"joint" gives a binary module K times a unary module's odds when all candidates score
    alike (one per partner); "module_first" removes that count, and the partner given the
    module is the same."""
    k, m = 6, 3
    scores = torch.zeros(2, k, m + B * k)
    joint = Interactions(k, m, B, slot_dim=4, hidden=8)
    first = Interactions(k, m, B, slot_dim=4, hidden=8, pair_choice="module_first")
    p_joint = joint.module_logits(scores).softmax(-1)
    p_first = first.module_logits(scores).softmax(-1)
    assert torch.allclose(p_joint[..., m] / p_joint[..., 0], torch.tensor(float(k)))
    assert torch.allclose(p_first, torch.full_like(p_first, 1 / (m + B)))
    scores = torch.randn(2, k, m + B * k)
    r = torch.softmax(torch.randn(2, k, m + B), -1)
    assert torch.equal(joint.partner_logits(scores, r), first.partner_logits(scores, r))
    c = VIMConfig(num_binary_modules=1, pair_choice="module_first")
    assert Interactions.from_config(c).pair_choice == "module_first"
    with pytest.raises(ValueError, match="pair_choice"):
        VIMConfig(pair_choice="sum")


def test_partner_init_zero_starts_blind_to_the_partner_and_learns_to_see_it():
    from pyro_vim.nn import BinaryModules
    torch.manual_seed(0)
    mods = BinaryModules(2, slot_dim=4, hidden=8, partner_init="zero")
    own = (torch.randn(3, 2), torch.randn(3, 4), None)
    partner = (torch.randn(3, 2), torch.randn(3, 4), None)
    none = (torch.zeros(3, 2), torch.zeros(3, 4), None)
    with_partner = mods(own, partner, torch.ones(3))
    without = mods(own, none, torch.zeros(3))
    for a, b in zip(with_partner[:2], without[:2]):
        assert torch.equal(a, b)                      # every partner gives the same update
    with_partner[0].sum().backward()
    assert mods.l1.weight.grad[:, 2 + 4:].abs().sum() > 0   # the partner weights do learn
    random = BinaryModules(2, slot_dim=4, hidden=8)
    assert not torch.equal(random(own, partner, torch.ones(3))[0],
                           random(own, none, torch.zeros(3))[0])
    assert Interactions.from_config(VIMConfig(num_binary_modules=1, partner_init="zero")) \
        .binary.l1.weight[:, 2 + VIMConfig().slot_dim:].abs().sum() == 0
    with pytest.raises(ValueError, match="partner_init"):
        VIMConfig(partner_init="ones")


def test_infer_reports_partners_and_velocities():
    c = config()
    vim = VIM(c).eval()
    frames = frames_of(c, 2, 5)
    out = vim.infer(frames)
    n, k = 2, c.num_slots
    assert out["selection_probs"].shape == (n, 4, k, c.num_modules + B)
    assert out["partners"].shape == (n, 4, k) and out["partner_probs"].shape == (n, 4, k, k)
    slot = torch.arange(k).expand_as(out["partners"])
    assert ((out["partners"] >= -1) & (out["partners"] < k)).all()
    assert (out["partners"] != slot).all()
    unary = out["selections"] < c.num_modules            # hard unary choice: no partner
    assert (out["partners"][unary] == -1).all()
    assert out["velocities"].shape == (n, 5, k, 2)
    # the guide's velocity (mean) is the slot's displacement over the last frame
    torch.testing.assert_close(out["velocities"][:, 1:],
                               out["positions"][:, 1:] - out["positions"][:, :-1])
    # infer is the guide under UseMeans: the hard partner is p_t's argmax
    with UseMeans():
        trace = poutine.trace(vim.guide).get_trace(frames)
    p1 = trace.nodes["p_1"]["value"]
    assert torch.equal(vim.interactions.partner_slots(p1.argmax(-1)), out["partners"][:, 0])


def test_velocity_is_read_off_the_first_two_frames():
    """p(z_0 | c): the mean velocity is the displacement of one tracking step from the
    discovered slots onto frame 1; without a second frame (pre-training) it is zero."""
    c = config()
    vim = VIM(c).eval()
    frames = frames_of(c, 2, 3)
    with UseMeans():
        guide = poutine.trace(vim.guide).get_trace(frames)
    z0 = guide.nodes["z_0"]["value"]
    features = vim.encode(frames)
    sa = vim.slot_attention(features[:, 0], vim.pixels(frames[:, 0]), vim.grid,
                            iters=c.discovery_iters, hold=vim.tracking.hold)
    seen = vim.observe(features[:, 1], frames[:, 1],
                       vim.state_of(torch.cat([sa.pos, torch.zeros_like(sa.pos),
                                               vim.state_norm(sa.feat)], -1)), sa.colour)
    torch.testing.assert_close(z0[..., 2:4], seen.pos - sa.pos)
    single = poutine.trace(vim._model).get_trace(frames[:, :1])     # the pre-training program
    assert torch.equal(single.nodes["z_0"]["fn"].mean[..., 2:4],
                       torch.zeros_like(z0[..., 2:4]))
    with pytest.raises(ValueError, match="two context frames"):
        vim.model(frames[:, :1], horizon=2)


def test_predict_and_counterfactual_with_binary_modules():
    c = config()
    vim = VIM(c).eval()
    frames = frames_of(c, 2, 3)
    pred = predict(vim, frames, horizon=3, num_samples=2)
    k = c.num_slots
    assert pred["frames"].shape == (2, 2, 3, 3, 16, 16)
    assert pred["selection_samples"].shape == (2, 2, 3, k, c.num_modules + B)
    assert pred["partners"].shape == (2, 2, 3, k)
    assert pred["partner_samples"].shape == (2, 2, 3, k, k)
    assert torch.isfinite(pred["positions"]).all()
    with pytest.raises(ValueError, match="two context frames"):
        predict(vim, frames[:, :1], horizon=2)
    # a counterfactual may apply a binary module (index M + b); its partner is the prior's
    # likeliest (a hard choice)
    mods = torch.full((2, k), c.num_modules + 1)
    out = counterfactual(vim, frames[:, :2], mods)
    assert out["positions"].shape == (2, 2, k, 2) and torch.isfinite(out["log_density"])
    partner = out["trace"].nodes["p_2"]["value"]
    assert torch.equal(partner, torch.nn.functional.one_hot(partner.argmax(-1), k).to(partner))


@pytest.mark.parametrize("velocity", [False, True])
def test_svi_steps_run_and_gradient_reaches_the_binary_modules(velocity):
    c = config(interaction={"num_binary_modules": B, "velocity": velocity})
    vim = VIM(c)
    frames = frames_of(c, 3, 4)
    # gradients of the ELBO (categorical module and partner KLs, as trained)
    elbo = TermsELBO(categorical_r=True)
    loss, terms = elbo.loss_and_terms(vim.model, vim.guide, frames)
    assert {"recon", "kl_z", "kl_r", "kl_p", "kl_z0"} <= set(terms)
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values())
    loss.backward()
    binary = vim.interactions.binary
    for layer in (binary.l1, binary.l2, binary.l3):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    if velocity:                    # the unary modules' velocity inputs get gradient
        assert vim.transition.l1.weight.grad[:, 2:4].abs().sum() > 0
    # and Pyro's own SVI with Trace_ELBO (relaxed Monte Carlo KLs): a few steps, finite
    vim.zero_grad()
    pyro.clear_param_store()
    svi = SVI(vim.model, vim.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    losses = [svi.step(frames) for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(x)) for x in losses)


def test_trainer_runs_with_interactions(tmp_path):
    """The real trainer: pre-training on single frames (zero velocity), dynamics with the
    duplicate check and the periodic evaluation (events of the bouncing balls as 'rules',
    M + B modules), checkpoint round trip."""
    c = config(pretrain_steps=1, steps=2, eval_every=2, merge_every=1, warmup_steps=1,
               batch_size=2, eval_sequences=2)
    trainer = Trainer(c, out_dir=str(tmp_path), device="cpu", progress=False)
    trainer.run(3)
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [x["phase"] for x in lines] == ["pretrain", "dynamics", "dynamics"]
    assert isinstance(lines[-1]["kl_p"], float)
    assert len(lines[-1]["eval"]["module_usage"]) == c.num_modules + B
    vim = VIM.load(str(tmp_path / "checkpoint.pt"))
    assert vim.config == trainer.config and vim.interactions is not None
    frames = frames_of(c, 1, 3)
    torch.testing.assert_close(vim.eval().infer(frames)["partners"],
                               trainer.vim.eval().infer(frames)["partners"])
