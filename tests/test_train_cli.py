"""``python -m pyro_vim.train``: npz shards with and without dataset.json, the pixel scales
it derives and prints, and clear refusals of bad input."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pyro_vim.data.scales import data_sizes, pixel_scales
from pyro_vim.models import load_model
from pyro_vim.train import cli

from .helpers import REPO, make_shards
from .test_scales import BAD_DATASET_JSON, SCALES

TINY = ["--steps", "3", "--pretrain-steps", "1", "--batch-size", "2", "--seq-len", "3",
        "--no-progress", "--device", "cpu", "--set", "slot_dim=8", "encoder_channels=8",
        "decoder_channels=8", "module_hidden=16", "update_hidden=16", "keyquery_dim=8",
        "num_slots=3", "eval_sequences=2", "eval_every=0"]


@pytest.fixture
def shards(tmp_path):
    return make_shards(tmp_path / "videos")


def train(argv):
    return cli.main(cli.parse_args(argv))


def scales_of(checkpoint):
    c = load_model(checkpoint).config
    return tuple(getattr(c, k) for k in SCALES)


@pytest.mark.parametrize("content, message", BAD_DATASET_JSON[::2])
def test_a_bad_dataset_json_is_refused_before_anything_is_written(shards, tmp_path, capsys,
                                                                  content, message):
    file = os.path.join(shards, "dataset.json")
    with open(file, "w") as f:
        f.write(content)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        train(["--data", shards, "--out", str(out), *TINY])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {file}: " in err and message in err
    assert not out.exists()


# -------------------------------------------------------------------------------- the command
def test_training_on_shards_with_a_dataset_json(shards, tmp_path, capsys):
    with open(os.path.join(shards, "dataset.json"), "w") as f:
        json.dump({"object_size": 14, "step": 6, "note": "other keys are allowed"}, f)
    out = str(tmp_path / "run")
    result = train(["--data", shards, "--out", out, *TINY, "mask_extent=4"])
    assert result["step"] == 3 and result["accuracy"] is None   # frames only: no truth
    assert np.isfinite(result["recon_mse"])
    printed = capsys.readouterr().out
    assert "object_size 14 px, step 6 px (from " in printed and "dataset.json" in printed
    assert "selection_scale = 2 px (step / 3)" in printed
    assert "mask_extent = 4 px (set by you; the data's 5/7 x object_size would be 10)" in printed
    # the derived values are in the config, so the checkpoint records them (--set wins)
    assert scales_of(os.path.join(out, "checkpoint.pt")) == (2.0, 4.0, 1.0, 2.0)
    c = load_model(os.path.join(out, "checkpoint.pt")).config
    assert (c.data.name, c.data.path, c.image_size) == ("npz", shards, 16)


def test_training_on_shards_without_dataset_json_measures_them(shards, tmp_path, capsys):
    out = str(tmp_path / "run")
    train(["--data", shards, "--out", out, *TINY])
    printed = capsys.readouterr().out
    assert "measured on" in printed and "no dataset.json" in printed
    assert "image_size = 16 (the shards' frame side)" in printed
    sizes = data_sizes(shards)
    assert abs(sizes.object_size - 7) <= 1 and abs(sizes.step - 3) <= 1
    assert scales_of(os.path.join(out, "checkpoint.pt")) == tuple(
        pixel_scales(sizes.object_size, sizes.step)[k] for k in SCALES)
    # a resumed run keeps the values it trained with, even when the sizes are declared since
    with open(os.path.join(shards, "dataset.json"), "w") as f:
        json.dump({"object_size": 9, "step": 2}, f)
    resumed = train(["--data", shards, "--out", out, "--resume", *TINY[:1], "4", *TINY[2:]])
    assert resumed["step"] == 4
    assert "the checkpoint's; the data's step / 3 would be 0.6667" in capsys.readouterr().out
    with open(os.path.join(out, "log.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2, 3, 4]


def test_python_m_pyro_vim_train(shards, tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO, PYRO_VIM_TENSORBOARD="0")
    done = subprocess.run([sys.executable, "-m", "pyro_vim.train", "--data", shards, "--out",
                           str(out), *TINY], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["step"] == 3
    assert "selection_scale = " in done.stdout and (out / "checkpoint.pt").exists()
    keys = subprocess.run([sys.executable, "-m", "pyro_vim.train", "--keys"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert keys.returncode == 0 and "data.path" in keys.stdout.split()


@pytest.mark.parametrize("extra, message", [
    (["--set", "data.name=compositional"], "cannot go with data.name=compositional"),
    (["--set", "data.path=elsewhere"], "give the shards' directory once"),
    (["--set", "image_size=32"], "set image_size=16"),
    (["--seq-len", "9"], "reaches 9-frame sequences at step 3"),
    (["--batch-size", "11"], "fewer than one global batch"),
])
def test_bad_data_arguments_create_nothing(shards, tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        train(["--data", shards, "--out", str(out), *TINY, *extra])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_the_curriculum_must_fit_the_shards_only_as_far_as_the_run_goes(shards, tmp_path,
                                                                         capsys):
    argv = ["--data", shards, "--out", str(tmp_path / "run"), "--pretrain-steps", "1",
            "--batch-size", "2", "--set", "seq_len_start=4", "seq_len_max=8",
            "seq_len_every=500"]          # 5-frame videos: 4 frames until dynamics step 500
    assert cli.parse_args([*argv, "--steps", "501"]).steps == 501
    with pytest.raises(SystemExit):
        cli.parse_args([*argv, "--steps", "502"])
    assert "reaches 6-frame sequences at step 502" in capsys.readouterr().err


def test_missing_data_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        train(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"), *TINY])
    assert info.value.code == 2 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_generators_are_chosen_by_name_and_keep_their_settings(tmp_path, capsys):
    args = cli.parse_args(["--out", str(tmp_path / "run"), *TINY, "data.name=compositional",
                           "data.step=2", "image_size=16"])
    config = cli.build_config(args)
    assert config.data.name == "compositional" and config.selection_scale == -1
    assert config.selection_scale_resolved == 2 / 3 and config.mask_extent == 5.0
    assert cli.resolve_config(args)[1] == []          # nothing derived, nothing printed


def test_the_package_keeps_the_modules_names():
    import pyro_vim.train as package
    from pyro_vim.train import trainer
    for name in ("Trainer", "train", "NonFiniteError", "train_seed", "eval_seed",
                 "default_device", "make_generator", "TERMS", "TRAIN_SEED_STRIDE",
                 "RANK_SEED_STRIDE", "EVAL_SEED_OFFSET", "_log_line", "ShardData",
                 "RunLock", "CheckpointWriteError"):
        assert getattr(package, name) is getattr(trainer, name)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        package.nothing
    assert "cli" not in vars(package) or package.cli.__name__ == "pyro_vim.train.cli"
