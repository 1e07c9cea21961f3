"""Bouncing balls (``data.name = "bouncing"``): physics, ground truth, seeding, saving, CLI."""
import numpy as np
import pytest

from pyro_vim.config import VIMConfig
from pyro_vim.data import (
    BOUNCING_EVENTS,
    TRAIN_COLORS,
    BouncingBalls,
    RandomWalk,
    VideoBatch,
    VideoDataset,
    load_npz,
    make_dataset,
    save_npz,
)
from pyro_vim.data.__main__ import main


@pytest.fixture(scope="module")
def gen():
    return BouncingBalls()


@pytest.fixture(scope="module")
def batch(gen):
    return gen.generate(64, 12, seed=3)


def _distances(pos):
    """(..., O, O) centre distances, +inf on the diagonal."""
    pos = np.asarray(pos, dtype=np.float64)
    d = np.sqrt(((pos[..., :, None, :] - pos[..., None, :, :]) ** 2).sum(-1))
    return d + np.diag(np.full(pos.shape[-2], np.inf))


def test_defaults_and_fields(gen, batch):
    assert (gen.num_objects, gen.image_size, gen.radius, gen.speed, gen.substeps) == \
        (3, 32, 3, 2.0, 10)
    n, t, o = 64, 12, 3
    assert batch.frames.shape == (n, t, 3, 32, 32) and batch.positions.dtype == np.float32
    assert batch.moves.shape == (n, t - 1, o, 1) and batch.moves.dtype == np.int64
    assert set(np.unique(batch.moves)) <= {0, 1, 2} and len(BOUNCING_EVENTS) == 3
    vel, walls, hits = (batch.extra[k] for k in ("velocities", "wall_bounces", "collisions"))
    assert vel.shape == (n, t, o, 2) and vel.dtype == np.float32
    assert walls.shape == (n, t - 1, o) and walls.dtype == np.bool_
    assert hits.shape == (n, t - 1, o, o) and hits.dtype == np.bool_
    assert np.array_equal(hits, hits.transpose(0, 1, 3, 2))
    assert not hits[..., np.arange(o), np.arange(o)].any()
    assert np.allclose(np.linalg.norm(vel[:, 0], axis=-1), 2.0, atol=1e-5)  # speed at start
    assert (batch.attributes["shape"] == 0).all() and (batch.attributes["size"] == 3).all()
    colors = batch.attributes["color"]
    assert all(len({tuple(c) for c in video}) == o for video in colors)  # distinct per video
    assert np.isin(colors.reshape(-1, 3), TRAIN_COLORS).all()
    assert batch.config["name"] == "bouncing" and batch.config["speed"] == 2.0


def test_labels_are_the_events(batch):
    walls = batch.extra["wall_bounces"]
    collided = batch.extra["collisions"].any(-1)
    expected = np.where(collided, 2, np.where(walls, 1, 0))
    assert np.array_equal(batch.moves[..., 0], expected)
    assert (batch.moves == 2).any() and (batch.moves == 1).any()   # both events occur


def test_energy_and_momentum_conserved(batch):
    vel = batch.extra["velocities"].astype(np.float64)
    energy = (vel ** 2).sum((-1, -2))                        # (N, T): sum of squared speeds
    assert np.allclose(energy, energy[:, :1], rtol=1e-5)
    # Transitions with a collision and no wall bounce conserve the total momentum.
    coll = batch.extra["collisions"].any((-1, -2)) & ~batch.extra["wall_bounces"].any(-1)
    assert coll.sum() > 5
    momentum = vel.sum(-2)                                    # (N, T, 2)
    change = np.abs(momentum[:, 1:] - momentum[:, :-1]).max(-1)
    assert change[coll].max() < 1e-5


def test_no_overlap_and_inside_the_frame(gen, batch):
    pos = batch.positions
    assert pos.min() >= gen.radius and pos.max() <= gen.image_size - 1 - gen.radius
    assert _distances(pos).min() >= gen.diameter - 1e-3
    assert batch.masks.sum(axis=2).max() <= 1                     # disjoint masks
    assert (batch.masks.sum(axis=(-1, -2)) >= 25).all()           # whole discs, all visible
    assert batch.visible.all()
    # crowded: 6 fast balls still only overlap by a fraction of a pixel at worst
    crowded = BouncingBalls(num_objects=6, speed=3).generate(16, 10, seed=0)
    assert _distances(crowded.positions).min() >= 7 - 0.5


def test_events_agree_with_velocity_changes(batch):
    vel = batch.extra["velocities"]
    walls, hits = batch.extra["wall_bounces"], batch.extra["collisions"].any(-1)
    before, after = vel[:, :-1], vel[:, 1:]
    free = ~walls & ~hits
    assert np.array_equal(before[free], after[free])            # free flight: unchanged
    only_wall = walls & ~hits
    assert np.array_equal(np.abs(before[only_wall]), np.abs(after[only_wall]))
    assert (np.sign(before[only_wall]) != np.sign(after[only_wall])).any(-1).all()
    assert (np.abs(before[hits] - after[hits]).max(-1) > 1e-4).all()
    # free flight: the position moves by the velocity
    pos = batch.positions.astype(np.float64)
    step = pos[:, 1:] - pos[:, :-1]
    assert np.abs(step[free] - before[free]).max() < 1e-4


def test_head_on_collision_exchanges_velocities(gen):
    pos = [[10.0, 15.0], [22.0, 15.0], [15.0, 26.0]]
    vel = [[2.0, 0.0], [-2.0, 0.0], [0.0, 0.0]]
    sim = gen.simulate(pos, vel, num_frames=6)
    v = sim["velocities"][0]
    assert np.allclose(v[-1, :2], [[-2.0, 0.0], [2.0, 0.0]])
    assert np.array_equal(v[-1, 2], [0.0, 0.0])
    # contact (centres 7 px apart) after 1.25 frames: during transition 1 (frames 1 -> 2)
    hits = sim["collisions"][0]
    assert hits[1, 0, 1] and hits[1, 1, 0] and hits.sum() == 2
    assert not sim["wall_bounces"].any()
    assert np.allclose(sim["positions"][0, 2, :2, 0], [11.0, 21.0])   # 12.5 - 1.5, 19.5 + 1.5
    # a moving ball hits a resting one head on: they swap velocities
    sim = gen.simulate([[10.0, 15.0], [20.0, 15.0]], [[1.5, 0.0], [0.0, 0.0]], 4)
    assert np.allclose(sim["velocities"][0, -1], [[0.0, 0.0], [1.5, 0.0]])


def test_wall_bounce_reflects_the_normal_component(gen):
    sim = gen.simulate([[26.5, 10.0]], [[1.0, 0.5]], num_frames=4)   # wall at x = 28
    v = sim["velocities"][0, :, 0]
    assert np.allclose(v[-1], [-1.0, 0.5])
    assert sim["wall_bounces"][0, :, 0].tolist() == [False, True, False]
    assert np.allclose(sim["positions"][0, 2, 0], [27.5, 11.0])       # 28 - (28.5 - 28)


def test_determinism_by_seed(gen):
    a, b, c = gen.generate(4, 5, 11), gen.generate(4, 5, 11), gen.generate(4, 5, 12)
    for name in ("frames", "positions", "moves", "masks"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
    for key in a.extra:
        assert a.extra[key].tobytes() == b.extra[key].tobytes()
    assert not np.array_equal(a.positions, c.positions)


def test_render_draws_what_generate_draws(gen, batch):
    t = 5
    frames = gen.render(batch.positions[:, t], batch.attributes["color"])
    assert np.array_equal(frames, batch.frames[:, t])
    # at whole-pixel positions the balls are Random Walk's balls
    whole = np.array([[[5.0, 5.0], [20.0, 12.0]]])
    assert np.array_equal(gen.render(whole), RandomWalk().render(whole))


def test_npz_round_trip_and_subsets(tmp_path, batch):
    small = batch[:3]
    again = load_npz(save_npz(small, tmp_path / "b.npz"))
    assert again.config == small.config and set(again.extra) == set(small.extra)
    for key in small.extra:
        assert again.extra[key].dtype == small.extra[key].dtype
        assert again.extra[key].tobytes() == small.extra[key].tobytes()
    assert again.frames.tobytes() == small.frames.tobytes()
    with np.load(tmp_path / "b.npz") as f:
        assert int(f["format_version"]) == 2 and "extra_collisions" in f.files
    head = small.head(4)
    assert head.extra["velocities"].shape[1] == 4 and head.extra["collisions"].shape[1] == 3
    item = VideoDataset(small)[0]
    assert tuple(item["collisions"].shape) == (11, 3, 3)
    assert set(small.to_torch()) >= {"velocities", "wall_bounces", "collisions"}


def test_tampered_extra_is_detected(tmp_path, batch):
    path = save_npz(batch[:2], tmp_path / "b.npz")
    with np.load(path) as f:
        contents = {k: f[k] for k in f.files}
    contents["extra_wall_bounces"] = ~contents["extra_wall_bounces"]
    np.savez_compressed(path, **contents)
    with pytest.raises(ValueError, match="corrupted"):
        load_npz(path)


def test_random_walk_files_keep_format_version_1(tmp_path):
    path = save_npz(RandomWalk().generate(2, 3, 0), tmp_path / "rw.npz")
    with np.load(path) as f:
        assert int(f["format_version"]) == 1 and not any(k.startswith("extra_") for k in f.files)


def test_extra_is_validated(batch):
    b = batch[:2]
    fields = dict(frames=b.frames, positions=b.positions, moves=b.moves, masks=b.masks,
                  attributes=b.attributes)
    with pytest.raises(ValueError, match="extra"):
        VideoBatch(**fields, extra={"velocities": b.extra["velocities"][:, :, 0, 0][:, :5]})
    with pytest.raises(ValueError, match="not a valid name"):
        VideoBatch(**fields, extra={"frames": b.extra["velocities"]})


def test_make_dataset_and_config():
    assert isinstance(make_dataset("bouncing", speed=2.5), BouncingBalls)
    config = VIMConfig(data={"name": "bouncing"})
    gen = config.make_generator()
    assert isinstance(gen, BouncingBalls) and (gen.speed, gen.radius) == (2.0, 3)
    assert config.selection_scale_resolved == pytest.approx(2.0 / 3)
    fast = VIMConfig(data={"name": "bouncing", "speed": 3, "radius": 2})
    assert fast.data.speed == 3.0 and fast.make_generator().radius == 2
    assert fast.selection_scale_resolved == pytest.approx(1.0)
    assert VIMConfig().selection_scale_resolved == pytest.approx(1.0)   # random walk: step / 3
    with pytest.raises(ValueError, match="data.speed must be a positive"):
        VIMConfig(data={"name": "bouncing", "speed": 0})
    with pytest.raises(ValueError, match="data.speed"):
        VIMConfig(data={"speed": True})


@pytest.mark.parametrize("kwargs, match", [
    (dict(speed=0), "speed must be a positive"),
    (dict(speed=-1.5), "speed must be a positive"),
    (dict(speed=float("inf")), "speed must be a positive"),
    (dict(num_objects=8, image_size=16), "num_objects=8 balls of radius 3 cannot be placed"),
    (dict(num_objects=1, image_size=7), "image_size=7 is too small"),
    (dict(speed=30), "speed=30 is too fast for substeps=10"),
    (dict(num_objects=9), "exceeds the 8 distinct colors"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BouncingBalls(**kwargs)


def test_bad_simulate_inputs(gen):
    with pytest.raises(ValueError, match="overlap"):
        gen.simulate([[10.0, 10.0], [14.0, 10.0]], [[0.0, 0.0], [0.0, 0.0]], 2)
    with pytest.raises(ValueError, match="inside the frame"):
        gen.simulate([[1.0, 10.0]], [[0.0, 0.0]], 2)
    with pytest.raises(TypeError, match="speed"):
        BouncingBalls(speed="fast")


def test_crowded_frames_fall_back_to_a_grid():
    gen = BouncingBalls(num_objects=4, image_size=16, radius=3)   # 2 x 2 grid at most
    b = gen.generate(8, 3, seed=0)
    assert _distances(b.positions[:, 0]).min() >= gen.diameter - 1e-4


def test_preview_cli(tmp_path, capsys):
    out = tmp_path / "bb"
    rc = main(["--dataset", "bouncing", "--num-sequences", "2", "--seq-len", "3",
               "--speed", "2.5", "--out", str(out)])
    assert rc == 0 and (out / "preview.png").is_file() and (out / "preview.gif").is_file()
    assert load_npz(out / "dataset.npz").config["speed"] == 2.5
    assert "velocities drawn as arrows" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--dataset", "random_walk", "--speed", "2", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit):
        main(["--dataset", "bouncing", "--speed", "0", "--out", str(tmp_path / "y")])
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_shards_keep_the_extra_ground_truth(tmp_path, batch):
    from pyro_vim.data.shards import ShardDataset

    save_npz(batch[:3], tmp_path / "a.npz")
    save_npz(batch[3:5], tmp_path / "b.npz")
    part = ShardDataset(str(tmp_path)).batch([1, 3], 4)
    assert part.extra["velocities"].shape == (2, 4, 3, 2)
    assert part.extra["collisions"].shape == (2, 3, 3, 3)
    assert np.array_equal(part.extra["wall_bounces"][1], batch.extra["wall_bounces"][3, :3])
