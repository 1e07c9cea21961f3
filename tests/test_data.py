"""Tests of the Random Walk generators (pyro_vim.data.random_walk)."""
import json
import time

import numpy as np
import pytest
import torch

from pyro_vim.data import (
    MOVE_VECTORS,
    MOVES,
    OOD_COLORS,
    SHAPES,
    TRAIN_COLORS,
    CompositionalRandomWalk,
    OODRandomWalk,
    RandomWalk,
    VideoBatch,
    make_dataset,
)
from pyro_vim.data.random_walk import OOD_SIZES, TRAIN_RADIUS, object_stencil

# chi-square critical values at p = 1e-4 for 1..5 degrees of freedom
CHI2_CRIT = {1: 15.14, 2: 18.42, 3: 21.11, 4: 23.51, 5: 25.74}


def chi2(observed, expected):
    observed = np.asarray(observed, dtype=float)
    expected = np.asarray(expected, dtype=float)
    return float(((observed - expected) ** 2 / expected).sum())


GENERATORS = {
    "random_walk": lambda: RandomWalk(num_objects=3),
    "compositional": lambda: CompositionalRandomWalk(num_objects=3, max_moves=4),
    "ood": lambda: OODRandomWalk(num_objects=3),
}


@pytest.fixture(params=sorted(GENERATORS))
def kind(request):
    return request.param


def generate(kind, n=16, t=8, seed=0):
    return GENERATORS[kind]().generate(n, t, seed)


def legal_bounds(batch):
    """(N, O, 2) lowest and highest admissible (x, y) of every object's position."""
    n, o = batch.attributes["shape"].shape
    lo = np.zeros((n, o, 2), dtype=np.int64)
    hi = np.zeros((n, o, 2), dtype=np.int64)
    size = batch.image_size
    for i in range(n):
        for k in range(o):
            st = object_stencil(SHAPES[batch.attributes["shape"][i, k]],
                                int(batch.attributes["size"][i, k]))
            lo[i, k] = [-st[:, 1].min(), -st[:, 0].min()]
            hi[i, k] = [size - 1 - st[:, 1].max(), size - 1 - st[:, 0].max()]
    return lo, hi


def reference_masks(batch, disc_formula=False):
    """Slow, independent painter: objects in index order, later ones on top."""
    n, t_len, o, _ = batch.positions.shape
    size = batch.image_size
    rows, cols = np.mgrid[0:size, 0:size]
    label = np.full((n, t_len, size, size), -1)
    for i in range(n):
        for k in range(o):
            shape = SHAPES[batch.attributes["shape"][i, k]]
            radius = int(batch.attributes["size"][i, k])
            st = object_stencil(shape, radius)
            for t in range(t_len):
                x, y = batch.positions[i, t, k].astype(int)
                if disc_formula:
                    assert shape == "ball"
                    cover = (cols - x) ** 2 + (rows - y) ** 2 <= radius**2
                else:
                    cover = np.zeros((size, size), dtype=bool)
                    cover[st[:, 0] + y, st[:, 1] + x] = True
                label[i, t][cover] = k
    return label[:, :, None] == np.arange(o)[:, None, None]


# ---------------------------------------------------------------------------------------
# Shapes, dtypes, value ranges
# ---------------------------------------------------------------------------------------
def test_fields_shapes_and_dtypes(kind):
    batch = generate(kind, n=5, t=6)
    slots = 4 if kind == "compositional" else 1
    assert isinstance(batch, VideoBatch)
    assert batch.frames.shape == (5, 6, 3, 32, 32) and batch.frames.dtype == np.float32
    assert batch.positions.shape == (5, 6, 3, 2) and batch.positions.dtype == np.float32
    assert batch.moves.shape == (5, 5, 3, slots) and batch.moves.dtype == np.int64
    assert batch.masks.shape == (5, 6, 3, 32, 32) and batch.masks.dtype == np.bool_
    assert batch.attributes["color"].shape == (5, 3, 3)
    assert batch.attributes["color"].dtype == np.float32
    assert batch.attributes["shape"].shape == (5, 3)
    assert batch.attributes["shape"].dtype == np.int64
    assert batch.attributes["size"].shape == (5, 3)
    assert batch.attributes["size"].dtype == np.int64
    assert (len(batch), batch.num_sequences, batch.seq_len) == (5, 5, 6)
    assert (batch.num_objects, batch.image_size, batch.max_moves) == (3, 32, slots)
    assert 0.0 <= batch.frames.min() and batch.frames.max() <= 1.0
    assert batch.moves.min() >= -1 and batch.moves.max() < len(MOVES)
    assert np.all(batch.positions == np.round(batch.positions))  # pixel centres
    cfg = json.loads(json.dumps(batch.config))
    assert cfg["name"] == kind and cfg["seed"] == 0
    assert cfg["num_sequences"] == 5 and cfg["seq_len"] == 6
    assert cfg["class"] == type(GENERATORS[kind]()).__name__


def test_move_constants():
    assert MOVES == ("up", "down", "left", "right")
    assert MOVE_VECTORS.dtype == np.int64
    np.testing.assert_array_equal(MOVE_VECTORS, [[0, -1], [0, 1], [-1, 0], [1, 0]])
    assert SHAPES[0] == "ball"


def test_masks_disjoint_union_is_nonblack_and_colours_match(kind):
    batch = generate(kind, n=24, t=8, seed=3)
    masks = batch.masks
    assert masks.sum(axis=2).max() <= 1  # disjoint
    nonblack = batch.frames.max(axis=2) > 0
    np.testing.assert_array_equal(masks.any(axis=2), nonblack)
    # every visible pixel has its object's colour
    colors = batch.attributes["color"]
    for k in range(batch.num_objects):
        pix = batch.frames.transpose(0, 1, 3, 4, 2)[masks[:, :, k]]  # (P, 3)
        seq = np.broadcast_to(np.arange(24)[:, None, None, None], masks[:, :, k].shape)
        np.testing.assert_array_equal(pix, colors[seq[masks[:, :, k]], k])


def test_rendering_matches_reference_painter_with_occlusion():
    # Small frames and two balls: overlaps and full occlusions happen often.
    gen = RandomWalk(num_objects=2, image_size=12, radius=3, step=3)
    batch = gen.generate(60, 10, seed=5)
    np.testing.assert_array_equal(batch.masks, reference_masks(batch, disc_formula=True))
    empty = ~batch.masks.any(axis=(-1, -2))  # (N, T, O) fully occluded objects
    assert empty[..., 0].any(), "expected some fully occluded objects in this setting"
    assert not empty[..., 1].any(), "the top object is never occluded"
    # a fully occluded ball sits exactly under the other one (same radius)
    n, t = np.nonzero(empty[..., 0])
    np.testing.assert_array_equal(batch.positions[n, t, 0], batch.positions[n, t, 1])


def test_ood_rendering_matches_reference_painter():
    batch = OODRandomWalk(num_objects=3, image_size=20).generate(20, 5, seed=2)
    np.testing.assert_array_equal(batch.masks, reference_masks(batch))


# ---------------------------------------------------------------------------------------
# Ground truth consistency
# ---------------------------------------------------------------------------------------
def test_position_is_centroid_of_unoccluded_mask(kind):
    batch = generate(kind, n=40, t=10, seed=1)
    area = batch.masks.sum(axis=(-1, -2))  # (N, T, O)
    full_area = np.array([
        [len(object_stencil(SHAPES[s], int(z))) for s, z in zip(sh, sz)]
        for sh, sz in zip(batch.attributes["shape"], batch.attributes["size"])
    ])[:, None, :]
    unoccluded = area == full_area
    assert unoccluded.mean() > 0.5  # the check below is not vacuous
    assert np.all(area <= full_area)
    rows, cols = np.mgrid[0 : batch.image_size, 0 : batch.image_size]
    m = batch.masks.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (m * cols).sum(axis=(-1, -2)) / area
        cy = (m * rows).sum(axis=(-1, -2)) / area
    err = np.abs(np.stack([cx, cy], axis=-1) - batch.positions)[unoccluded]
    assert err.max() <= 0.5
    if kind != "ood":  # balls are symmetric: exact
        assert err.max() == 0.0


@pytest.mark.parametrize("shape", SHAPES[1:])
@pytest.mark.parametrize("size", OOD_SIZES)
def test_single_ood_object_centroid_every_frame(shape, size):
    batch = OODRandomWalk(num_objects=1, shapes=[shape], sizes=[size]).generate(8, 10, seed=0)
    assert np.all(batch.attributes["shape"] == SHAPES.index(shape))
    area = batch.masks.sum(axis=(-1, -2))
    assert np.all(area == len(object_stencil(shape, size)))
    rows, cols = np.mgrid[0:32, 0:32]
    cx = (batch.masks * cols).sum(axis=(-1, -2)) / area
    cy = (batch.masks * rows).sum(axis=(-1, -2)) / area
    err = np.abs(np.stack([cx, cy], axis=-1) - batch.positions)
    assert err.max() < 0.5


def test_position_differences_match_moves(kind):
    gen = GENERATORS[kind]()
    batch = gen.generate(30, 12, seed=4)
    mv = batch.moves
    vec = np.where(mv[..., None] >= 0, MOVE_VECTORS[np.maximum(mv, 0)], 0).sum(axis=-2)
    diff = np.diff(batch.positions, axis=1)
    np.testing.assert_array_equal(diff, gen.step * vec)
    # padding is contiguous at the end, and every transition has at least one move
    valid = mv >= 0
    assert np.all(valid[..., 0])
    assert np.all(valid[..., :-1] | ~valid[..., 1:])


def test_objects_stay_fully_inside(kind):
    batch = generate(kind, n=40, t=15, seed=6)
    lo, hi = legal_bounds(batch)
    pos = batch.positions.astype(np.int64)
    assert np.all(pos >= lo[:, None]) and np.all(pos <= hi[:, None])


def test_same_seed_same_bytes_other_seed_differs(kind):
    a, b, c = (generate(kind, n=6, t=5, seed=s) for s in (11, 11, 12))
    for field in ("frames", "masks", "positions", "moves"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()
        assert getattr(a, field).tobytes() != getattr(c, field).tobytes(), field
    for key in a.attributes:
        np.testing.assert_array_equal(a.attributes[key], b.attributes[key])
    # a fresh generator object gives the same data too
    d = GENERATORS[kind]().generate(6, 5, seed=11)
    assert d.frames.tobytes() == a.frames.tobytes()


# ---------------------------------------------------------------------------------------
# Move statistics
# ---------------------------------------------------------------------------------------
def test_moves_uniform_overall_and_among_legal_moves():
    # Small frames so that the border rule is exercised often.
    gen = RandomWalk(num_objects=5, image_size=16, radius=1, step=2)
    batch = gen.generate(120, 36, seed=0)
    moves = batch.moves[..., 0]  # (N, T-1, O)
    assert moves.size > 20_000
    counts = np.bincount(moves.ravel(), minlength=4)
    # By the symmetry of the square every move has marginal probability 1/4.
    assert chi2(counts, np.full(4, moves.size / 4)) < CHI2_CRIT[3]
    assert np.all(np.abs(counts / moves.size - 0.25) < 0.02)

    # Per transition: the executed move is legal and uniform among the legal ones.
    lo, hi = legal_bounds(batch)
    pos = batch.positions[:, :-1].astype(np.int64)  # (N, T-1, O, 2)
    cand = pos[..., None, :] + gen.step * MOVE_VECTORS  # (N, T-1, O, 4, 2)
    legal = np.all((cand >= lo[:, None, :, None]) & (cand <= hi[:, None, :, None]), axis=-1)
    taken = np.take_along_axis(legal, moves[..., None], axis=-1)[..., 0]
    assert taken.all()
    n_legal = legal.sum(axis=-1)
    assert n_legal.min() >= 2
    border = n_legal < 4
    assert border.mean() > 0.2  # the border rule is exercised
    for sel in (border, ~border):
        observed = np.bincount(moves[sel], minlength=4)
        expected = (legal[sel] / n_legal[sel][:, None]).sum(axis=0)
        assert chi2(observed, expected) < CHI2_CRIT[3]


def test_compositional_number_of_moves():
    gen = CompositionalRandomWalk(num_objects=3, image_size=32, max_moves=5, min_moves=2)
    batch = gen.generate(60, 12, seed=0)
    n_moves = (batch.moves >= 0).sum(axis=-1)
    assert n_moves.min() == 2 and n_moves.max() == 5
    assert set(np.unique(n_moves)) == {2, 3, 4, 5}


def test_compositional_uniform_away_from_borders():
    # Far from every border all compositions are legal: n and atomic moves are uniform.
    gen = CompositionalRandomWalk(num_objects=4, image_size=64, radius=1, step=1, max_moves=5)
    batch = gen.generate(80, 20, seed=1)
    pos = batch.positions[:, :-1]
    margin = 1 + 5  # radius + max_moves * step
    inner = np.all((pos >= margin) & (pos <= 63 - margin), axis=-1)
    assert inner.sum() > 3000
    n_moves = (batch.moves >= 0).sum(axis=-1)[inner]
    counts = np.bincount(n_moves, minlength=6)[1:]
    assert chi2(counts, np.full(5, n_moves.size / 5)) < CHI2_CRIT[4]
    atomic = batch.moves[inner]
    atomic = atomic[atomic >= 0]
    assert chi2(np.bincount(atomic, minlength=4), np.full(4, atomic.size / 4)) < CHI2_CRIT[3]


# ---------------------------------------------------------------------------------------
# Attributes
# ---------------------------------------------------------------------------------------
def test_training_attributes():
    batch = RandomWalk(num_objects=4).generate(50, 2, seed=0)
    colors = batch.attributes["color"]
    assert np.all(batch.attributes["shape"] == 0)
    assert np.all(batch.attributes["size"] == TRAIN_RADIUS)
    # every colour is from the palette, distinct within a sequence, and all get used
    idx = np.argmax(np.all(colors[:, :, None] == TRAIN_COLORS[None, None], axis=-1), axis=-1)
    np.testing.assert_array_equal(TRAIN_COLORS[idx], colors)
    assert all(len(set(row)) == 4 for row in idx)
    assert set(idx.ravel()) == set(range(len(TRAIN_COLORS)))
    assert TRAIN_COLORS.max(axis=1).min() >= 0.5  # clearly non-black


def test_ood_attributes_never_overlap_training():
    batch = OODRandomWalk(num_objects=3).generate(80, 2, seed=0)
    colors = batch.attributes["color"].reshape(-1, 3)
    dist = np.abs(colors[:, None] - TRAIN_COLORS[None]).max(axis=-1)
    assert dist.min() >= 0.25
    palette_dist = np.abs(OOD_COLORS[:, None] - TRAIN_COLORS[None]).max(axis=-1)
    assert palette_dist.min() >= 0.25
    assert OOD_COLORS.max(axis=1).min() >= 0.25  # visible on black
    assert not np.isin(batch.attributes["shape"], [SHAPES.index("ball")]).any()
    assert not np.isin(batch.attributes["size"], [TRAIN_RADIUS]).any()
    # every OOD shape and size is drawn, colours distinct within a sequence
    assert set(np.unique(batch.attributes["shape"])) == set(range(1, len(SHAPES)))
    assert set(np.unique(batch.attributes["size"])) == set(OOD_SIZES)
    per_seq = batch.attributes["color"]
    assert all(len({tuple(c) for c in row}) == 3 for row in per_seq)
    # attributes vary across sequences but not over time (drawn once per sequence)
    assert len({tuple(r) for r in batch.attributes["shape"]}) > 10


def test_ood_shapes_differ_from_balls():
    for shape in SHAPES[1:]:
        for size in OOD_SIZES:
            for radius in (2, 3, 4):
                a = {tuple(p) for p in object_stencil(shape, size)}
                b = {tuple(p) for p in object_stencil("ball", radius)}
                assert a != b, (shape, size, radius)


# ---------------------------------------------------------------------------------------
# VideoBatch API
# ---------------------------------------------------------------------------------------
def test_videobatch_indexing_and_to_torch():
    batch = CompositionalRandomWalk(num_objects=2, image_size=20, max_moves=3).generate(
        6, 4, seed=0
    )
    sub = batch[1:4]
    assert len(sub) == 3
    np.testing.assert_array_equal(sub.frames, batch.frames[1:4])
    one = batch[-1]
    assert len(one) == 1
    np.testing.assert_array_equal(one.moves[0], batch.moves[5])
    picked = batch[np.array([5, 0])]
    np.testing.assert_array_equal(picked.positions, batch.positions[[5, 0]])
    np.testing.assert_array_equal(picked.attributes["color"], batch.attributes["color"][[5, 0]])
    assert len(batch[np.arange(6) % 2 == 0]) == 3
    assert picked.config == batch.config and picked.config is not batch.config
    with pytest.raises(IndexError):
        batch[6]

    t = batch.to_torch()
    assert t["frames"].dtype == torch.float32 and t["frames"].shape == (6, 4, 3, 20, 20)
    assert t["positions"].dtype == torch.float32 and t["positions"].shape == (6, 4, 2, 2)
    assert t["moves"].dtype == torch.long and t["moves"].shape == (6, 3, 2, 3)
    assert t["masks"].dtype == torch.bool and t["masks"].shape == (6, 4, 2, 20, 20)
    assert t["color"].dtype == torch.float32 and t["shape"].dtype == torch.long
    assert t["size"].dtype == torch.long
    np.testing.assert_array_equal(t["frames"].numpy(), batch.frames)
    assert repr(batch).startswith("VideoBatch(name='compositional'")


def test_videobatch_rejects_inconsistent_arrays():
    batch = RandomWalk().generate(2, 3, seed=0)
    fields = dict(frames=batch.frames, positions=batch.positions, moves=batch.moves,
                  masks=batch.masks, attributes=batch.attributes, config=batch.config)
    with pytest.raises(ValueError, match="moves"):
        VideoBatch(**{**fields, "moves": batch.moves[:, :1]})
    with pytest.raises(ValueError, match="frames"):
        VideoBatch(**{**fields, "frames": batch.frames.astype(np.float64)})
    with pytest.raises(ValueError, match="masks"):
        VideoBatch(**{**fields, "masks": batch.masks.astype(np.uint8)})


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------
# Argument checking
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: RandomWalk(num_objects=0), "num_objects"),
        (lambda: RandomWalk(num_objects=-2), "num_objects"),
        (lambda: RandomWalk(image_size=0), "image_size"),
        (lambda: RandomWalk(radius=0), "radius"),
        (lambda: RandomWalk(step=0), "step"),
        (lambda: RandomWalk(image_size=11, radius=3, step=3), "image_size"),
        (lambda: RandomWalk(num_objects=len(TRAIN_COLORS) + 1), "num_objects"),
        (lambda: RandomWalk(num_objects=3, colors=[[1, 0, 0], [0, 1, 0]]), "colors"),
        (lambda: RandomWalk(num_objects=2, colors=[[1, 0, 0], [1, 0, 0]]), "colors"),
        (lambda: RandomWalk(num_objects=1, colors=[[0.05, 0.05, 0.05]]), "colors"),
        (lambda: RandomWalk(num_objects=1, colors=[[2.0, 0, 0]]), "colors"),
        (lambda: CompositionalRandomWalk(max_moves=0), "max_moves"),
        (lambda: CompositionalRandomWalk(min_moves=0), "min_moves"),
        (lambda: CompositionalRandomWalk(min_moves=4, max_moves=2), "min_moves"),
        (lambda: OODRandomWalk(sizes=[3]), "sizes"),
        (lambda: OODRandomWalk(sizes=[]), "sizes"),
        (lambda: OODRandomWalk(shapes=["ball"]), "shapes"),
        (lambda: OODRandomWalk(shapes=["hexagon"]), "shapes"),
        (lambda: OODRandomWalk(colors=[[1.0, 0.0, 0.1]], num_objects=1), "colors"),
        (lambda: OODRandomWalk(num_objects=len(OOD_COLORS) + 1), "num_objects"),
        (lambda: OODRandomWalk(image_size=12, sizes=[4]), "image_size"),
        (lambda: RandomWalk().generate(0, 5, seed=0), "num_sequences"),
        (lambda: RandomWalk().generate(4, 1, seed=0), "at least 2 frames"),
        (lambda: RandomWalk().generate(4, 0, seed=0), "seq_len"),
        (lambda: RandomWalk().generate(4, 5, seed=-1), "seed"),
        (lambda: make_dataset("pong"), "random_walk, compositional, ood"),
    ],
)
def test_invalid_arguments_raise_value_error(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: RandomWalk(num_objects=2.5), "num_objects"),
        (lambda: RandomWalk(image_size="32"), "image_size"),
        (lambda: RandomWalk(radius=3.0), "radius"),
        (lambda: RandomWalk(step=True), "step"),
        (lambda: CompositionalRandomWalk(max_moves=None), "max_moves"),
        (lambda: RandomWalk().generate(4.0, 5, seed=0), "num_sequences"),
        (lambda: RandomWalk().generate(4, 5, seed=1.5), "seed"),
        (lambda: RandomWalk().generate(4, 5, seed=None), "seed"),
        (lambda: RandomWalk().generate(4, 5, seed="0"), "seed"),
    ],
)
def test_wrong_types_raise(factory, match):
    with pytest.raises((TypeError, ValueError), match=match):
        factory()


def test_numpy_integers_are_accepted():
    batch = RandomWalk(num_objects=np.int64(2)).generate(np.int32(2), np.int64(3), np.uint8(7))
    assert batch.positions.shape == (2, 3, 2, 2) and batch.config["seed"] == 7


def test_make_dataset():
    assert type(make_dataset("random_walk")) is RandomWalk
    gen = make_dataset("compositional", max_moves=3, num_objects=2)
    assert type(gen) is CompositionalRandomWalk and gen.config["max_moves"] == 3
    assert type(make_dataset("ood", sizes=[2])) is OODRandomWalk
    for name in ("random_walk", "compositional", "ood"):
        gen = make_dataset(name)
        assert gen.name == name and gen.config["name"] == name
        json.dumps(gen.config)


@pytest.mark.parametrize("background", [(0.25, 0.25, 0.25), (0.0, 0.0, 0.3), "texture"])
@pytest.mark.parametrize("make", [
    lambda bg: RandomWalk(num_objects=3, background=bg),
    lambda bg: CompositionalRandomWalk(num_objects=3, max_moves=3, background=bg),
    lambda bg: OODRandomWalk(num_objects=3, background=bg),
])
def test_backgrounds_keep_the_ground_truth(make, background):
    gen = make(background)
    batch = gen.generate(6, 4, seed=3)
    not_background = np.any(batch.frames != gen.background[None, None], axis=2)
    assert np.array_equal(batch.masks.any(axis=2), not_background)      # masks = the objects
    assert np.array_equal(batch.frames, make(background).generate(6, 4, seed=3).frames)
    assert batch.config["background"] == (
        background if isinstance(background, str) else list(background))
    if background == "texture":                     # static: the same in every frame and video
        bg = batch.frames[~batch.masks.any(axis=2)[:, :, None].repeat(3, 2)]
        assert bg.min() >= 0 and bg.max() <= 0.25 and len(np.unique(bg)) > 10
        other = make(background)
        other_seed = type(gen)(**{**_kwargs(gen), "texture_seed": 1})
        assert np.array_equal(other.background, gen.background)
        assert not np.array_equal(other_seed.background, gen.background)


def _kwargs(gen):
    return {"num_objects": gen.num_objects, "background": "texture"}


@pytest.mark.parametrize("background, match", [
    ("plaid", "background must be"),
    ((1.2, 0, 0), "background must be an RGB triple"),
    ((0.5, 0.5), "background must be an RGB triple"),
    ((1.0, 0.0, 0.0), "must differ from every background pixel"),    # red balls on red
])
def test_bad_backgrounds_are_named(background, match):
    with pytest.raises(ValueError, match=match):
        RandomWalk(background=background)


def test_video_batch_visible_is_whether_an_object_has_pixels():
    from pyro_vim.data import RandomWalk
    batch = RandomWalk().generate(3, 4, seed=5)
    vis = batch.visible
    assert vis.shape == (3, 4, batch.num_objects) and vis.dtype == bool
    np.testing.assert_array_equal(vis, batch.masks.sum(axis=(-2, -1)) > 0)
