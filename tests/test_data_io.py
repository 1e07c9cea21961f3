"""Tests of saving/loading, VideoDataset and the ``python -m pyro_vim.data`` command line."""
import json
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import pyro_vim.data.io as data_io
from pyro_vim.data import (
    CompositionalRandomWalk,
    OODRandomWalk,
    RandomWalk,
    VideoBatch,
    VideoDataset,
    load_npz,
    save_npz,
)
from pyro_vim.data.__main__ import main


def assert_batches_equal(a, b):
    for field in ("frames", "positions", "moves", "masks"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.shape == y.shape, field
        assert x.tobytes() == y.tobytes(), field
    assert set(a.attributes) == set(b.attributes)
    for key in a.attributes:
        assert a.attributes[key].dtype == b.attributes[key].dtype
        np.testing.assert_array_equal(a.attributes[key], b.attributes[key])
    assert a.config == b.config


@pytest.fixture
def batch():
    return CompositionalRandomWalk(num_objects=2, image_size=16, radius=2, step=2,
                                   max_moves=3).generate(5, 4, seed=3)


@pytest.mark.parametrize(
    "gen",
    [RandomWalk(num_objects=2, image_size=16, radius=2, step=2),
     CompositionalRandomWalk(num_objects=2, image_size=16, radius=2, step=2, max_moves=3),
     OODRandomWalk(num_objects=2, image_size=20)],
    ids=["random_walk", "compositional", "ood"],
)
def test_round_trip(tmp_path, gen):
    batch = gen.generate(4, 5, seed=1)
    path = save_npz(batch, tmp_path / "data.npz")
    assert path == tmp_path / "data.npz"
    loaded = load_npz(path)
    assert isinstance(loaded, VideoBatch)
    assert_batches_equal(batch, loaded)
    assert os.listdir(tmp_path) == ["data.npz"]  # no temp files left behind


def test_round_trip_of_subset_and_str_path(tmp_path, batch):
    sub = batch[[4, 1]]
    save_npz(sub, str(tmp_path / "sub.npz"))
    assert_batches_equal(sub, load_npz(str(tmp_path / "sub.npz")))


def _rewrite_npz(src, dst, change):
    """Copy an npz, applying ``change(dict_of_arrays)`` (keeps the stored hash)."""
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    np.savez_compressed(dst, **arrays)


@pytest.mark.parametrize("field", ["frames", "positions", "moves", "masks", "attr_color",
                                   "config"])
def test_hash_mismatch_is_detected(tmp_path, batch, field):
    good = save_npz(batch, tmp_path / "good.npz")
    bad = tmp_path / "bad.npz"

    def change(arrays):
        if field == "config":
            cfg = json.loads(str(arrays["config"]))
            cfg["seed"] += 1
            arrays["config"] = np.array(json.dumps(cfg, sort_keys=True))
        elif arrays[field].dtype == np.bool_:
            arrays[field].flat[7] = ~arrays[field].flat[7]
        else:
            arrays[field].flat[7] += 1

    _rewrite_npz(good, bad, change)
    with pytest.raises(ValueError, match="corrupted"):
        load_npz(bad)
    load_npz(good)  # the original is fine


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "nope.npz")


def test_not_a_dataset(tmp_path, batch):
    other = tmp_path / "other.npz"
    np.savez(other, frames=np.zeros((1, 2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="not a pyro-vim dataset"):
        load_npz(other)
    text = tmp_path / "text.npz"
    text.write_text("hello, I am not an archive")
    with pytest.raises(ValueError, match="not a pyro-vim dataset"):
        load_npz(text)
    npy = tmp_path / "array.npy"
    np.save(npy, np.arange(3))
    with pytest.raises(ValueError, match="not a pyro-vim dataset"):
        load_npz(npy)
    # an archive holding a pickled object is rejected, never unpickled
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, frames=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a pyro-vim dataset"):
        load_npz(pickled)
    # a valid dataset with a wrong format marker
    wrong = tmp_path / "wrong.npz"
    good = save_npz(batch, tmp_path / "good.npz")
    _rewrite_npz(good, wrong, lambda a: a.update(format=np.array("something-else")))
    with pytest.raises(ValueError, match="not a pyro-vim dataset"):
        load_npz(wrong)


def test_refuses_non_videobatch(tmp_path, batch):
    with pytest.raises(ValueError, match="VideoBatch"):
        save_npz(batch.to_torch(), tmp_path / "x.npz")
    with pytest.raises(ValueError, match="VideoBatch"):
        save_npz({"frames": batch.frames}, tmp_path / "x.npz")
    assert not any(tmp_path.iterdir())


def test_atomic_write_keeps_existing_file_on_failure(tmp_path, batch, monkeypatch):
    path = save_npz(batch, tmp_path / "data.npz")
    before = path.read_bytes()

    def failing_write(fileobj, arrays):
        fileobj.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(data_io, "_write_arrays", failing_write)
    other = RandomWalk(num_objects=1, image_size=16).generate(2, 3, seed=0)
    with pytest.raises(OSError, match="disk full"):
        save_npz(other, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["data.npz"]
    with pytest.raises(OSError, match="disk full"):
        save_npz(other, tmp_path / "new.npz")
    assert sorted(os.listdir(tmp_path)) == ["data.npz"]  # no partial new file either
    monkeypatch.undo()
    assert_batches_equal(batch, load_npz(path))


def test_saved_file_is_compressed_npz_without_pickles(tmp_path, batch):
    path = save_npz(batch, tmp_path / "d.npz")
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    assert infos["frames.npy"].compress_type == zipfile.ZIP_DEFLATED
    with np.load(path, allow_pickle=False) as data:
        assert data["frames"].dtype == np.float32
        assert str(data["format"]) == "pyro-vim/video-batch"
        assert len(str(data["sha256"])) == 64


def test_video_dataset(tmp_path, batch):
    for source in (batch, save_npz(batch, tmp_path / "d.npz"), str(tmp_path / "d.npz")):
        ds = VideoDataset(source)
        assert len(ds) == 5
        item = ds[2]
        assert item["frames"].shape == (4, 3, 16, 16) and item["frames"].dtype == torch.float32
        assert item["positions"].shape == (4, 2, 2)
        assert item["positions"].dtype == torch.float32
        assert item["moves"].shape == (3, 2, 3) and item["moves"].dtype == torch.long
        assert item["masks"].shape == (4, 2, 16, 16) and item["masks"].dtype == torch.bool
        assert item["color"].shape == (2, 3) and item["shape"].shape == (2,)
        np.testing.assert_array_equal(item["frames"].numpy(), batch.frames[2])
        np.testing.assert_array_equal(ds[-1]["moves"].numpy(), batch.moves[4])
        item["frames"].zero_()  # items are copies
        assert batch.frames[2].max() > 0
        with pytest.raises(IndexError):
            ds[5]
    loader = torch.utils.data.DataLoader(VideoDataset(batch), batch_size=2)
    first = next(iter(loader))
    assert first["frames"].shape == (2, 4, 3, 16, 16)
    with pytest.raises(TypeError):
        VideoDataset(42)


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset", ["random_walk", "compositional", "ood"])
def test_cli_writes_dataset_and_previews(tmp_path, capsys, dataset):
    out = tmp_path / "out"
    extra = ["--max-moves", "3"] if dataset == "compositional" else []
    rc = main(["--dataset", dataset, "--num-sequences", "3", "--seq-len", "3", "--seed", "7",
               "--out", str(out), "--num-objects", "2", *extra])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["dataset.npz", "preview.gif", "preview.png"]
    batch = load_npz(out / "dataset.npz")
    assert batch.config["name"] == dataset and batch.config["seed"] == 7
    assert batch.frames.shape == (3, 3, 3, 32, 32) and batch.num_objects == 2
    if dataset == "compositional":
        assert batch.max_moves == 3
    with Image.open(out / "preview.png") as png:
        assert png.format == "PNG" and png.size[0] > 200
    with Image.open(out / "preview.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 3
        assert gif.size == (4 * (3 * 32 + 2), 4 * 32)  # 3 videos side by side, scale 4
    printed = capsys.readouterr().out
    for name in ("dataset.npz", "preview.png", "preview.gif"):
        assert name in printed


@pytest.mark.parametrize(
    "argv",
    [
        ["--dataset", "pong"],
        ["--dataset", "random_walk", "--seq-len", "1"],
        ["--dataset", "random_walk", "--num-sequences", "0"],
        ["--dataset", "random_walk", "--seed", "-3"],
        ["--dataset", "random_walk", "--num-objects", "abc"],
        ["--dataset", "random_walk", "--max-moves", "3"],
        ["--dataset", "compositional", "--max-moves", "0"],
        ["--dataset", "ood", "--num-objects", "99"],
    ],
)
def test_cli_bad_arguments_write_nothing(tmp_path, capsys, argv):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main([*argv, "--out", str(out)])
    assert info.value.code != 0
    assert not out.exists()
    assert "error" in capsys.readouterr().err


def test_cli_requires_out(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--dataset", "random_walk"])
    assert info.value.code != 0
