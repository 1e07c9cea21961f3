"""VIMConfig names the model family, prior, guide and data generator; values reach the parts."""
import numpy as np
import pytest

from pyro_vim import VIM, KeyQueryGuide, SlotAttentionGuide, UniformPrior, VIMConfig
from pyro_vim.config import DataConfig
from pyro_vim.data import CompositionalRandomWalk, RandomWalk
from pyro_vim.priors import KeyQueryPrior
from pyro_vim.train import Trainer

from .helpers import tiny_config


def test_defaults_name_the_papers_parts():
    c = VIMConfig()
    assert (c.model, c.prior, c.guide) == ("vim", "keyquery", "slot_attention")
    assert c.data == DataConfig() and c.data.name == "random_walk" and c.data.step == 3


def test_config_values_reach_the_generator():
    c = VIMConfig(image_size=24, num_slots=5, data=dict(step=2, radius=2, num_objects=4,
                                                        colors=[[1, 0, 0], [0, 1, 0],
                                                                [0, 0, 1], [1, 1, 0]]))
    gen = c.make_generator()
    assert isinstance(gen, RandomWalk) and (gen.step, gen.radius, gen.num_objects,
                                            gen.image_size) == (2, 2, 4, 24)
    batch = gen.generate(4, 3, seed=0)
    assert np.all(np.abs(np.diff(batch.positions, axis=1)).sum(-1) == 2)   # 2 px moves
    assert {tuple(col) for col in batch.attributes["color"].reshape(-1, 3).tolist()} <= {
        (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0)}
    comp = VIMConfig(data=dict(name="compositional", min_moves=2, max_moves=2)).make_generator()
    assert isinstance(comp, CompositionalRandomWalk) and comp.min_moves == comp.max_moves == 2
    # the trainer draws its batches from the same generator
    trainer = Trainer(tiny_config(data=dict(step=2, radius=1)), progress=False)
    assert (trainer.data.step, trainer.data.radius) == (2, 1)


def test_legacy_keywords_and_dicts_still_work():
    old = {**VIMConfig().to_dict(), "dataset": "ood", "num_objects": 2}
    del old["data"]
    c = VIMConfig.from_dict(old)
    assert c.data.name == "ood" and c.num_objects == 2 and c.dataset == "ood"
    assert VIMConfig(num_objects=2).data.num_objects == 2
    assert VIMConfig.preset("cpu", num_objects=2).data.num_objects == 2
    assert VIMConfig.from_dict(c.to_dict()) == c


def test_replace_copies_and_validates():
    c = VIMConfig()
    d = c.replace(data={"step": 4}, prior="uniform")
    assert d.data.step == 4 and d.prior == "uniform" and c.data.step == 3 and c.prior == "keyquery"
    d.data.radius = 2
    assert c.data.radius == 3                           # no shared data section


@pytest.mark.parametrize("changes, match", [
    (dict(prior="gaussian"), "VIMConfig.prior must be one of"),
    (dict(guide="mlp"), "VIMConfig.guide must be one of"),
    (dict(model="rim2"), "VIMConfig.model must be one of"),
    (dict(data={"step": 0}), "data.step must be a positive int"),
    (dict(data={"name": "mnist"}), "data.name must be one of"),
    (dict(data={"colors": [[2, 0, 0]]}), "data.colors"),
    (dict(data={"min_moves": 3, "max_moves": 2}), "min_moves"),
    (dict(data={"speed": 3}), "unknown VIMConfig.data fields"),
    (dict(num_slots=2, data={"num_objects": 3}), "num_slots"),
])
def test_bad_values_are_named(changes, match):
    with pytest.raises(ValueError, match=match):
        VIMConfig().replace(**changes)


def test_parts_follow_the_config_names():
    vim = VIM(tiny_config(prior="uniform", guide="keyquery"))
    assert type(vim.prior) is UniformPrior and type(vim.posterior) is KeyQueryGuide
    assert vim.posterior.position_score is False
    vim = VIM(tiny_config())
    assert type(vim.prior) is KeyQueryPrior and type(vim.posterior) is SlotAttentionGuide
    # an instance of a registered class renames the config's part
    vim = VIM(tiny_config(), prior=UniformPrior())
    assert vim.config.prior == "uniform" and vim.custom_parts == {}


def test_background_reaches_the_generator():
    from pyro_vim.overrides import apply_overrides
    c = apply_overrides(VIMConfig(), ["data.background=0.25,0.25,0.25"])
    assert np.allclose(c.make_generator().background, 0.25)
    texture = apply_overrides(VIMConfig(), ["data.background=texture", "data.texture_seed=4"])
    gen = texture.make_generator()
    assert gen.texture_seed == 4 and gen.background.std() > 0
    with pytest.raises(ValueError, match="data.background"):
        VIMConfig(data={"background": "plaid"})
