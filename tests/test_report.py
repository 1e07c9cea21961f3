"""pyro_vim.report: mean ± std over the seeds of a sweep, Markdown / JSON / figures, CLI."""
import json
import math
import os
import re

import numpy as np
import pytest

from pyro_vim import report
from pyro_vim.report.alignment import _module_order
from pyro_vim.report.statistics import _array_stats

RULES = ["up", "down", "left", "right"]
ACC_2 = [0.9, 1.0, 0.95]        # num_modules=2, seeds 0, 1, 2
ACC_10 = [0.5, 0.7]             # num_modules=10, seeds 0, 1


def confusion(seed, modules=4):
    conf = np.zeros((4, modules))
    for r in range(4):
        conf[r, r % modules] = 10 - seed
        conf[r, (r + 1) % modules] += seed
    return conf


def metrics_block(seed, acc, modules=4, **changes):
    block = {"rule_module_accuracy": acc, "nmi": 0.8 + 0.05 * seed, "recon_mse": 140.0 + seed,
             "kl_z": 3.0, "kl_r": 0.4, "position_error": 0.2, "module_step_error_max": 0.3,
             "module_step_error": {"up": 0.1 * seed, "down": 0.2, "left": 0.3, "right": 0.05},
             "module_usage": [1.0 / modules] * modules,
             "confusion": confusion(seed, modules).tolist(), "rules": RULES,
             "note": "a string, ignored"}
    block.update(changes)
    return block


def write_run(folder, experiment, variant, seed, acc, modules=4, before=True, **changes):
    os.makedirs(folder, exist_ok=True)
    data = {"experiment": experiment, "variant": variant, "seed": seed, "steps": 1200,
            "train_seconds": 500.0 + 10 * seed, "commit": "abc1234", "machine": "x86_64, 2 cores",
            "metrics": metrics_block(seed, acc, modules, **changes),
            "before_learning": metrics_block(seed, 0.25, modules) if before else None}
    with open(os.path.join(folder, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(data, f)
    return data


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    exp = root / "module_count"
    for seed, acc in enumerate(ACC_2):
        # seed 1 reports no NMI (null): skipped, not counted.
        extra = {"nmi": None} if seed == 1 else {}
        write_run(exp / "num_modules=2" / f"seed={seed}", "module_count", "num_modules=2", seed,
                  acc, **extra)
    for seed, acc in enumerate(ACC_10):
        write_run(exp / "num_modules=10" / f"seed={seed}", "module_count", "num_modules=10",
                  seed, acc, modules=10, before=False)
    unfinished = exp / "num_modules=10" / "seed=2"
    unfinished.mkdir()
    (unfinished / "config.json").write_text("{}")
    write_run(root / "random_walk" / "seed=0", "random_walk", "", 0, 0.99, before=False)
    return root


def test_aggregate_means_stds_and_order(sweep):
    rep = report.aggregate(sweep)
    assert rep["root"] == str(sweep)
    assert list(rep["experiments"]) == ["module_count", "random_walk"]
    groups = rep["experiments"]["module_count"]
    assert list(groups) == ["num_modules=2", "num_modules=10"]     # natural order

    two = groups["num_modules=2"]
    assert two["n"] == 3 and two["seeds"] == [0, 1, 2] and two["incomplete"] == []
    acc = two["metrics"]["rule_module_accuracy"]
    assert acc["n"] == 3 and acc["values"] == ACC_2
    assert acc["mean"] == pytest.approx(np.mean(ACC_2))
    assert acc["std"] == pytest.approx(np.std(ACC_2, ddof=1))
    nmi = two["metrics"]["nmi"]                                     # None skipped
    assert nmi["n"] == 2 and nmi["values"] == pytest.approx([0.8, 0.9])
    assert nmi["std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    up = two["metrics"]["module_step_error.up"]                     # dict entries
    assert up["mean"] == pytest.approx(0.1) and up["n"] == 3
    assert two["metrics"]["rules"] == RULES
    assert "note" not in two["metrics"]
    conf = two["metrics"]["confusion"]                              # element-wise
    stack = np.stack([confusion(s) for s in range(3)])
    assert conf["n"] == 3
    np.testing.assert_allclose(conf["mean"], stack.mean(0))
    np.testing.assert_allclose(conf["std"], stack.std(0, ddof=1))
    np.testing.assert_allclose(two["metrics"]["module_usage"]["mean"], [0.25] * 4)
    assert two["train_seconds"]["mean"] == pytest.approx(510.0)
    assert two["steps"] == {"mean": 1200.0, "std": 0.0, "n": 3, "values": [1200.0] * 3}
    assert two["before_learning"]["rule_module_accuracy"]["mean"] == pytest.approx(0.25)

    ten = groups["num_modules=10"]
    assert ten["n"] == 2 and ten["seeds"] == [0, 1]
    assert ten["incomplete"] == ["module_count/num_modules=10/seed=2"]
    assert ten["metrics"]["rule_module_accuracy"]["mean"] == pytest.approx(0.6)
    assert ten["metrics"]["rule_module_accuracy"]["std"] == pytest.approx(
        np.std(ACC_10, ddof=1))
    assert np.array(ten["metrics"]["confusion"]["mean"]).shape == (4, 10)
    assert ten["before_learning"] == {}

    walk = rep["experiments"]["random_walk"]                        # no variants
    assert list(walk) == [""]
    assert walk[""]["n"] == 1 and walk[""]["seeds"] == [0]
    assert walk[""]["metrics"]["rule_module_accuracy"] == {
        "mean": 0.99, "std": 0.0, "n": 1, "values": [0.99]}


def test_write_report_files(sweep, tmp_path):
    out = tmp_path / "out"
    rep = report.write_report(sweep, out)
    assert sorted(os.listdir(out)) == sorted([
        "report.json", "report.md", "module_count_scalars.png", "module_count_usage.png",
        "random_walk_scalars.png", "random_walk_usage.png"])
    for name in os.listdir(out):
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def no_nan(value):
        raise AssertionError(f"non-strict JSON constant {value}")

    with open(out / "report.json", encoding="utf-8") as f:
        loaded = json.load(f, parse_constant=no_nan)
    assert loaded == json.loads(json.dumps(rep))

    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## module_count" in md and "## random_walk" in md
    assert md.index("| num_modules=2 |") < md.index("| num_modules=10 |")
    assert "| num_modules=2 | 0, 1, 2 | 0.950 ± 0.050 |" in md
    assert "| num_modules=10 | 0, 1 | 0.600 ± 0.141 |" in md
    assert "| — | 0 | 0.990 ± 0.000 |" in md
    assert "0.850 ± 0.071 (n=2)" in md                              # NMI, one seed null
    assert "141.0 ± 1.0" in md                                      # >= 100: one decimal
    assert "module_step_error.up" in md and "module_usage" not in md
    assert "`module_count/num_modules=10/seed=2`" in md
    assert "Before learning" in md and "0.250 ± 0.000" in md
    assert "![module_count: module_count_usage.png](module_count_usage.png)" in md
    # the experiment section's column order: the headline metrics first
    header = next(line for line in md.splitlines() if line.startswith("| variant | seeds |"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols[2:9] == ["rule_module_accuracy", "nmi", "module_step_error_max",
                         "position_error", "recon_mse", "kl_z", "kl_r"]
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


def test_default_out_is_dir_and_single_experiment_folder(sweep):
    exp = sweep / "module_count"
    rep = report.write_report(exp)
    assert list(rep["experiments"]) == ["module_count"]
    assert list(rep["experiments"]["module_count"]) == ["num_modules=2", "num_modules=10"]
    assert rep["experiments"]["module_count"]["num_modules=10"]["incomplete"] == [
        "num_modules=10/seed=2"]
    assert (exp / "report.md").is_file() and (exp / "module_count_scalars.png").is_file()

    walk = report.aggregate(sweep / "random_walk")                  # DIR/seed=0/metrics.json
    assert list(walk["experiments"]) == ["random_walk"]
    assert list(walk["experiments"]["random_walk"]) == [""]
    # a variant's folder: the runner's names in metrics.json give experiment and variant
    one = report.aggregate(exp / "num_modules=2")
    assert one["experiments"]["module_count"]["num_modules=2"]["n"] == 3


def test_run_folder_without_seed_prefix_and_missing_values(tmp_path):
    root = tmp_path / "sweep"
    write_run(root / "ablation" / "no_kl", "ablation", "no_kl", 7, 0.8,
              recon_mse=float("nan"), kl_r=None, module_step_error={"up": None, "down": 0.2})
    write_run(root / "ablation" / "full" / "seed=0", "ablation", "full", 0, 0.9,
              confusion=[[1, 2], [3, 4]])
    write_run(root / "ablation" / "full" / "seed=1", "ablation", "full", 1, 1.0,
              confusion=[[1, 2, 3], [4, 5, 6]])
    rep = report.aggregate(root)
    groups = rep["experiments"]["ablation"]
    assert list(groups) == ["full", "no_kl"]
    no_kl = groups["no_kl"]["metrics"]
    assert groups["no_kl"]["seeds"] == [7]
    assert no_kl["recon_mse"] == {"mean": None, "std": None, "n": 0, "values": []}
    assert no_kl["kl_r"]["n"] == 0 and no_kl["module_step_error.up"]["n"] == 0
    assert no_kl["module_step_error.down"]["mean"] == pytest.approx(0.2)
    conf = groups["full"]["metrics"]["confusion"]                   # shapes differ
    assert conf["mean"] is None and conf["n"] == 2 and "shapes" in conf["note"]
    md = report.render_markdown(rep)
    assert "| no_kl | 7 |" in md and "| full | 0, 1 | 0.950 ± 0.071 |" in md


def test_elementwise_stats_skip_nulls():
    stats = _array_stats([np.array([1.0, np.nan]), np.array([3.0, 2.0]),
                                 np.array([5.0, np.inf])])
    assert stats["n"] == 3
    assert stats["mean"] == [3.0, 2.0] and stats["std"] == [2.0, 0.0]
    stats = _array_stats([np.array([np.nan]), np.array([np.nan])])
    assert stats["mean"] == [None] and stats["std"] == [None]


def test_bad_json_names_file(tmp_path):
    run = tmp_path / "exp" / "seed=0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="metrics.json"):
        report.aggregate(tmp_path)
    assert report.main([str(tmp_path)]) == 2
    assert sorted(os.listdir(tmp_path)) == ["exp"]


def test_library_errors_name_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        report.aggregate(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="file"):
        report.aggregate(tmp_path / "file")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path))):
        report.write_report(tmp_path)


@pytest.mark.parametrize("case", ["missing", "empty", "only_unfinished"])
def test_cli_errors(tmp_path, capsys, case):
    target = tmp_path / "sweep"
    if case != "missing":
        target.mkdir()
    if case == "only_unfinished":
        (target / "exp" / "seed=0").mkdir(parents=True)
    out = tmp_path / "out"
    assert report.main([str(target), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and str(target) in captured.err
    assert captured.out == ""
    assert not out.exists()
    if case != "missing":
        assert "report.md" not in os.listdir(target)


def test_cli_prints_markdown_and_paths(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    assert report.main([str(sweep), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| num_modules=2 | 0, 1, 2 | 0.950 ± 0.050 |" in printed
    assert f"wrote {out / 'report.json'}" in printed
    assert f"wrote {out / 'module_count_usage.png'}" in printed
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert math.isclose(
        data["experiments"]["module_count"]["num_modules=2"]["metrics"]["rule_module_accuracy"]
        ["mean"], 0.95)


def test_modules_are_aligned_to_rules_before_averaging(tmp_path):
    """Module indices are arbitrary per seed: the aggregate puts each run's modules in the order
    of its rule -> module assignment before averaging (confusion, usage, translations)."""
    base = np.diag([10.0, 8.0, 9.0, 7.0])
    base = np.concatenate([base, np.zeros((4, 1))], 1)           # a spare fifth module
    base[0, 4] = 1.0
    moves = [[0.0, -3.0], [0.0, 3.0], [-3.0, 0.0], [3.0, 0.0], [0.0, 0.0]]
    usage = list(base.sum(0) / base.sum())
    root = tmp_path / "sweep"
    for seed, perm in enumerate([[0, 1, 2, 3, 4], [3, 4, 0, 2, 1]]):
        inverse = np.argsort(perm)                                # module j of this run = perm[j]
        write_run(root / "vim2" / f"seed={seed}", "vim2", "", seed, 1.0, modules=5,
                  confusion=base[:, inverse].tolist(),
                  module_usage=[usage[i] for i in inverse],
                  module_translation_px=[moves[i] for i in inverse])
    metrics = report.aggregate(root)["experiments"]["vim2"][""]["metrics"]
    np.testing.assert_allclose(metrics["confusion"]["mean"], base)
    np.testing.assert_allclose(metrics["confusion"]["std"], np.zeros_like(base))
    np.testing.assert_allclose(metrics["module_usage"]["mean"], usage)
    np.testing.assert_allclose(metrics["module_translation_px"]["mean"], moves)
    # fewer modules than rules: each module goes to its best rule, in rule order
    assert _module_order(np.array([[0.0, 5.0], [1.0, 0.0], [4.0, 0.0], [0.0, 0.0]])) \
        == [1, 0]
    assert _module_order(np.array([[np.nan, 1.0]])) is None
