"""Checkpoints written by earlier commits still load and infer exactly what they inferred then.

Each fixture in ``tests/fixtures/checkpoints`` (see its README) is a tiny VIM (or RIM/SCOFF
baseline: ``rim-*``/``scoff-*``, the family in its ``.json``'s config) trained and saved by the
commit named in its ``.json``, with a fixed frame batch and that commit's ``infer`` outputs.
Today's ``load_model`` must restore the model (config migrations included) and ``infer`` must
return the same tensors.  Regenerate or add one with
``tests/fixtures/make_checkpoint_fixture.py`` (its docstring has the commands).
"""
import glob
import json
import os

import pytest
import torch

from pyro_vim import registry
from pyro_vim.checkpoint import load_checkpoint
from pyro_vim.models import load_model

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "checkpoints")
FIXTURES = sorted(os.path.basename(p)[:-len(".json")]
                  for p in glob.glob(os.path.join(HERE, "*.json")))
#: Formats the set must span (README.md): the earliest loadable commit and HEAD at least.
REQUIRED = ("vim-0729bc8", "vim-606a88d")
RTOL, ATOL = 1e-5, 1e-6


def _info(name):
    with open(os.path.join(HERE, name + ".json")) as f:
        return json.load(f)


def _expected(name):
    return torch.load(os.path.join(HERE, name + ".expected.pt"), weights_only=True)


def test_fixture_set():
    assert set(REQUIRED) <= set(FIXTURES), f"fixtures found: {FIXTURES}"
    for name in FIXTURES:
        for ext in (".pt", ".expected.pt"):
            assert os.path.isfile(os.path.join(HERE, name + ext)), name + ext


@pytest.mark.parametrize("name", FIXTURES)
def test_old_checkpoint_infers_the_same(name):
    info = _info(name)
    expected = _expected(name)
    model = load_model(os.path.join(HERE, name + ".pt"))
    family = info["config"].get("model", "vim")          # the earliest configs name none
    assert type(model) is registry.lookup("model", family)
    model.eval()
    out = model.infer(expected["frames"])
    assert set(expected["outputs"]) <= set(out), (
        f"{name} ({info['commit'][:7]}): infer lost outputs "
        f"{sorted(set(expected['outputs']) - set(out))}")
    for key, want in expected["outputs"].items():
        got = out[key]
        assert got.dtype == want.dtype, f"{name}: {key} dtype {got.dtype} vs {want.dtype}"
        torch.testing.assert_close(
            got, want, rtol=RTOL, atol=ATOL,
            msg=lambda m, key=key: f"{name} ({info['commit'][:7]}, {info['date']}): "
                                   f"infer's {key!r} changed: {m}")


#: Saved fields that decide the model built (read back with attribute access, so the test holds
#: whatever layout the config has: flat today, sections later).
BUILT_FROM = ("image_size", "num_slots", "num_modules", "slot_dim", "encoder_channels",
              "decoder_channels", "module_hidden", "update_hidden", "keyquery_dim", "seed",
              "model", "prior", "guide", "iterations")


@pytest.mark.parametrize("name", FIXTURES)
def test_old_checkpoint_builds_the_saved_model(name):
    """The restored model's config has the sizes, parts and data the old commit saved (only
    fields that the old commit had; migrations add the others)."""
    info = _info(name)
    saved = dict(load_checkpoint(os.path.join(HERE, name + ".pt"))["config"])
    config = load_model(os.path.join(HERE, name + ".pt")).config
    data = saved.get("data") or {"name": saved.get("dataset"),
                                 "num_objects": saved.get("num_objects")}
    assert config.data.name == data["name"] == info["dataset"]
    assert config.data.num_objects == data["num_objects"]
    for key in BUILT_FROM:
        if key in saved:
            assert getattr(config, key) == saved[key], f"{name}: {key}"
    assert getattr(config, "iterations", 1) == info["iterations"]
