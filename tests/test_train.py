import json

import torch

from pyro_vim.config import VIMConfig
from pyro_vim.model import VIM
from pyro_vim.train import Trainer, eval_seed, train_seed

from .helpers import tiny_config


def test_trainer_runs_pretraining_then_dynamics_and_logs_terms(tmp_path):
    c = tiny_config(pretrain_steps=2, eval_every=2)
    trainer = Trainer(c, out_dir=str(tmp_path), device="cpu", progress=False)
    trainer.run(5)
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5]
    assert [x["phase"] for x in lines] == ["pretrain"] * 2 + ["dynamics"] * 3
    for rec in lines[2:]:
        for key in ("loss", "recon", "kl_z", "kl_r"):
            assert isinstance(rec[key], float)
    assert "eval" in lines[3] and 0.0 <= lines[3]["eval"]["accuracy"] <= 1.0
    vim = VIM.load(str(tmp_path / "checkpoint.pt"))
    assert isinstance(vim, VIM) and vim.config == c


def test_schedules():
    c = VIMConfig.preset("paper")
    assert c.num_slots == 4 and c.num_modules == 5
    assert c.seq_len_at(0) == 6 and c.seq_len_at(c.seq_len_every) == 8
    assert c.seq_len_at(10 ** 9) == 20
    cpu = VIMConfig.preset("cpu")
    assert cpu.z_kl_weight_at(0) == cpu.z_kl_weight_start
    assert cpu.z_kl_weight_at(10 ** 9) == cpu.z_kl_weight_end


def test_training_and_evaluation_seeds_are_disjoint():
    c = VIMConfig.preset("cpu")
    seeds = {train_seed(c, s) for s in range(100_000)}
    assert eval_seed(c) not in seeds


def test_loss_falls_on_fixed_length_training():
    torch.manual_seed(0)
    c = tiny_config(pretrain_steps=0, lr=3e-3, warmup_steps=1, eval_every=0)
    trainer = Trainer(c, device="cpu", progress=False)
    losses = []
    trainer.run(25, callback=lambda t, rec: losses.append(rec["loss"]))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
