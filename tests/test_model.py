import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from pyro_vim import VIM, KeyQueryGuide, SafeRelaxedOneHotCategorical, UniformPrior, VIMConfig
from pyro_vim.data import RandomWalk
from pyro_vim.elbo import TermsELBO

from .helpers import tiny_config, v1_dict


def frames_of(n=3, t=4, size=16, seed=0):
    return torch.from_numpy(RandomWalk(image_size=size).generate(n, t, seed).frames)


def sample_sites(trace):
    return {name: site for name, site in trace.nodes.items()
            if site["type"] == "sample" and name not in ("videos", "slots")}


def traces(vim, frames):
    guide_trace = poutine.trace(vim.guide).get_trace(frames)
    model_trace = poutine.trace(poutine.replay(vim.model, trace=guide_trace)).get_trace(frames)
    return model_trace, guide_trace


def test_model_and_guide_sites_names_classes_shapes():
    c = tiny_config()
    vim = VIM(c)
    frames = frames_of()
    model_trace, guide_trace = traces(vim, frames)
    msites, gsites = sample_sites(model_trace), sample_sites(guide_trace)
    latent = sorted(n for n, s in msites.items() if not s["is_observed"])
    expected = ["r_1", "r_2", "r_3", "z_0", "z_1", "z_2", "z_3"]
    assert latent == expected
    assert sorted(gsites) == expected          # guide sites equal model latent sites
    assert msites["x"]["is_observed"] and msites["x"]["value"].shape == (3, 1, 4, 3, 16, 16)
    n, k, m, s = 3, c.num_slots, c.num_modules, c.state_dim
    for trace in (model_trace, guide_trace):
        sites = sample_sites(trace)
        assert sites["z_0"]["value"].shape == (n, k, s)
        for t in (1, 2, 3):
            r, z = sites[f"r_{t}"], sites[f"z_{t}"]
            assert type(r["fn"]) is SafeRelaxedOneHotCategorical
            assert r["value"].shape == (n, k, m)
            assert torch.allclose(r["value"].sum(-1), torch.ones(n, k))
            assert isinstance(z["fn"], dist.Independent) and z["fn"].event_shape == (s,)
            assert z["value"].shape == (n, k, s)
            assert r["fn"].batch_shape == (n, k)
    assert model_trace.nodes["videos"]["value"].shape == (n,)


def assert_elbo_finite_with_gradients_everywhere(vim):
    loss = Trace_ELBO()(vim.model, vim.guide)(frames_of())
    assert torch.isfinite(loss)
    loss.backward()
    missing = [name for name, p in vim.named_parameters() if p.grad is None
               or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert missing == []


def test_elbo_finite_and_gradient_reaches_every_parameter():
    assert_elbo_finite_with_gradients_everywhere(VIM(tiny_config()))


def test_terms_elbo_equals_trace_elbo():
    vim = VIM(tiny_config())
    frames = frames_of()
    pyro.set_rng_seed(3)
    reference = Trace_ELBO().differentiable_loss(vim.model, vim.guide, frames)
    pyro.set_rng_seed(3)
    loss, terms = TermsELBO().loss_and_terms(vim.model, vim.guide, frames)
    assert torch.allclose(loss, reference)
    total = (terms["recon"] + terms["kl_z"] + terms["kl_r"] + terms["kl_z0"]) * frames.shape[0]
    value = loss.item()
    assert abs(total - value) < 1e-2 * max(1.0, abs(value))
    assert abs(terms["kl_z0"]) < 1e-4   # the guide uses the discovery model for z_0


def test_conditioning_r_on_hard_one_hots_gives_finite_log_density():
    c = tiny_config()
    vim = VIM(c)
    frames = frames_of(n=2, t=3)
    hard = {f"r_{t}": torch.nn.functional.one_hot(torch.randint(c.num_modules, (2, c.num_slots)),
                                                  c.num_modules).float() for t in (1, 2)}
    conditioned = poutine.condition(vim.model, data=hard)
    guide_trace = poutine.trace(vim.guide).get_trace(frames)
    trace = poutine.trace(poutine.replay(conditioned, trace=guide_trace)).get_trace(frames)
    trace.compute_log_prob()
    for t in (1, 2):
        assert torch.equal(trace.nodes[f"r_{t}"]["value"], hard[f"r_{t}"])
        assert torch.isfinite(trace.nodes[f"r_{t}"]["log_prob"]).all()
    assert torch.isfinite(trace.log_prob_sum())


def test_infer_shapes_and_hard_selections():
    c = tiny_config()
    vim = VIM(c)
    out = vim.infer(frames_of(n=2, t=5))
    n, t, k, m, s = 2, 5, c.num_slots, c.num_modules, c.image_size
    assert out["slots"].shape == (n, t, k, c.state_dim)
    assert out["positions"].shape == (n, t, k, 2)
    assert out["selection_probs"].shape == (n, t - 1, k, m)
    assert out["selections"].shape == (n, t - 1, k) and out["selections"].dtype == torch.long
    assert out["masks"].shape == (n, t, k, s, s)
    assert out["recon"].shape == (n, t, 3, s, s)
    assert torch.allclose(out["masks"].sum(2), torch.ones(n, t, s, s), atol=1e-5)
    assert torch.allclose(out["selection_probs"].sum(-1), torch.ones(n, t - 1, k), atol=1e-5)


def test_swappable_prior_and_guide_and_monolithic():
    c = tiny_config()
    for vim in (VIM(c, prior=UniformPrior()), VIM(c, guide=KeyQueryGuide(c.slot_dim,
                                                                         hidden=16, key_dim=8)),
                VIM(c.replace(num_modules=1))):
        loss = Trace_ELBO()(vim.model, vim.guide)(frames_of(n=2, t=3))
        assert torch.isfinite(loss)
        loss.backward()


def test_prediction_horizon_sites():
    c = tiny_config()
    vim = VIM(c)
    trace = poutine.trace(vim.model).get_trace(frames_of(n=2, t=2)[:, :1], horizon=3)
    assert trace.nodes["future_frames"]["value"].shape == (2, 3, 3, 16, 16)
    assert trace.nodes["future_positions"]["value"].shape == (2, 3, c.num_slots, 2)
    assert "r_3" in trace.nodes and "x" in trace.nodes


def test_overfits_a_tiny_batch():
    pyro.set_rng_seed(1)
    vim = VIM(tiny_config())
    frames = frames_of(n=2, t=3)
    elbo = Trace_ELBO()(vim.model, vim.guide)
    opt = torch.optim.Adam(vim.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = elbo(frames)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.1 * abs(first)


@pytest.mark.parametrize("bad, error, match", [
    ("frames", TypeError, "torch.Tensor"),
    (torch.zeros(2, 3, 3, 16, 16, dtype=torch.uint8), TypeError, "floating point"),
    (torch.zeros(2, 3, 16, 16), ValueError, "shape"),
    (torch.zeros(2, 3, 3, 8, 8), ValueError, "image_size"),
    (torch.zeros(0, 3, 3, 16, 16), ValueError, "empty"),
    (torch.zeros(2, 1, 3, 16, 16), ValueError, "at least 2"),
    (torch.full((2, 3, 3, 16, 16), float("nan")), ValueError, "NaN"),
    (torch.full((2, 3, 3, 16, 16), 2.0), ValueError, r"\[0, 1\]"),
])
def test_bad_frames_are_rejected(bad, error, match):
    vim = VIM(tiny_config())
    for fn in (vim.model, vim.guide, vim.infer):
        with pytest.raises(error, match=match):
            fn(bad)


def test_save_and_load_round_trip(tmp_path):
    vim = VIM(tiny_config())
    path = tmp_path / "m.pt"
    vim.save(str(path))
    other = VIM.load(str(path))
    frames = frames_of(n=1, t=3)
    assert torch.allclose(vim.infer(frames)["recon"], other.infer(frames)["recon"])


def test_classic_svi_with_pyro_optim_trains_every_parameter():
    from pyro.infer import SVI
    from pyro.optim import Adam

    vim = VIM(tiny_config())
    before = {name: p.detach().clone() for name, p in vim.named_parameters()}
    svi = SVI(vim.model, vim.guide, Adam({"lr": 1e-2}), Trace_ELBO())
    for _ in range(2):
        assert torch.isfinite(torch.tensor(svi.step(frames_of(n=2, t=3))))
    store = pyro.get_param_store()
    assert len(list(store.keys())) == len(before)
    unchanged = [n for n, p in vim.named_parameters() if torch.equal(p.detach(), before[n])]
    assert unchanged == []


def test_categorical_module_kl():
    from pyro_vim.elbo import categorical_kl
    q = SafeRelaxedOneHotCategorical(torch.tensor(1.0), logits=torch.tensor([[2.0, 0.0, -1.0]]))
    p = SafeRelaxedOneHotCategorical(torch.tensor(1.0), logits=torch.zeros(1, 3))
    qp = q.logits.softmax(-1)
    expected = (qp * (qp.log() - torch.log(torch.tensor(1 / 3)))).sum(-1)
    assert torch.allclose(categorical_kl(q, p), expected)
    assert torch.allclose(categorical_kl(q, q), torch.zeros(1), atol=1e-6)
    # in the ELBO: the r terms are replaced, the rest is Trace_ELBO's
    vim = VIM(tiny_config())
    frames = frames_of()
    pyro.set_rng_seed(3)
    mc, mc_terms = TermsELBO().loss_and_terms(vim.model, vim.guide, frames)
    pyro.set_rng_seed(3)
    cat, cat_terms = TermsELBO(categorical_r=True).loss_and_terms(vim.model, vim.guide, frames)
    n = frames.shape[0]
    assert cat_terms["recon"] == pytest.approx(mc_terms["recon"], rel=1e-6)
    assert cat_terms["kl_z"] == pytest.approx(mc_terms["kl_z"], rel=1e-6)
    assert cat_terms["kl_r"] >= 0 and cat_terms["kl_r"] != pytest.approx(mc_terms["kl_r"])
    assert float((cat - mc).detach()) == pytest.approx(n * (cat_terms["kl_r"] - mc_terms["kl_r"]),
                                            rel=1e-4, abs=1e-2)
    cat.backward()
    assert vim.prior.attention.query[0].weight.grad.abs().sum() > 0   # the prior learns
    from pyro_vim.train import Trainer
    assert Trainer(tiny_config(r_kl="categorical"), progress=False).elbo.categorical_r
    assert not Trainer(tiny_config(r_kl="sample"), progress=False).elbo.categorical_r
    assert VIMConfig().r_kl == "categorical"


def test_position_features():
    from pyro_vim.nn import PositionFeatures
    pos = torch.tensor([[0.25, -0.5]])
    assert torch.equal(PositionFeatures(0)(pos), pos)
    out = PositionFeatures(3)(pos)
    assert out.shape == (1, 2 + 4 * 3)
    assert torch.equal(out[:, :2], pos)
    x = 0.25 * math.pi * torch.tensor([1.0, 2.0, 4.0])
    assert torch.allclose(out[0, 2:5], x.sin())          # sin of x at each octave
    assert PositionFeatures(3).state_dict() == {}          # nothing new in checkpoints
    with pytest.raises(ValueError, match="octaves"):
        PositionFeatures(-1)


def test_prior_octaves_config_and_legacy_checkpoints():
    assert VIMConfig().prior_octaves_resolved == 4        # 32x32: finest period 31/8 px
    assert VIMConfig(image_size=48).prior_octaves_resolved == 5
    assert VIMConfig(prior_octaves=2).prior_octaves_resolved == 2
    with pytest.raises(ValueError, match="prior_octaves"):
        VIMConfig(prior_octaves=-2)
    with pytest.raises(ValueError, match="prior_octaves"):
        VIMConfig(prior_octaves=1.5)
    # a config saved before the fields existed restores the model it trained
    old = v1_dict(VIMConfig())
    del old["prior_octaves"], old["r_kl"]
    restored = VIMConfig.from_saved(old)
    assert restored.prior_octaves == 0 and restored.r_kl == "sample"
    raw = VIM(tiny_config(prior_octaves=0))
    assert raw.prior.attention.query[0].in_features == raw.config.state_dim
    octv = VIM(tiny_config(prior_octaves=3))
    assert octv.prior.attention.query[0].in_features == octv.config.state_dim + 12


def test_selection_scale_is_a_third_of_the_data_step_unless_set():
    assert VIMConfig().selection_scale_resolved == 1.0          # 3 px moves: exactly 1 px
    assert VIMConfig(data={"step": 2}).selection_scale_resolved == pytest.approx(2 / 3)
    assert VIMConfig(data={"step": 6}).selection_scale_resolved == 2.0
    assert VIMConfig(data={"step": 2}, selection_scale=1.5).selection_scale_resolved == 1.5
    assert VIMConfig(data={"name": "npz", "path": "shards"}).selection_scale_resolved == 1.0
    for bad in (0, -2, -1.5, True, "1", math.inf):
        with pytest.raises(ValueError, match="selection_scale"):
            VIMConfig(selection_scale=bad)
    # the guide uses the derived scale (normalised units: 2 / (image_size - 1) per px)
    small, big = VIM(tiny_config(data={"step": 2})), VIM(tiny_config(data={"step": 4}))
    pixel = 2.0 / (small.config.image_size - 1)
    assert float(small.posterior.tau) == pytest.approx(2 / 3 * pixel)
    assert float(big.posterior.tau) == pytest.approx(4 / 3 * pixel)
    # a saved config that set the scale restores it whatever the step
    old = v1_dict(VIMConfig(data={"step": 2}, selection_scale=1.0))
    assert VIMConfig.from_saved(old).selection_scale_resolved == 1.0


def _wall_data(n, gen, bound=0.8, step=0.2):
    """Slots uniform in [-1, 1]^2, four candidate moves of ``step``; the target choice
    distribution is uniform over the moves that stay within ``bound`` (a frame's border)."""
    pos = torch.rand(n, 2, generator=gen) * 2 - 1
    moves = torch.tensor([[0.0, -1.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]]) * step
    cand = pos[:, None] + moves
    legal = (cand.abs() <= bound).all(-1).float()
    keep = legal.sum(-1) > 0
    pos, cand, legal = pos[keep], cand[keep], legal[keep]
    return pos, cand, legal / legal.sum(-1, keepdim=True)


@pytest.mark.parametrize("octaves", [0, 4])
def test_selection_prior_learns_a_border(octaves):
    """What the octave features are for: the key-query prior, fitted by the categorical
    cross-entropy the analytic module KL gives it, learns that moves across a border never
    happen.  With octaves it does so within 300 steps; raw positions stay well short."""
    from pyro_vim.priors import KeyQueryPrior
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    prior = KeyQueryPrior(state_dim=2 + 4, hidden=32, key_dim=16, octaves=octaves)
    feat = torch.zeros(1, 4)
    opt = torch.optim.Adam(prior.parameters(), lr=1e-3)

    def logits(pos, cand):
        return prior.logits(pos, feat.expand(len(pos), 4), cand,
                            feat.expand(*cand.shape[:2], 4))

    for _ in range(300):
        pos, cand, target = _wall_data(128, gen)
        loss = -(target * logits(pos, cand).log_softmax(-1)).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    pos, cand, target = _wall_data(4000, gen)
    with torch.no_grad():
        p = logits(pos, cand).softmax(-1)
    wall = (target == 0).any(-1)
    impossible = (p * (target == 0)).sum(-1)[wall].mean()
    if octaves:
        assert impossible < 0.05
    else:
        assert impossible > 0.1


def test_straight_through_mixes_the_hard_choice_and_keeps_the_gradient():
    """straight_through=True: the state moves by exactly the chosen module's candidate, and the
    relaxed sample still carries a gradient to the selection logits."""
    from pyro_vim import SlotState

    torch.manual_seed(0)
    for straight in (True, False):
        vim = VIM(tiny_config(straight_through=straight))
        c = vim.config
        n, k = 2, c.num_slots
        h = SlotState(torch.rand(n, k, 2) - 0.5, torch.randn(n, k, c.slot_dim))
        logits = torch.zeros(n, k, c.num_modules, requires_grad=True)
        videos, slots = vim.plates(n)
        pyro.set_rng_seed(3)
        with videos, slots:
            step = vim.transition_step(
                1, h, lambda cand_pos, cand_feat: logits,
                lambda mix_pos, mix_feat: (torch.zeros(n, k, c.state_dim),
                                           torch.ones(n, k, c.state_dim)))
        assert (step.r.max(-1).values < 0.999).any()                 # a relaxed sample
        cand_pos, _ = vim.candidates(h)
        chosen = cand_pos.gather(-2, step.r.argmax(-1)[..., None, None].expand(n, k, 1, 2))
        exact = torch.allclose(step.mix_pos, chosen.squeeze(-2), atol=1e-6)
        assert exact == straight
        step.mix_pos.sum().backward()
        assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_straight_through_is_off_by_default_and_validated():
    from pyro_vim.config import VIMConfig
    assert VIMConfig().straight_through is False
    with pytest.raises(ValueError, match="straight_through"):
        VIMConfig(straight_through=1)


def test_choices_mix_hard_in_eval_mode_and_relaxed_in_training():
    """The paper samples r relaxed in training and uses the hard version at test time: in eval
    mode the candidates are mixed by the one-hot of the sample's argmax (unless
    test_choices="relaxed"), in training by the relaxed sample (unless straight_through)."""
    from pyro_vim import SlotState

    torch.manual_seed(0)
    cases = [("hard", False, True, True), ("hard", False, False, False),
             ("relaxed", False, True, False), ("relaxed", True, False, True),
             ("relaxed", True, True, True)]
    for choices, straight, evaluating, hard in cases:
        vim = VIM(tiny_config(test_choices=choices, straight_through=straight))
        vim.train(not evaluating)
        assert vim.hard_choices == hard
        c = vim.config
        n, k = 2, c.num_slots
        h = SlotState(torch.rand(n, k, 2) - 0.5, torch.randn(n, k, c.slot_dim))
        videos, slots = vim.plates(n)
        pyro.set_rng_seed(3)
        with videos, slots:
            step = vim.transition_step(
                1, h, lambda cand_pos, cand_feat: torch.zeros(n, k, c.num_modules),
                lambda mix_pos, mix_feat: (torch.zeros(n, k, c.state_dim),
                                           torch.ones(n, k, c.state_dim)))
        assert (step.r.max(-1).values < 0.999).any()                 # r itself stays relaxed
        cand_pos, _ = vim.candidates(h)
        chosen = cand_pos.gather(-2, step.r.argmax(-1)[..., None, None].expand(n, k, 1, 2))
        assert torch.allclose(step.mix_pos, chosen.squeeze(-2), atol=1e-6) == hard
    assert VIMConfig().test_choices == "hard"
    with pytest.raises(ValueError, match="test_choices"):
        VIMConfig(test_choices="soft")


def test_decode_window_covering_the_frame_equals_the_full_decode():
    torch.manual_seed(0)
    c = tiny_config()
    full = VIM(c)
    wide = VIM(c.replace(decode_window=2 * c.image_size))
    wide.load_state_dict(full.state_dict())
    pos = torch.rand(2, 3, c.num_slots, 2) * 2 - 1         # inside the frame
    feat = torch.randn(2, 3, c.num_slots, c.slot_dim)
    (rgb_a, logit_a), (rgb_b, logit_b) = full.decode(pos, feat), wide.decode(pos, feat)
    assert rgb_b.shape == rgb_a.shape and logit_b.shape == logit_a.shape
    assert torch.allclose(rgb_a, rgb_b, atol=1e-5) and torch.allclose(logit_a, logit_b, atol=1e-4)


def test_decode_window_keeps_object_slots_in_their_window():
    from pyro_vim.nn.encoder import pixels_to_coords
    torch.manual_seed(0)
    c = tiny_config().replace(decode_window=6)
    vim = VIM(c)
    s = c.image_size
    # slot 1 inside, slot 2 on the top-left corner (the window hangs over the border),
    # slot 3 at pixel (column 9.4, row 2.6), which rounds to (9, 3)
    px = torch.tensor([[8.0, 8.0], [8.0, 8.0], [0.0, 0.0], [9.4, 2.6]])[:c.num_slots]
    pos = pixels_to_coords(px, s)[None]
    feat = torch.randn(1, c.num_slots, c.slot_dim)
    rgb, logits = vim.decode(pos, feat)
    inside = logits[0] > -1e3
    assert inside[0].all()                               # the background slot: everywhere
    assert inside[1].sum() == 36 and inside[1, 5:11, 5:11].all()
    assert inside[2].sum() == 9 and inside[2, :3, :3].all()     # 3 x 3 of the 6 x 6 in frame
    assert inside[3].sum() == 36 and inside[3, 0:6, 6:12].all()
    assert (rgb[0, 1:][~inside[1:, None].expand(-1, 3, -1, -1)] == 0).all()


def test_decode_window_elbo_finite_and_gradient_reaches_every_parameter():
    assert_elbo_finite_with_gradients_everywhere(VIM(tiny_config(decode_window=8)))


@pytest.mark.parametrize("value, match", [(1, "int >= 2"), (-2, "int >= 2"), (4.0, "int >= 2"),
                                          (True, "int >= 2")])
def test_decode_window_is_validated(value, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(decode_window=value)
    with pytest.raises(ValueError, match="mask_extent"):
        tiny_config(decode_window=8, mask_extent=0.0)


def test_observe_reseeds_a_duplicate_slot_onto_a_ball_no_slot_explains():
    from pyro_vim.model import SlotState
    from pyro_vim.nn.encoder import pixels_to_coords

    torch.manual_seed(0)
    gen = RandomWalk(image_size=16, radius=2)
    balls = [[3, 3], [12, 4], [8, 12]]                      # (x, y): red, green, blue
    frame = torch.from_numpy(gen.render([balls], colors=[[1, 0, 0], [0, 1, 0], [0, 0, 1]]))
    slots = pixels_to_coords(torch.tensor([[[7.5, 7.5], [3.0, 3.0], [3.2, 3.0], [12.0, 4.0]]]),
                             16)
    colour = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0]]])  # blue: no slot
    found = {}
    for reseed in (False, True):
        vim = VIM(tiny_config(num_objects=3, reseed=reseed, hold_hidden=True)).eval()
        h = SlotState(slots, torch.zeros(1, 4, vim.config.slot_dim))
        with torch.no_grad():
            obs = vim.observe(vim.encoder(frame), frame, h, colour)
        found[reseed] = vim.to_pixels(obs.pos)[0, 2]
    assert (found[True] - torch.tensor([8.0, 12.0])).norm() < 1.0      # onto the blue ball
    assert (found[False] - torch.tensor([3.0, 3.0])).norm() < 1.5      # stays on the red one
