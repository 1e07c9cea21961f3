"""The stopping rules (``schedule.stop``), the validation error they read and the learning curves
of the report (pyro_vim/train/stopping.py, pyro_vim/report/curves.py)."""
import json
import os

import pytest
import torch

from pyro_vim.baselines.table1 import (
    one_step_errors,
    prior_one_step_predictions,
    squared_errors,
    teacher_forced_errors,
)
from pyro_vim.checkpoint import load_checkpoint
from pyro_vim.config import PLATEAU_CAP_S, VIMConfig
from pyro_vim.models import build_model, load_model
from pyro_vim.report import write_report
from pyro_vim.report.curves import aggregate_curves, read_curve
from pyro_vim.train import Trainer
from pyro_vim.train.stopping import plateau_reached, relative_improvement, validation_frames

from .helpers import tiny_config, v1_dict

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "checkpoints")

#: a validation curve that falls fast, then stays within 0.5% of its best
PLATEAU = [100.0, 60.0, 40.0, 30.0, 25.0, 24.9, 24.95, 24.92, 24.9, 24.91, 24.93, 24.9]
#: a curve still falling by 2% per evaluation (far more than 1% over any last third)
FALLING = [100.0 * 0.98 ** i for i in range(30)]


# ---------------------------------------------------------------------------- the rule itself
def test_relative_improvement_by_hand():
    # 9 evaluations: the last third is the last 3, the rest the first 6
    errors = [10, 8, 6, 5, 4.5, 4.0, 4.2, 3.98, 4.1]
    assert relative_improvement(errors) == pytest.approx((4.0 - 3.98) / 4.0)
    # 10 evaluations: still the last 3 (floor(10 / 3)); worse than before: negative
    assert relative_improvement([5.0] * 7 + [6.0, 7.0, 5.5]) == pytest.approx(-0.1)
    assert relative_improvement([1.0, 2.0]) is None               # too few to split
    assert relative_improvement([float("nan")] * 3) == 0.0       # nothing measurable
    assert relative_improvement([float("nan"), float("inf"), 1.0]) == float("inf")


def test_plateau_stops_a_plateau_and_not_a_falling_curve():
    stops = [n for n in range(1, len(PLATEAU) + 1)
             if plateau_reached(PLATEAU[:n], tolerance=0.01, min_evals=9)]
    assert stops and stops[0] == 9          # the first moment it may: the last third is flat
    assert not any(plateau_reached(FALLING[:n], 0.01, 9) for n in range(1, len(FALLING) + 1))
    # a wider tolerance stops the falling curve; more evaluations required delay the plateau
    assert plateau_reached(FALLING[:12], tolerance=0.2, min_evals=9)
    assert not plateau_reached(PLATEAU[:9], 0.01, min_evals=10)
    # early on the first evaluations are still falling: the last third improved > 1%
    assert not plateau_reached(PLATEAU[:6], 0.01, min_evals=3)


# ---------------------------------------------------------------------------- config
def test_config_fields_and_old_configs_keep_the_budget_rule():
    config = VIMConfig()
    assert (config.stop, config.plateau_tolerance, config.plateau_min_evals) == ("budget", 0.01,
                                                                                 9)
    assert config.schedule.stop == "budget"
    assert VIMConfig(stop="plateau").schedule.time_cap_s == PLATEAU_CAP_S == 10800.0
    assert VIMConfig(stop="plateau", time_budget_s=60).schedule.time_cap_s == 60.0
    assert VIMConfig().schedule.time_cap_s == 0.0                  # budget: no cap unless set
    assert VIMConfig().replace(**{"schedule.stop": "plateau"}).stop == "plateau"
    # configs saved before the field existed: version 1 (flat) and version 2 (sections)
    v2 = tiny_config(time_budget_s=900.0).to_dict()
    for key in ("stop", "plateau_tolerance", "plateau_min_evals"):
        del v2["schedule"][key]
    old = VIMConfig.from_saved(v2)
    assert old.stop == "budget" and old.time_budget_s == 900.0
    assert old.schedule.time_cap_s == 900.0
    v1 = v1_dict(tiny_config())
    for key in ("stop", "plateau_tolerance", "plateau_min_evals"):
        v1.pop(key)
    assert VIMConfig.from_saved(v1).stop == "budget"
    # checkpoints written by earlier commits
    for name in ("rim-a50e507.pt", "vim-0729bc8.pt"):
        assert load_model(os.path.join(FIXTURES, name)).config.stop == "budget"


@pytest.mark.parametrize("changes, match", [
    ({"stop": "early"}, "stop must be one of"),
    ({"stop": "plateau", "eval_every": 0}, "eval_every must be positive"),
    ({"plateau_tolerance": 0}, "plateau_tolerance"),
    ({"plateau_tolerance": 1.5}, "plateau_tolerance"),
    ({"plateau_min_evals": 2}, "plateau_min_evals"),
    ({"plateau_min_evals": 9.0}, "plateau_min_evals"),
])
def test_bad_stop_settings_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**changes)


@pytest.mark.parametrize("changes", [
    {"model": "gswm", "pretrain_steps": 0},
    {"iterations": 2},
    {"interaction.velocity": True},
])
def test_plateau_needs_a_model_that_predicts_one_step(changes):
    config = tiny_config(stop="plateau").replace(**changes)
    with pytest.raises(ValueError, match=f"{config.model!r} model of this config does not "):
        Trainer(config, progress=False)
    trainer = Trainer(config.replace(stop="budget"), progress=False)   # logs no validation
    assert not trainer.validates


# ---------------------------------------------------------------------------- validation error
def test_the_validation_error_is_table1s_one_step_error():
    """RIM/SCOFF: the teacher-forced error of frames 1..; VIM: the error of the mean of its
    one-step prior samples; on the trainer's held-out batch cut to 5 frames."""
    config = tiny_config(model="rim", eval_seq_len=6)
    trainer = Trainer(config, progress=False)
    frames = trainer.evaluation_batch().frames
    assert validation_frames(config) == 5
    se = teacher_forced_errors(trainer.model, frames[:, :5])
    first = trainer.validate()
    assert first["error"] == pytest.approx(se[:, 1:].mean()) and first["minutes"] == 0
    vim = build_model(tiny_config()).eval()
    frames = torch.rand(3, 4, 3, 16, 16)
    torch.manual_seed(5)
    out = one_step_errors(vim, frames, num_samples=3)
    torch.manual_seed(5)
    mean = prior_one_step_predictions(vim, frames, 3).mean(0)
    assert out["per_frame"] == pytest.approx(squared_errors(mean, frames[:, 1:]).mean())
    assert out["frames"] == [1, 2, 3]
    # seeded: the same model gets the same number at every evaluation, and training's random
    # numbers are not shifted
    trainer = Trainer(tiny_config(), progress=False)
    state = torch.random.get_rng_state()
    a, b = trainer.validate()["error"], trainer.validate()["error"]
    assert a == b and torch.equal(state, torch.random.get_rng_state())


# ---------------------------------------------------------------------------- in the trainer
def _fake_validation(monkeypatch, curve):
    """Trainer.validate returns the next value of ``curve`` (the before-learning call first)."""
    values = iter(curve)

    def validate(self):
        return {"error": next(values), "minutes": round(self.elapsed_s / 60, 4)}

    monkeypatch.setattr(Trainer, "validate", validate)


def _log(folder):
    with open(os.path.join(folder, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("family", ["rim", "vim"])
def test_the_plateau_stops_training_and_is_recorded(tmp_path, monkeypatch, family):
    config = tiny_config(model=family, stop="plateau", pretrain_steps=1, steps=1000,
                         eval_every=1, time_budget_s=600, eval_sequences=2)
    _fake_validation(monkeypatch, [500.0] + PLATEAU)            # before learning, then 1/step
    folder = str(tmp_path / "run")
    trainer = Trainer(config, folder, progress=False).run(1001)
    assert trainer.step == 1 + 9                                 # dynamics step 9: the plateau
    assert trainer.stopped["by"] == "plateau" and trainer.stopped["step"] == 10
    assert trainer.stopped["minutes"] == pytest.approx(trainer.elapsed_s / 60, abs=1e-3)
    records = _log(folder)
    assert [r["step"] for r in records] == list(range(1, 11))
    assert records[-1]["stopped"] == trainer.stopped
    assert "stopped" not in records[-2]
    val = [(r["step"], r["validation"]["error"]) for r in records if "validation" in r]
    assert val == [(1, 500.0)] + list(zip(range(2, 11), PLATEAU))
    assert records[0]["validation"]["before_learning"]
    ckpt = load_checkpoint(os.path.join(folder, "checkpoint.pt"))
    assert ckpt["step"] == 10 and ckpt["stopped"] == trainer.stopped
    assert [e for _, e in ckpt["validation_history"]] == PLATEAU[:9]
    # a stopped run trains no further when resumed
    resumed = Trainer(config, folder, resume=True, progress=False)
    assert resumed.stopped == trainer.stopped and resumed.run(1001).step == 10


def test_a_falling_curve_does_not_stop_and_resumes_with_its_history(tmp_path, monkeypatch):
    config = tiny_config(model="rim", stop="plateau", pretrain_steps=1, steps=12,
                         eval_every=1, eval_sequences=2)
    _fake_validation(monkeypatch, [500.0] + FALLING)
    folder = str(tmp_path / "run")
    trainer = Trainer(config, folder, progress=False, checkpoint_every=5).run(8)
    assert trainer.step == 8 and trainer.stopped is None
    resumed = Trainer(config, folder, resume=True, progress=False)
    assert [e for _, e in resumed.validation_history] == FALLING[:7]
    _fake_validation(monkeypatch, FALLING[7:])
    assert resumed.run(13).step == 13 and resumed.stopped is None      # ran all its steps
    assert [e for _, e in resumed.validation_history] == FALLING[:12]
    assert not any("stopped" in r for r in _log(folder))


def test_the_cap_stops_training_and_is_recorded(tmp_path):
    config = tiny_config(model="rim", stop="plateau", pretrain_steps=0, steps=50,
                         eval_every=1, time_budget_s=1e-6, eval_sequences=2)
    folder = str(tmp_path / "run")
    trainer = Trainer(config, folder, progress=False).run(50)
    assert trainer.step == 1 and trainer.stopped["by"] == "time_budget"
    records = _log(folder)
    assert records[-1]["stopped"] == trainer.stopped and "validation" in records[-1]
    assert load_checkpoint(os.path.join(folder, "checkpoint.pt"))["stopped"] == trainer.stopped
    # the budget rule records its stop the same way
    budget = Trainer(config.replace(stop="budget"), str(tmp_path / "b"), progress=False).run(50)
    assert budget.step == 1 and budget.stopped["by"] == "time_budget"
    # with stop="plateau" and no budget set the cap is 3 hours of training time
    capped = Trainer(config.replace(time_budget_s=0.0), progress=False)
    capped.elapsed_s = PLATEAU_CAP_S - 1e-9
    assert capped.run(50).step == 1 and capped.stopped["by"] == "time_budget"
    assert capped.stopped["minutes"] == pytest.approx(180.0, abs=0.01)
    free = Trainer(config.replace(time_budget_s=0.0, stop="budget"), progress=False)
    free.elapsed_s = PLATEAU_CAP_S
    assert free.run(3).step == 3 and free.stopped is None         # budget rule: no cap


# ---------------------------------------------------------------------------- learning curves
def _fake_run(folder, seed, variant, curve, before, minutes_per_step=0.5, config=None):
    os.makedirs(folder)
    with open(os.path.join(folder, "log.jsonl"), "w") as f:
        f.write(json.dumps({"step": 1, "loss": 1.0}) + "\n")
        f.write(json.dumps({"step": 2, "validation": {"error": before, "minutes": 0.1,
                                                      "before_learning": True}}) + "\n")
        for i, error in enumerate(curve):
            step = 4 + 2 * i
            f.write(json.dumps({"step": step, "loss": 1.0,
                                "validation": {"error": error,
                                               "minutes": step * minutes_per_step}}) + "\n")
        f.write('{"step": 99, "validation": {"err')                    # a half-written line
    stopped = {"by": "plateau" if len(curve) < 4 else "steps", "step": 2 + 2 * len(curve),
               "minutes": 1.0}
    with open(os.path.join(folder, "metrics.json"), "w") as f:
        json.dump({"experiment": "table1", "variant": variant, "seed": seed, "steps": 10,
                   "stopped": stopped, "train_minutes": 1.0,
                   "metrics": {"table1_mse": 10.0 + seed}, "before_learning": None}, f)
    if config is not None:
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config.replace(seed=seed).to_dict(), f)


def test_read_and_aggregate_curves(tmp_path):
    _fake_run(str(tmp_path / "a"), 0, "rim", [40.0, 30.0, 20.0], 50.0)
    curve = read_curve(tmp_path / "a" / "log.jsonl")
    assert curve["before"] == [2, 0.1, 50.0]
    assert curve["points"] == [[4, 2.0, 40.0], [6, 3.0, 30.0], [8, 4.0, 20.0]]
    assert read_curve(tmp_path / "missing.jsonl") is None
    other = {"points": [[4, 3.0, 20.0], [6, 5.0, 10.0]], "before": [2, 0.1, 70.0]}
    agg = aggregate_curves([curve, other, None])
    assert agg["steps"] == [4, 6, 8] and agg["n"] == [2, 2, 1] and agg["runs"] == 2
    assert agg["mean"] == [30.0, 20.0, 20.0] and agg["minutes"] == [2.5, 4.0, 4.0]
    assert agg["std"][0] == pytest.approx(14.1421356) and agg["std"][2] == 0.0
    assert agg["before"]["mean"] == 60.0 and agg["before"]["n"] == 2


def test_learning_curve_figure_from_fake_logs(tmp_path):
    config = tiny_config(eval_sequences=3, eval_seq_len=5)
    root = tmp_path / "runs"
    for variant, base in (("rim@15min", 60.0), ("rim@converged", 60.0), ("vim@converged", 40.0)):
        for seed in (0, 1):
            curve = [base - 5 * i - seed for i in range(3 if "15" in variant else 6)]
            _fake_run(str(root / "table1" / variant / f"seed={seed}"), seed, variant, curve,
                      base + 20, config=config)
    report = write_report(str(root))
    png = root / "table1_learning_curves.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    md = (root / "report.md").read_text()
    assert "table1_learning_curves.png" in md and "Validation references" in md
    assert "rim@15min: plateau 2" in md and "rim@converged: steps 2" in md
    groups = report["experiments"]["table1"]
    assert groups["rim@15min"]["learning_curve"]["mean"] == [59.5, 54.5, 49.5]
    assert groups["vim@converged"]["learning_curve"]["before"]["mean"] == 60.0
    assert groups["rim@15min"]["stopped_by"] == {"plateau": 2}
    assert groups["rim@15min"]["train_minutes"]["mean"] == 1.0
    refs = report["learning_curve_references"]["table1"]
    assert 0 < refs["best_deterministic"] < refs["empty_frame"]
    # the empty frame on the validation videos of both seeds, by hand
    from pyro_vim.train.stopping import validation_batch
    empty = []
    for seed in (0, 1):
        c = config.replace(seed=seed)
        gen = c.make_generator()
        frames = torch.from_numpy(validation_batch(c, gen).frames).double()
        bg = torch.as_tensor(gen.background, dtype=torch.float64)    # (3, H, W) or (3,)
        bg = bg if bg.dim() == 3 else bg.view(3, 1, 1)
        empty.append(((frames[:, 1:] - bg) ** 2).sum((2, 3, 4)).mean().item())
    assert refs["empty_frame"] == pytest.approx(sum(empty) / 2)
    # a sweep without validation records draws no learning curve
    plain = tmp_path / "plain" / "random_walk" / "seed=0"
    os.makedirs(plain)
    (plain / "metrics.json").write_text(json.dumps({"metrics": {"recon_mse": 1.0}}))
    (plain / "log.jsonl").write_text(json.dumps({"step": 1, "loss": 2.0}) + "\n")
    write_report(str(tmp_path / "plain"))
    assert not (tmp_path / "plain" / "random_walk_learning_curves.png").exists()
