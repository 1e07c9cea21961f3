"""The library on a CUDA device: training steps, the inference/prediction/transfer API and
evaluation run there and agree with the CPU.  The CUDA cases are skipped where there is no GPU
(as on CI); the same checks run on the CPU everywhere, so the test itself is exercised."""
import numpy as np
import pytest
import torch

from pyro_vim import VIM
from pyro_vim.evaluate import fidelity_metrics, identification
from pyro_vim.infer import counterfactual, predict, transfer
from pyro_vim.train import Trainer

from .helpers import tiny_config

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_trainer_steps_on_device(tmp_path, precision, device):
    config = tiny_config()
    trainer = Trainer(config, out_dir=str(tmp_path), device=device, progress=False,
                      checkpoint_every=0, precision=precision)
    assert trainer.device.type == device
    trainer.run(config.pretrain_steps + config.steps)
    trainer.close()
    assert all(p.device.type == device for p in trainer.vim.parameters())
    loaded = VIM.load(str(tmp_path / "checkpoint.pt"))          # onto the CPU
    assert all(p.device.type == "cpu" for p in loaded.parameters())


@pytest.mark.parametrize("device", DEVICES)
def test_api_on_device_agrees_with_cpu(device):
    torch.manual_seed(0)
    config = tiny_config()
    cpu = VIM(config).eval()
    gpu = VIM(config).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu.to(device)
    batch = config.make_generator().generate(3, 4, 11)
    x = torch.from_numpy(batch.frames)
    a, b = cpu.infer(x), gpu.infer(x.to(device))
    assert torch.allclose(a["positions"], b["positions"].cpu(), atol=1e-3)
    pred = predict(gpu, x[:, :2].to(device), horizon=2, num_samples=2)
    assert pred["frames"].shape[:3] == (2, 3, 2) and pred["frames"].device.type == device
    out = counterfactual(gpu, x[:, :1].to(device), np.zeros((2, config.num_slots), dtype=np.int64))
    assert torch.isfinite(out["positions"]).all()
    moved = transfer(gpu, x.to(device), x[:, 0].to(device))
    assert moved["positions"].shape == (3, 3, config.num_slots, 2)
    rep_cpu, rep_gpu = identification(cpu, batch), identification(gpu, batch)
    assert rep_gpu["rule_module_accuracy"] == pytest.approx(rep_cpu["rule_module_accuracy"])
    fid = fidelity_metrics(gpu, batch, rep_gpu)
    assert "module_step_error_max" in fid
