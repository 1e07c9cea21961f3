"""RIM and SCOFF baselines (Table 1), the Table 1 metric, the wall-clock budget and the
``table1`` experiment."""
import json
import math
import os

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch import nn
from torch.nn import functional as F

from pyro_vim import VIM
from pyro_vim import evaluate as evaluate_cli
from pyro_vim import run as runner
from pyro_vim.baselines import RIM, SCOFF
from pyro_vim.baselines.scoff import ADDED_LATER, BEFORE_FIELD, DEFAULTS
from pyro_vim.baselines.table1 import (
    prior_one_step_errors,
    prior_one_step_predictions,
    sample_rows,
    squared_errors,
    summarise,
    table1_metrics,
    teacher_forced_errors,
    unit_centroid_errors,
)
from pyro_vim.checkpoint import load_checkpoint
from pyro_vim.config import VIMConfig
from pyro_vim.experiments import get_experiment
from pyro_vim.models import build_model, load_model
from pyro_vim.train import Trainer

from .helpers import tiny_config

FAMILIES = ("rim", "scoff")
ATTENTIONS = ("competitive", "null_row", "pixel_rows")
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "checkpoints")


def frames_of(n=2, t=4, seed=0, config=None):
    config = config or tiny_config()
    return torch.from_numpy(config.make_generator().generate(n, t, seed).frames)


def built(family, config=None, **extra):
    return build_model(tiny_config(model=family, extra=extra, **(config or {})))


@pytest.mark.parametrize("family", FAMILIES)
def test_shapes_and_registration(family):
    model = built(family)
    assert type(model) is {"rim": RIM, "scoff": SCOFF}[family]
    frames = frames_of(2, 4)
    out = model.infer(frames)
    assert out["recon"].shape == frames.shape
    assert 0 <= float(out["recon"].min()) and float(out["recon"].max()) <= 1
    assert out["masks"].shape == (2, 4, 4, 16, 16)
    assert torch.allclose(out["masks"].sum(2), torch.ones(2, 4, 16, 16), atol=1e-5)
    assert out["slots"].shape == (2, 4, 4, 8) and out["positions"].shape == (2, 4, 4, 2)
    assert out["active"].shape == (2, 3, 4) and out["active"].dtype == torch.bool
    if family == "scoff":
        assert model.core.grus.num == 4                      # M = config.num_modules schemata
        assert out["schema_selections"].shape == (2, 3, 4)
        assert int(out["schema_selections"].max()) < 4
    else:
        assert model.core.schemata == "per_unit" and model.core.grus.num == 4   # one per unit
        assert "schema_selections" not in out
        single = built("rim", rim_schemata="single")
        assert single.core.grus.num == 1
    # a single frame: frame 0 from the empty history
    assert model.infer(frames[:, :1])["recon"].shape == (2, 1, 3, 16, 16)


def test_new_configs_write_every_setting_with_todays_defaults():
    for family in FAMILIES:
        config = tiny_config(model=family, extra={"top_k": 2})
        assert config.extra == {**DEFAULTS, "top_k": 2}
        assert VIMConfig.from_saved(config.to_dict()) == config      # saved: read back as is
    assert DEFAULTS["input_attention"] == "slots" and DEFAULTS["top_k"] is None
    assert DEFAULTS["position"] is None
    assert DEFAULTS["null_threshold"] == 0 and DEFAULTS["gumbel_temperature"] == 0.5
    assert DEFAULTS["schema_keys"] == "per_schema" and DEFAULTS["pretraining"] == "perception"
    assert DEFAULTS["first_frame_loss"] is False
    assert tiny_config().extra == {}                   # other families' extra is left alone


# ---------------------------------------------------------------------------- input attention
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_input_attention_normalisation(family, attention):
    model = built(family, input_attention=attention)
    core = model.core
    assert core.attention == attention
    frames = frames_of(2, 3)
    inputs = model.encode(frames)[:, 0]                                   # (N, P, I)
    h = torch.randn(2, 4, 8)
    step = core(h, inputs)
    p = 16 * 16
    if attention == "competitive":
        # each pixel is shared out among the null (row 0) and the K units: softmax over units
        assert step.attention.shape == (2, 1 + 4, p)
        assert torch.allclose(step.attention.sum(1), torch.ones(2, p), atol=1e-5)
        assert torch.allclose(step.score, step.attention[:, 1:].mean(-1))
        # competition: a unit whose query grows takes pixels from the others
        h2 = h.clone()
        h2[:, 0] *= 5.0
        other = core(h2, inputs).attention
        assert not torch.allclose(other[:, 2:], step.attention[:, 2:])
        assert "core.null_query" in dict(model.named_parameters())
    else:
        rows = 1 if attention == "null_row" else p     # RIM's code: ONE encoded input row
        assert step.attention.shape == (2, 4, 1 + rows)
        assert torch.allclose(step.attention.sum(-1), torch.ones(2, 4), atol=1e-5)
        assert torch.allclose(step.score, 1.0 - step.attention[..., 0])
        assert "core.null_key" in dict(model.named_parameters())
        assert hasattr(core, "frame") == (attention == "null_row")
    assert ((step.score >= 0) & (step.score <= 1 + 1e-6)).all()
    # what a unit reads does not depend on the other units in the per-unit softmaxes
    h3 = h.clone()
    h3[:, 0] += 1.0
    read, read3 = core.input_attention(h, inputs)[0], core.input_attention(h3, inputs)[0]
    assert torch.allclose(read[:, 1:], read3[:, 1:]) == (attention != "competitive")


@pytest.mark.parametrize("family", FAMILIES)
def test_top_k_defaults_to_every_unit_and_has_no_null_threshold(family):
    model = built(family)
    assert model.core.top_k == 4 and model.core.null_threshold == 0
    out = model.rollout(frames_of(3, 4))
    assert out["active"].all()
    model = built(family, top_k=2)
    out = model.rollout(frames_of(3, 4))
    assert (out["active"].sum(-1) == 2).all()
    # the two active units are those with the highest input scores
    top = out["scores"].topk(2, -1).indices
    assert torch.equal(torch.zeros_like(out["active"]).scatter(-1, top, True), out["active"])


@pytest.mark.parametrize("family, attention", [("rim", "competitive"), ("scoff", "null_row"),
                                               ("scoff", "pixel_rows")])
def test_inactive_units_keep_their_state_exactly(family, attention):
    model = built(family, top_k=2, input_attention=attention)
    model.eval()
    frames = frames_of(3, 4)
    out = model.rollout(frames)
    states, active = out["states"], out["active"]              # (N, T, K, D), (N, T-1, K)
    assert (active.sum(-1) == 2).all()
    inactive = ~active
    before, after = states[:, :-1], states[:, 1:]
    assert torch.equal(after[inactive], before[inactive])     # bit for bit
    # the active units did change
    assert (after[active] - before[active]).abs().amax(-1).min() > 0
    # the same in training mode (straight-through Gumbel choice for SCOFF)
    model.train()
    out = model.rollout(frames)
    inactive = ~out["active"]
    assert torch.equal(out["states"][:, 1:][inactive], out["states"][:, :-1][inactive])


def _null_wins(core, sign: float):
    """Every unit's query is +10 (a module of the test), input keys are 1 and the null's key (or,
    competitive, its query) is 2 * sign * 10: the null wins every unit's attention (every pixel)
    when sign > 0 and loses when sign < 0."""
    core.in_query = nn.Linear(core.hidden, core.key_dim)
    with torch.no_grad():
        core.in_query.weight.zero_()
        core.in_query.bias.fill_(10.0)
        core.in_key.weight.zero_()
        core.in_key.bias.fill_(1.0)
        null = core.null_query if core.attention == "competitive" else core.null_key
        null.fill_(20.0 * sign)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_a_null_threshold_turned_on_leaves_ignored_inputs_unread(attention):
    # 0.2: an input score is the share of the pixels a unit wins ("competitive", 1/4 each when
    # the null loses) or its attention off the null row (about 1 when the null loses)
    model = built("scoff", input_attention=attention, null_threshold=0.2)
    model.eval()
    frames = frames_of(2, 4)
    _null_wins(model.core, +1.0)
    out = model.rollout(frames)
    assert not out["active"].any()
    assert torch.equal(out["states"], model.initial.expand(2, 4, 4, 8))
    # ... while the same frame with the null losing activates every unit
    _null_wins(model.core, -1.0)
    out = model.rollout(frames)
    assert out["active"].all()
    assert not torch.equal(out["states"][:, 1], out["states"][:, 0])
    # without the threshold (the default) the winning null leaves every unit active
    model = built("scoff", input_attention=attention)
    _null_wins(model.core, +1.0)
    assert model.rollout(frames)["active"].all()


def test_pixel_rows_input_with_no_rows_activates_nothing_under_the_old_threshold():
    model = built("rim", input_attention="pixel_rows", null_threshold=0.5, top_k=3)
    core = model.core
    h = torch.randn(2, 4, 8)
    step = core(h, torch.zeros(2, 0, core.in_key.in_features))
    assert torch.allclose(step.attention[..., 0], torch.ones(2, 4))
    assert not step.active.any() and torch.equal(step.h, h)


# ---------------------------------------------------------------------------- SCOFF's choice
def test_scoff_has_a_key_per_schema():
    model = built("scoff")
    core = model.core
    params = dict(model.named_parameters())
    assert params["core.sel_keys"].shape == (4, 8, 8)                 # (M, key, hidden)
    assert "core.sel_key.weight" not in params
    h = torch.randn(2, 4, 8)
    candidates = torch.randn(2, 4, 4, 8)                               # (N, K, M, D)
    logits = core.choice_logits(h, candidates)
    q = core.sel_query(h)
    for m in range(4):
        key = candidates[:, :, m] @ core.sel_keys[m].T                 # schema m's own key map
        assert torch.allclose(logits[..., m], (q * key).sum(-1) / math.sqrt(8), atol=1e-5)
    # changing schema 0's key map changes only schema 0's logits
    with torch.no_grad():
        core.sel_keys[0].mul_(-2.0)
    changed = core.choice_logits(h, candidates)
    assert not torch.allclose(changed[..., 0], logits[..., 0])
    assert torch.allclose(changed[..., 1:], logits[..., 1:])
    shared = built("scoff", schema_keys="shared")
    assert "core.sel_key.weight" in dict(shared.named_parameters())
    assert not hasattr(shared.core, "sel_keys")


@pytest.mark.parametrize("tau", [0.5, 2.0])
def test_scoff_choice_is_a_hard_gumbel_softmax_at_the_temperature(tau):
    extra = {} if tau == 0.5 else {"gumbel_temperature": tau}          # 0.5 is the default
    model = built("scoff", **extra)
    core = model.core
    assert core.temperature == tau
    h = torch.randn(3, 4, 8)
    candidates = torch.randn(3, 4, 4, 8, requires_grad=True)
    logits = core.choice_logits(h, candidates)
    torch.manual_seed(7)
    choice = core.choose(h, candidates)
    torch.manual_seed(7)
    want = F.gumbel_softmax(logits, tau=tau, hard=True)
    assert torch.equal(choice, want)
    assert set(choice.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(choice.sum(-1), torch.ones(3, 4))
    # straight-through: the gradient of the soft sample at tau reaches the logits' inputs
    (choice * torch.arange(4.0)).sum().backward()
    assert candidates.grad is not None and float(candidates.grad.abs().sum()) > 0
    core.eval()                                                         # the argmax otherwise
    assert torch.equal(core.choose(h, candidates).argmax(-1), logits.argmax(-1))


# ---------------------------------------------------------------------------- loss, programs
@pytest.mark.parametrize("family", FAMILIES)
def test_frame_0_is_not_in_the_loss(family):
    model = built(family)
    frames = frames_of(2, 4)
    trace = poutine.trace(model.model).get_trace(frames)
    x = trace.nodes["x"]
    assert torch.equal(x["value"], frames[:, 1:])                       # frames 1..T-1 only
    loss = Trace_ELBO().differentiable_loss(model.model, model.guide, frames)
    model.eval()      # deterministic choice (SCOFF) for the comparison below
    recon = model.predict(frames)[:, 1:]
    sigma = model.config.sigma_x
    nll = (((frames[:, 1:] - recon) ** 2).sum() / (2 * sigma ** 2)
           + frames[:, 1:].numel() * math.log(sigma * math.sqrt(2 * math.pi)))
    if family == "rim":              # deterministic given the parameters: the same number
        assert float(loss.detach()) == pytest.approx(float(nll.detach()), rel=1e-5)
    with pytest.raises(ValueError, match="needs T >= 2 frames"):
        model.model(frames[:, :1])
    old = built(family, first_frame_loss=True)
    assert torch.equal(poutine.trace(old.model).get_trace(frames).nodes["x"]["value"], frames)


@pytest.mark.parametrize("family", FAMILIES)
def test_perception_pretraining_programs(family):
    model = built(family)                                  # tiny_config: pretrain_steps = 2
    assert model.config.pretrain_steps == 2
    assert model.programs(0)[0] == model.pretrain_model
    assert model.programs(1)[0] == model.pretrain_model
    assert model.programs(2)[0] == model.model
    assert model.programs(0)[1] == model.guide
    single = frames_of(4, 2)[:, :1]                         # the trainer's pre-training batch
    trace = poutine.trace(model.pretrain_model).get_trace(single)
    assert torch.equal(trace.nodes["x"]["value"], single)
    # the observation is the frame read once from the initial state and decoded
    model.eval()
    recon = model.reconstruct(single)
    step = model.core(model.initial.expand(4, 4, 8), model.encode(single)[:, 0])
    rgb, logits, _ = model.decode(step.h, model.place(step.h, step.where))
    from pyro_vim.distributions import SpatialGaussianMixture
    want = SpatialGaussianMixture(rgb, logits, model.config.sigma_x).mean
    assert torch.allclose(recon[:, 0], want)
    # the programs train: a few steps of pre-training lower its loss
    model.train()
    svi = SVI(model.pretrain_model, model.guide, Adam({"lr": 1e-2}), Trace_ELBO())
    losses = [svi.step(single) for _ in range(15)]
    assert losses[-1] < losses[0]
    old = built(family, pretraining="sequence")
    assert old.programs(0)[0] == old.model


@pytest.mark.parametrize("family", FAMILIES)
def test_decode_window(family):
    model = built(family, config={"decode_window": 6})
    assert model.decoder.window == 6
    frames = frames_of(2, 3)
    out = model.infer(frames)
    assert out["recon"].shape == frames.shape
    # object units have no mask mass outside their 6 x 6 window; unit 0 draws the frame
    masks, pos = out["masks"], out["positions"]                     # pixels (x, y)
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    for k in range(1, 4):
        far = ((xs - pos[..., k, 0, None, None].round()).abs() > 3) | (
            (ys - pos[..., k, 1, None, None].round()).abs() > 3)
        assert float(masks[:, :, k][far].max()) < 1e-6
    assert float(masks[:, :, 0].amin()) > 0
    loss = Trace_ELBO().differentiable_loss(model.model, model.guide, frames)
    loss.backward()
    assert math.isfinite(float(loss.detach()))
    # a window twice the frame's size decodes what the whole-frame decoder does
    whole = built(family)
    wide = built(family, config={"decode_window": 32})
    wide.load_state_dict(whole.state_dict())
    torch.testing.assert_close(wide.infer(frames)["recon"], whole.infer(frames)["recon"])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("attention", ("slots",) + ATTENTIONS)
def test_elbo_is_finite_and_gradients_reach_the_parameters(family, attention):
    model = built(family, input_attention=attention)
    frames = frames_of(2, 3)
    for program in (model.model, model.pretrain_model):
        loss = Trace_ELBO().differentiable_loss(program, model.guide, frames)
        assert math.isfinite(float(loss.detach())) and float(loss.detach()) > 0
        loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    # the state's position head decodes only the initial state (frame 0, not in the loss)
    # when the units sit where they read
    sits = model.settings["position"] == "attention"
    unused = {"position.weight", "position.bias"} if sits else set()
    assert all(g is not None and torch.isfinite(g).all() for n, g in grads.items()
               if n not in unused)
    null = {"competitive": ["core.null_query"], "slots": []}.get(attention, ["core.null_key"])
    reads = ["core.in_value"] if attention == "slots" else ["core.in_query", "core.in_key",
                                                            "core.in_value"]
    parts = ["encoder.", *reads, *null, "core.grus.", "core.comm_", "initial", "decoder."]
    parts += [] if sits else ["position."]
    if attention == "slots":
        parts.append("slot_attention.")
    if attention == "null_row":
        parts.append("core.frame.")
    if family == "scoff":      # the straight-through schema choice passes gradients
        parts += ["core.sel_query", "core.sel_keys"]
    for part in parts:
        norm = sum(float(g.norm()) for n, g in grads.items()
                   if n.startswith(part) and g is not None)
        assert norm > 0, part


@pytest.mark.parametrize("family", FAMILIES)
def test_a_tiny_batch_is_overfit(family):
    model = built(family)
    frames = frames_of(4, 3)
    svi = SVI(model.model, model.guide, Adam({"lr": 1e-2}), Trace_ELBO())
    losses = [svi.step(frames) for _ in range(40)]
    assert losses[-1] < 0.4 * losses[0], (losses[0], losses[-1])


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip(family, tmp_path):
    model = built(family, top_k=2, input_attention="null_row")
    path = str(tmp_path / "m.pt")
    model.save(path, step=7)
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.core.top_k == 2 and loaded.core.attention == "null_row"
    state = loaded.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    frames = frames_of(2, 4)       # infer is deterministic (argmax schemata) in either mode
    assert loaded.training and torch.equal(model.infer(frames)["recon"],
                                           loaded.infer(frames)["recon"])
    other = "scoff" if family == "rim" else "rim"
    with pytest.raises(ValueError, match=f"holds a '{family}' model, not '{other}'"):
        {"rim": RIM, "scoff": SCOFF}[other].load(path)


# ---------------------------------------------------------------------------- old checkpoints
@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoints_saved_before_the_settings_load_with_the_old_behaviour(family, tmp_path):
    """rim-a50e507 / scoff-a50e507: saved by main's code before this change (``extra={}``)."""
    name = f"{family}-a50e507"
    path = os.path.join(FIXTURES, name + ".pt")
    assert load_checkpoint(path)["config"]["extra"] == {}
    model = load_model(path)
    extra = model.config.extra
    assert {k: extra[k] for k in BEFORE_FIELD} == BEFORE_FIELD
    assert extra["top_k"] == 3                                  # None meant K - 1 then
    assert model.core.attention == "pixel_rows" and model.core.top_k == 3
    assert model.core.null_threshold == 0.5
    if family == "scoff":
        assert model.core.temperature == 1.0 and model.core.schema_keys == "shared"
    assert model.programs(0)[0] == model.model and model.settings["first_frame_loss"]
    expected = torch.load(os.path.join(FIXTURES, name + ".expected.pt"), weights_only=True)
    model.eval()
    out = model.infer(expected["frames"])
    for key, want in expected["outputs"].items():
        torch.testing.assert_close(out[key], want, rtol=1e-5, atol=1e-6)
    # saved again, the settings are written out: they stay the old ones
    again = str(tmp_path / "again.pt")
    model.save(again)
    assert load_checkpoint(again)["config"]["extra"] == extra
    assert load_model(again).config == model.config
    # an old config that set decode_window (ignored then) is read as the whole-frame model
    saved = dict(load_checkpoint(path)["config"])
    saved["architecture"] = {**saved["architecture"], "decode_window": 8}
    assert VIMConfig.from_saved(saved).decode_window == 0
    # an old config with explicit settings keeps them
    saved["extra"] = {"top_k": 2, "null_threshold": 0.0}
    config = VIMConfig.from_saved(saved)
    assert config.extra["top_k"] == 2 and config.extra["null_threshold"] == 0.0
    assert config.extra["input_attention"] == "pixel_rows"


@pytest.mark.parametrize("family", FAMILIES)
def test_configs_saved_before_the_position_inputs_and_likelihood_settings(family):
    """A config written between the two changes of 2026-12-07 has ``input_attention`` but not
    ``position``, ``inputs`` or ``likelihood``: it gets the values of its time."""
    saved = tiny_config(model=family).to_dict()
    saved["extra"]["input_attention"] = "competitive"          # that time's default
    for key in ADDED_LATER:
        del saved["extra"][key]
    config = VIMConfig.from_saved(saved)
    assert {k: config.extra[k] for k in ADDED_LATER} == ADDED_LATER
    model = build_model(config)
    assert model.settings["position"] == "state" and not hasattr(model, "offset")
    assert not hasattr(model, "slot_attention")
    assert model.encode(frames_of(1, 2)).shape == (1, 2, 16 * 16, 8 + 2)    # pixel rows


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoints_with_the_position_offset_load(family, tmp_path):
    """Configs written before ``position_offset`` existed, with the units placed where they
    read, had the offset: they rebuild it, and their weights load."""
    model = built(family, position_offset=True)
    with torch.no_grad():
        model.offset.bias.fill_(0.1)
    path = str(tmp_path / "m.pt")
    model.save(path)
    ckpt = torch.load(path, weights_only=False)
    del ckpt["config"]["extra"]["position_offset"]
    torch.save(ckpt, path)
    loaded = load_model(path)
    assert loaded.settings["position_offset"] and hasattr(loaded, "offset")
    torch.testing.assert_close(loaded.offset.bias, torch.full((2,), 0.1))
    frames = frames_of(1, 3)
    model.eval()
    torch.testing.assert_close(loaded.infer(frames)["recon"], model.infer(frames)["recon"])
    with pytest.raises(ValueError, match="position_offset"):
        built(family, position_offset="yes")


@pytest.mark.parametrize("family", FAMILIES)
def test_units_are_tracked_slots_and_sit_where_they_read(family):
    model = built(family)
    assert model.settings["input_attention"] == "slots"
    assert model.settings["position"] == "attention"
    frames = frames_of(2, 3)
    rows = model.encode(frames)                       # (N, T, K, D + 3): feat, pos, share
    assert rows.shape == (2, 3, 4, 8 + 3)
    sa, c = model.slot_attention, model.config
    pixels = frames.flatten(3).transpose(2, 3)
    first = sa(model.encoder(frames[:, 0]), pixels[:, 0], model.grid, iters=c.discovery_iters)
    second = sa(model.encoder(frames[:, 1]), pixels[:, 1], model.grid, pos=first.pos,
                feat=first.feat, colour=first.colour, iters=c.track_iters)   # followed
    torch.testing.assert_close(rows[:, 0, :, -3:-1], first.pos)
    torch.testing.assert_close(rows[:, 1, :, :-3], second.feat)
    torch.testing.assert_close(rows[:, 1, :, -1], second.attn.mean(-1))
    torch.testing.assert_close(rows[..., -1].sum(-1), torch.ones(2, 3))    # pixel shares
    step = model.core(model.initial.expand(2, 4, 8), rows[:, 1])
    torch.testing.assert_close(step.where, second.pos)          # unit k reads slot k
    torch.testing.assert_close(step.score, second.attn.mean(-1))
    # the decoders sit where the units read, not at tanh(Linear(h))
    assert not hasattr(model, "offset")
    torch.testing.assert_close(model.place(step.h, step.where), step.where)
    assert not torch.allclose(model.place(step.h), step.where)
    shifted = built(family, position_offset=True)           # plus a learned offset, zero at first
    torch.testing.assert_close(shifted.place(step.h, step.where), step.where)
    with torch.no_grad():
        shifted.offset.bias.fill_(0.25)
    torch.testing.assert_close(shifted.place(step.h, step.where), step.where + 0.25)
    # the unit's position follows its slot's, whatever its state: a moved slot moves it
    moved = rows[:, 1].clone()
    moved[..., -3:-1] += 0.1
    torch.testing.assert_close(model.core(model.initial.expand(2, 4, 8), moved).where,
                               second.pos + 0.1)
    assert model.rollout(frames)["positions"].shape == (2, 3, 4, 2)
    assert any(n.startswith("slot_attention.") for n, _ in model.named_parameters())
    # the competitive attention over pixels also places units where they read
    comp = built(family, input_attention="competitive")
    assert comp.settings["position"] == "attention" and not hasattr(comp, "slot_attention")
    step = comp.core(comp.initial.expand(2, 4, 8), comp.encode(frames)[:, 0])
    assert step.where.shape == (2, 4, 2)
    # "state" with the pixel rows: the old model
    old = built(family, position="state", input_attention="pixel_rows")
    assert not hasattr(old, "offset") and old.encode(frames).shape[2] == 16 * 16
    assert built(family, input_attention="null_row").settings["position"] == "state"
    with pytest.raises(ValueError, match="position.*slots"):
        built(family, input_attention="null_row", position="attention")
    with pytest.raises(ValueError, match="position"):
        built(family, position="slot")


@pytest.mark.parametrize("likelihood", ["mixture", "mean"])
def test_frames_are_observed_under_the_mixture_or_its_mean(likelihood):
    other = {"mixture": "mean", "mean": "mixture"}[likelihood]
    model = built("rim", likelihood=likelihood, pretrain_likelihood=other)
    frames = frames_of(2, 3)

    def expected(mixture, value, kind):
        if kind == "mixture":
            return mixture.log_prob(value).sum(-1)
        return torch.distributions.Normal(mixture.mean, model.config.sigma_x).log_prob(
            value).sum((1, 2, 3, 4))

    site = poutine.trace(model.model).get_trace(frames).nodes["x"]
    torch.testing.assert_close(site["fn"].log_prob(site["value"]),
                               expected(model.predictive(frames, 1), frames[:, 1:], likelihood))
    site = poutine.trace(model.pretrain_model).get_trace(frames[:, :1]).nodes["x"]
    torch.testing.assert_close(site["fn"].log_prob(site["value"]),
                               expected(model.perceive(frames[:, :1]), frames[:, :1], other))
    assert DEFAULTS["likelihood"] == "mean" and DEFAULTS["pretrain_likelihood"] == "mixture"
    with pytest.raises(ValueError, match="likelihood"):
        built("rim", likelihood="bce")


# ---------------------------------------------------------------------------- trainer, CLI
@pytest.mark.parametrize("family", FAMILIES)
def test_the_trainer_runs_with_periodic_and_final_evaluation(family, tmp_path):
    config = tiny_config(model=family, eval_every=2, lr=1e-2)
    trainer = Trainer(config, str(tmp_path / "run"), progress=False)
    first = trainer.evaluate()
    trainer.run(config.pretrain_steps + config.steps)
    assert trainer.step == 6
    with open(tmp_path / "run" / "log.jsonl") as f:
        records = [json.loads(line) for line in f]
    evals = [r["eval"] for r in records if "eval" in r]
    assert len(evals) == 2 and all(e["recon_mse"] > 0 for e in evals)    # steps 4 and 6
    assert [r["phase"] for r in records] == ["pretrain"] * 2 + ["dynamics"] * 4
    assert all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in records)
    assert set(first) >= {"recon_mse", "recon_mse_all_frames", "active_fraction"}
    loaded = load_model(str(tmp_path / "run" / "checkpoint.pt"))
    assert type(loaded) is type(trainer.model)
    saved = load_checkpoint(str(tmp_path / "run" / "checkpoint.pt"))["config"]
    assert saved["extra"]["input_attention"] == "slots"           # written out in full


def test_evaluate_cli_refuses_a_baseline_clearly(tmp_path, capsys):
    path = str(tmp_path / "rim.pt")
    built("rim").save(path)
    assert evaluate_cli.main([path, "--out", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert "'rim' model" in err and "table1" in err
    assert not os.path.exists(tmp_path / "eval")


def test_bad_baseline_settings_are_named():
    with pytest.raises(ValueError, match=r"extra\['top_k'\] \(5\) must not exceed num_slots"):
        built("scoff", top_k=5)
    with pytest.raises(ValueError, match="rim_schemata"):
        built("rim", rim_schemata="two")
    with pytest.raises(ValueError, match="input_attention"):
        built("rim", input_attention="pixels")
    with pytest.raises(ValueError, match="schema_keys"):
        built("scoff", schema_keys="one")
    with pytest.raises(ValueError, match="gumbel_temperature"):
        built("scoff", gumbel_temperature=0)
    with pytest.raises(ValueError, match="first_frame_loss"):
        built("scoff", first_frame_loss="no")
    with pytest.raises(ValueError, match="time_budget_s must be a non-negative"):
        tiny_config(time_budget_s=-1)


# ---------------------------------------------------------------------------- wall-clock budget
def test_the_time_budget_stops_cleanly_and_resumes(tmp_path):
    config = tiny_config(model="rim", pretrain_steps=0, steps=50, eval_every=0,
                         time_budget_s=1e-6)
    folder = str(tmp_path / "run")
    trainer = Trainer(config, folder, progress=False).run(50)
    assert trainer.step == 1 and trainer.elapsed_s > 1e-6     # one whole step, then stop
    ckpt = load_checkpoint(os.path.join(folder, "checkpoint.pt"))
    assert ckpt["step"] == 1 and ckpt["elapsed_s"] == pytest.approx(trainer.elapsed_s)
    resumed = Trainer(config, folder, resume=True, progress=False)
    assert resumed.elapsed_s == pytest.approx(trainer.elapsed_s)
    assert resumed.run(50).step == 1                           # the budget is spent
    # no budget: the same steps run to the end
    free = Trainer(config.replace(time_budget_s=0.0), str(tmp_path / "free"),
                   progress=False).run(3)
    assert free.step == 3 and free.elapsed_s > 0


# ---------------------------------------------------------------------------- Table 1 metric
class _Offset(nn.Module):
    """A teacher-forced 'model' whose prediction is the truth plus ``offset``."""

    def __init__(self, offset):
        super().__init__()
        self.offset = offset
        self.dummy = nn.Parameter(torch.zeros(1))

    def infer(self, frames):
        return {"recon": frames + self.offset}


@pytest.mark.parametrize("family", FAMILIES)
def test_recon_mse_scores_only_the_frames_with_a_past(family):
    """``recon_mse`` (the report's column beside VIM's, the trainer's periodic metric) leaves
    out frame 0, which RIM/SCOFF predict from nothing: it is Table 1's teacher-forced error
    over frames 1..T-1; frame 0 is only in ``recon_mse_all_frames``."""
    model = built(family).eval()
    batch = tiny_config().make_generator().generate(3, 5, 7)
    se = teacher_forced_errors(model, batch.frames)                         # (N, T)
    assert abs(se[:, 0].mean() - se[:, 1:].mean()) > 1e-3 * se.mean()      # they differ
    out = model.summary_metrics(batch)
    assert out["recon_mse"] == pytest.approx(se[:, 1:].mean())
    assert out["recon_mse"] == pytest.approx(table1_metrics(model, batch)["mse"])
    assert out["recon_mse_per_pixel"] == pytest.approx(se[:, 1:].mean() / (3 * 16 * 16))
    assert out["recon_mse_all_frames"] == pytest.approx(se.mean())
    assert out["recon_mse_per_frame"] == pytest.approx(se.mean(0).tolist())
    assert "recon_mse_predicted" not in out
    assert model.evaluation_metrics(batch)["recon_mse"] == pytest.approx(se[:, 1:].mean())
    with pytest.raises(ValueError, match="T >= 2"):
        model.summary_metrics(batch.head(1))


def test_table1_metric_on_hand_made_predictions():
    frames = torch.full((3, 5, 3, 4, 4), 0.5)
    perfect = table1_metrics(_Offset(0.0), frames)
    assert perfect["mse"] == 0 and perfect["mse_per_pixel"] == 0
    assert perfect["teacher_forced"]["frames"] == [1, 2, 3, 4]
    off = table1_metrics(_Offset(0.1), frames)
    pixels = 3 * 4 * 4
    assert off["mse"] == pytest.approx(0.01 * pixels) and off["mse_per_pixel"] == \
        pytest.approx(0.01)
    assert off["teacher_forced"]["per_step"] == pytest.approx([0.48] * 4)
    assert off["teacher_forced"]["std_over_sequences"] == pytest.approx(0.0)
    # per frame: mean over frames and sequences of the per-frame sums
    se = np.zeros((2, 3))
    se[0] = [100.0, 1.0, 3.0]
    se[1] = [100.0, 5.0, 7.0]
    s = summarise(se, pixels=4)
    assert s["per_frame"] == 4.0 and s["per_pixel"] == 1.0 and s["per_step"] == [3.0, 5.0]
    assert summarise(se, pixels=4, first_frame=0)["per_frame"] == pytest.approx(216 / 6)
    assert squared_errors(torch.ones(1, 1, 3, 2, 2), torch.zeros(1, 1, 3, 2, 2))[0, 0] == 12
    with pytest.raises(ValueError, match="sequences of 5 frames"):
        table1_metrics(_Offset(0.0), frames[:, :4])


class _Blobs(nn.Module):
    """A teacher-forced 'model' whose unit k's mask in frame t is one pixel at the true
    position of object k at frame ``t - lag`` (unit 3: the rest of the frame, a background)."""

    def __init__(self, positions, lag):
        super().__init__()
        self.positions, self.lag = positions, lag
        self.dummy = nn.Parameter(torch.zeros(1))

    def infer(self, frames):
        n, t, _, h, w = frames.shape
        masks = torch.zeros(n, t, 4, h, w)
        for i in range(n):
            for s in range(t):
                for k in range(self.positions.shape[2]):
                    x, y = self.positions[i, max(s - self.lag, 0), k]
                    masks[i, s, 2 - k, int(round(y)), int(round(x))] = 1.0   # units swapped
        masks[:, :, 3] = 1.0 - masks[:, :, :3].sum(2)
        return {"recon": frames, "masks": masks}


def test_unit_centroids_against_the_previous_positions():
    batch = tiny_config().make_generator().generate(4, 5, 3)
    pos = np.round(batch.positions)                       # whole pixels: exact centroids
    batch.positions[:] = pos
    tracking = unit_centroid_errors(_Blobs(pos, lag=1), batch)
    assert tracking["previous"] == pytest.approx(0.0) and tracking["within_1px"] == 1.0
    moved = np.linalg.norm(pos[:, 1:] - pos[:, :-1], axis=-1).mean()
    assert tracking["current"] == pytest.approx(moved) and moved > 0
    current = unit_centroid_errors(_Blobs(pos, lag=0), batch)   # a unit one move ahead
    # matched to minimise the distance to the previous positions: at most the moves
    assert 0 < current["previous"] <= moved + 1e-9 and current["within_1px"] < 1.0
    assert len(tracking["per_step"]) == 4
    assert table1_metrics(_Blobs(pos, lag=1), batch)["unit_centroids"] == tracking
    with pytest.raises(ValueError, match="true positions"):
        unit_centroid_errors(_Blobs(pos, lag=1), batch.frames)


def test_teacher_forced_predictions_never_see_the_frame_they_predict():
    model = built("scoff")
    model.eval()
    a = frames_of(3, 5)
    b = a.clone()
    b[:, 4] = 1.0 - b[:, 4]                          # change only the last frame
    ea, eb = teacher_forced_errors(model, a), teacher_forced_errors(model, b)
    assert np.array_equal(ea[:, :4], eb[:, :4]) and not np.array_equal(ea[:, 4], eb[:, 4])


def test_vim_prior_one_step_uses_only_the_past():
    vim = VIM(tiny_config())
    vim.eval()
    a = frames_of(2, 5)
    b = a.clone()
    b[:, 3:] = 1.0 - b[:, 3:]                          # frames 3 and 4 differ
    pyro.set_rng_seed(1)
    pa = prior_one_step_predictions(vim, a, num_samples=2)   # (S, N, 4, 3, H, W): frames 1..4
    pyro.set_rng_seed(1)
    pb = prior_one_step_predictions(vim, b, num_samples=2)
    assert pa.shape == (2, 2, 4, 3, 16, 16)
    # frames 1..3 are predicted from frames 0..2, identical in a and b: the same predictions
    assert torch.allclose(pa[:, :, :3], pb[:, :, :3], atol=1e-6)
    # frame 4 is predicted from frames 0..3, and frame 3 differs
    assert not torch.allclose(pa[:, :, 3], pb[:, :, 3], atol=1e-4)
    # the prior samples differ (the one-step prediction is stochastic)
    assert not torch.allclose(pa[0], pa[1], atol=1e-4)
    pyro.set_rng_seed(1)
    errors = prior_one_step_errors(vim, a, num_samples=2)
    assert errors.shape == (2, 2, 4)
    assert np.allclose(errors, ((pa.double() - a[None, :, 1:].double()) ** 2).sum((3, 4, 5)))
    out = table1_metrics(vim, a, num_samples=2)
    assert set(out) >= {"vim_inference", "vim_inference_all_frames", "vim_prior_one_step",
                        "mse", "mse_prior_one_step"}
    assert out["vim_prior_one_step"]["frames"] == [1, 2, 3, 4]
    assert out["mse"] == out["vim_inference"]["per_frame"] and math.isfinite(out["mse"])


# ---------------------------------------------------------------------------- the experiment
def test_table1_experiment_configs():
    from pyro_vim.experiments import module_hidden_for, transition_parameters
    exp = get_experiment("table1")
    families, budgets = ("rim", "scoff", "vim_m1", "vim"), ("15min", "60min", "converged")
    assert list(exp.variants) == [f"{f}@{b}" for f in families for b in budgets]
    assert exp.seeds == (0, 1, 2)
    configs = {v: exp.config(v, 1) for v in exp.variants}
    assert {v: c.model for v, c in configs.items()} == {
        v: {"vim_m1": "vim"}.get(v.split("@")[0], v.split("@")[0]) for v in exp.variants}
    # the same rule for every family: 15 and 60 minutes, or the plateau capped at 3 hours
    for family in families:
        rules = [(configs[f"{family}@{b}"].stop, configs[f"{family}@{b}"].time_budget_s)
                 for b in budgets]
        assert rules == [("budget", 900.0), ("budget", 3600.0), ("plateau", 10800.0)]
    assert all(c.steps >= 1_000_000 and c.eval_every > 0 for c in configs.values())
    m5 = [c for v, c in configs.items() if v.startswith("vim@")]
    assert all(c.num_slots == 4 and c.seed == 1 for c in configs.values())
    assert all(c.num_modules == 5 for v, c in configs.items() if not v.startswith("vim_m1"))
    # the monolithic VIM: one module with M = 5's transition-parameter count
    m1 = configs["vim_m1@converged"]
    assert m1.num_modules == 1 and m1.module_hidden == module_hidden_for(1, m5[0])
    ratio = transition_parameters(1, m1.slot_dim, m1.module_hidden) / transition_parameters(
        5, m5[0].slot_dim, m5[0].module_hidden)
    assert abs(ratio - 1) < 0.05
    # every variant gets VIM's single-frame pre-training (within the same budget)
    assert {c.pretrain_steps for c in configs.values()} == {m5[0].pretrain_steps} \
        and m5[0].pretrain_steps > 0
    assert configs["rim@15min"].extra["input_attention"] == "slots"
    assert exp.evaluations == ("table1",)


#: one variant of every family, every rule once
SMOKE_VARIANTS = ("rim@converged", "scoff@15min", "vim_m1@60min", "vim@converged")


def test_table1_runner_smoke(tmp_path, capsys):
    tiny = ["image_size=16", "slot_dim=8", "encoder_channels=8", "decoder_channels=8",
            "module_hidden=16", "update_hidden=16", "keyquery_dim=8", "batch_size=2",
            "pretrain_steps=2", "steps=3", "warmup_steps=1", "seq_len_start=3",
            "seq_len_max=3", "eval_every=2", "eval_sequences=2", "eval_seq_len=3"]
    assert runner.main(["table1", "--seeds", "0", "--out", str(tmp_path), "--set", *tiny,
                        "--variants", ",".join(SMOKE_VARIANTS),
                        "--eval-sequences", "3", "--eval-seq-len", "3"]) == 0
    results = {}
    for variant in SMOKE_VARIANTS:
        folder = runner.run_dir(str(tmp_path), "table1", variant, 0)
        with open(os.path.join(folder, "metrics.json")) as f:
            results[variant] = json.load(f)
        m = results[variant]["metrics"]
        assert m["table1"]["seq_len"] == 5 and m["table1_mse"] == m["table1"]["mse"] > 0
        assert m["table1"]["mse"] == pytest.approx(
            m["table1"]["mse_per_pixel"] * 3 * 16 * 16)
        assert isinstance(load_model(os.path.join(folder, "checkpoint.pt")),
                          {"rim": RIM, "scoff": SCOFF}.get(variant.split("@")[0], VIM))
        # the step count ended these runs (the rules are tested in tests/test_stopping.py)
        stopped = results[variant]["stopped"]
        assert (stopped["by"], stopped["step"]) == ("steps", 5)
        # training minutes without the evaluations, within the run's training time
        assert 0 <= stopped["minutes"] <= results[variant]["train_minutes"] + 0.01
        with open(os.path.join(folder, "log.jsonl")) as f:
            val = [(r["step"], r["validation"]) for r in map(json.loads, f)
                   if "validation" in r]
        assert [s for s, _ in val] == [2, 4, 5]        # after pre-training, dynamics 2, end
        assert val[0][1]["before_learning"] and all(v["error"] > 0 for _, v in val)
    for variant in ("rim@converged", "scoff@15min"):
        r = results[variant]
        assert r["steps"] == 5                                  # 2 pre-training steps
        assert r["before_learning"]["table1"]["mse"] > 0          # scored after pre-training
        assert r["metrics"]["table1"]["teacher_forced"]["frames"] == [1, 2, 3, 4]
        assert r["metrics"]["recon_mse"] > 0
        assert r["metrics"]["table1_unit_centroid_px"] == \
            r["metrics"]["table1"]["unit_centroids"]["previous"] >= 0
    assert load_model(os.path.join(runner.run_dir(str(tmp_path), "table1", "vim_m1@60min", 0),
                                   "checkpoint.pt")).transition.num_modules == 1
    vim = results["vim@converged"]
    assert vim["steps"] == 5 and vim["metrics"]["rule_module_accuracy"] is not None
    assert vim["metrics"]["table1_prior_mse"] == vim["metrics"]["table1"][
        "vim_prior_one_step"]["per_frame"]
    # the error of the samples' mean is at most their mean error (the squared error is convex)
    assert 0 < vim["metrics"]["table1_prior_mean_mse"] <= vim["metrics"]["table1_prior_mse"]
    assert vim["metrics"]["table1"]["prior_samples"] == runner.TABLE1_TEST["prior_samples"]
    with open(os.path.join(runner.run_dir(str(tmp_path), "table1", "rim@converged", 0),
                           "config.json")) as f:
        config = VIMConfig.from_dict(json.load(f))
    assert config.model == "rim" and config.stop == "plateau" and config.time_budget_s == 10800
    # Fig. 8-style samples from the three checkpoints, and the learning curves
    from pyro_vim.report import write_report
    report = write_report(str(tmp_path))
    for name in ("table1_samples.png", "table1_learning_curves.png"):
        png = tmp_path / name
        assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
        assert name in (tmp_path / "report.md").read_text()
    curve = report["experiments"]["table1"]["rim@converged"]["learning_curve"]
    assert curve["steps"] == [4, 5] and curve["before"]["n"] == 1
    refs = report["learning_curve_references"]["table1"]
    assert 0 < refs["best_deterministic"] < refs["empty_frame"]


def test_sample_rows_blur_against_samples():
    """Fig. 8 rows: truth, a deterministic model's one prediction per frame, VIM's samples."""
    torch.manual_seed(0)
    vim = VIM(tiny_config(num_modules=4)).eval()
    frames = torch.rand(1, 5, 3, 16, 16)
    rows = sample_rows({"OFF": _Offset(0.1), "VIM": vim}, frames, num_samples=2)
    assert [label for label, _ in rows] == ["truth", "OFF", "VIM sample 1", "VIM sample 2"]
    assert all(tuple(r.shape) == (4, 3, 16, 16) for _, r in rows)
    assert torch.allclose(rows[1][1], (frames[0, 1:] + 0.1))   # _Offset: truth + 0.1
    with pytest.raises(ValueError, match="one video"):
        sample_rows({"OFF": _Offset(0.0)}, torch.rand(2, 5, 3, 16, 16))


def test_table1_reference_errors_by_hand():
    """The references on a hand-made video: a ball in the top-left corner moving right twice.
    The background costs the ball's pixels; from the corner only right and down are legal, so
    the perfect sampler is right half the time and the mean of its draws errs less."""
    import numpy as np

    from pyro_vim.baselines.table1 import reference_errors
    from pyro_vim.data import RandomWalk
    gen = RandomWalk(image_size=16, num_objects=1)
    batch = gen.generate(2, 3, seed=0)
    radius = gen.radius
    pos = np.array([[radius, radius], [radius + 3, radius], [radius + 6, radius]], np.float32)
    frames = np.stack([gen.render(p[None, None], batch.attributes["color"][0]) for p in pos], 1)
    batch.frames = np.repeat(frames, 2, 0)
    batch.positions = np.repeat(pos[None, :, None], 2, 0)
    ref = reference_errors(gen, batch, num_draws=4, seq_len=None)
    ball = ((batch.frames[0, 1] - gen.background) ** 2).sum()
    assert ref["background"]["per_frame"] == pytest.approx(ball)
    assert ref["previous_frame"]["per_frame"] > 0
    assert 0 < ref["oracle_mean"]["per_frame"] < ref["oracle_sample"]["per_frame"]
