"""pyro_vim.viz: every figure function writes a non-empty PNG and rejects bad shapes."""
import os

import numpy as np
import pytest
import torch

from pyro_vim import viz
from pyro_vim.data import RandomWalk

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
S, K, M = 16, 4, 4


@pytest.fixture(scope="module")
def batch():
    return RandomWalk(num_objects=3, image_size=S).generate(num_sequences=2, seq_len=5, seed=3)


def assert_png(path):
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)


def test_plot_confusion(tmp_path):
    confusion = np.array([[9, 1, 0, 0], [0, 8, 2, 0], [0, 0, 10, 0], [1, 0, 0, 7]])
    usage = confusion.sum(0) / confusion.sum()
    out = viz.plot_confusion(confusion, usage, path=tmp_path / "c.png", title="acc")
    assert out == tmp_path / "c.png"
    assert_png(out)
    # without a confusion (compositional data) only the usage panel is drawn
    assert_png(viz.plot_confusion(None, usage, path=tmp_path / "u.png"))
    # accepts tensors and returns a figure without a path
    fig = viz.plot_confusion(torch.tensor(confusion))
    assert len(fig.axes) == 3                                    # heatmap, colorbar, bars
    with pytest.raises(ValueError):
        viz.plot_confusion(None, None)
    with pytest.raises(ValueError):
        viz.plot_confusion(confusion, usage[:3])
    with pytest.raises(ValueError):
        viz.plot_confusion(-confusion)
    with pytest.raises(ValueError):
        viz.plot_confusion(confusion[:3])                          # 3 rows, 4 rule names


def test_plot_module_rollouts(tmp_path, batch):
    renders = np.repeat(batch.frames[0, None, :4], M, axis=0)     # (M, 4, 3, S, S)
    positions = np.repeat(batch.positions[0, None, :4, 0], M, axis=0)
    path = viz.plot_module_rollouts(renders, positions, labels=[f"m{i}" for i in range(M)],
                                    path=tmp_path / "r.png", title="slot 0")
    assert_png(path)
    assert_png(viz.plot_module_rollouts(torch.from_numpy(renders), path=tmp_path / "r2.png"))
    with pytest.raises(ValueError):
        viz.plot_module_rollouts(renders[0])
    with pytest.raises(ValueError):
        viz.plot_module_rollouts(renders, positions[:, :2])
    with pytest.raises(ValueError):
        viz.plot_module_rollouts(renders, labels=["a"])


def test_plot_reconstruction(tmp_path, batch):
    frames = batch.frames[0]
    masks = np.concatenate([batch.masks[0], ~batch.masks[0].any(1, keepdims=True)], 1)
    path = viz.plot_reconstruction(frames, frames * 0.5, masks.astype(float), max_frames=3,
                                   path=tmp_path / "rec.png")
    assert_png(path)
    fig = viz.plot_reconstruction(frames, frames, masks.astype(float), max_frames=3)
    assert len(fig.axes) == 3 * (2 + masks.shape[1])
    with pytest.raises(ValueError):
        viz.plot_reconstruction(frames, frames[:2], masks)
    with pytest.raises(ValueError):
        viz.plot_reconstruction(frames, frames, masks[:2])
    with pytest.raises(ValueError):
        viz.plot_reconstruction(frames, frames, masks, max_frames=0)


def test_plot_predictions(tmp_path, batch):
    frames = batch.frames[0]
    samples = np.stack([frames[2:], frames[2:] * 0.5, frames[2:][::-1]])   # (3, 3, 3, S, S)
    path = viz.plot_predictions(frames[:2], frames[2:], samples, path=tmp_path / "p.png")
    assert_png(path)
    fig = viz.plot_predictions(frames[:2], frames[2:], samples, max_samples=2)
    assert len(fig.axes) == 3 * 5
    with pytest.raises(ValueError):
        viz.plot_predictions(frames[:2], frames[2:], samples[:, :2])
    with pytest.raises(ValueError):
        viz.plot_predictions(frames[:2, :, :8], frames[2:], samples)


def test_existing_helpers_still_work(tmp_path, batch):
    assert_png(viz.plot_sequence_with_moves(batch, num_sequences=1, max_frames=3,
                                            path=tmp_path / "seq.png"))
    gif = viz.save_gif([batch.frames[0], batch.frames[1]], tmp_path / "s.gif")
    assert gif.read_bytes().startswith(b"GIF89a")


def test_image_rows_and_composition_rows(tmp_path):
    from pyro_vim.viz import composition_rows, plot_image_rows
    rng = np.random.default_rng(0)
    rows, titles = composition_rows(rng.random((3, 2, 3, 8, 8)), rng.random((3, 4, 3, 8, 8)))
    assert len(rows) == 3 and rows[0][1].shape == (6, 3, 8, 8)
    assert titles == ["frame t", "it 1", "it 2", "it 3", "it 4", "frame t+1"]
    path = plot_image_rows(rows + [("short", rng.random((2, 3, 8, 8)))], titles,
                           path=tmp_path / "rows.png", title="x")
    assert os.path.getsize(path) > 0
    with pytest.raises(ValueError, match="at least one row"):
        plot_image_rows([])
