"""Worker of tests/test_distributed.py, launched by torchrun: one deterministic training step.

Every sample site takes its mean (``UseMeans``), so one step's update is a deterministic function
of the data and the parameters; the optimiser is plain SGD (Adam's first step is sign(g), which
float rounding can flip for gradients near 0).  Rank 0 writes the parameters after the step.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim.distributed import exit_process, shutdown  # noqa: E402
from pyro_vim.handlers import UseMeans  # noqa: E402
from pyro_vim.model import VIM  # noqa: E402
from pyro_vim.train import Trainer  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402


def deterministic_trainer(batch_size, distributed=None):
    config = tiny_config(batch_size=batch_size, pretrain_steps=0, warmup_steps=0, eval_every=0)
    trainer = Trainer(config, progress=False, distributed=distributed, tensorboard=False)
    vim = trainer.model

    def programs(step):                  # this model only: every site at its mean
        model, guide = VIM.programs(vim, step)
        return UseMeans()(model), UseMeans()(guide)

    vim.programs = programs
    trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=1e-5)
    return trainer


if __name__ == "__main__":
    torch.set_num_threads(1)
    trainer = deterministic_trainer(int(sys.argv[2]))
    record = trainer.train_step()
    if trainer.dist.is_main:
        torch.save({"params": {k: v.detach() for k, v in trainer.model.state_dict().items()},
                    "loss": record["loss"], "world": trainer.dist.world_size}, sys.argv[1])
    shutdown()
    exit_process(0)
