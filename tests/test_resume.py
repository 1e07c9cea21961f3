"""Checkpoints are atomic, ``--resume`` continues exactly, the same seed gives the same run."""
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from pyro_vim import VIM
from pyro_vim.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from pyro_vim.train import Trainer, make_generator

from .helpers import tiny_config

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "train_random_walk.py")


def read_log(out):
    with open(os.path.join(out, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def config():
    """Tiny, with every schedule moving across the interruption at step 4: the lr warm-up,
    the z_kl_weight annealing and the length curriculum; evaluation every 3 dynamics steps."""
    return tiny_config(pretrain_steps=2, warmup_steps=3, z_kl_anneal_steps=5, seq_len_start=2,
                       seq_len_max=3, seq_len_increment=1, seq_len_every=3, eval_every=3)


def train(out, steps, resume=False, checkpoint_every=2, then=None):
    """Run to ``steps``; returns the trainer and the losses of the steps it ran."""
    losses = []

    def callback(trainer, record):
        losses.append(record["loss"])
        if then:
            then(trainer, record)

    trainer = Trainer(config(), str(out), device="cpu", progress=False, resume=resume,
                      checkpoint_every=checkpoint_every)
    trainer.run(steps, callback=callback)
    return trainer, losses


def assert_same_state(a: Trainer, b: Trainer):
    for (name, x), y in zip(a.vim.state_dict().items(), b.vim.state_dict().values()):
        assert torch.equal(x, y), name
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        for key in sa[k]:
            assert torch.equal(sa[k][key], sb[k][key]), (k, key)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted reference: 8 steps in one go."""
    out = tmp_path_factory.mktemp("straight")
    trainer, losses = train(out, 8)
    return trainer, losses, read_log(out)


def test_resume_after_a_clean_stop_equals_an_uninterrupted_run(tmp_path, straight):
    ref, ref_losses, ref_log = straight
    _, first = train(tmp_path, 4)            # stops (and evaluates, unlike the reference) at 4
    resumed, second = train(tmp_path, 8, resume=True)
    assert first + second == ref_losses                     # exactly, every float bit
    log = read_log(tmp_path)
    assert [r["step"] for r in log] == list(range(1, 9))
    for key in ("loss", "recon", "kl_z", "kl_r", "grad_norm", "lr", "z_kl_weight", "seq_len"):
        assert [r.get(key) for r in log] == [r.get(key) for r in ref_log], key
    assert [r["eval"] for r in log if "eval" in r and r["step"] != 4] == \
        [r["eval"] for r in ref_log if "eval" in r]
    assert_same_state(resumed, ref)


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, straight):
    ref, ref_losses, ref_log = straight

    def crash(trainer, record):
        if record["step"] == 7:
            raise KeyboardInterrupt                      # after step 7 was logged

    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, 8, checkpoint_every=3, then=crash)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 6
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"step": 8, "loss": 12')                   # and a half-written line
    resumed, losses = train(tmp_path, 8, resume=True, checkpoint_every=3)
    assert losses == ref_losses[6:]
    log = read_log(tmp_path)
    assert [r["step"] for r in log] == list(range(1, 9))
    assert [r["loss"] for r in log] == ref_losses
    assert_same_state(resumed, ref)


def test_a_fresh_run_into_an_old_folder_restarts_the_log(tmp_path):
    c = tiny_config(eval_every=0)
    Trainer(c, str(tmp_path), device="cpu", progress=False).run(3)
    Trainer(c, str(tmp_path), device="cpu", progress=False).run(1)
    assert [r["step"] for r in read_log(tmp_path)] == [1]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 1


def test_same_seed_same_data_bytes_and_first_50_losses():
    c = tiny_config(pretrain_steps=5, eval_every=0, batch_size=2)
    a, b = make_generator(c).generate(4, 5, 123), make_generator(c).generate(4, 5, 123)
    for key in ("frames", "positions", "moves", "masks"):
        assert getattr(a, key).tobytes() == getattr(b, key).tobytes()
    assert make_generator(c).generate(4, 5, 124).frames.tobytes() != a.frames.tobytes()
    runs = []
    for _ in range(2):
        trainer = Trainer(c, device="cpu", progress=False)
        batches = [trainer.batch(s).numpy().tobytes() for s in (0, 4, 5, 30)]
        losses = []
        torch.manual_seed(999)                # the Trainer seeds itself: this must not matter
        trainer = Trainer(c, device="cpu", progress=False)
        trainer.run(50, callback=lambda t, rec: losses.append(rec["loss"]))
        runs.append((batches, losses))
    assert runs[0][0] == runs[1][0]
    assert len(runs[0][1]) == 50 and runs[0][1] == runs[1][1]


def test_rng_state_round_trip():
    state = rng_state()
    draws = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)],
             np.random.randn())
    torch.rand(5), np.random.rand(7), random.random()
    set_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)],
             np.random.randn())
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1])
    assert draws[2:] == again[2:]


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    vim = VIM(tiny_config())
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, vim, step=1)
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, vim, step=2)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_kill_9_then_resume_completes_with_every_step_once(tmp_path):
    """The training script, killed with SIGKILL mid-run, resumes to the same losses."""
    out, steps = str(tmp_path / "run"), 24
    argv = [sys.executable, EXAMPLE, "--batch-size", "2", "--seq-len", "3", "--pretrain-steps",
            "2", "--steps", str(steps), "--checkpoint-every", "1", "--eval-every", "0",
            "--device", "cpu", "--no-progress", "--out", out]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log, deadline = os.path.join(out, "log.jsonl"), time.time() + 60
    try:
        while time.time() < deadline and proc.poll() is None:
            if os.path.exists(os.path.join(out, "checkpoint.pt")) and os.path.exists(log):
                with open(log) as f:
                    if len(f.readlines()) >= 3:
                        break
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]   # killed, not finished
    ckpt = load_checkpoint(os.path.join(out, "checkpoint.pt"))       # the last one is whole
    assert 1 <= ckpt["step"] < steps
    VIM.load(os.path.join(out, "checkpoint.pt"))

    done = subprocess.run(argv + ["--resume"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["step"] == steps
    records = read_log(out)
    assert [r["step"] for r in records] == list(range(1, steps + 1))

    # the same losses as an uninterrupted run of the same configuration
    spec = importlib.util.spec_from_file_location("train_random_walk", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    args = example.parse_args(argv[2:-2] + ["--out", str(tmp_path / "reference")])
    losses = []
    Trainer(example.build_config(args), None, device="cpu", progress=False).run(
        steps, callback=lambda t, rec: losses.append(rec["loss"]))
    assert [r["loss"] for r in records] == losses
