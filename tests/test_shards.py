"""Training from a directory of .npz shards: layouts, held-out split, the DistributedSampler's
per-epoch order, resumable batches, clear errors, and the trainer end to end."""
import json
import os

import numpy as np
import pytest
import torch

from pyro_vim.config import VIMConfig
from pyro_vim.data import RandomWalk, VideoBatch, save_npz
from pyro_vim.data.shards import FramesBatch, ShardData, ShardDataset, write_frames_shard
from pyro_vim.train import Trainer

from .helpers import tiny_config


def frames(n=12, t=6, seed=0, size=16):
    return RandomWalk(image_size=size).generate(n, t, seed).frames


@pytest.fixture
def shard_dir(tmp_path):
    """Two frames-only shards in two layouts (uint8 channels-last, float channels-first)."""
    a, b = frames(10, seed=0), frames(6, seed=1)
    write_frames_shard(str(tmp_path / "a.npz"),
                       np.round(np.moveaxis(a, 2, -1) * 255).astype(np.uint8))
    write_frames_shard(str(tmp_path / "b.npz"), b)
    return tmp_path, np.concatenate([a, b])


def test_layouts_and_order_are_read_back(shard_dir):
    path, truth = shard_dir
    ds = ShardDataset(str(path))
    assert (len(ds), ds.seq_len, ds.image_size) == (16, 6, 16)
    assert torch.allclose(ds[3], torch.from_numpy(truth[3]), atol=1 / 255)   # uint8 shard
    assert torch.equal(ds[12], torch.from_numpy(truth[12]))                  # float shard
    assert torch.equal(ds[(12, 2, 3)], torch.from_numpy(truth[12, 2:5]))


def test_holdout_is_never_trained_on_and_epochs_cover_the_rest(shard_dir):
    path, truth = shard_dir
    data = ShardData(str(path), 16, holdout=4, seed=0)
    held = data.heldout(4, 6)
    assert isinstance(held, FramesBatch) and held.moves is None
    np.testing.assert_array_equal(held.frames, truth[12:16])
    # one epoch of 3 batches of 4: 12 distinct training sequences, none held out
    seen = []
    for step in range(3):
        batch = data.frames(step, 4, 6).numpy()
        for video in batch:
            seen.append(int(np.argmin(np.abs(truth - video).reshape(16, -1).max(1))))
    assert sorted(seen) == list(range(12))
    # the next epoch is reshuffled (set_epoch), and still avoids the held-out videos
    order1 = [data.frames(s, 4, 6)[:, 0].sum().item() for s in range(3)]
    order2 = [data.frames(s, 4, 6)[:, 0].sum().item() for s in range(3, 6)]
    assert sorted(order1) != order1 or order1 != order2


def test_batches_are_a_function_of_the_step(shard_dir):
    """A resumed run (a fresh source asked for step 5) reads what an uninterrupted one reads;
    two ranks read disjoint halves of each epoch."""
    path, _ = shard_dir
    running = ShardData(str(path), 16, holdout=4, seed=3)
    stream = [running.frames(s, 2, 4) for s in range(8)]
    fresh = ShardData(str(path), 16, holdout=4, seed=3)
    assert torch.equal(fresh.frames(5, 2, 4), stream[5])
    assert torch.equal(fresh.frames(6, 2, 4), stream[6])
    ranks = [ShardData(str(path), 16, holdout=4, seed=3) for _ in range(2)]
    firsts = [torch.cat([r.frames(s, 2, 6, rank=i, world=2) for s in range(3)])
              for i, r in enumerate(ranks)]
    sums = [set(f.sum((1, 2, 3, 4)).round(decimals=3).tolist()) for f in firsts]
    assert len(sums[0]) == 6 and len(sums[1]) == 6 and not sums[0] & sums[1]


def test_pyro_vim_dataset_shards_keep_their_ground_truth(tmp_path):
    batch = RandomWalk(image_size=16).generate(8, 5, 0)
    save_npz(batch, tmp_path / "x.npz")
    held = ShardData(str(tmp_path), 16, holdout=3).heldout(3, 4)
    assert isinstance(held, VideoBatch)
    np.testing.assert_array_equal(held.moves, batch.moves[5:8, :3])
    np.testing.assert_array_equal(held.positions, batch.positions[5:8, :4])


def test_bad_shards_are_refused_by_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ShardDataset(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="holds no .npz shards"):
        ShardDataset(str(tmp_path))
    np.savez(tmp_path / "bad.npz", video=np.zeros((2, 3, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="bad.npz.*no 'frames' array"):
        ShardDataset(str(tmp_path))
    os.unlink(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="must lie in \\[0, 1\\]"):
        write_frames_shard(str(tmp_path / "hot.npz"), np.full((2, 3, 3, 8, 8), 2.0, np.float32))
    assert not os.path.exists(tmp_path / "hot.npz")      # nothing half-written
    write_frames_shard(str(tmp_path / "a.npz"), np.zeros((2, 3, 3, 8, 8), np.float32))
    write_frames_shard(str(tmp_path / "b.npz"), np.zeros((2, 3, 3, 16, 16), np.float32))
    with pytest.raises(ValueError, match="b.npz.*16x16.*8x8"):
        ShardDataset(str(tmp_path))
    os.unlink(tmp_path / "b.npz")
    with pytest.raises(ValueError, match="image_size is 16: set image_size=8"):
        ShardData(str(tmp_path), 16, holdout=0)
    with pytest.raises(ValueError, match="data.path"):
        tiny_config(data={"name": "npz"}).validate()
    data = ShardData(str(tmp_path), 8, holdout=0)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        data.frames(0, 4, 2)
    with pytest.raises(ValueError, match="3 frames: lower seq_len_max"):
        data.loader(0, 1, 5)


def test_trainer_learns_from_frames_only_shards(shard_dir, tmp_path):
    path, _ = shard_dir
    config = tiny_config(data={"name": "npz", "path": str(path)}, eval_sequences=4,
                         seq_len_start=3, seq_len_max=4, pretrain_steps=2, steps=5)
    trainer = Trainer(config, str(tmp_path / "run"), progress=False)
    assert isinstance(trainer.data, ShardData)
    assert trainer.batch(0).shape == (8, 1, 3, 16, 16)          # pre-training: single frames
    assert trainer.batch(3).shape[:2] == (4, 3)
    trainer.run(5)
    report = trainer.evaluate()
    assert report["accuracy"] is None and np.isfinite(report["recon_mse"])
    assert len(report["module_usage"]) == config.num_modules
    with open(tmp_path / "run" / "log.jsonl") as fh:
        records = [json.loads(line) for line in fh]
    assert records and all(np.isfinite(r["loss"]) for r in records if "loss" in r)
    # the config round-trips with its data path, so a resume reads the same shards
    trainer.close()
    again = Trainer(config, str(tmp_path / "run"), progress=False, resume=True)
    try:
        assert again.step == 5 and again.config.data.path == str(path)
        assert torch.equal(again.batch(5), trainer.batch(5))
    finally:
        again.close()


@pytest.mark.parametrize("experiment", ["random_walk", "vim2_compositions", "gswm"])
def test_the_runner_refuses_recorded_videos_where_it_needs_ground_truth(shard_dir, tmp_path,
                                                                         capsys, experiment):
    from pyro_vim import run as runner
    path, _ = shard_dir
    code = runner.main([experiment, "--out", str(tmp_path / "runs"), "--set",
                        "data.name=npz", f"data.path={path}"])
    err = capsys.readouterr().err
    assert code == 2 and "needs the ground truth" in err and "true" in err
    assert "python -m pyro_vim.train --data DIR" in err and "ablations" in err
    assert not (tmp_path / "runs").exists()            # nothing written


def test_the_runner_trains_and_scores_recorded_videos(shard_dir, tmp_path, capsys):
    """Experiments that need no ground truth run on frames-only shards: held-out
    reconstruction, KL and module usage, before and after learning."""
    from pyro_vim import run as runner
    path, _ = shard_dir
    out = tmp_path / "runs"
    tiny = ["image_size=32", "slot_dim=8", "encoder_channels=8", "decoder_channels=8",
            "module_hidden=16", "update_hidden=16", "keyquery_dim=8", "batch_size=4",
            "pretrain_steps=1", "steps=2", "seq_len_start=3", "seq_len_max=3",
            "eval_sequences=4", "eval_every=0"]
    (path / "dataset.json").write_text('{"object_size": 7, "step": 3}')   # radius 3, 3 px
    code = runner.main(["ablations", "--variants", "default", "--seeds", "0", "--out", str(out),
                        "--eval-sequences", "4", "--eval-seq-len", "4", "--set",
                        "data.name=npz", f"data.path={path}", *tiny[1:]])
    assert code == 0, capsys.readouterr().err
    run = out / "ablations" / "default" / "seed=0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["metrics"]["accuracy"] is None
    assert np.isfinite(metrics["metrics"]["recon_mse"]) and metrics["before_learning"]
    config = VIMConfig.from_saved(json.loads((run / "config.json").read_text()))
    # the frames' side, and the pixel scales of the declared sizes (the paper's defaults)
    assert config.image_size == 16
    assert (config.selection_scale, config.mask_extent, config.z_pos_scale,
            config.module_init_scale) == (1.0, 5.0, 0.5, 1.0)
    # an image size the shards do not have is refused before anything is written
    code = runner.main(["ablations", "--out", str(tmp_path / "other"), "--set",
                        "data.name=npz", f"data.path={path}", *tiny])
    assert code == 2 and "set image_size=16" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
