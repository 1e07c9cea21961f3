"""The evaluation CLI ``python -m pyro_vim.evaluate`` and its library functions."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_vim import VIM, VIMConfig
from pyro_vim.data import RandomWalk, save_npz
from pyro_vim.evaluate import (
    DEFAULT_SEED_OFFSET,
    default_seed,
    evaluate_batch,
    identification,
    main,
)

REPO = Path(__file__).resolve().parent.parent
S, K, M = 16, 4, 4
FIGURES = ["confusion.png", "module_rollouts.png", "reconstruction.png", "sequence.gif"]


def tiny_config(**kw):
    base = dict(image_size=S, slot_dim=8, encoder_channels=8, decoder_channels=8,
                module_hidden=16, update_hidden=16, keyquery_dim=8, num_slots=K,
                num_modules=M, num_objects=3, seed=5)
    base.update(kw)
    return VIMConfig(**base)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    VIM(tiny_config()).save(str(path))
    return path


def run(checkpoint, out, *extra):
    return main([str(checkpoint), "--out", str(out), "--num-sequences", "3", "--seq-len", "5",
                 *extra])


def read_metrics(out):
    with open(out / "metrics.json", encoding="utf-8") as f:
        return json.load(f)


def is_number(x):
    return isinstance(x, float) and np.isfinite(x)


def check_common_metrics(m, seq_len=5):
    assert m["num_sequences"] == 3 and m["seq_len"] == seq_len
    assert m["seed"] == DEFAULT_SEED_OFFSET + 5
    assert m["checkpoint"].endswith("tiny.pt")
    assert len(m["module_usage"]) == M
    assert sum(m["module_usage"]) == pytest.approx(1.0)
    rec = m["recon_mse"]
    assert len(rec["per_frame"]) == seq_len and len(rec["per_pixel_per_frame"]) == seq_len
    assert is_number(rec["mean"]) and rec["mean"] > 0
    assert rec["per_pixel"] == pytest.approx(rec["mean"] / (3 * S * S))
    assert rec["mean"] == pytest.approx(np.mean(rec["per_frame"]))
    pos = m["position_error"]
    assert len(pos["per_frame"]) == seq_len and is_number(pos["mean"])
    assert all(0 <= v <= S * np.sqrt(2) for v in pos["per_frame"])
    for key in ("ari", "fg_ari"):
        assert is_number(m[key]) and -1 <= m[key] <= 1


def test_cli_with_predictions(checkpoint, tmp_path):
    out = tmp_path / "eval"
    assert run(checkpoint, out, "--predict", "--num-samples", "3", "--context", "2",
               "--horizon", "3") == 0
    for name in FIGURES + ["predictions.png", "metrics.json"]:
        assert (out / name).stat().st_size > 0, name
    assert sorted(os.listdir(out)) == sorted(FIGURES + ["predictions.png", "metrics.json"])
    m = read_metrics(out)
    check_common_metrics(m)
    assert m["dataset"] == "random_walk"
    assert is_number(m["rule_module_accuracy"]) and 0 <= m["rule_module_accuracy"] <= 1
    confusion = np.array(m["confusion"])
    assert confusion.shape == (4, M)
    assert confusion.sum() == 3 * 4 * 3                     # N * (T-1) * O scored steps
    assert set(m["assignment"]) == {"up", "down", "left", "right"}
    assert len(set(m["assignment"].values())) == 4
    assert is_number(m["nmi"])
    assert m["rules"] == ["up", "down", "left", "right"]
    p = m["prediction"]
    assert (p["context"], p["horizon"], p["num_samples"]) == (2, 3, 3)
    for block in ("mse", "position_error"):
        for key in ("per_step_mean", "per_step_best"):
            assert len(p[block][key]) == 3
        assert p[block]["best"] <= p[block]["mean"] + 1e-9
    assert len(p["mse_per_pixel"]["per_step_mean"]) == 3
    assert 0 < p["selection_diversity"] <= 1                 # untrained: samples differ


def test_cli_without_predictions(checkpoint, tmp_path, capsys):
    out = tmp_path / "eval"
    assert run(checkpoint, out, "--seed", "123") == 0
    assert sorted(os.listdir(out)) == sorted(FIGURES + ["metrics.json"])
    m = read_metrics(out)
    assert "prediction" not in m and m["seed"] == 123
    assert "metrics.json" in capsys.readouterr().out
    # the same seed gives the same numbers
    out2 = tmp_path / "again"
    assert run(checkpoint, out2, "--seed", "123") == 0
    assert read_metrics(out2)["recon_mse"] == m["recon_mse"]
    # fidelity: what the modules do
    assert set(m["module_step_error"]) <= {"up", "down", "left", "right"}
    assert m["module_step_error_max"] == max(m["module_step_error"].values())
    assert len(m["rollout_error"]["per_step"]) == 4 and is_number(m["rollout_error_mean"])
    calib = m["prior_calibration"]
    assert calib["away_count"] + calib["at_walls_count"] == 3 * 3 * 32     # N x O x samples
    assert m["prior_max_deviation"] == calib["max_deviation"]


def test_cli_compositional(checkpoint, tmp_path):
    out = tmp_path / "eval"
    assert run(checkpoint, out, "--dataset", "compositional", "--seq-len", "4") == 0
    m = read_metrics(out)
    check_common_metrics(m, seq_len=4)
    assert m["dataset"] == "compositional"
    for key in ("rule_module_accuracy", "confusion", "nmi", "assignment"):
        assert m[key] is None
    assert "rollout_error" not in m and "module_step_error" not in m
    assert "note" in m and "moves" in m["note"]
    assert (out / "confusion.png").stat().st_size > 0


def test_cli_ood_and_saved_data(checkpoint, tmp_path):
    assert run(checkpoint, tmp_path / "ood", "--dataset", "ood", "--num-objects", "2") == 0
    assert read_metrics(tmp_path / "ood")["num_objects"] == 2
    data = tmp_path / "data.npz"
    save_npz(RandomWalk(image_size=S).generate(2, 3, seed=1), data)
    out = tmp_path / "saved"
    assert main([str(checkpoint), "--out", str(out), "--data", str(data)]) == 0
    m = read_metrics(out)
    assert (m["num_sequences"], m["seq_len"], m["seed"]) == (2, 3, 1)


def test_missing_checkpoint_exits_2_without_writing(tmp_path):
    out = tmp_path / "eval"
    proc = subprocess.run(
        [sys.executable, "-m", "pyro_vim.evaluate", str(tmp_path / "missing.pt"), "--out",
         str(out)], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "missing.pt" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_foreign_checkpoint_exits_2(tmp_path, capsys):
    bogus = tmp_path / "notes.pt"
    bogus.write_text("not a checkpoint")
    out = tmp_path / "eval"
    out.mkdir()
    assert main([str(bogus), "--out", str(out)]) == 2
    assert "not a pyro-vim checkpoint" in capsys.readouterr().err
    assert os.listdir(out) == []
    # a torch file that is not a checkpoint
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    assert main([str(tmp_path / "other.pt"), "--out", str(out)]) == 2
    assert os.listdir(out) == []


def test_image_size_mismatch_exits_2(checkpoint, tmp_path, capsys):
    data = tmp_path / "big.npz"
    save_npz(RandomWalk(image_size=20).generate(2, 3, seed=1), data)
    out = tmp_path / "eval"
    assert main([str(checkpoint), "--out", str(out), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "20x20" in err and "image_size=16" in err
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [
    (["--predict", "--context", "3", "--horizon", "3"], "--seq-len"),
    (["--num-sequences", "0"], "--num-sequences"),
    (["--num-objects", "5"], "slots"),
    (["--seq-len", "1"], "--seq-len"),
    (["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "nope"],
     "device"),
])
def test_bad_options_exit_2(checkpoint, tmp_path, capsys, extra, message):
    out = tmp_path / "eval"
    assert run(checkpoint, out, *extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_out_is_a_file(checkpoint, tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("x")
    assert run(checkpoint, out) == 2
    assert "not a folder" in capsys.readouterr().err


def test_default_seed_is_not_a_training_seed():
    from pyro_vim.train import eval_seed, train_seed

    for seed in (0, 1, 7, 99):
        cfg = tiny_config(seed=seed)
        s = default_seed(cfg)
        assert s != eval_seed(cfg)
        # training seeds are config.seed * 10_000_000 + step: none of them for any config.seed
        # below 300 and any step below 10_000_000 reaches 3e9
        assert s > train_seed(cfg.replace(seed=299), 9_999_999)


def test_evaluate_batch_agrees_with_identification():
    torch.manual_seed(1)
    vim = VIM(tiny_config()).eval()
    batch = RandomWalk(image_size=S).generate(3, 4, seed=2)
    report, inferred = evaluate_batch(vim, batch)
    ident = identification(vim, batch)
    assert report["rule_module_accuracy"] == ident["rule_module_accuracy"]
    assert report["confusion"] == ident["confusion"]
    assert report["position_error"]["per_frame"] == pytest.approx(ident["position_error"])
    assert inferred["matching"].shape == (3, 3)
    with pytest.raises(ValueError, match="image_size"):
        evaluate_batch(vim, RandomWalk(image_size=20).generate(1, 2, seed=0))


def test_cli_compose_and_transfer(checkpoint, tmp_path):
    out = tmp_path / "eval"
    assert run(checkpoint, out, "--compose", "3", "--transfer") == 0
    m = read_metrics(out)
    assert len(m["composition"]["per_iteration"]) == 3 and m["composition"]["iterations"] == 3
    assert len(m["transfer"]["per_step"]) == 4 and is_number(m["transfer"]["mean"])
    assert (out / "compositions.png").stat().st_size > 0 and (out / "transfer.png").exists()
    assert run(checkpoint, tmp_path / "bad", "--compose", "0") == 2
    assert not (tmp_path / "bad").exists()


def test_held_out_module_kl_is_the_trained_one():
    """With r_kl="categorical" the held-out kl_r is the analytic categorical KL (never negative);
    with r_kl="sample" it is Trace_ELBO's relaxed Monte Carlo estimate."""
    import pyro

    from pyro_vim.evaluate import _elbo_terms
    frames = RandomWalk(image_size=16).generate(4, 4, seed=0).frames
    for seed in range(3):
        pyro.set_rng_seed(seed)
        terms = _elbo_terms(VIM(tiny_config(r_kl="categorical", seed=seed)), frames)
        assert terms["kl_r"] >= 0
    pyro.set_rng_seed(0)
    vim = VIM(tiny_config(r_kl="sample"))
    pyro.set_rng_seed(1)
    relaxed = _elbo_terms(vim, frames)["kl_r"]
    vim.config = vim.config.replace(r_kl="categorical")
    pyro.set_rng_seed(1)
    assert _elbo_terms(vim, frames)["kl_r"] != relaxed
