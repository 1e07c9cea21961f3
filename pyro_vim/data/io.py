"""Saving and loading :class:`~pyro_vim.data.batch.VideoBatch` as ``.npz`` files.

File layout (a compressed NumPy archive, readable without pickling):

* ``frames`` (float32, stored exactly), ``positions``, ``moves``, ``masks``;
* ``attr_color``, ``attr_shape``, ``attr_size``;
* ``extra_<name>`` for every array of ``VideoBatch.extra`` (e.g. the bouncing balls'
  velocities, wall bounces and collisions);
* ``config``: the generator configuration as a JSON string;
* ``format`` (``"pyro-vim/video-batch"``) and ``format_version``: 1 for a batch without
  ``extra`` arrays (byte for byte what earlier versions wrote), 2 with them (so that a reader
  that does not know ``extra`` refuses the file by its version instead of its hash);
* ``sha256``: hex digest over the name, dtype, shape and bytes of every array above (the
  ``extra_`` ones last, in name order) and the config JSON, checked by :func:`load_npz`.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Dict, Union

import numpy as np

from pyro_vim.data.batch import VideoBatch
from pyro_vim.files import atomic_write

__all__ = ["save_npz", "load_npz", "FORMAT", "FORMAT_VERSION"]

FORMAT = "pyro-vim/video-batch"
#: The newest version written: 2 when a batch has ``extra`` arrays, else 1.
FORMAT_VERSION = 2
_VERSIONS = (1, 2)
_ARRAY_KEYS = ("frames", "positions", "moves", "masks", "attr_color", "attr_shape", "attr_size")
_EXTRA_PREFIX = "extra_"

PathLike = Union[str, "os.PathLike[str]"]


def _arrays_of(batch: VideoBatch) -> Dict[str, np.ndarray]:
    return {
        "frames": batch.frames,
        "positions": batch.positions,
        "moves": batch.moves,
        "masks": batch.masks,
        "attr_color": batch.attributes["color"],
        "attr_shape": batch.attributes["shape"],
        "attr_size": batch.attributes["size"],
        **{_EXTRA_PREFIX + key: value for key, value in sorted(batch.extra.items())},
    }


def _digest(arrays: Dict[str, np.ndarray], config_json: str) -> str:
    h = hashlib.sha256()
    extra = sorted(k for k in arrays if k.startswith(_EXTRA_PREFIX))
    for key in (*_ARRAY_KEYS, *extra):
        arr = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    h.update(config_json.encode())
    return h.hexdigest()


def _write_arrays(fileobj: Any, arrays: Dict[str, np.ndarray]) -> None:
    np.savez_compressed(fileobj, **arrays)


def save_npz(batch: VideoBatch, path: PathLike) -> Path:
    """Write ``batch`` to ``path`` (exactly that name; the folder must exist).

    The file is written with :func:`pyro_vim.files.atomic_write` (a temporary file in the same
    folder moved into place with :func:`os.replace`), so a failure never leaves a partial file
    (an existing file at ``path`` is untouched). Returns the path written.
    """
    if not isinstance(batch, VideoBatch):
        raise ValueError(f"save_npz expects a VideoBatch, got {type(batch).__name__}")
    path = Path(path)
    try:
        config_json = json.dumps(batch.config, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"batch.config is not JSON-serialisable: {exc}") from exc
    arrays = _arrays_of(batch)
    payload = dict(arrays)
    payload["config"] = np.array(config_json)
    payload["format"] = np.array(FORMAT)
    payload["format_version"] = np.array(2 if batch.extra else 1)
    payload["sha256"] = np.array(_digest(arrays, config_json))

    atomic_write(path, lambda f: _write_arrays(f, payload))
    return path


def load_npz(path: PathLike) -> VideoBatch:
    """Load a file written by :func:`save_npz`, verifying its content hash.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a pyro-vim dataset, or it is corrupted (hash mismatch).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such dataset file: {path}")
    try:
        with open(path, "rb") as fh:
            data = np.load(fh, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with data:
                contents = {key: data[key] for key in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{path} is not a pyro-vim dataset (.npz): {exc}") from exc

    missing = [k for k in (*_ARRAY_KEYS, "config", "format", "sha256") if k not in contents]
    if missing or str(contents.get("format", "")) != FORMAT:
        raise ValueError(f"{path} is not a pyro-vim dataset (missing {missing or ['format']})")
    version = int(contents.get("format_version", -1))
    if version not in _VERSIONS:
        raise ValueError(f"{path}: unsupported pyro-vim dataset format version {version}")
    config_json = str(contents["config"])
    extra = sorted(k for k in contents if k.startswith(_EXTRA_PREFIX))
    arrays = {key: contents[key] for key in (*_ARRAY_KEYS, *extra)}
    if _digest(arrays, config_json) != str(contents["sha256"]):
        raise ValueError(f"{path} is corrupted: content hash (sha256) mismatch")
    try:
        config = json.loads(config_json)
    except json.JSONDecodeError as exc:  # pragma: no cover - guarded by the hash
        raise ValueError(f"{path} is corrupted: bad config JSON") from exc
    return VideoBatch(
        frames=arrays["frames"],
        positions=arrays["positions"],
        moves=arrays["moves"],
        masks=arrays["masks"],
        attributes={
            "color": arrays["attr_color"],
            "shape": arrays["attr_shape"],
            "size": arrays["attr_size"],
        },
        config=config,
        extra={key[len(_EXTRA_PREFIX):]: arrays[key] for key in extra},
    )

