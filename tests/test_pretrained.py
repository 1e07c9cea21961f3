"""``pyro_vim.pretrained(name)``: the shipped checkpoints load, still identify the rules, match
their manifest; ``ship`` copies a complete run in, within the size limit."""
import json
import os
import shutil

import pytest
import torch

import pyro_vim
from pyro_vim.evaluate import default_seed, identification
from pyro_vim.pretrained import cli, loading, manifest, shipping

ENTRY_KEYS = {"file", "bytes", "sha256", "experiment", "variant", "seed", "commit", "command",
              "steps", "train_minutes", "machine", "torch", "threads", "eval", "metrics",
              "before_learning"}


def test_the_shipped_random_walk_model_still_identifies_the_rules():
    torch.set_num_threads(1)
    model = pyro_vim.pretrained("random_walk")
    assert isinstance(model, pyro_vim.VIM) and not model.training
    config = model.config
    assert config.num_modules == 4 and config.data.name == "random_walk"
    # held-out videos (the evaluation's data seed, never trained on)
    batch = config.make_generator().generate(16, 8, default_seed(config))
    report = identification(model, batch)
    assert report["rule_module_accuracy"] >= 0.9


def test_the_manifest_describes_every_shipped_file():
    entries = manifest.read_manifest()
    assert "random_walk" in entries and loading.names() == sorted(entries)
    total = 0
    for name, entry in entries.items():
        assert ENTRY_KEYS <= set(entry), name
        path = os.path.join(manifest.FOLDER, entry["file"])
        assert os.path.getsize(path) == entry["bytes"]
        assert manifest.sha256(path) == entry["sha256"]
        assert entry["command"].startswith(f"python -m pyro_vim.run {entry['experiment']} ")
        assert f"--seeds {entry['seed']}" in entry["command"]
        assert 0 <= entry["metrics"]["rule_module_accuracy"] <= 1
        total += entry["bytes"]
    assert total <= manifest.MAX_TOTAL_BYTES
    shipped = {f for f in os.listdir(manifest.FOLDER) if f.endswith(".pt")}
    assert shipped == {e["file"] for e in entries.values()}       # nothing unlisted


def test_an_unknown_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match=r"no pretrained model 'nope'; shipped: .*random_walk"):
        pyro_vim.pretrained("nope")


def test_setup_py_ships_the_files():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "setup.py")) as f:
        text = f.read()
    assert '"pyro_vim.pretrained": ["manifest.json", "*.pt"]' in text


@pytest.fixture
def run_dir(tmp_path):
    """A complete run's folder holding the shipped random_walk checkpoint."""
    entry = manifest.read_manifest()["random_walk"]
    folder = tmp_path / "runs" / "random_walk" / "seed=0"
    folder.mkdir(parents=True)
    shutil.copy(os.path.join(manifest.FOLDER, entry["file"]), folder / "checkpoint.pt")
    model = pyro_vim.load_model(str(folder / "checkpoint.pt"))
    (folder / "config.json").write_text(json.dumps(model.config.to_dict()))
    result = {"experiment": "random_walk", "variant": "", "seed": 0, "steps": 7,
              "train_seconds": 120.0, "commit": "abc1234",
              "machine": "x86_64, 2 cores, no GPU, torch 2.13.0+cpu, 2 threads",
              "precision": "fp32", "eval": {"sequences": 4},
              "metrics": {"rule_module_accuracy": 0.5, "confusion": [[1]]},
              "before_learning": None}
    (folder / "metrics.json").write_text(json.dumps(result))
    return folder


def test_ship_copies_a_run_and_records_it(run_dir, tmp_path):
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    entry = shipping.ship(str(run_dir), "copy", folder=str(shelf))
    assert entry["sha256"] == manifest.sha256(str(run_dir / "checkpoint.pt"))
    assert entry["command"] == "python -m pyro_vim.run random_walk --out runs --seeds 0 " \
                               "--threads 2"
    assert (entry["commit"], entry["train_minutes"], entry["threads"]) == ("abc1234", 2.0, 2)
    assert entry["metrics"] == {"rule_module_accuracy": 0.5}          # scalars only
    assert manifest.read_manifest(str(shelf)) == {"copy": entry}
    model = loading.load("copy", folder=str(shelf))
    assert model.config.num_modules == 4
    with pytest.raises(ValueError, match="already shipped"):
        shipping.ship(str(run_dir), "copy", folder=str(shelf))
    assert shipping.ship(str(run_dir), "copy", folder=str(shelf), replace=True) == entry


@pytest.mark.parametrize("change, match", [
    ("name", "bad name"), ("incomplete", "the run is not complete"),
    ("size", "over the 0.001 MB limit"), ("not_a_checkpoint", "not a pyro-vim checkpoint"),
])
def test_ship_refuses_and_writes_nothing(run_dir, tmp_path, monkeypatch, change, match):
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    name = "Bad-Name" if change == "name" else "copy"
    if change == "incomplete":
        os.remove(run_dir / "metrics.json")
    if change == "size":
        monkeypatch.setattr(shipping, "MAX_TOTAL_BYTES", 1000)
    if change == "not_a_checkpoint":
        (run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=match):
        shipping.ship(str(run_dir), name, folder=str(shelf))
    assert os.listdir(shelf) == []


def test_a_changed_file_is_refused(run_dir, tmp_path):
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    shipping.ship(str(run_dir), "copy", folder=str(shelf))
    with open(shelf / "copy.pt", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="does not match its manifest"):
        loading.load("copy", folder=str(shelf))


def test_cli_lists_and_refuses_bad_input(capsys, tmp_path):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "random_walk: random_walk seed" in out and "of 10 MB" in out
    assert cli.main(["ship", str(tmp_path), "x"]) == 2
    assert "the run is not complete" in capsys.readouterr().err
