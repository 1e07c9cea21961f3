"""Parts are chosen by name, checkpoints restore exactly them, and a new model family plugs into
the trainer, the runner's evaluation and ``load_model`` without editing them."""
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_vim import VIM, KeyQueryGuide, UniformPrior
from pyro_vim.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from pyro_vim.models import build_model, load_model
from pyro_vim.priors import KeyQueryPrior
from pyro_vim.registry import register_model, register_prior
from pyro_vim.train import Trainer

from .helpers import tiny_config


def frames_of(n=2, t=3):
    return torch.from_numpy(tiny_config().make_generator().generate(n, t, 0).frames)


def test_uniform_prior_keyquery_guide_round_trip(tmp_path):
    vim = VIM(tiny_config(), prior=UniformPrior(),
              guide=KeyQueryGuide(8, hidden=16, key_dim=8, image_size=16))
    assert (vim.config.prior, vim.config.guide) == ("uniform", "keyquery")
    vim.save(str(tmp_path / "m.pt"))
    for loaded in (VIM.load(str(tmp_path / "m.pt")), load_model(str(tmp_path / "m.pt"))):
        assert type(loaded.prior) is UniformPrior and type(loaded.posterior) is KeyQueryGuide
        assert loaded.posterior.position_score is False
        assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in vim.state_dict().items())
    # the same through a config, then a trainer's checkpoint
    trainer = Trainer(tiny_config(prior="uniform", guide="keyquery"), str(tmp_path / "run"),
                      progress=False)
    trainer.run(3)
    again = VIM.load(str(tmp_path / "run" / "checkpoint.pt"))
    assert type(again.prior) is UniformPrior and type(again.posterior) is KeyQueryGuide


class ShiftedPrior(KeyQueryPrior):
    """An unregistered prior (a researcher's quick experiment)."""


def test_an_unregistered_part_must_be_passed_again(tmp_path):
    part = ShiftedPrior(10, 16, 8)
    vim = VIM(tiny_config(), prior=part)
    assert vim.custom_parts == {"prior": f"{__name__}.ShiftedPrior"}
    vim.save(str(tmp_path / "m.pt"))
    with pytest.raises(ValueError, match="unregistered prior .*ShiftedPrior.*prior=..."):
        VIM.load(str(tmp_path / "m.pt"))
    loaded = VIM.load(str(tmp_path / "m.pt"), prior=ShiftedPrior(10, 16, 8))
    assert type(loaded.prior) is ShiftedPrior


@register_prior("test_favourite")
class FavouritePrior(PyroModule):
    """A registered research prior: module 0 ten times likelier than the rest."""

    @classmethod
    def from_config(cls, config):
        return cls()

    def logits(self, pos, feat, cand_pos, cand_feat):
        out = torch.zeros(cand_pos.shape[:-1])
        out[..., 0] = torch.log(torch.tensor(10.0))
        return out


def test_a_registered_part_is_named_by_the_config(tmp_path):
    vim = VIM(tiny_config(prior="test_favourite"))
    assert type(vim.prior) is FavouritePrior
    vim.save(str(tmp_path / "m.pt"))
    assert type(VIM.load(str(tmp_path / "m.pt")).prior) is FavouritePrior
    with pytest.raises(ValueError, match="already taken"):
        register_prior("test_favourite")(ShiftedPrior)


@register_model("test_mean_frame")
class MeanFrame(PyroModule):
    """A baseline of the model protocol: every frame is one learned image (no latents)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.image = nn.Parameter(torch.zeros(3, config.image_size, config.image_size))

    @classmethod
    def from_config(cls, config):
        return cls(config)

    def programs(self, step):
        return self.model, self.guide

    def model(self, frames):
        pyro.module("mean_frame", self)
        mean = torch.sigmoid(self.image).expand(frames.shape[1:])
        with pyro.plate("videos", frames.shape[0]):
            pyro.sample("x", dist.Normal(mean, 0.1).to_event(4), obs=frames)

    def guide(self, frames):
        pass

    def infer(self, frames):
        return {"recon": torch.sigmoid(self.image).expand(frames.shape)}

    def evaluation_metrics(self, batch):
        recon = self.infer(torch.from_numpy(batch.frames))["recon"]
        return {"recon_mse": float(((recon - torch.from_numpy(batch.frames)) ** 2).mean())}

    def save(self, path, **extra):
        save_checkpoint(path, self, **extra)

    @classmethod
    def load(cls, path, map_location="cpu"):
        ckpt = load_checkpoint(path, map_location=map_location)
        from pyro_vim import VIMConfig
        model = cls(VIMConfig.from_dict(ckpt["config"]))
        load_model_state(model, ckpt)
        return model


def test_a_new_model_family_plugs_into_the_trainer(tmp_path):
    config = tiny_config(model="test_mean_frame", pretrain_steps=0, lr=0.05, eval_every=5)
    trainer = Trainer(config, str(tmp_path / "run"), progress=False)
    assert isinstance(trainer.model, MeanFrame)
    first = trainer.evaluate()["recon_mse"]
    trainer.run(20)
    assert trainer.evaluate()["recon_mse"] < first          # it learned the mean frame
    loaded = load_model(str(tmp_path / "run" / "checkpoint.pt"))
    assert isinstance(loaded, MeanFrame) and torch.equal(loaded.image, trainer.model.image)
    assert isinstance(build_model(config), MeanFrame)
    with pytest.raises(ValueError, match="build it with pyro_vim.models.build_model"):
        VIM(config)


def test_build_model_rejects_non_protocol_models():
    @register_model("test_broken")
    class Broken(nn.Module):
        @classmethod
        def from_config(cls, config):
            return cls()

    with pytest.raises(TypeError, match="lacks config, programs, infer, save"):
        build_model(tiny_config(model="test_broken"))
