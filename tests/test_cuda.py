"""The library on a CUDA device (skipped where there is none, as on CI): training steps, the
inference/prediction/transfer API and evaluation run there and agree with the CPU."""
import numpy as np
import pytest
import torch

from pyro_vim import VIM
from pyro_vim.evaluate import fidelity_metrics, identification
from pyro_vim.infer import counterfactual, predict, transfer
from pyro_vim.train import Trainer

from .helpers import tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_trainer_steps_on_cuda(tmp_path, precision):
    config = tiny_config()
    trainer = Trainer(config, out_dir=str(tmp_path), device="cuda", progress=False,
                      checkpoint_every=0, precision=precision)
    assert trainer.device.type == "cuda"
    trainer.run(config.pretrain_steps + config.steps)
    trainer.close()
    assert all(p.device.type == "cuda" for p in trainer.vim.parameters())
    loaded = VIM.load(str(tmp_path / "checkpoint.pt"))          # onto the CPU
    assert all(p.device.type == "cpu" for p in loaded.parameters())


def test_api_on_cuda_agrees_with_cpu():
    torch.manual_seed(0)
    config = tiny_config()
    cpu = VIM(config).eval()
    gpu = VIM(config).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu.cuda()
    batch = config.make_generator().generate(3, 4, 11)
    x = torch.from_numpy(batch.frames)
    a, b = cpu.infer(x), gpu.infer(x.cuda())
    assert torch.allclose(a["positions"], b["positions"].cpu(), atol=1e-3)
    pred = predict(gpu, x[:, :2].cuda(), horizon=2, num_samples=2)
    assert pred["frames"].shape[:2] == (6, 2) and pred["frames"].device.type == "cuda"
    out = counterfactual(gpu, x[:, :1].cuda(), np.zeros((2, config.num_slots), dtype=np.int64))
    assert torch.isfinite(out["positions"]).all()
    moved = transfer(gpu, x.cuda(), x[:, 0].cuda())
    assert moved["positions"].shape == (3, 3, config.num_slots, 2)
    rep_cpu, rep_gpu = identification(cpu, batch), identification(gpu, batch)
    assert rep_gpu["rule_module_accuracy"] == pytest.approx(rep_cpu["rule_module_accuracy"])
    fid = fidelity_metrics(gpu, batch, rep_gpu)
    assert "module_step_error_max" in fid
