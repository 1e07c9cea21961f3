"""``python -m pyro_vim.run paper``: every experiment into one folder, resumable, one commit;
``--plan`` and its estimates; what each run's metrics.json records about where it was made."""
import dataclasses
import json
import os

import pytest

from pyro_vim import report
from pyro_vim import run as runner
from pyro_vim.experiments import EXPERIMENTS
from pyro_vim.run import paper, plan
from pyro_vim.run.provenance import _commit, split_machine

from .test_run import EVAL, TINY, read


@pytest.fixture
def two_experiments(monkeypatch):
    """The paper sweep cut to glyphs (seed 0) and two variants of module_count: 3 tiny runs."""
    count = EXPERIMENTS["module_count"]
    small = dataclasses.replace(count, variants={k: count.variants[k] for k in
                                                 ("num_modules=1", "num_modules=2")})
    monkeypatch.setattr(paper, "EXPERIMENTS", {"glyphs": EXPERIMENTS["glyphs"],
                                               "module_count": small})
    return ["paper", "--seeds", "0", "--set", *TINY, *EVAL]


def _runs(out):
    return [runner.run_dir(str(out), "module_count", "num_modules=1", 0),
            runner.run_dir(str(out), "module_count", "num_modules=2", 0),
            runner.run_dir(str(out), "glyphs", "", 0)]


def test_the_paper_order_holds_every_experiment():
    names = [e.name for e in paper.paper_experiments()]
    assert sorted(names) == sorted(EXPERIMENTS) and len(set(names)) == len(names)
    assert names[0] == "random_walk" and names.index("gswm") > names.index("module_count")


def test_paper_runs_every_experiment_once_records_provenance_and_resumes(
        tmp_path, two_experiments, capsys):
    out = tmp_path / "runs"
    assert runner.main([*two_experiments, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "paper 1/2: module_count" in printed and "paper 2/2: glyphs" in printed
    for folder in _runs(out):
        result = read(os.path.join(folder, "metrics.json"))
        assert result["commit"] == _commit() and result["commit"] != ""
        assert isinstance(result["commit_dirty"], (bool, type(None)))
        assert "cores" in result["machine"] and "torch" not in result["machine"]
        assert result["torch"] and result["threads"] >= 1 and result["python"].count(".") == 2
        assert result["train_minutes"] == pytest.approx(result["train_seconds"] / 60, abs=0.01)
    # the reproduction report of these tiny real runs: one commit, the runs' rows filled
    assert report.main([str(out), "--reproduction"]) == 0
    text = (out / "REPRODUCTION.md").read_text()
    assert f"**Commit** `{_commit()}` (all 3 runs)" in text and text.count(_commit()) == 1
    glyphs = [line for line in text.splitlines() if "glyphs: rule–module accuracy" in line]
    assert len(glyphs) == 1 and "not run" not in glyphs[0] and "--set" in glyphs[0]
    assert "not run (random_walk)" in text
    stamps = [os.stat(os.path.join(f, "metrics.json")).st_mtime_ns for f in _runs(out)]
    assert runner.main([*two_experiments, "--out", str(out)]) == 0       # complete: skipped
    assert "done" in capsys.readouterr().out
    assert [os.stat(os.path.join(f, "metrics.json")).st_mtime_ns for f in _runs(out)] == stamps


def test_paper_refuses_complete_runs_of_another_commit(tmp_path, two_experiments, capsys):
    out = tmp_path / "runs"
    assert runner.main([*two_experiments, "--out", str(out)]) == 0
    old = os.path.join(_runs(out)[2], "metrics.json")
    result = read(old)
    result["commit"] = "0ld0ld0"
    with open(old, "w") as f:
        json.dump(result, f)
    capsys.readouterr()
    assert runner.main([*two_experiments, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "0ld0ld0: 1 run(s)" in err and _commit() in err
    assert "new --out folder" in err and "--allow-mixed-commits" in err
    assert runner.main([*two_experiments, "--out", str(out), "--plan"]) == 0
    assert "Complete runs of other commits (0ld0ld0" in capsys.readouterr().out
    assert runner.main([*two_experiments, "--out", str(out), "--allow-mixed-commits"]) == 0
    assert read(old)["commit"] == "0ld0ld0"                 # kept, not retrained


def test_plan_states_and_estimates_without_running(tmp_path, two_experiments, capsys):
    out = tmp_path / "runs"
    assert runner.main([*two_experiments, "--out", str(out), "--plan"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()                                  # nothing written
    assert text.count(" start ") == 3 and "unknown" in text and "3 to start" in text
    # one complete run of glyphs: its minutes estimate the other glyphs seeds; a budget
    # estimates a run whatever is recorded
    assert runner.main(["glyphs", "--seeds", "0", "--out", str(out), "--set", *TINY,
                        *EVAL]) == 0
    minutes = read(os.path.join(_runs(out)[2], "metrics.json"))["train_minutes"]
    runs = plan.plan_runs([EXPERIMENTS["glyphs"]], str(out), [0, 1], TINY)
    assert [(r.seed, r.state) for r in runs] == [(0, "done"), (1, "start")]
    assert runs[0].recorded_minutes == pytest.approx(minutes)
    assert runs[1].minutes == pytest.approx(minutes) and "mean of 1 complete run" in \
        runs[1].basis
    other = plan.plan_runs([EXPERIMENTS["glyphs"]], str(out), [1], [*TINY, "lr=0.01"])
    assert other[0].minutes is None and other[0].basis.startswith("unknown")   # other settings
    budget = plan.plan_runs([EXPERIMENTS["glyphs"]], str(out), [1],
                            [*TINY, "time_budget_s=120"])
    assert budget[0].minutes == pytest.approx(2.0) and "time_budget_s" in budget[0].basis
    lines = plan.render_plan(runs + other, jobs=2)
    assert any("1 run(s) unknown" in line for line in lines)
    assert any(f"{minutes / 2:.0f} minutes of wall clock with --jobs 2" in line
               for line in lines)


def test_paper_with_jobs_trains_in_child_processes(tmp_path, two_experiments, capsys):
    out = tmp_path / "runs"
    assert runner.main([*two_experiments, "--out", str(out), "--jobs", "2", "--threads",
                        "1"]) == 0
    assert "job num_modules=2 seed=0: 1 thread(s)" in capsys.readouterr().out
    for folder in _runs(out):
        assert read(os.path.join(folder, "metrics.json"))["threads"] == 1


@pytest.mark.parametrize("args, match", [
    (["paper", "--variants", "default"], "--variants selects one experiment's variants"),
    (["random_walk", "--allow-mixed-commits"], "--allow-mixed-commits goes with paper"),
    (["paper", "--set", "num_slotz=3"], "unknown config key 'num_slotz'"),
    ([], "'paper' for all of them"),
])
def test_bad_paper_input_exits_2_and_writes_nothing(tmp_path, capsys, args, match):
    out = tmp_path / "sweep"
    assert runner.main([*args, "--out", str(out)]) == 2
    assert match in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("result, expected", [
    ({"machine": "x86_64, 2 cores, no GPU, torch 2.13.0+cpu, 1 threads"},
     ("x86_64, 2 cores, no GPU", "2.13.0+cpu", 1)),
    ({"machine": "x86_64, 2 cores, no GPU", "torch": "2.13.0+cpu", "threads": 2},
     ("x86_64, 2 cores, no GPU", "2.13.0+cpu", 2)),
    ({}, (None, None, None)),
])
def test_split_machine_reads_old_and_new_records(result, expected):
    assert split_machine(result) == expected
