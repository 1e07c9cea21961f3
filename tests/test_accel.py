"""bf16 autocast and torch.compile of the Pyro-free networks (pyro_vim.nn.accel)."""
import pytest
import torch

from pyro_vim import VIM
from pyro_vim.elbo import TermsELBO
from pyro_vim.nn.accel import accelerate, accelerate_networks
from pyro_vim.train import Trainer

from .helpers import tiny_config


def frames(n=2, t=3, s=16):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, t, 3, s, s, generator=g)


def test_bf16_keeps_parameters_and_returns_float32():
    torch.manual_seed(0)
    vim = VIM(tiny_config())
    keys = list(vim.state_dict())
    accelerate_networks(vim, "bf16")
    assert list(vim.state_dict()) == keys              # what it holds is unchanged
    assert all(p.dtype == torch.float32 for p in vim.parameters())
    out = vim.encoder(frames().flatten(0, 1))
    assert out.dtype == torch.float32
    pos, feat = torch.zeros(2, 4, 2), torch.randn(2, 4, 8)
    rgb, logits = vim.decode(pos, feat)
    assert rgb.dtype == logits.dtype == torch.float32


def test_bf16_elbo_is_close_to_fp32_but_not_identical():
    torch.manual_seed(0)
    vim = VIM(tiny_config())
    x = frames()
    elbo = TermsELBO()

    def loss():
        torch.manual_seed(3)
        return float(elbo.loss_and_terms(vim.model, vim.guide, x)[0].detach())
    full = loss()
    accelerate_networks(vim, "bf16")
    half = loss()
    rel = abs(half - full) / abs(full)
    assert 0 < rel < 0.05, (full, half)


def test_bad_precision_and_double_acceleration_are_refused():
    vim = VIM(tiny_config())
    with pytest.raises(ValueError, match="precision"):
        accelerate_networks(vim, "fp16")
    accelerate(vim.encoder, "bf16")
    with pytest.raises(ValueError, match="already accelerated"):
        accelerate(vim.encoder, "bf16")
    with pytest.raises(TypeError, match="nn.Module"):
        accelerate(lambda x: x, "bf16")


def test_fp32_without_compile_changes_nothing():
    vim = VIM(tiny_config())
    assert accelerate_networks(vim, "fp32", False) is vim
    assert getattr(vim.encoder, "_pyro_vim_accel", None) is None


def test_trainer_trains_under_bf16_and_the_checkpoint_loads_plain(tmp_path):
    config = tiny_config()
    trainer = Trainer(config, out_dir=str(tmp_path), device="cpu", progress=False,
                      checkpoint_every=0, precision="bf16")
    trainer.run(config.pretrain_steps + 2)
    trainer.close()
    loaded = VIM.load(str(tmp_path / "checkpoint.pt"))
    assert getattr(loaded.encoder, "_pyro_vim_accel", None) is None
    for (k, a), (_, b) in zip(trainer.vim.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a.cpu(), b), k
