"""pyro_vim.files: the one atomic writer (permissions, no partial file) and json_ready."""
import errno
import json
import math
import os

import numpy as np
import pytest
import torch

from pyro_vim.files import atomic_write, json_ready, umask, write_json


def test_atomic_write_bytes_text_and_callback(tmp_path):
    path = tmp_path / "a.bin"
    assert atomic_write(path, b"\x00\x01") == str(path) and path.read_bytes() == b"\x00\x01"
    atomic_write(str(path), "é\n")                            # text as UTF-8, replacing the file
    assert path.read_bytes() == "é\n".encode("utf-8")
    atomic_write(path, memoryview(b"view"))
    assert path.read_bytes() == b"view"
    atomic_write(path, lambda f: np.save(f, np.arange(3)))
    assert np.load(path).tolist() == [0, 1, 2]
    assert os.listdir(tmp_path) == ["a.bin"]


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_atomic_write_gives_new_file_permissions(tmp_path, mask):
    old = os.umask(mask)
    try:
        assert umask() == mask and os.umask(mask) == mask      # umask() leaves it unchanged
        path = tmp_path / "f.json"
        write_json(path, {"a": 1})
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask
        with open(tmp_path / "plain", "w"):                    # what open() would have made
            pass
        assert os.stat(tmp_path / "plain").st_mode & 0o777 == 0o666 & ~mask
    finally:
        os.umask(old)


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.txt"
    atomic_write(path, "old")

    def half_then_fail(f):
        f.write(b"half of it")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as info:
        atomic_write(path, half_then_fail)
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(OSError):
        atomic_write(tmp_path / "new.txt", half_then_fail)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pyro_vim.files.os.fsync", no_space)   # the disk fills at the flush
    with pytest.raises(OSError):
        atomic_write(path, "new")
    monkeypatch.undo()
    with pytest.raises(KeyboardInterrupt):                     # not only errors: any exception
        atomic_write(path, lambda f: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["keep.txt"]


def test_atomic_write_needs_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "missing" / "f", b"x")
    assert os.listdir(tmp_path) == []


def test_write_json_is_strict_and_creates_the_folder(tmp_path):
    path = tmp_path / "sub" / "m.json"
    write_json(path, {"a": [1, 2.5]}, indent=None)
    assert path.read_text() == '{"a": [1, 2.5]}\n'
    with pytest.raises(ValueError):
        write_json(path, {"a": float("nan")})
    assert json.loads(path.read_text()) == {"a": [1, 2.5]} and os.listdir(path.parent) == ["m.json"]


def test_json_ready():
    value = {
        1: (np.float32(0.5), np.int64(3), np.bool_(True), float("nan"), -math.inf),
        "array": np.array([[1.0, np.nan], [np.inf, 2.0]]),
        "tensor": torch.tensor([1.5, float("nan")]),
        "scalar": torch.tensor(4),
        "nested": [{"x": np.float64(math.inf)}, None, "text", True, 7],
    }
    out = json_ready(value)
    assert out == {"1": [0.5, 3, True, None, None], "array": [[1.0, None], [None, 2.0]],
                   "tensor": [1.5, None], "scalar": 4,
                   "nested": [{"x": None}, None, "text", True, 7]}
    assert type(out["1"][1]) is int and type(out["1"][2]) is bool
    json.dumps(out, allow_nan=False)                          # strict JSON
    assert json_ready(2.0) == 2.0 and json_ready("s") == "s" and json_ready(None) is None
