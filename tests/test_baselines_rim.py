"""RIM and SCOFF baselines (Table 1), the Table 1 metric, the wall-clock budget and the
``table1`` experiment."""
import json
import math
import os

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch import nn

from pyro_vim import VIM
from pyro_vim import evaluate as evaluate_cli
from pyro_vim import run as runner
from pyro_vim.baselines import RIM, SCOFF
from pyro_vim.baselines.table1 import (
    prior_one_step_errors,
    prior_one_step_predictions,
    sample_rows,
    squared_errors,
    summarise,
    table1_metrics,
    teacher_forced_errors,
)
from pyro_vim.checkpoint import load_checkpoint
from pyro_vim.config import VIMConfig
from pyro_vim.experiments import get_experiment
from pyro_vim.models import build_model, load_model
from pyro_vim.train import Trainer

from .helpers import tiny_config

FAMILIES = ("rim", "scoff")


def frames_of(n=2, t=4, seed=0, config=None):
    config = config or tiny_config()
    return torch.from_numpy(config.make_generator().generate(n, t, seed).frames)


def built(family, **extra):
    return build_model(tiny_config(model=family, extra=extra))


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
    assert (out["active"].sum(-1) <= 3).all()                # top_k defaults to K - 1 = 3
    if family == "scoff":
        assert model.core.grus.num == 4                      # M = config.num_modules schemata
        assert out["schema_selections"].shape == (2, 3, 4)
        assert int(out["schema_selections"].max()) < 4
    else:
        assert model.core.schemata == "per_unit" and model.core.grus.num == 4   # one per unit
        assert "schema_selections" not in out
        single = built("rim", rim_schemata="single")
        assert single.core.grus.num == 1
    # a single frame (pre-training batches): frame 0 from the empty history
    assert model.infer(frames[:, :1])["recon"].shape == (2, 1, 3, 16, 16)


@pytest.mark.parametrize("family", FAMILIES)
def test_inactive_units_keep_their_state_exactly(family):
    model = built(family, top_k=2)
    model.eval()
    frames = frames_of(3, 4)
    out = model.rollout(frames)
    states, active = out["states"], out["active"]              # (N, T, K, D), (N, T-1, K)
    assert (active.sum(-1) <= 2).all() and active.any()
    inactive = ~active
    before, after = states[:, :-1], states[:, 1:]
    assert inactive.any()
    assert torch.equal(after[inactive], before[inactive])     # bit for bit
    # the active units did change
    assert (after[active] - before[active]).abs().amax(-1).min() > 0
    # the same in training mode (straight-through Gumbel choice for SCOFF)
    model.train()
    out = model.rollout(frames)
    inactive = ~out["active"]
    assert torch.equal(out["states"][:, 1:][inactive], out["states"][:, :-1][inactive])


def _fixed_query(core, sign: float):
    """Every unit's query is +10 (a module of the test), pixel keys are 0 and the null key is
    sign * 10: the null row wins every unit's attention when sign > 0, loses when < 0."""
    core.in_query = nn.Linear(core.hidden, core.key_dim)
    with torch.no_grad():
        core.in_query.weight.zero_()
        core.in_query.bias.fill_(10.0)
        core.in_key.weight.zero_()
        core.in_key.bias.zero_()
        core.null_key.fill_(10.0 * sign)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_null_input_activates_nothing(family):
    model = built(family)
    model.eval()
    core = model.core
    h = torch.randn(2, 4, 8)
    # 1. an input with no rows: all attention goes to the null row
    empty = torch.zeros(2, 0, core.in_key.in_features)
    step = core(h, empty)
    assert torch.allclose(step.attention[..., 0], torch.ones(2, 4))
    assert not step.active.any()
    assert torch.equal(step.h, h)
    # 2. a real frame whose every key loses to the null key: nothing moves, in the whole rollout
    frames = frames_of(2, 4)
    _fixed_query(core, +1.0)
    out = model.rollout(frames)
    assert not out["active"].any()
    assert torch.equal(out["states"], model.initial.expand(2, 4, 4, 8))
    # ... while the same frame with the null key losing activates exactly top_k units
    _fixed_query(core, -1.0)
    out = model.rollout(frames)
    assert (out["active"].sum(-1) == core.top_k).all()
    assert not torch.equal(out["states"][:, 1], out["states"][:, 0])
    # null_threshold = 0 is RIM's "always exactly k": the losing null still leaves k active
    model = built(family, null_threshold=0.0)
    _fixed_query(model.core, +1.0)
    assert (model.rollout(frames)["active"].sum(-1) == model.core.top_k).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_elbo_is_finite_and_gradients_reach_the_parameters(family):
    model = built(family)
    frames = frames_of(2, 3)
    loss = Trace_ELBO().differentiable_loss(model.model, model.guide, frames)
    value = float(loss.detach())
    assert math.isfinite(value) and value > 0
    # the guide is empty: the loss is the Gaussian negative log-likelihood of the predictions
    recon = model.predict(frames)
    sigma = model.config.sigma_x
    nll = (((frames - recon) ** 2).sum() / (2 * sigma ** 2)
           + frames.numel() * math.log(sigma * math.sqrt(2 * math.pi)))
    if family == "rim":              # deterministic given the parameters: the same number
        assert value == pytest.approx(float(nll.detach()), rel=1e-5)
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    for part in ("encoder.", "core.in_query", "core.in_key", "core.in_value", "core.null_key",
                 "core.grus.", "core.comm_", "initial", "position.", "decoder."):
        norm = sum(float(g.norm()) for n, g in grads.items() if n.startswith(part))
        assert norm > 0, part
    if family == "scoff":      # the straight-through schema choice passes gradients
        assert float(grads["core.sel_query.weight"].norm()) > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_a_tiny_batch_is_overfit(family):
    model = built(family)
    frames = frames_of(4, 3)
    svi = SVI(model.model, model.guide, Adam({"lr": 1e-2}), Trace_ELBO())
    losses = [svi.step(frames) for _ in range(40)]
    assert losses[-1] < 0.4 * losses[0], (losses[0], losses[-1])


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip(family, tmp_path):
    model = built(family, top_k=2)
    path = str(tmp_path / "m.pt")
    model.save(path, step=7)
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.core.top_k == 2
    state = loaded.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    frames = frames_of(2, 4)       # infer is deterministic (argmax schemata) in either mode
    assert loaded.training and torch.equal(model.infer(frames)["recon"],
                                           loaded.infer(frames)["recon"])
    other = "scoff" if family == "rim" else "rim"
    with pytest.raises(ValueError, match=f"holds a '{family}' model, not '{other}'"):
        {"rim": RIM, "scoff": SCOFF}[other].load(path)


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
    assert set(first) >= {"recon_mse", "recon_mse_predicted", "active_fraction"}
    loaded = load_model(str(tmp_path / "run" / "checkpoint.pt"))
    assert type(loaded) is type(trainer.model)


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
    exp = get_experiment("table1")
    assert list(exp.variants) == ["rim", "scoff", "vim"] and exp.seeds == (0, 1, 2)
    configs = {v: exp.config(v, 1) for v in exp.variants}
    assert {v: c.model for v, c in configs.items()} == {"rim": "rim", "scoff": "scoff",
                                                         "vim": "vim"}
    budgets = {c.time_budget_s for c in configs.values()}
    assert len(budgets) == 1 and budgets.pop() > 0
    assert all(c.num_slots == 4 and c.num_modules == 5 and c.seed == 1
               for c in configs.values())
    assert configs["rim"].pretrain_steps == 0 and configs["vim"].pretrain_steps > 0
    assert exp.evaluations == ("table1",)


def test_table1_runner_smoke(tmp_path, capsys):
    tiny = ["image_size=16", "slot_dim=8", "encoder_channels=8", "decoder_channels=8",
            "module_hidden=16", "update_hidden=16", "keyquery_dim=8", "batch_size=2",
            "pretrain_steps=2", "steps=3", "warmup_steps=1", "seq_len_start=3",
            "seq_len_max=3", "eval_every=0", "eval_sequences=2", "eval_seq_len=3"]
    assert runner.main(["table1", "--seeds", "0", "--out", str(tmp_path), "--set", *tiny,
                        "--eval-sequences", "3", "--eval-seq-len", "3"]) == 0
    results = {}
    for variant in ("rim", "scoff", "vim"):
        folder = runner.run_dir(str(tmp_path), "table1", variant, 0)
        with open(os.path.join(folder, "metrics.json")) as f:
            results[variant] = json.load(f)
        m = results[variant]["metrics"]
        assert m["table1"]["seq_len"] == 5 and m["table1_mse"] == m["table1"]["mse"] > 0
        assert m["table1"]["mse"] == pytest.approx(
            m["table1"]["mse_per_pixel"] * 3 * 16 * 16)
        assert isinstance(load_model(os.path.join(folder, "checkpoint.pt")),
                          {"rim": RIM, "scoff": SCOFF, "vim": VIM}[variant])
    for variant in ("rim", "scoff"):
        r = results[variant]
        assert r["steps"] == 3 and r["before_learning"] is None     # no pre-training
        assert r["metrics"]["table1"]["teacher_forced"]["frames"] == [1, 2, 3, 4]
        assert r["metrics"]["recon_mse"] > 0
    vim = results["vim"]
    assert vim["steps"] == 5 and vim["metrics"]["rule_module_accuracy"] is not None
    assert vim["metrics"]["table1_prior_mse"] == vim["metrics"]["table1"][
        "vim_prior_one_step"]["per_frame"]
    # the error of the samples' mean is at most their mean error (the squared error is convex)
    assert 0 < vim["metrics"]["table1_prior_mean_mse"] <= vim["metrics"]["table1_prior_mse"]
    assert vim["metrics"]["table1"]["prior_samples"] == runner.TABLE1_TEST["prior_samples"]
    with open(os.path.join(runner.run_dir(str(tmp_path), "table1", "rim", 0),
                           "config.json")) as f:
        config = VIMConfig.from_dict(json.load(f))
    assert config.model == "rim" and config.time_budget_s > 0
    # Fig. 8-style samples: the report draws them from the three checkpoints
    from pyro_vim.report import write_report
    write_report(str(tmp_path))
    png = tmp_path / "table1_samples.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    assert "table1_samples.png" in (tmp_path / "report.md").read_text()


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
