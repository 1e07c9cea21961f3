"""The model's pixel-unit settings from the sizes of the data's objects and moves.

Four settings are lengths in pixels, and their defaults were chosen on the paper's Random Walk
data (balls of radius 3, so 7 px across, moving 3 px per frame).  :func:`pixel_scales` scales
them with a dataset's ``object_size`` (px, an object's diameter or extent) and ``step`` (px, a
typical move between two frames), so that the Random Walk sizes give exactly the defaults.

Recorded videos (a directory of ``.npz`` shards, ``data.name = "npz"``) state their sizes in a
``dataset.json`` beside the shards::

    {"object_size": 7, "step": 3}

or, without one, the sizes are measured on the first videos (:mod:`pyro_vim.data.measure`);
when that fails, the Random Walk sizes are assumed.  :func:`data_sizes` says which.
:func:`apply_data_scales` writes the derived settings into a config (the checkpoint records
them), except those the user set.  ``python -m pyro_vim.train`` and ``python -m pyro_vim.run``
use it for npz data; the generators' settings are unchanged (their ``selection_scale`` of -1
already follows ``data.step``).
"""
from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

__all__ = ["pixel_scales", "SCALE_RULES", "PAPER_OBJECT_SIZE", "PAPER_STEP", "DATASET_JSON",
           "DatasetJSONError", "read_dataset_json", "DataSizes", "data_sizes",
           "apply_data_scales"]

#: The paper's Random Walk: balls of radius 3 (2 * 3 + 1 = 7 px across) moving 3 px a frame.
PAPER_OBJECT_SIZE = 7.0
PAPER_STEP = 3.0
#: The file beside the shards that declares their sizes.
DATASET_JSON = "dataset.json"
#: How each setting follows from the sizes (printed beside the derived values).
SCALE_RULES = {
    "selection_scale": "step / 3",
    "mask_extent": "5/7 x object_size",
    "z_pos_scale": "step / 6",
    "module_init_scale": "step / 3",
}


def _positive(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def pixel_scales(object_size: float, step: float) -> Dict[str, float]:
    """The pixel-unit settings for objects ``object_size`` px across moving ``step`` px per
    frame; ``pixel_scales(7, 3)`` (the paper's Random Walk) gives exactly the defaults
    ``selection_scale = 1``, ``mask_extent = 5``, ``z_pos_scale = 0.5`` and
    ``module_init_scale = 1``.

    * ``selection_scale = step / 3``: the distance scale by which the guide compares module
      candidates with the observation.  Two different moves put their candidates about a step
      apart; at a third of it they stay three scales apart whatever the step (at 2 px moves and
      a 1 px scale the relaxed choice mixed in the wrong candidates, BENCHMARKS.md).
    * ``mask_extent = 5/7 x object_size``: an object slot's initial mask extent, 5 px for the
      7 px balls it was chosen for, so it keeps the same share of the object.
    * ``z_pos_scale = step / 6``: the std of the prior on the position change the modules leave
      unexplained; well below the smallest move, so that the modules must explain the moves
      (half a pixel at 3 px moves).
    * ``module_init_scale = step / 3``: the initial modules' translations, near the identity
      and a fraction of a move (1 px at 3 px moves), so that none starts as a rule.
    """
    for name, value in (("object_size", object_size), ("step", step)):
        if not _positive(value):
            raise ValueError(f"pixel_scales: {name} must be a positive finite number of pixels, "
                             f"got {value!r}")
    object_size, step = float(object_size), float(step)
    return {"selection_scale": step / 3.0, "mask_extent": 5.0 * object_size / 7.0,
            "z_pos_scale": step / 6.0, "module_init_scale": step / 3.0}


class DatasetJSONError(ValueError):
    """A ``dataset.json`` that cannot be used; the message names the file and the key."""


def _json_path(path: str) -> str:
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    return os.path.join(folder, DATASET_JSON)


def read_dataset_json(path: str) -> Optional[Dict[str, float]]:
    """``{"object_size": ..., "step": ...}`` from the ``dataset.json`` beside the shards at
    ``path`` (a directory, or one shard file); ``None`` when there is none.  Both keys must be
    positive finite numbers (other keys are allowed); anything else raises
    :class:`DatasetJSONError` naming the file and the key."""
    file = _json_path(path)
    if not os.path.exists(file):
        return None
    try:
        with open(file, encoding="utf-8") as f:
            content = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetJSONError(f"{file}: not readable JSON ({e})") from None
    if not isinstance(content, dict):
        raise DatasetJSONError(f"{file}: expected a JSON object such as "
                               f'{{"object_size": 7, "step": 3}}, got {type(content).__name__}')
    sizes = {}
    for key, meaning in (("object_size", "an object's extent"), ("step", "a typical move "
                                                                        "between two frames")):
        if key not in content:
            raise DatasetJSONError(f"{file}: missing key {key!r} (pixels: {meaning})")
        if not _positive(content[key]):
            raise DatasetJSONError(f"{file}: {key!r} must be a positive number of pixels "
                                   f"({meaning}), got {content[key]!r}")
        sizes[key] = float(content[key])
    return sizes


@dataclass
class DataSizes:
    """A dataset's object size and step (px), and where they came from: ``source`` is
    ``"dataset.json"``, ``"measured"`` or ``"default"``; ``detail`` says more."""
    object_size: float
    step: float
    source: str
    detail: str

    def describe(self) -> str:
        return (f"object_size {self.object_size:g} px, step {self.step:g} px "
                f"({self.detail})")


def _fingerprint(path: str) -> Tuple:
    """What the cached sizes depend on: the shards' and dataset.json's names, sizes, times."""
    from .shards import shard_files
    files = list(shard_files(path)) + [_json_path(path)]
    stats = []
    for f in files:
        try:
            st = os.stat(f)
            stats.append((f, st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append((f, None, None))
    return (os.path.abspath(path), tuple(stats))


def data_sizes(path: str) -> DataSizes:
    """The object size and step of the shards at ``path``: from ``dataset.json`` when there is
    one, else measured on the first videos (:func:`pyro_vim.data.measure.measure_shards`),
    else (or for what could not be measured) the paper's 7 px and 3 px, said in ``detail``.
    Raises :class:`DatasetJSONError` for a bad ``dataset.json`` and ``ValueError`` /
    ``FileNotFoundError`` for unreadable shards.  Cached while the files are unchanged."""
    return _data_sizes(_fingerprint(path))


@functools.lru_cache(maxsize=16)
def _data_sizes(fingerprint: Tuple) -> DataSizes:
    path = fingerprint[0]
    declared = read_dataset_json(path)
    if declared is not None:
        return DataSizes(declared["object_size"], declared["step"], "dataset.json",
                         f"from {_json_path(path)}")
    from .measure import measure_shards
    m = measure_shards(path)
    if m.object_size is not None and m.step is not None:
        return DataSizes(m.object_size, m.step, "measured",
                         f"{m.describe()}; no {DATASET_JSON} beside the shards")
    assumed = []
    if m.object_size is None:
        assumed.append(f"object_size {PAPER_OBJECT_SIZE:g} px")
    if m.step is None:
        assumed.append(f"step {PAPER_STEP:g} px")
    return DataSizes(m.object_size if m.object_size is not None else PAPER_OBJECT_SIZE,
                     m.step if m.step is not None else PAPER_STEP,
                     "measured" if m.object_size is not None else "default",
                     f"no {DATASET_JSON}, and the measurement failed: {m.problem}; assumed "
                     f"the paper's Random Walk {' and '.join(assumed)} ({m.describe()}); write "
                     f"{_json_path(path)} to state them")


def apply_data_scales(config, explicit: Iterable[str] = (), previous: Optional[Dict] = None):
    """``(config, lines)``: for npz data (``config.data.name == "npz"``) ``config`` with
    ``image_size`` set to the shards' frame side and the :func:`pixel_scales` of
    :func:`data_sizes` written in, and the lines that say what was set and why.

    ``explicit`` names the settings the user set (flat names, e.g. ``"selection_scale"``, or
    dotted keys): they are kept.  ``previous`` (a checkpoint's config dict, when resuming)
    gives the values to keep for the others, so that a run resumes with what it trained with.
    Other data are returned unchanged, with no lines."""
    if config.data.name != "npz":
        return config, []
    explicit = {str(k).rsplit(".", 1)[-1] for k in explicit}
    from .shards import ShardDataset
    shards = ShardDataset(config.data.path, cache=1)
    changes, lines = {}, []
    if config.image_size != shards.image_size:
        if "image_size" in explicit:
            raise ValueError(f"data.path {config.data.path!r} holds {shards.image_size}x"
                             f"{shards.image_size} frames, but image_size is set to "
                             f"{config.image_size}: drop it or set image_size="
                             f"{shards.image_size}")
        changes["image_size"] = shards.image_size
        lines.append(f"image_size = {shards.image_size} (the shards' frame side)")
    sizes = data_sizes(config.data.path)
    lines.insert(0, f"data: {config.data.path} holds {len(shards)} videos of "
                    f"{shards.seq_len} frames or more; {sizes.describe()}")
    derived = pixel_scales(sizes.object_size, sizes.step)
    for key, value in derived.items():
        rule = SCALE_RULES[key]
        if key in explicit:
            lines.append(f"{key} = {getattr(config, key):.4g} px (set by you; the data's "
                         f"{rule} would be {value:.4g})")
        elif previous is not None and key in previous:
            changes[key] = previous[key]
            lines.append(f"{key} = {previous[key]:.4g} px (the checkpoint's; the data's "
                         f"{rule} would be {value:.4g})")
        else:
            changes[key] = value
            lines.append(f"{key} = {value:.4g} px ({rule})")
    return config.replace(**changes), lines

