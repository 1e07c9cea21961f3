"""One process per run directory; a full disk stops a run with a clear message, losing nothing."""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from pyro_vim import VIM
from pyro_vim.checkpoint import CheckpointWriteError, load_checkpoint, save_checkpoint
from pyro_vim.files import write_json
from pyro_vim.rundir import RunDirBusy, RunLock
from pyro_vim.train import Trainer

from .helpers import REPO, load_script, tiny_config


def test_a_second_lock_is_refused_and_released_locks_are_free(tmp_path):
    first = RunLock(tmp_path / "run").acquire()
    with pytest.raises(RunDirBusy, match=r"in use by another process \(pid \d+"):
        RunLock(tmp_path / "run").acquire()
    first.release()
    with RunLock(tmp_path / "run"):
        pass


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {REPO!r})
        from pyro_vim.rundir import RunLock
        lock = RunLock({str(tmp_path / "run")!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirBusy, match=f"pid {proc.pid}"):
            RunLock(tmp_path / "run").acquire()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdout.close()
    assert (tmp_path / "run" / ".lock").exists()          # left behind, but free
    with RunLock(tmp_path / "run"):
        pass


def test_two_trainings_into_one_folder(tmp_path):
    out = str(tmp_path / "run")
    first = Trainer(tiny_config(), out, progress=False, checkpoint_every=2)
    refused = []

    def second_starts(trainer, record):
        if trainer.step == 3 and not refused:
            other = Trainer(tiny_config(), out, progress=False)
            with pytest.raises(RunDirBusy, match="in use by another process"):
                other.run(6)
            with pytest.raises(RunDirBusy):
                Trainer(tiny_config(), out, progress=False, resume=True)
            refused.append(True)

    first.run(6, callback=second_starts)
    assert refused
    with open(os.path.join(out, "log.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == list(range(1, 7))   # once each
    assert load_checkpoint(os.path.join(out, "checkpoint.pt"))["step"] == 6
    Trainer(tiny_config(), out, progress=False, resume=True).run(7)   # free after the run


def test_the_training_script_refuses_a_busy_folder(tmp_path, capsys):
    example = load_script("examples", "train_random_walk")
    out = tmp_path / "run"
    args = ["--batch-size", "2", "--seq-len", "3", "--pretrain-steps", "1", "--steps", "2",
            "--no-progress", "--device", "cpu", "--out", str(out), "--set", "image_size=16",
            "slot_dim=8", "encoder_channels=8", "decoder_channels=8", "module_hidden=16",
            "update_hidden=16", "keyquery_dim=8", "eval_every=0"]
    with RunLock(out):
        with pytest.raises(SystemExit) as info:
            example.main(example.parse_args(args))
        assert info.value.code == 2
    assert "in use by another process" in capsys.readouterr().err
    assert not (out / "log.jsonl").exists() and not (out / "checkpoint.pt").exists()


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    vim = VIM(tiny_config())
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(str(path), vim, step=3)
    before = path.read_bytes()
    monkeypatch.setattr("pyro_vim.files.os.fsync", no_space)
    with pytest.raises(CheckpointWriteError) as info:
        save_checkpoint(str(path), vim, step=4)
    message = str(info.value)
    assert "no space left" in message and str(tmp_path) in message and "resume" in message
    assert "unexpected pos" not in message
    assert path.read_bytes() == before and load_checkpoint(str(path))["step"] == 3
    assert os.listdir(tmp_path) == ["checkpoint.pt"]          # no temporary file left


def test_a_full_disk_stops_training_with_a_clear_message(tmp_path, monkeypatch):
    out = tmp_path / "run"
    trainer = Trainer(tiny_config(), str(out), progress=False, checkpoint_every=2)
    real = os.fsync

    def full_after_step_2(fd):
        if trainer.step > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr("pyro_vim.files.os.fsync", full_after_step_2)
    with pytest.raises(CheckpointWriteError) as info:
        trainer.run(6)
    message = str(info.value)
    assert "no space left" in message and "last good checkpoint: step 2" in message
    assert "--resume" in message
    monkeypatch.setattr("pyro_vim.files.os.fsync", real)
    assert load_checkpoint(str(out / "checkpoint.pt"))["step"] == 2
    Trainer(tiny_config(), str(out), progress=False, resume=True).run(6)   # resumes cleanly


def test_write_json_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    write_json(str(path), {"a": 1})
    monkeypatch.setattr("pyro_vim.files.os.fsync", no_space)
    with pytest.raises(OSError):
        write_json(str(path), {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1} and os.listdir(tmp_path) == ["m.json"]
    with pytest.raises(ValueError):
        write_json(str(path), {"a": float("nan")})          # strict JSON
