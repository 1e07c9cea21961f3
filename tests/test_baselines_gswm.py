"""The compact G-SWM baseline: its Pyro programs, training, evaluation protocol, MED and runner."""
import json
import os

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

import pyro_vim
from pyro_vim import registry, report
from pyro_vim import run as runner
from pyro_vim.baselines import GSWM, med
from pyro_vim.baselines.gswm import (
    BEFORE_FIELD,
    DEFAULTS,
    DiscoveryPlan,
    LogitRelaxedBernoulli,
    State,
)
from pyro_vim.baselines.med import model_med
from pyro_vim.config import VIMConfig
from pyro_vim.experiments import get_experiment
from pyro_vim.handlers import UseMeans
from pyro_vim.models import build_model, load_model
from pyro_vim.train import Trainer

from .helpers import load_script, tiny_config

K, D, S = 4, 8, 16          # tiny_config's objects, z_what size and image side


def gswm_config(**overrides):
    base = dict(model="gswm", extra={"glimpse_size": 6, "z_dyna_dim": 4})
    base.update(overrides)
    return tiny_config(**base)


def frames_of(n=2, t=3, seed=0, config=None):
    config = config or gswm_config()
    return torch.from_numpy(config.make_generator().generate(n, t, seed).frames)


def sample_sites(trace):
    return {name: site for name, site in trace.nodes.items()
            if site["type"] == "sample" and name not in ("videos", "objects")}


def latent_names(t, k=1, paper=True):
    """The latent sites in order: ``paper`` (today's defaults) with per-step presence and
    discovery on every frame, else the model saved before those settings (BEFORE_FIELD)."""
    names = ["z_pres_0", "z_where_0", "z_what_0"]
    for step in range(1, t):
        for i in ([None] if k == 1 else range(1, k + 1)):
            suffix = f"{step}" if i is None else f"{step}_{i}"
            names += [f"z_dyna_{suffix}", f"z_where_{suffix}", f"z_what_{suffix}"]
            if paper:
                names.append(f"z_pres_{suffix}")
        if paper:
            names += [f"z_pres_disc_{step}", f"z_where_disc_{step}", f"z_what_disc_{step}"]
    return names


def old_config(**overrides):
    """A G-SWM config as saved before the paper's settings existed, restored."""
    saved = gswm_config(**overrides).to_dict()
    saved["extra"] = {"glimpse_size": 6, "z_dyna_dim": 4}
    return VIMConfig.from_saved(saved)


# ------------------------------------------------------------------------------ registration
def test_gswm_is_registered_when_pyro_vim_is_imported():
    assert pyro_vim.baselines.GSWM is GSWM and registry.lookup("model", "gswm") is GSWM
    model = build_model(gswm_config())
    assert isinstance(model, GSWM) and model.config.model == "gswm"
    with pytest.raises(ValueError, match="build it with pyro_vim.models.build_model"):
        GSWM(tiny_config())
    with pytest.raises(ValueError, match="glimpse_size"):
        GSWM(gswm_config(extra={"glimpse_size": 0}))


# ------------------------------------------------------------------------------ programs
@pytest.mark.parametrize("paper", [True, False])
@pytest.mark.parametrize("k", [1, 2])
def test_model_and_guide_traces(k, paper):
    model = build_model(gswm_config() if paper else old_config())
    frames = frames_of(2, 3)
    mt = poutine.trace(model.model).get_trace(frames, iterations=k)
    gt = poutine.trace(model.guide).get_trace(frames, iterations=k)
    msites, gsites = sample_sites(mt), sample_sites(gt)
    latents = [n for n, s in msites.items() if not s["is_observed"]]
    assert latents == latent_names(3, k, paper)
    assert list(gsites) == latents                 # the guide covers exactly the latents
    assert msites["x"]["is_observed"] and "x" not in gsites
    x = msites["x"]["fn"]
    assert isinstance(x.base_dist, dist.Normal)
    assert (x.batch_shape, x.event_shape) == ((2, 1), (3, 3, S, S))
    events = {"z_where": (4,), "z_what": (D,), "z_dyna": (4,), "z_pres": ()}
    for name in latents:
        for trace in (mt, gt):
            fn, value = trace.nodes[name]["fn"], trace.nodes[name]["value"]
            symbol = name.replace("_disc", "").rsplit(
                "_", 2 if k > 1 and not name.endswith("_0") and "_disc" not in name else 1)[0]
            assert fn.batch_shape == (2, K), name
            assert fn.event_shape == events[symbol], name
            assert value.shape == (2, K) + events[symbol], name
            if symbol == "z_pres":
                assert isinstance(fn, LogitRelaxedBernoulli)
            else:
                assert isinstance(fn.base_dist, dist.Normal)
    # pyro.markov over time, plates over videos and objects
    assert {f.name for f in mt.nodes["z_dyna_1" if k == 1 else "z_dyna_1_1"]["cond_indep_stack"]} \
        == {"videos", "objects"}


def test_multi_step_iterations_see_the_frame_only_at_the_last():
    """With k = 3 propagation iterations between two frames, the guide samples iterations 1
    and 2 from the prior itself (their KL is exactly 0) and only iteration 3 from a posterior
    that sees the next frame."""
    model = build_model(gswm_config())
    frames = frames_of(2, 3)
    gt = poutine.trace(model.guide).get_trace(frames, iterations=3)
    mt = poutine.trace(poutine.replay(model.model, trace=gt)).get_trace(frames, iterations=3)
    for t in (1, 2):
        for symbol in ("z_dyna", "z_where", "z_what", "z_pres"):
            for i in (1, 2, 3):
                name = f"{symbol}_{t}_{i}"
                value = gt.nodes[name]["value"]
                kl = gt.nodes[name]["fn"].log_prob(value) - mt.nodes[name]["fn"].log_prob(value)
                assert torch.allclose(kl, torch.zeros_like(kl), atol=1e-5) == (i < 3), name


def test_elbo_is_finite_and_every_parameter_gets_a_gradient():
    model = build_model(gswm_config())
    loss = Trace_ELBO().differentiable_loss(model.model, model.guide, frames_of(2, 3))
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert missing == []


def test_single_frames_train_discovery_and_rendering():
    model = build_model(gswm_config())
    model_fn, guide_fn = model.programs(0)                   # pre-training: (N, 1) videos
    loss = Trace_ELBO().differentiable_loss(model_fn, guide_fn, frames_of(3, 2)[:, :1])
    assert torch.isfinite(loss)


def test_logit_relaxed_bernoulli_is_finite_at_extreme_samples():
    d = LogitRelaxedBernoulli(torch.tensor([-30.0, 0.0, 30.0]), 0.5)
    assert torch.isfinite(d.log_prob(torch.tensor([-200.0, 0.0, 200.0]))).all()
    assert torch.isfinite(d.rsample((1000,))).all()
    assert d.expand((2, 3)).batch_shape == (2, 3) and torch.equal(d.mean, d.logits / 0.5)


def test_a_tiny_batch_is_overfit():
    torch.manual_seed(0)
    model = build_model(gswm_config())
    frames = frames_of(2, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = Trace_ELBO().differentiable_loss(model.model, model.guide, frames)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5])


# ------------------------------------------------------------------------------ paper's parts
FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "checkpoints",
                       "gswm-468b563.pt")


def tiny_extra(**settings):
    return {"glimpse_size": 6, "z_dyna_dim": 4, **settings}


def test_settings_are_written_out_and_checked():
    extra = gswm_config().extra
    assert set(DEFAULTS) <= set(extra)
    assert extra["glimpse_size"] == 6 and extra["discovery_every_step"] is True
    for key, bad in (("discovery_dropout", 1.0), ("background", "moving"), ("rejection", 1),
                     ("rejection_threshold", 0.0), ("discovery_pres_prior", 1.0),
                     ("interaction", "yes"), ("propagation_presence", None)):
        with pytest.raises(ValueError, match=key):
            gswm_config(extra=tiny_extra(**{key: bad}))


def test_configs_saved_before_the_paper_settings_restore_the_old_model(tmp_path):
    config = old_config()
    assert all(config.extra[key] == value for key, value in BEFORE_FIELD.items())
    model = build_model(config)
    assert model.interaction is None and model.pres_update is None
    assert model.pres_correction is None and model.discovery_context is None
    assert model.lstm.input_size == 4 + D + 4                 # where, what, z_dyna
    assert model.background.shape == (3,)
    # a config saved today keeps its settings (not the old ones) when it is read back
    new = build_model(gswm_config(extra=tiny_extra(interaction=False, discovery_dropout=0.25)))
    path = str(tmp_path / "new.pt")
    new.save(path)
    again = load_model(path)
    assert again.config.extra == new.config.extra and again.settings["propagation_presence"]
    # the checkpoint of 468b563 (before these settings): the old model, its state dict strict
    old = load_model(FIXTURE)
    assert old.settings["discovery_every_step"] is False and old.interaction is None
    assert {k for k in old.config.extra if k in BEFORE_FIELD} == set(BEFORE_FIELD)
    out = old.infer(frames_of(1, 3, config=old.config))
    assert torch.equal(out["presence"][:, 1:], out["presence"][:, :1].expand(1, 2, K))


def _hand_set_discovery(model, residual_weight=4.0):
    """Proposals at the brightest pixels, where = their centres, presence read from the
    residual under the window (the rest of the discovery as initialised)."""
    with torch.no_grad():
        model.where_head[-1].weight.zero_()
        model.where_head[-1].bias.zero_()
        model.pres_head[-1].weight.zero_()
        model.pres_head[-1].bias.zero_()
        if model.discovery_context is not None:
            model.discovery_context.weight.copy_(torch.tensor([[residual_weight, -4.0]]))
            model.discovery_context.bias.fill_(-1.0)
        else:
            model.pres_head[-1].bias.fill_(2.0)
    model.settings["discovery_radius"] = 0.05


@pytest.mark.parametrize("every_step", [True, False])
def test_an_object_that_jumps_far_after_frame_0_is_rediscovered(every_step):
    """A single object at (3, 3) in frame 0 jumps to (13, 12) (13 px) in frames 1-2, out of
    its proposal glimpse: with discovery on every frame a present slot sits on it from frame 1,
    without it none does."""
    model = build_model(gswm_config(extra=tiny_extra(discovery_every_step=every_step)))
    _hand_set_discovery(model)
    frames = torch.zeros(1, 3, 3, S, S)
    frames[0, 0, :, 3, 3] = 1.0
    frames[0, 1:, :, 12, 13] = 1.0
    out = model.infer(frames)
    first = (out["positions"][0, 0] - torch.tensor([3.0, 3.0])).norm(dim=-1)
    assert (out["presence"][0, 0][first < 1.0] > 0.9).any()            # found on frame 0
    for t in (1, 2):
        dist_b = (out["positions"][0, t] - torch.tensor([13.0, 12.0])).norm(dim=-1)
        found = ((dist_b < 1.0) & (out["presence"][0, t] > 0.9)).any()
        assert bool(found) == every_step, t
    if every_step:        # the object's slot on frame 1 keeps it on frame 2 (no relabelling)
        dist_b = (out["positions"][0, 1:] - torch.tensor([13.0, 12.0])).norm(dim=-1)
        assert (dist_b < 1.0).any(0).nonzero().flatten().tolist() == \
            (dist_b[0] < 1.0).nonzero().flatten().tolist()


def test_rejection_removes_a_duplicate_of_a_propagated_object():
    model = build_model(gswm_config())
    where = torch.zeros(1, K, 4)
    where[0, :, 0] = torch.tensor([-0.6, -0.2, 0.2, 0.6])
    h = torch.zeros(1, K, 16)
    prop = State(where, torch.randn(1, K, D), h, h, torch.tensor([[0.9, 0.9, 0.3, 0.01]]))
    disc_where = where.clone()
    disc_where[0, :, :2] += 0.01                  # a near copy of every propagated object ...
    disc_where[0, 3, :2] = torch.tensor([0.0, 0.7])   # ... but the last: a new object
    assert model.rejected(disc_where, prop).tolist() == [[True, True, False, False]]
    disc_what, on = torch.randn(1, K, D), torch.full((1, K), 40.0)
    merged = model._merge_discoveries(prop, on, disc_where, disc_what)
    # the duplicates of the present objects 0 and 1 were rejected: those slots are unchanged
    assert torch.equal(merged.where[0, :2], where[0, :2]) and torch.equal(merged.pres[0, :2],
                                                                          prop.pres[0, :2])
    # discoveries 2 (the absent object's place) and 3 took the two least present slots
    assert merged.pres[0, 2:].tolist() == [1.0, 1.0]
    taken = {tuple(x) for x in merged.where[0, 2:, :2].tolist()}
    assert taken == {tuple(disc_where[0, 2, :2].tolist()), tuple(disc_where[0, 3, :2].tolist())}
    assert torch.equal(merged.h[0, 2:], torch.zeros(2, 16))          # fresh LSTM states
    model.settings["rejection"] = False           # without rejection the duplicates come in
    merged = model._merge_discoveries(prop, on, disc_where, disc_what)
    assert merged.pres.tolist() == [[1.0] * K]


def test_combine_keeps_surviving_objects_in_their_slots():
    h = torch.zeros(1, K, 3)
    prop = State(torch.zeros(1, K, 4), torch.zeros(1, K, 2), h, h,
                 torch.tensor([[0.9, 0.01, 0.8, 0.7]]))
    disc = State(torch.ones(1, K, 4) * torch.arange(1.0, K + 1)[:, None],
                 torch.ones(1, K, 2), h + 1, h + 1, torch.tensor([[0.2, 0.95, 0.0, 0.75]]))
    merged = GSWM.combine(prop, disc)
    # top 4 of the 8: 0.95, 0.9, 0.8, 0.75; discovery 1 replaces slot 1, discovery 3 slot 3
    assert torch.allclose(merged.pres, torch.tensor([[0.9, 0.95, 0.8, 0.75]]))
    assert merged.where[0, :, 0].tolist() == [0.0, 2.0, 0.0, 4.0]
    assert merged.h[0, :, 0].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_presence_switches_off_a_vanished_objects_mask():
    """An object whose propagated presence is switched off (z_pres_1 far below 0) disappears
    from frame 1's rendering and stays off (presence_t = presence_t-1 * sigmoid(z_pres_t))."""
    model = build_model(gswm_config())
    frames = frames_of(1, 3)
    logits = torch.full((1, K), 40.0)
    logits[0, 0] = -40.0
    with UseMeans():
        out = poutine.condition(model._guide, data={"z_pres_1": logits})(
            frames, 1, discover=lambda t: False)
    _, masks = model.render(out["where"], out["what"], out["presence"])
    assert masks[0, 0, 0].sum() > 0.1 and out["presence"][0, 0, 0] > 0.01
    assert out["presence"][0, 1:, 0].max() < 1e-12 and masks[0, 1:, 0].max() < 1e-12
    assert (masks[0, 1:, 1:].sum((-1, -2)) > 0).all()            # the others are still there
    # the model's program multiplies the presences the same way
    trace = poutine.trace(poutine.condition(model.model, data={"z_pres_1": logits})).get_trace(
        frames, discover=lambda t: False)
    assert trace.nodes["z_pres_2"]["fn"].batch_shape == (1, K)


@pytest.mark.parametrize("interaction", [True, False])
def test_the_interaction_term_changes_a_propagated_state_when_another_object_is_near(
        interaction):
    model = build_model(gswm_config(extra=tiny_extra(interaction=interaction)))
    where = torch.zeros(1, K, 4)
    where[0, 1, :2] = torch.tensor([0.15, 0.0])          # object 1 next to object 0
    what, h, z = torch.randn(1, K, D), torch.randn(1, K, 16), torch.randn(1, K, 4)

    def step(pres, where=where):
        return model.propagate(State(where, what, h, h, torch.tensor([pres])), z)

    alone, near = step([1.0, 0.0, 0.0, 0.0]), step([1.0, 1.0, 0.0, 0.0])
    far = where.clone()
    far[0, 1, :2] = torch.tensor([0.9, -0.9])
    moved = step([1.0, 1.0, 0.0, 0.0], far)
    for a, b in ((alone, near), (near, moved)):
        same_h = torch.equal(a.h[0, 0], b.h[0, 0])
        same_where = torch.equal(a.where[0][0, 0], b.where[0][0, 0])
        assert same_h == same_where == (not interaction)
    # absent objects do not interact: object 0 alone is the same whatever object 1's place
    assert torch.equal(alone.h[0, 0], step([1.0, 0.0, 0.0, 0.0], far).h[0, 0])


@pytest.mark.parametrize("background", ["colour", "image", "zero"])
def test_the_background_is_constant(background):
    model = build_model(gswm_config(extra=tiny_extra(background=background)))
    bg = model.background_rgb()
    params = dict(model.named_parameters())
    assert bg.shape == {"colour": (3, 1, 1), "image": (3, S, S), "zero": (3, 1, 1)}[background]
    if background == "zero":
        assert "background" not in params and torch.equal(bg, torch.zeros(3, 1, 1))
    else:
        assert params["background"].shape == {"colour": (3,), "image": (3, S, S)}[background]
    # nothing present: every frame of every video is the same background image
    frames, masks = model.render(torch.zeros(2, 5, K, 4), torch.randn(2, 5, K, D),
                                 torch.zeros(2, 5, K))
    assert torch.equal(frames, bg.expand_as(frames)) and masks.abs().max() == 0
    # and it trains (Pyro validation, a finite ELBO whose gradient reaches the background)
    loss = Trace_ELBO().differentiable_loss(model.model, model.guide, frames_of(2, 3))
    loss.backward()
    assert torch.isfinite(loss)
    if background != "zero":
        assert params["background"].grad.abs().sum() > 0


def test_discovery_dropout_in_the_training_programs():
    model = build_model(gswm_config(pretrain_steps=0))
    assert model.settings["discovery_dropout"] == 0.5
    frames = frames_of(2, 6)
    plans = set()
    for step in range(6):
        model_fn, guide_fn = model.programs(step)
        gt = poutine.trace(guide_fn).get_trace(frames)
        mt = poutine.trace(poutine.replay(model_fn, trace=gt)).get_trace(frames)
        latents = [n for n, s in sample_sites(mt).items() if not s["is_observed"]]
        assert latents == list(sample_sites(gt))          # the model follows the guide's plan
        plans.add(tuple(t for t in range(1, 6) if f"z_pres_disc_{t}" in latents))
        loss = Trace_ELBO().differentiable_loss(model_fn, guide_fn, frames)
        assert torch.isfinite(loss)
    assert len(plans) > 1                                 # frames are skipped at random
    assert any(len(p) < 5 for p in plans)
    plan = DiscoveryPlan(0.5)
    assert [plan(t) for t in range(1, 20)] == [plan(t) for t in range(1, 20)]
    # without dropout: the plain programs, discovery on every frame
    model.settings["discovery_dropout"] = 0.0
    assert model.programs(0) == (model.model, model.guide)
    assert sum(f"z_pres_disc_{t}" in n for t in range(1, 6) for n in
               sample_sites(poutine.trace(model.guide).get_trace(frames))) == 5


def test_the_smoke_training_script_runs():
    bench = load_script("benchmarks", "gswm_smoke")
    for argv, settings in ((["--budget", "1"], "paper"), (["--budget", "1", "--old"], "old")):
        result = bench.main(argv)
        assert result["settings"] == settings and result["steps"] >= 1
        assert result["windows"] and np.isfinite(result["windows"][0]["loss"])
        assert np.isfinite(result["compositional_med_single_px"])
        assert len(result["compositional_med_per_frame_px"]) == 4


# ------------------------------------------------------------------------------ protocol
@pytest.mark.parametrize("k", [1, 3])
def test_infer_shapes_and_ranges(k):
    model = build_model(gswm_config())
    out = model.infer(frames_of(2, 4), iterations=k)
    shapes = {"positions": (2, 4, K, 2), "recon": (2, 4, 3, S, S), "masks": (2, 4, K, S, S),
              "presence": (2, 4, K), "iteration_positions": (2, 3, k, K, 2)}
    for key, shape in shapes.items():
        assert out[key].shape == shape, key
        assert torch.isfinite(out[key]).all(), key
    assert ((out["presence"] >= 0) & (out["presence"] <= 1)).all()
    assert (out["masks"] >= 0).all() and (out["masks"].sum(2) <= 1 + 1e-5).all()
    assert ((out["recon"] >= 0) & (out["recon"] <= 1)).all()
    # positions are the last iteration's, in pixels
    assert torch.allclose(out["positions"][:, 1:], out["iteration_positions"][:, :, -1])
    with pytest.raises(ValueError, match="iterations must be a positive int"):
        model.infer(frames_of(1, 2), iterations=0)


def test_discovery_finds_objects_in_pixels_column_then_row():
    model = build_model(gswm_config())
    with torch.no_grad():
        model.where_head[-1].weight.zero_()                 # where = the proposals' centres
        model.where_head[-1].bias.zero_()
    model.settings["discovery_radius"] = 0.05               # attention = the brightest pixel
    frames = torch.zeros(1, 2, 3, S, S)
    frames[..., 2, 12] = 1.0                                # row 2, column 12
    frames[..., 9, 5] = 0.8                                 # row 9, column 5 (dimmer)
    pos = model.infer(frames)["positions"][0, 0]
    assert torch.allclose(pos[:2], torch.tensor([[12.0, 2.0], [5.0, 9.0]]), atol=0.1)


def test_save_load_round_trip(tmp_path):
    model = build_model(gswm_config())
    path = str(tmp_path / "gswm.pt")
    model.save(path, step=7)
    for loaded in (load_model(path), GSWM.load(path)):
        assert isinstance(loaded, GSWM) and loaded.config.to_dict() == model.config.to_dict()
        assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    frames = frames_of(1, 3)
    assert torch.equal(model.infer(frames)["recon"], load_model(path).infer(frames)["recon"])


def test_the_trainer_runs_end_to_end(tmp_path):
    config = gswm_config(pretrain_steps=2, steps=4, eval_every=2)
    trainer = Trainer(config, str(tmp_path / "run"), progress=False)
    trainer.run(config.pretrain_steps + config.steps)
    with open(tmp_path / "run" / "log.jsonl") as f:
        log = [json.loads(line) for line in f]
    assert [r["step"] for r in log] == list(range(1, 7))
    evals = [r["eval"] for r in log if "eval" in r]
    assert len(evals) == 2                               # periodic and final
    for e in evals:
        assert e["recon_mse"] > 0 and e["med"] >= 0 and len(e["med_per_frame"]) == 2
    assert isinstance(load_model(str(tmp_path / "run" / "checkpoint.pt")), GSWM)


# ------------------------------------------------------------------------------ MED
def tracks(n=2, t=5, o=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 31, size=(n, t, o, 2))


def test_med_of_known_offsets():
    true = tracks()
    pred = true + np.array([3.0, 4.0])                    # every object 5 px off
    result = med(pred, true)
    assert result["med"] == pytest.approx(5.0)
    assert result["per_frame"] == pytest.approx([5.0] * 4)
    # an offset growing with time: the per-frame curve is the offsets of frames 1..T-1
    grow = true + np.arange(5)[None, :, None, None] * np.array([0.0, 1.0])
    result = med(grow, true)
    assert result["per_frame"] == pytest.approx([1.0, 2.0, 3.0, 4.0])
    assert result["med"] == pytest.approx(2.5) and result["first_frame"] == pytest.approx(0.0)


def test_med_ignores_a_permutation_and_extra_predictions():
    true = tracks()
    pred = true + 1.0
    extra = np.concatenate([pred[:, :, [2, 0, 1]], np.full((2, 5, 1, 2), 100.0)], 2)
    assert med(extra, true)["med"] == pytest.approx(med(pred, true)["med"])
    assert med(extra, true)["matching"].tolist() == [[1, 2, 0]] * 2


def test_med_keeps_the_frame_0_matching():
    true = np.zeros((1, 3, 2, 2))
    true[0, :, 1] = [10.0, 0.0]                          # two still objects 10 px apart
    pred = true.copy()
    pred[0, 2] = pred[0, 2, ::-1]                        # predictions swap at frame 2
    result = med(pred, true)
    assert result["per_frame"] == pytest.approx([0.0, 10.0])
    assert result["med"] == pytest.approx(5.0)


def test_med_presence_prefers_present_objects():
    true = np.zeros((1, 2, 1, 2))
    pred = np.stack([np.zeros((2, 2)), np.full((2, 2), 3.0)], 1)[None]   # (1, 2, 2, 2)
    assert med(pred, true)["med"] == pytest.approx(0.0)
    absent_first = med(pred, true, pred_presence=np.array([[0.1, 0.9]]))
    assert absent_first["med"] == pytest.approx(np.hypot(3.0, 3.0))
    with pytest.raises(ValueError, match="at least 2 frames"):
        med(pred[:, :1], true[:, :1])
    with pytest.raises(ValueError, match="K=1 < O=2"):
        med(np.zeros((1, 2, 1, 2)), np.zeros((1, 2, 2, 2)))


def test_model_med_scores_single_and_multi_step():
    config = gswm_config()
    model = build_model(config)
    batch = config.make_generator().generate(2, 3, 1)
    single, multi = model_med(model, batch, 1), model_med(model, batch, 3)
    assert single["iterations"] == 1 and multi["iterations"] == 3
    assert np.isfinite(single["med"]) and len(multi["per_frame"]) == 2


# ------------------------------------------------------------------------------ runner
TINY = ["image_size=16", "slot_dim=8", "encoder_channels=8", "decoder_channels=8",
        "module_hidden=16", "batch_size=2", "steps=3", "warmup_steps=1", "seq_len_start=3",
        "seq_len_max=3", "eval_every=0", 'extra={"glimpse_size": 6, "z_dyna_dim": 4}']


def test_the_gswm_experiment_smoke_runs_with_med(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(runner.MED_TEST, "sequences", 2)
    monkeypatch.setitem(runner.MED_TEST, "seq_len", 3)
    exp = get_experiment("gswm")
    assert exp.seeds == (0, 1, 2) and "med" in exp.evaluations
    config = exp.config("", 0)
    assert (config.model, config.image_size, config.num_slots, config.data.name) == \
        ("gswm", 32, 4, "random_walk")
    assert runner.main(["gswm", "--seeds", "0", "--out", str(tmp_path), "--set", *TINY,
                        "--eval-sequences", "2", "--eval-seq-len", "3"]) == 0
    folder = runner.run_dir(str(tmp_path), "gswm", "", 0)
    with open(os.path.join(folder, "metrics.json")) as f:
        result = json.load(f)
    m = result["metrics"]
    assert result["steps"] == 3 and m["recon_mse"] > 0 and m["med"] >= 0
    comp = m["compositional_med"]
    assert comp["single_step"]["iterations"] == 1 and comp["multi_step"]["iterations"] == 8
    assert m["compositional_med_single"] == comp["single_step"]["med"]
    assert len(comp["multi_step"]["per_frame"]) == 2
    assert isinstance(load_model(os.path.join(folder, "checkpoint.pt")), GSWM)
    assert "compositional MED" in capsys.readouterr().out
    groups = report.aggregate(str(tmp_path))["experiments"]["gswm"]
    assert groups[""]["metrics"]["compositional_med_multi"]["n"] == 1
