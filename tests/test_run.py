"""The experiment runner: every experiment smoke-runs, sweeps resume, bad input is refused."""
import json
import os

import pytest
import torch

from pyro_vim import run as runner
from pyro_vim.experiments import EXPERIMENTS, get_experiment
from pyro_vim.models import load_model
from pyro_vim.priors import UniformPrior
from pyro_vim.train import Trainer

TINY = ["image_size=16", "slot_dim=8", "encoder_channels=8", "decoder_channels=8",
        "module_hidden=16", "update_hidden=16", "keyquery_dim=8", "batch_size=2",
        "pretrain_steps=2", "steps=3", "warmup_steps=1", "seq_len_start=3", "seq_len_max=3",
        "eval_every=0", "eval_sequences=2", "eval_seq_len=3"]
EVAL = ["--eval-sequences", "3", "--eval-seq-len", "3"]


def run(args):
    return runner.main(list(args))


def read(path):
    with open(path) as f:
        return json.load(f)


#: the experiments of VIM itself (baselines have their own metrics and smoke tests:
#: tests/test_baselines_gswm.py, tests/test_baselines_rim.py for table1; the bouncing balls'
#: interactions experiment, whose events are no Random Walk rules, in
#: tests/test_interaction_metrics.py)
VIM_EXPERIMENTS = sorted(name for name, e in EXPERIMENTS.items()
                         if e.settings.get("model", "vim") == "vim"
                         and name not in ("table1", "interactions"))


@pytest.mark.parametrize("name", VIM_EXPERIMENTS)
def test_every_experiment_smoke_runs(tmp_path, name, capsys):
    exp = get_experiment(name)
    variants = list(exp.variants)[:2]
    args = [name, "--seeds", "0", "--out", str(tmp_path), "--set", *TINY, *EVAL]
    if variants != [""]:
        args += ["--variants", ",".join(variants)]
    assert run(args) == 0
    for variant in variants:
        folder = runner.run_dir(str(tmp_path), name, variant, 0)
        for f in ("config.json", "checkpoint.pt", "log.jsonl", "before.json", "metrics.json",
                  "pretrained.pt"):
            assert os.path.exists(os.path.join(folder, f)), f
        result = read(os.path.join(folder, "metrics.json"))
        assert (result["experiment"], result["variant"], result["seed"]) == (name, variant, 0)
        m = result["metrics"]
        assert 0 <= m["rule_module_accuracy"] <= 1 and m["recon_mse"] > 0
        assert len(m["confusion"]) == 4 and len(m["module_usage"]) == len(m["confusion"][0])
        assert set(m["module_step_error"]) <= {"up", "down", "left", "right"}
        assert result["before_learning"]["rule_module_accuracy"] is not None
        assert result["steps"] == 5
        if "composition" in exp.evaluations:             # Fig. 5: VIM-8 on compositions
            comp = m["composition"]
            assert len(comp["per_iteration"]) == 8 and comp["final"] == comp["per_iteration"][-1]
            assert set(comp["by_moves"]) <= {"1", "2", "3", "4", "5"}
        if "transfer" in exp.evaluations:                # Fig. 7: unseen objects
            assert len(m["transfer"]["per_step"]) == 10
            assert m["transfer_error_mean"] == m["transfer"]["mean"]
        model = load_model(os.path.join(folder, "checkpoint.pt"))
        assert model.config.to_dict() == read(os.path.join(folder, "config.json"))
    assert "python -m pyro_vim.report" in capsys.readouterr().out


def test_module_count_variants_build_the_module_count(tmp_path):
    assert run(["module_count", "--seeds", "0", "--variants", "num_modules=1,num_modules=8",
                "--out", str(tmp_path), "--set", *TINY, *EVAL]) == 0
    for m in (1, 8):
        folder = runner.run_dir(str(tmp_path), "module_count", f"num_modules={m}", 0)
        model = load_model(os.path.join(folder, "checkpoint.pt"))
        assert model.config.num_modules == m and model.transition.num_modules == m


def test_ablation_runs_restore_their_prior_and_guide(tmp_path):
    assert run(["ablations", "--seeds", "0", "--variants", "prior=uniform,guide=keyquery",
                "--out", str(tmp_path), "--set", *TINY, *EVAL]) == 0
    uni = load_model(runner.run_dir(str(tmp_path), "ablations", "prior=uniform", 0)
                     + "/checkpoint.pt")
    kq = load_model(runner.run_dir(str(tmp_path), "ablations", "guide=keyquery", 0)
                    + "/checkpoint.pt")
    assert type(uni.prior) is UniformPrior and uni.config.prior == "uniform"
    assert kq.config.guide == "keyquery" and kq.posterior.position_score is False


def test_a_killed_sweep_resumes(tmp_path, monkeypatch):
    args = ["random_walk", "--seeds", "0,1", "--out", str(tmp_path), "--set", *TINY, *EVAL]
    real_step = Trainer.train_step
    calls = {"n": 0}

    def dying_step(self):
        calls["n"] += 1
        if self.config.seed == 1 and self.step == 3:
            raise KeyboardInterrupt("killed")
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run(args)
    seed0 = runner.run_dir(str(tmp_path), "random_walk", "", 0)
    seed1 = runner.run_dir(str(tmp_path), "random_walk", "", 1)
    done = os.stat(os.path.join(seed0, "metrics.json")).st_mtime_ns
    assert not os.path.exists(os.path.join(seed1, "metrics.json"))
    assert os.path.exists(os.path.join(seed1, "checkpoint.pt"))
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert run(args) == 0
    assert os.stat(os.path.join(seed0, "metrics.json")).st_mtime_ns == done   # not rerun
    with open(os.path.join(seed1, "log.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps == [1, 2, 3, 4, 5]                         # every step once
    assert read(os.path.join(seed1, "metrics.json"))["steps"] == 5


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    args = ["random_walk", "--seeds", "0", "--set", *TINY, *EVAL]
    assert run([*args, "--out", str(tmp_path / "a")]) == 0
    real_step = Trainer.train_step

    def dying_step(self):
        if self.step == 4:
            raise KeyboardInterrupt("killed")
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run([*args, "--out", str(tmp_path / "b")])
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert run([*args, "--out", str(tmp_path / "b")]) == 0
    a = torch.load(runner.run_dir(str(tmp_path / "a"), "random_walk", "", 0) + "/checkpoint.pt",
                   weights_only=True)["model"]
    b = torch.load(runner.run_dir(str(tmp_path / "b"), "random_walk", "", 0) + "/checkpoint.pt",
                   weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_changed_settings_are_refused(tmp_path, capsys):
    args = ["random_walk", "--seeds", "0", "--out", str(tmp_path), *EVAL]
    assert run([*args, "--set", *TINY]) == 0
    assert run([*args, "--set", *TINY, "lr=0.01"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "lr: 0.001 there vs 0.01 now" in err


@pytest.mark.parametrize("args, match", [
    (["nonexistent"], "unknown experiment 'nonexistent'"),
    ([], "name an experiment"),
    (["random_walk", "--set", "num_slotz=3"], "unknown config key 'num_slotz'"),
    (["random_walk", "--set", "num_slots=x"], "bad value for num_slots"),
    (["random_walk", "--seeds", "a,b"], "--seeds"),
    (["module_count", "--variants", "num_modules=7"], "unknown variants"),
    (["random_walk", "--eval-seq-len", "1"], "--eval-seq-len"),
    (["random_walk", "--device", "nonsense"], "bad --device"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, match):
    out = tmp_path / "sweep"
    assert run([*args, "--out", str(out)]) == 2
    assert match in capsys.readouterr().err
    assert not out.exists()


def test_bf16_run_records_its_precision(tmp_path):
    assert run(["random_walk", "--seeds", "0", "--out", str(tmp_path), "--precision", "bf16",
                "--device", "cpu", "--set", *TINY, *EVAL]) == 0
    result = read(os.path.join(runner.run_dir(str(tmp_path), "random_walk", "", 0),
                               "metrics.json"))
    assert (result["precision"], result["compile"], result["device"]) == ("bf16", False, "cpu")
    assert 0 <= result["metrics"]["rule_module_accuracy"] <= 1


def test_list_and_keys(capsys):
    assert run(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in EXPERIMENTS) and "Fig. 3" in out
    assert run(["--keys"]) == 0
    assert "data.step" in capsys.readouterr().out.split()


def test_a_second_sweep_into_the_same_folder_is_refused(tmp_path, capsys):
    from pyro_vim.rundir import RunLock
    with RunLock(os.path.join(tmp_path, "random_walk")):     # a live sweep holds it
        assert run(["random_walk", "--seeds", "0", "--out", str(tmp_path), "--set", *TINY,
                    *EVAL]) == 2
    assert "in use by another process" in capsys.readouterr().err
    assert not os.path.exists(runner.run_dir(str(tmp_path), "random_walk", "", 0))


def test_reevaluate_rescores_without_training(tmp_path):
    args = ["random_walk", "--seeds", "0", "--out", str(tmp_path), "--set", *TINY, *EVAL]
    assert run(args) == 0
    folder = runner.run_dir(str(tmp_path), "random_walk", "", 0)
    first = read(os.path.join(folder, "metrics.json"))
    os.remove(os.path.join(folder, "before.json"))
    ckpt = os.stat(os.path.join(folder, "checkpoint.pt")).st_mtime_ns
    assert run([*args, "--reevaluate"]) == 0
    again = read(os.path.join(folder, "metrics.json"))
    assert os.stat(os.path.join(folder, "checkpoint.pt")).st_mtime_ns == ckpt   # not retrained
    assert again["steps"] == first["steps"] and "evaluated_commit" in again
    assert again["metrics"]["rule_module_accuracy"] == first["metrics"]["rule_module_accuracy"]
    assert again["before_learning"] == first["before_learning"]       # from pretrained.pt
    assert os.path.exists(os.path.join(folder, "before.json"))


def test_jobs_train_the_runs_a_single_process_trains(tmp_path, capsys):
    """--jobs 2: two child processes, one run each; each run's result is the one the same run
    gets in this process (same seed, same data, one thread)."""
    args = ["random_walk", "--seeds", "0,1", "--set", *TINY, *EVAL, "--threads", "1"]
    assert run([*args, "--out", str(tmp_path / "jobs"), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "job random_walk seed=0: 1 thread(s)" in out and "seed=1" in out
    torch.set_num_threads(1)
    assert run([*args[:2], "1", *args[3:], "--out", str(tmp_path / "one")]) == 0
    par = read(os.path.join(runner.run_dir(str(tmp_path / "jobs"), "random_walk", "", 1),
                            "metrics.json"))
    one = read(os.path.join(runner.run_dir(str(tmp_path / "one"), "random_walk", "", 1),
                            "metrics.json"))
    assert par["metrics"]["recon_mse"] == pytest.approx(one["metrics"]["recon_mse"], rel=1e-5)
    assert par["steps"] == one["steps"] == 5
    # a finished sweep run again with --jobs trains nothing and keeps the results
    before = os.stat(os.path.join(runner.run_dir(str(tmp_path / "jobs"), "random_walk", "", 0),
                                  "checkpoint.pt")).st_mtime_ns
    assert run([*args, "--out", str(tmp_path / "jobs"), "--jobs", "2"]) == 0
    assert os.stat(os.path.join(runner.run_dir(str(tmp_path / "jobs"), "random_walk", "", 0),
                                "checkpoint.pt")).st_mtime_ns == before


def test_jobs_refuse_changed_settings_and_a_live_sweep(tmp_path, capsys):
    from pyro_vim.rundir import RunLock
    args = ["random_walk", "--seeds", "0", "--out", str(tmp_path), "--jobs", "2", *EVAL]
    with RunLock(os.path.join(tmp_path, "random_walk")):
        assert run([*args, "--set", *TINY]) == 2
    assert "in use by another process" in capsys.readouterr().err
    folder = runner.run_dir(str(tmp_path), "random_walk", "", 0)
    os.makedirs(folder)
    config = get_experiment("random_walk").config("", 0, TINY)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config.replace(num_slots=config.num_slots + 1).to_dict(), f)
    assert run([*args, "--set", *TINY]) == 2
    assert "other settings" in capsys.readouterr().err
    assert os.listdir(folder) == ["config.json"]
    assert run([*args, "--set", *TINY, "--reevaluate"]) == 2


def test_killing_a_jobs_sweep_stops_its_children_and_it_resumes(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    out = str(tmp_path)
    args = [sys.executable, "-m", "pyro_vim.run", "random_walk", "--seeds", "0,1", "--out", out,
            "--jobs", "2", "--threads", "1", *EVAL, "--set",
            *[a for a in TINY if not a.startswith("steps=")], "steps=120"]
    output = tmp_path / "sweep.txt"
    with open(output, "w") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT)
    log = os.path.join(runner.run_dir(out, "random_walk", "", 1), "log.jsonl")
    deadline = time.time() + 120
    while not os.path.exists(log) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert os.path.exists(log), output.read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0

    def children():
        found = []
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().decode(errors="replace")
            except OSError:
                continue
            if "--as-job" in cmd and out in cmd:
                found.append(pid)
        return found
    assert children() == []
    assert not os.path.exists(os.path.join(runner.run_dir(out, "random_walk", "", 1),
                                           "metrics.json"))
    # the same command again finishes both runs (a started run resumes from its checkpoint)
    assert subprocess.run(args, capture_output=True, timeout=300).returncode == 0
    for seed in (0, 1):
        result = read(os.path.join(runner.run_dir(out, "random_walk", "", seed), "metrics.json"))
        assert result["steps"] == 122
