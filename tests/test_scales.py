"""Pixel-unit settings from the data's sizes (pyro_vim.data.scales): the rules, dataset.json,
and measuring object sizes and moves on frames (pyro_vim.data.measure)."""
import math
import os

import numpy as np
import pytest

from pyro_vim.config import VIMConfig
from pyro_vim.data import RandomWalk
from pyro_vim.data.measure import measure_objects, measure_shards
from pyro_vim.data.scales import DatasetJSONError, data_sizes, pixel_scales, read_dataset_json
from pyro_vim.data.shards import write_frames_shard

from .helpers import make_shards

SCALES = ("selection_scale", "mask_extent", "z_pos_scale", "module_init_scale")


# ------------------------------------------------------------------------------------ the rules
def test_the_random_walk_sizes_give_exactly_the_defaults():
    derived = pixel_scales(7, 3)
    assert derived == {"selection_scale": 1.0, "mask_extent": 5.0, "z_pos_scale": 0.5,
                       "module_init_scale": 1.0}
    default = VIMConfig()                      # the paper's balls: radius 3, 3 px moves
    assert derived["selection_scale"] == default.selection_scale_resolved
    assert all(derived[k] == getattr(default, k) for k in SCALES[1:])
    assert pixel_scales(14, 6) == {k: 2 * v for k, v in derived.items()}
    for bad in (0, -1, math.inf, math.nan, True, "3"):
        with pytest.raises(ValueError, match="step must be a positive"):
            pixel_scales(7, bad)


# ------------------------------------------------------------------------------ measurement
@pytest.mark.parametrize("radius, step, kwargs", [
    (3, 3, {}),                                       # the paper's data
    (2, 2, {"num_objects": 4}),
    (5, 4, {"background": "texture"}),                # a static textured background
    (1, 1, {"background": [0.5, 0.5, 0.5]}),
])
def test_measured_sizes_are_within_a_pixel(tmp_path, radius, step, kwargs):
    kwargs = {"objects": kwargs.pop("num_objects", 3), **kwargs}
    path = make_shards(tmp_path, radius, step, size=32, videos=16, frames=8, **kwargs)
    m = measure_shards(path)
    assert abs(m.object_size - (2 * radius + 1)) <= 1 and abs(m.step - step) <= 1, m
    assert m.videos == 16 and m.frames == 16 * 8 and m.objects > 50 and m.moves > 50


def test_each_video_may_have_its_own_background():
    videos = [RandomWalk(background="texture", texture_seed=i).generate(1, 8, i).frames
              for i in range(8)]
    m = measure_objects(np.concatenate(videos))
    assert (m.object_size, m.step) == (7.0, 3.0)


def test_a_failed_measurement_states_the_defaults_it_assumed(tmp_path):
    write_frames_shard(str(tmp_path / "blank.npz"), np.zeros((4, 3, 8, 8, 3), np.uint8))
    m = measure_shards(str(tmp_path))
    assert m.object_size is None and m.step is None and "no objects" in m.problem
    sizes = data_sizes(str(tmp_path))
    assert (sizes.object_size, sizes.step, sizes.source) == (7.0, 3.0, "default")
    assert "assumed the paper's Random Walk object_size 7 px and step 3 px" in sizes.detail
    assert "dataset.json" in sizes.detail
    with pytest.raises(ValueError, match="shape"):
        measure_objects(np.zeros((2, 3, 8, 8)))


# ----------------------------------------------------------------------------- dataset.json
BAD_DATASET_JSON = [
    ('{"step": 3}', "missing key 'object_size'"),
    ('{"object_size": 7}', "missing key 'step'"),
    ('{"object_size": -7, "step": 3}', "'object_size' must be a positive number"),
    ('{"object_size": 7, "step": 0}', "'step' must be a positive number"),
    ('{"object_size": "7", "step": 3}', "'object_size' must be a positive number"),
    ('{"object_size": 7, "step": true}', "'step' must be a positive number"),
    ('{"object_size": Infinity, "step": 3}', "'object_size' must be a positive number"),
    ('[7, 3]', "expected a JSON object"),
    ('{"object_size": 7,', "not readable JSON"),
]


@pytest.mark.parametrize("content, message", BAD_DATASET_JSON)
def test_a_bad_dataset_json_names_file_and_key(tmp_path, content, message):
    (tmp_path / "dataset.json").write_text(content)
    with pytest.raises(DatasetJSONError, match=message) as info:
        read_dataset_json(str(tmp_path))
    assert str(info.value).startswith(str(tmp_path / "dataset.json") + ": ")


def test_dataset_json_is_read_beside_the_shards(tmp_path):
    path = make_shards(tmp_path)
    assert read_dataset_json(path) is None
    (tmp_path / "dataset.json").write_text('{"object_size": 9.5, "step": 2, "fps": 30}')
    assert read_dataset_json(path) == {"object_size": 9.5, "step": 2.0}
    assert read_dataset_json(os.path.join(path, "part-000.npz"))["step"] == 2.0   # one file
    sizes = data_sizes(path)
    assert (sizes.object_size, sizes.step, sizes.source) == (9.5, 2.0, "dataset.json")
