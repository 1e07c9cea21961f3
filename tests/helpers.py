"""Tiny configurations, script loading and test data shared by the tests."""
import importlib.util
import os

import numpy as np

from pyro_vim.config import VIMConfig
from pyro_vim.data import RandomWalk
from pyro_vim.data.shards import write_frames_shard

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def load_script(folder: str, name: str):
    """Import ``REPO/folder/name.py`` as a module (examples and benchmarks are scripts)."""
    path = os.path.join(REPO, folder, f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(**overrides) -> VIMConfig:
    base = dict(image_size=16, slot_dim=8, encoder_channels=8, decoder_channels=8,
                module_hidden=16, update_hidden=16, keyquery_dim=8, num_slots=4, num_modules=4,
                num_objects=3, batch_size=4, pretrain_steps=2, steps=4, warmup_steps=1,
                seq_len_start=3, seq_len_max=3, eval_every=2, eval_sequences=4, eval_seq_len=3)
    base.update(overrides)
    return VIMConfig(**base)


def v1_dict(config: VIMConfig) -> dict:
    """``config`` as a version-1 file held it (before 2026-12-07): one flat dict, no version,
    the data section nested, the tracking policy and merge step as the flags of that time."""
    flat = {k: v for k, v in config.flat_dict().items() if not k.startswith("data.")}
    d = {key.rpartition(".")[2]: value for key, value in flat.items()}
    d.pop("version"), d.pop("tracking"), d.pop("merge")
    if config.tracking == "paper":
        d["hold_hidden"] = d["reseed"] = False
    if config.merge == "none":
        d["merge_every"] = 0
    d["plan_lookahead"] = False
    d["data"] = config.to_dict()["data"]
    return d


def make_shards(folder, radius=3, step=3, size=16, videos=12, frames=5, objects=2, **kwargs):
    """Frames-only uint8 shards (two files) of Random Walk balls: sizes known exactly."""
    batch = RandomWalk(image_size=size, num_objects=objects, radius=radius, step=step,
                       **kwargs).generate(videos, frames, 0)
    video = np.round(batch.frames * 255).astype(np.uint8)
    half = videos // 2
    write_frames_shard(os.path.join(folder, "part-000.npz"), video[:half])
    write_frames_shard(os.path.join(folder, "part-001.npz"), video[half:])
    return str(folder)
