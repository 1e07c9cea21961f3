"""Writing files: the package's one atomic writer and its one JSON sanitiser.

:func:`atomic_write` writes bytes, text, or whatever a callback writes into a binary file object,
to a temporary file in the target's folder; flushes and fsyncs it; gives it the permissions of a
newly created file (``0o666 & ~umask``, where ``tempfile`` would leave it owner-only); moves it
over the target with ``os.replace``; and fsyncs the folder (best effort) so that the rename
survives a crash.  At every moment the target is the previous complete file or the new complete
one.  On any failure the temporary file is removed and the error propagates unchanged (a full
disk is an ``OSError`` with ``errno.ENOSPC``; :func:`pyro_vim.rundir.is_no_space` recognises it).

:func:`write_json` writes strict JSON that way (a NaN is a ``ValueError`` and nothing is written),
and :func:`json_ready` turns numpy and torch values into the plain numbers strict JSON holds,
with non-finite floats as ``None``.
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from typing import IO, Any, Callable, Optional, Union

import numpy as np

__all__ = ["atomic_write", "write_json", "json_ready", "umask"]

PathLike = Union[str, "os.PathLike[str]"]
#: What :func:`atomic_write` writes: bytes (or a buffer), text (UTF-8), or a callback that
#: writes into the binary file object it is given.
Payload = Union[bytes, bytearray, memoryview, str, Callable[[IO[bytes]], Any]]


def umask() -> int:
    """The process's file-creation mask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: PathLike, data: Payload) -> str:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns the path.

    The folder must exist.  ``data``: ``bytes``-like, ``str`` (written as UTF-8), or a callable
    ``data(f)`` that writes into the binary file object ``f`` (e.g.
    ``lambda f: np.savez_compressed(f, **arrays)``)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(folder)
    return path


def _fsync_dir(folder: str) -> None:
    """Make a rename durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: PathLike, obj: Any, indent: Optional[int] = 1) -> None:
    """Write strict JSON atomically (the folder is created): a reader sees the old file or the
    whole new one.  A non-finite float is a ``ValueError`` before anything is written; pass
    values through :func:`json_ready` first to write them as ``null``."""
    text = json.dumps(obj, indent=indent, allow_nan=False) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, text)


def json_ready(x: Any) -> Any:
    """``x`` as nested dicts (keys as ``str``) and lists of plain Python values: numpy and torch
    arrays become (nested) lists, their scalars Python numbers, tuples lists, and NaN and
    +-inf ``None``.  Other values (strings, None, ...) are returned as they are."""
    if isinstance(x, dict):
        return {str(k): json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_ready(v) for v in x]
    torch = sys.modules.get("torch")          # a tensor means torch is imported already
    if torch is not None and isinstance(x, torch.Tensor):
        return json_ready(x.detach().cpu().tolist())
    if isinstance(x, np.ndarray):
        return json_ready(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x
