"""REPRODUCTION.md from run folders (``python -m pyro_vim.report DIR --reproduction``): the
commit once, mean ± std, goals met or not with k of n seeds, "not run" rows, atomic writes."""
import json
import os

import numpy as np
import pytest

from pyro_vim import report
from pyro_vim.experiments import EXPERIMENTS
from pyro_vim.report import reproduction
from pyro_vim.report.paper_results import RESULTS, Goal, PaperResult

ACC = [0.995, 0.96, 0.999]          # random_walk seeds 0, 1, 2: mean below 0.99, seed 1 < 0.97
TRANSFER = [0.5, 0.6, 1.5]          # mean <= 1 px, seed 2 above
STEP = [0.05, 0.1, 0.2]             # every seed within 0.3 px
MED = [0.1, 0.1, 6.0]               # against G-SWM's 5.0 on every seed


def write_run(root, experiment, variant, seed, metrics, before=None, commit="abc1234",
              machine="x86_64, 2 cores, no GPU", **top):
    folder = os.path.join(root, experiment, *([variant] if variant else []), f"seed={seed}")
    os.makedirs(folder, exist_ok=True)
    data = {"experiment": experiment, "variant": variant, "seed": seed, "steps": 10,
            "train_seconds": 600.0 + 60 * seed, "train_minutes": 10.0 + seed,
            "commit": commit, "machine": machine, "torch": "2.13.0+cpu", "threads": 1,
            "metrics": metrics, "before_learning": before}
    data.update(top)
    with open(os.path.join(folder, "metrics.json"), "w") as f:
        json.dump(data, f)
    return folder


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    for seed in range(3):
        write_run(root, "random_walk", "", seed,
                  {"rule_module_accuracy": ACC[seed], "module_step_error_max": STEP[seed],
                   "transfer_error_mean": TRANSFER[seed],
                   "compositional_med_single": MED[seed]},
                  before={"rule_module_accuracy": 0.25 + 0.1 * seed})
        write_run(root, "gswm", "", seed, {"compositional_med_single": 5.0})
    return root


def rows(text):
    """{first cell: cells} of the results table."""
    out = {}
    for line in text.splitlines():
        if line.startswith("| ") and " — " in line.split(" | ")[0]:
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            out[cells[0]] = cells
    return out


def row(text, what, variant_label=None):
    found = [cells for first, cells in rows(text).items() if what in first]
    if variant_label is not None:
        found = [c for c in found if variant_label in c[2] or variant_label in c[7]]
    assert len(found) == 1, (what, found)
    return found[0]


def test_the_commit_and_machine_appear_once(runs):
    text = reproduction.render_reproduction(runs, runs)
    assert text.count("abc1234") == 1 and "**Commit** `abc1234` (all 6 runs)" in text
    assert text.count("x86_64, 2 cores, no GPU") == 1
    assert "6 complete runs, 0 incomplete" in text


def test_mean_std_before_learning_and_goals(runs):
    text = reproduction.render_reproduction(runs, runs)
    acc = row(text, "rule–module accuracy, M = 4")
    mean, std = np.mean(ACC), np.std(ACC, ddof=1)
    assert acc[2] == f"{mean:.3f} ± {std:.3f}"
    before = [0.25, 0.35, 0.45]
    assert acc[3] == f"{np.mean(before):.3f} ± {np.std(before, ddof=1):.3f}"
    assert acc[4] == "mean ≥ 0.99, each seed ≥ 0.97"
    assert acc[5] == f"not met (the mean, {mean:.4f}; 2 of 3 seeds)" and acc[6] == "0, 1, 2"
    # three of the experiment's five seeds: the command names them
    assert acc[7] == f"`python -m pyro_vim.run random_walk --out {runs} --seeds 0,1,2`"
    transfer = row(text, "transferred position error")
    assert transfer[2] == f"{np.mean(TRANSFER):.2f} ± {np.std(TRANSFER, ddof=1):.2f} px"
    assert transfer[5] == "met by the mean; 2 of 3 seeds"
    step = row(text, "Fig. 2 right — module step error")
    assert step[5] == "**met**" and step[3] == "—"            # no before-learning value
    # a comparison with other runs: the mean against G-SWM's mean, each seed against its seed
    med = row(text, "MED on compositions, VIM (one")
    assert med[4].startswith("< gswm's 5.00") and med[5] == "met by the mean; 2 of 3 seeds"
    assert "docs/baselines.md" in med[0] and "docs/identification.md" in acc[0]


def test_every_result_has_a_line_and_missing_runs_say_not_run(runs, tmp_path):
    text = reproduction.render_reproduction(runs, runs)
    assert len(rows(text)) == len(RESULTS)
    m5 = row(text, "M = 5: spare module")
    assert m5[2] == "not run (module_count/num_modules=5)" and m5[5] == "not run"
    assert m5[7] == f"`python -m pyro_vim.run module_count --out {runs} --variants " \
                    "num_modules=5`"
    vim = row(text, "VIM to its plateau: reconstruction MSE (inference")
    assert "table1/rim@converged's (not run)" in vim[4]
    # a comparison whose reference is missing is not judged
    for seed in range(3):
        os.remove(os.path.join(runs, "gswm", f"seed={seed}", "metrics.json"))
    text = reproduction.render_reproduction(runs, runs)
    assert row(text, "MED on compositions, VIM (one")[5] == "not judged: gswm not run"


def test_runs_from_two_commits_are_listed_and_marked(runs):
    # an older record: torch and threads in the machine string, no train_minutes
    write_run(runs, "random_walk", "", 2, {"rule_module_accuracy": 0.99}, commit="def5678",
              machine="x86_64, 16 cores, no GPU, torch 2.13.0+cpu, 16 threads", torch=None,
              threads=None, train_minutes=None, train_seconds=1800.0)
    text = reproduction.render_reproduction(runs, runs)
    assert "**Commits: the runs come from 2 commits**" in text
    assert "`abc1234`: 5 run(s) (gswm, random_walk)" in text
    assert "`def5678`: 1 run(s) (random_walk)" in text
    assert "**Machines: the runs come from 2 machines**" in text
    acc = row(text, "rule–module accuracy, M = 4")
    assert acc[2].endswith("[at `abc1234` (seeds 0, 1), `def5678` (seed 2)]")
    assert "[at" not in row(text, "G-SWM (single step)")[2]
    # a metric only some runs record: counted, and the row names its seeds
    step = row(text, "Fig. 2 right — module step error")
    assert "(2 of 3 runs record it)" in step[2] and step[6] == "0, 1"
    assert "threads a run: 1 (5 runs), 16 (1 runs)" in text    # from the old string
    minutes = [10.0, 11.0, 30.0]                     # train_seconds / 60 for the old record
    assert (f"| random_walk | — | 0, 1, 2 | 0 | {np.mean(minutes):.1f} ± "
            f"{np.std(minutes, ddof=1):.1f} (10.0–30.0) | 1, 16 |") in text


def test_derived_spare_module_usage_follows_the_rule_assignment(tmp_path):
    root = tmp_path / "runs"
    usage = [0.03, 0.25, 0.24, 0.24, 0.24]           # module 0 is the spare one
    confusion = [[0, 10, 0, 0, 0], [0, 0, 10, 0, 0], [0, 0, 0, 10, 0], [1, 0, 0, 0, 10]]
    write_run(root, "module_count", "num_modules=5", 0,
              {"module_usage": usage, "confusion": confusion})
    text = reproduction.render_reproduction(root, root)
    m5 = row(text, "M = 5: spare module")
    assert m5[2].startswith("0.030") and m5[5] == "not met (the mean, 0.0300; 0 of 1 seeds)"
    assert "--seeds 0" in m5[7]                      # not the experiment's seeds 0, 1, 2


def test_settings_other_than_the_experiments_become_set(tmp_path):
    root = tmp_path / "runs"
    folder = write_run(root, "glyphs", "", 0, {"rule_module_accuracy": 1.0})
    config = EXPERIMENTS["glyphs"].config("", 0, ["steps=3", "data.step=4"])
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config.to_dict(), f)
    cmd = row(reproduction.render_reproduction(root, root), "glyphs: rule–module")[7]
    assert "--seeds 0" in cmd and "--set" in cmd
    assert "steps=3" in cmd and "data.step=4" in cmd


def test_goals_are_checked_when_defined():
    with pytest.raises(ValueError, match="comparison"):
        Goal("=>", 1.0)
    with pytest.raises(ValueError, match="exactly one"):
        Goal(">=", 1.0, than=(("a", "", "m"),))
    r = PaperResult("Fig. 0", "x", "claim", "random_walk", "", "m", "identification",
                    Goal("<=", 1.0))
    verdict = reproduction.judge(r.goal, r, {0: 0.5, 1: 2.0}, {})
    assert verdict.met == "not met (the mean, 1.2500; 1 of 2 seeds)"


def test_a_goal_can_ask_for_a_fraction_of_another_runs_number(tmp_path):
    ref = reproduction.Group("b", "", [reproduction.Run(0, tmp_path, {"metrics": {"m": 10.0}}),
                                       reproduction.Run(1, tmp_path, {"metrics": {"m": 4.0}})])
    r = PaperResult("beyond", "x", "claim", "a", "", "m", "interactions",
                    Goal("<=", factor=0.5, than=(("b", "", "m"),)))
    verdict = reproduction.judge(r.goal, r, {0: 4.0, 1: 3.0}, {("b", ""): ref})
    assert "0.5 × " in verdict.goal
    assert verdict.met == "met by the mean; 1 of 2 seeds"      # 3.5 <= 3.5; 3 > 2


def test_results_link_existing_topics_and_name_known_runs():
    from pyro_vim.report.paper_results import DOCS_TOPICS
    for r in RESULTS:
        assert r.docs in DOCS_TOPICS and r.experiment in EXPERIMENTS
        assert r.variant in EXPERIMENTS[r.experiment].variants, r
        for exp, var, _ in (r.goal.than if r.goal else ()):
            assert var in EXPERIMENTS[exp].variants


def test_cli_writes_beside_the_runs_or_to_a_path_atomically(runs, tmp_path, capsys,
                                                             monkeypatch):
    assert report.main([str(runs), "--reproduction"]) == 0
    beside = runs / "REPRODUCTION.md"
    assert beside.is_file() and (runs / "report.md").is_file()
    assert f"wrote {beside}" in capsys.readouterr().out
    target = tmp_path / "doc" / "REPRODUCTION.md"
    assert report.main([str(runs), "--reproduction", str(target)]) == 2     # no such folder
    assert "does not exist" in capsys.readouterr().err and not target.parent.exists()
    os.makedirs(target.parent)
    target.write_text("old\n")
    assert report.main([str(runs), "--reproduction", str(target)]) == 0
    assert "docs/identification.md" in target.read_text()

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    target.write_text("old\n")
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        reproduction.write_reproduction(runs, target)
    assert target.read_text() == "old\n"                      # the old file, whole
    assert sorted(os.listdir(target.parent)) == ["REPRODUCTION.md"]   # no temporary left


def test_runs_of_no_experiment_are_listed_not_used(runs):
    write_run(runs, "scratch", "", 0, {"rule_module_accuracy": 0.1}, commit="fff0000")
    text = reproduction.render_reproduction(runs, runs)
    assert "`scratch` (1 run(s))" in text and "fff0000" not in text
