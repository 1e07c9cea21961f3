"""Every example in examples/ is smoke-run with tiny arguments."""
import json
import os

from .helpers import load_script

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def load(name):
    return load_script("examples", name)


def test_train_random_walk_smoke_and_resume(tmp_path, capsys):
    ex = load("train_random_walk")
    out = str(tmp_path / "run")
    args = ["--steps", "4", "--pretrain-steps", "2", "--batch-size", "2", "--seq-len", "3",
            "--eval-every", "2", "--out", out, "--no-progress", "--device", "cpu",
            "--checkpoint-every", "2"]
    result = ex.main(ex.parse_args(args))
    assert result["step"] == 4 and 0.0 <= result["accuracy"] <= 1.0
    assert os.path.exists(os.path.join(out, "checkpoint.pt"))
    resumed = ex.main(ex.parse_args(args[:1] + ["6"] + args[2:] + ["--resume"]))
    assert resumed["step"] == 6
    with open(os.path.join(out, "log.jsonl")) as f:
        steps = [json.loads(x)["step"] for x in f]
    assert steps == [1, 2, 3, 4, 5, 6]
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(printed)["step"] == 6


def test_every_example_is_smoke_tested():
    tested = {"train_random_walk"}
    present = {f[:-3] for f in os.listdir(EXAMPLES) if f.endswith(".py")}
    assert present <= tested, f"examples without a smoke test: {sorted(present - tested)}"


def test_train_random_walk_takes_any_config_key(tmp_path, capsys):
    from pyro_vim.models import load_model
    ex = load("train_random_walk")
    out = str(tmp_path / "run")
    args = ["--steps", "3", "--pretrain-steps", "1", "--batch-size", "2", "--seq-len", "3",
            "--eval-every", "0", "--out", out, "--no-progress", "--device", "cpu",
            "--set", "image_size=16", "slot_dim=8", "encoder_channels=8", "decoder_channels=8",
            "module_hidden=16", "update_hidden=16", "keyquery_dim=8", "prior=uniform",
            "guide=keyquery", "data.step=2", "data.num_objects=2", "num_slots=3"]
    ex.main(ex.parse_args(args))
    model = load_model(os.path.join(out, "checkpoint.pt"))
    c = model.config
    assert (c.prior, c.guide, c.data.step, c.data.num_objects, c.num_slots, c.image_size) == (
        "uniform", "keyquery", 2, 2, 3, 16)
    assert type(model.prior).__name__ == "UniformPrior"
