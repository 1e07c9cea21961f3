"""The ``glyphs`` data: same-coloured stroke glyphs on the Random Walk (GlyphRandomWalk)."""
import numpy as np
import pytest
from PIL import Image

from pyro_vim.config import VIMConfig
from pyro_vim.data import (
    MOVE_VECTORS,
    GlyphRandomWalk,
    RandomWalk,
    load_npz,
    make_dataset,
    save_npz,
)
from pyro_vim.data.__main__ import main
from pyro_vim.data.glyphs import glyph_stencils


def _first_frame_gaps(gen, batch):
    """(N, pairs) background pixels between the boxes of every two objects on frame 0."""
    lo, hi = gen._bounds(batch.attributes["shape"], batch.attributes["size"])
    low, high = lo, gen.image_size - 1 - hi
    pos = batch.positions[:, 0].astype(np.int64)
    gaps = []
    for i in range(batch.num_objects):
        for j in range(i):
            a = np.maximum(pos[:, i] - low[:, i] - pos[:, j] - high[:, j],
                           pos[:, j] - low[:, j] - pos[:, i] - high[:, i]) - 1
            gaps.append(a.max(axis=-1))
    return np.stack(gaps, axis=1)


@pytest.fixture(scope="module")
def walk():
    gen = GlyphRandomWalk(step=2)
    return gen, gen.generate(24, 6, seed=3)


def test_same_seed_same_bytes_other_seed_differs(walk):
    gen, batch = walk
    again = GlyphRandomWalk(step=2).generate(24, 6, seed=3)
    for a, b in ((batch.frames, again.frames), (batch.positions, again.positions),
                 (batch.masks, again.masks), (batch.moves, again.moves)):
        assert np.array_equal(a, b)
    assert np.array_equal(batch.attributes["shape"], again.attributes["shape"])
    assert batch.config == again.config and batch.config["name"] == "glyphs"
    assert not np.array_equal(gen.generate(24, 6, seed=4).frames, batch.frames)
    other = GlyphRandomWalk(step=2, glyph_seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(gen.glyphs, other.glyphs))


def test_every_object_pixel_has_the_one_colour(walk):
    _, batch = walk
    pixels = batch.frames.transpose(0, 1, 3, 4, 2)
    on = batch.masks.any(axis=2)
    assert np.all(pixels[on] == 1.0) and np.all(pixels[~on] == 0.0)
    assert np.all(batch.attributes["color"] == 1.0)
    red = GlyphRandomWalk(colors=[[1, 0, 0]], background=(0, 0, 0.5)).generate(2, 2, seed=0)
    colours = np.unique(red.frames.transpose(0, 1, 3, 4, 2).reshape(-1, 3), axis=0)
    assert colours.tolist() == [[0, 0, 0.5], [1, 0, 0]]


def test_glyphs_are_strokes_that_differ(walk):
    gen, batch = walk
    shapes = batch.attributes["shape"]
    assert all(len(set(row)) == len(row) for row in shapes.tolist())   # per video: distinct
    keys = {st.tobytes() for st in gen.glyphs}
    assert len(keys) == gen.num_glyphs
    for st in gen.glyphs:
        assert np.ptp(st, axis=0).tolist() == [7, 7]                    # spans its 8 x 8 box
        assert 8 < len(st) < 40                                          # thin, bent strokes
        assert np.all(np.abs(st.mean(axis=0)) <= 0.5)
    assert len(glyph_stencils(9, 3, seed=0)) == 9                       # small boxes too


def test_positions_masks_and_moves_agree(walk):
    gen, batch = walk
    visible = batch.masks.sum(axis=(-2, -1))
    full = visible == np.array([len(gen.glyphs[s]) for s in batch.attributes["shape"].ravel()]
                               ).reshape(batch.num_sequences, 1, -1)
    assert 0.5 < full.mean() < 1                 # objects start apart, then walk over others
    assert full[:, 0].all()
    rows, cols = np.indices(batch.masks.shape[-2:])
    area = np.maximum(visible, 1)
    centroid = np.stack([(batch.masks * cols).sum((-2, -1)) / area,
                         (batch.masks * rows).sum((-2, -1)) / area], axis=-1)
    assert np.all(np.abs(centroid - batch.positions)[full] <= 0.5)
    assert np.array_equal(np.diff(batch.positions, axis=1),
                          2 * MOVE_VECTORS[batch.moves[..., 0]])
    assert batch.moves.shape[-1] == 1 and set(np.unique(batch.moves)) <= {0, 1, 2, 3}
    assert (batch.masks.sum(axis=2) <= 1).all()


def test_render_paints_glyph_k_for_object_k(walk):
    gen, _ = walk
    positions = np.random.default_rng(0).integers(5, 27, size=(4, 3, 2))
    frames = gen.render(positions)
    expected = np.zeros((4, 32, 32), dtype=bool)
    for n in range(4):
        for k, (x, y) in enumerate(positions[n].astype(int)):
            expected[n, y + gen.glyphs[k][:, 0], x + gen.glyphs[k][:, 1]] = True
    assert np.array_equal(frames, np.repeat(expected[:, None], 3, axis=1).astype(np.float32))
    with pytest.raises(ValueError, match="inside the frame"):
        gen.render(np.array([[[0, 10]]]))


def test_separation_options(walk):
    gen, batch = walk
    assert _first_frame_gaps(gen, batch).min() >= 1                      # default: apart
    touching = GlyphRandomWalk(min_separation=None, max_separation=0)
    gaps = _first_frame_gaps(touching, touching.generate(24, 2, seed=0))
    assert (gaps.min(axis=1) <= 0).all()                                 # every video
    overlapping = GlyphRandomWalk(min_separation=-4, max_separation=-2)
    ob = overlapping.generate(24, 2, seed=0)
    gaps = _first_frame_gaps(overlapping, ob)
    assert (gaps.min(axis=1) <= -2).all() and gaps.min() >= -4
    free = GlyphRandomWalk(min_separation=None).generate(24, 2, seed=0)
    assert (_first_frame_gaps(gen, free) < 0).any()


def test_objects_walk_over_each_other_later_on_top():
    gen = GlyphRandomWalk(num_objects=2, image_size=16, step=2, min_separation=None,
                          max_separation=-8)
    batch = gen.generate(3, 2, seed=0)
    assert (_first_frame_gaps(gen, batch) == -8).all()                   # the same box
    drawn = np.zeros((3, 2, 16, 16), dtype=bool)
    for n in range(3):
        for k in range(2):
            st = gen.glyphs[batch.attributes["shape"][n, k]]
            x, y = batch.positions[n, 0, k].astype(int)
            drawn[n, k, y + st[:, 0], x + st[:, 1]] = True
    assert np.array_equal(batch.masks[:, 0, 1], drawn[:, 1])             # later: on top
    assert np.array_equal(batch.masks[:, 0, 0], drawn[:, 0] & ~drawn[:, 1])
    assert (drawn[:, 0] & drawn[:, 1]).any()


def test_npz_round_trip_and_config(tmp_path, walk):
    _, batch = walk
    again = load_npz(save_npz(batch, tmp_path / "glyphs.npz"))
    assert np.array_equal(again.frames, batch.frames) and again.config == batch.config
    assert np.array_equal(again.attributes["shape"], batch.attributes["shape"])
    gen = VIMConfig(data={"name": "glyphs", "step": 2, "min_separation": None,
                          "max_separation": 0}).make_generator()
    assert isinstance(gen, GlyphRandomWalk) and (gen.step, gen.max_separation) == (2, 0)
    assert isinstance(make_dataset("glyphs", object_size=5), GlyphRandomWalk)
    assert RandomWalk().generate(2, 3, seed=0).config["name"] == "random_walk"


def test_cli_smoke(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--dataset", "glyphs", "--num-sequences", "2", "--seq-len", "3", "--step", "2",
                 "--max-separation", "0", "--min-separation", "none", "--out", str(out)]) == 0
    batch = load_npz(out / "dataset.npz")
    assert batch.config["name"] == "glyphs" and batch.config["step"] == 2
    assert batch.config["min_separation"] is None and batch.config["max_separation"] == 0
    with Image.open(out / "preview.png") as png:
        assert png.format == "PNG"
    with pytest.raises(SystemExit):
        main(["--dataset", "random_walk", "--object-size", "5", "--out", str(tmp_path / "x")])
    assert "only applies to --dataset glyphs" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("kwargs, field", [
    ({"object_size": 2}, "object_size"),
    ({"min_separation": -9}, "min_separation"),
    ({"max_separation": 0, "min_separation": 1}, "max_separation"),
    ({"num_glyphs": 2}, "num_glyphs"),
    ({"glyph_seed": -1}, "glyph_seed"),
    ({"colors": [[1, 1, 1], [1, 0, 0]]}, "colors"),
    ({"num_objects": 12, "min_separation": 2}, "min_separation"),
    ({"image_size": 10, "step": 2, "min_separation": None}, "image_size"),
    ({"num_glyphs": 400, "object_size": 3}, "num_glyphs"),
])
def test_bad_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        GlyphRandomWalk(**kwargs)


@pytest.mark.parametrize("data, field", [
    ({"object_size": 2}, "data.object_size"),
    ({"min_separation": -20}, "data.min_separation"),
    ({"min_separation": 2, "max_separation": 1}, "data.max_separation"),
    ({"glyph_seed": -1}, "data.glyph_seed"),
    ({"name": "glyphs", "colors": [[1, 0, 0], [0, 1, 0]]}, "data.colors"),
])
def test_bad_config_values_name_the_field(data, field):
    with pytest.raises(ValueError, match=field):
        VIMConfig(data=data)
