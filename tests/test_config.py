"""VIMConfig names the model family, prior, guide and data generator; values reach the parts."""
import numpy as np
import pytest

from pyro_vim import VIM, KeyQueryGuide, SlotAttentionGuide, UniformPrior, VIMConfig
from pyro_vim.config import DataConfig
from pyro_vim.data import CompositionalRandomWalk, RandomWalk
from pyro_vim.priors import KeyQueryPrior
from pyro_vim.train import Trainer

from .helpers import tiny_config, v1_dict


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
    old = {**v1_dict(VIMConfig()), "dataset": "ood", "num_objects": 2}
    del old["data"]
    c = VIMConfig.from_saved(old)
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
    (dict(data={"gravity": 3}), "unknown VIMConfig.data fields"),
    (dict(data={"speed": 0}), "data.speed must be a positive finite number"),
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


def test_config_is_in_sections_with_a_version():
    from pyro_vim.config import CONFIG_VERSION, SECTIONS
    c = VIMConfig()
    d = c.to_dict()
    assert d["version"] == CONFIG_VERSION
    assert set(SECTIONS) == {"architecture", "perception", "inference", "schedule",
                             "interaction"}
    assert d["interaction"] == {"num_binary_modules": 0, "velocity": False,
                                "pair_choice": "joint", "partner_init": "random"}
    assert d["architecture"]["num_slots"] == c.num_slots == c.architecture.num_slots
    assert d["perception"]["tracking"] == "occlusion" and d["schedule"]["merge"] == "duplicates"
    # flat names, dotted names and section dicts are the same field
    assert VIMConfig(num_slots=5) == VIMConfig(architecture={"num_slots": 5}) \
        == VIMConfig(**{"architecture.num_slots": 5})
    c.num_slots = 6
    assert c.architecture.num_slots == 6


def test_a_partial_config_gets_todays_defaults():
    assert VIMConfig.from_dict({}) == VIMConfig()
    assert VIMConfig.from_dict({"num_slots": 5}) == VIMConfig(num_slots=5)
    assert VIMConfig.from_dict({"perception": {"tracking": "paper"}}).reseed is True
    assert VIMConfig.from_dict(VIMConfig(lr=3e-4).to_dict()) == VIMConfig(lr=3e-4)


def test_every_past_version_has_a_migration():
    from pyro_vim.config import CONFIG_VERSION
    from pyro_vim.migrations import MIGRATIONS, migrate
    assert sorted(MIGRATIONS) == list(range(1, CONFIG_VERSION))
    # version 1: flat, with the flags of that time; fields it lacks take their old values
    v1 = v1_dict(VIMConfig())
    assert VIMConfig.from_saved(v1) == VIMConfig()
    old = {k: v for k, v in v1.items() if k not in ("merge_every", "hold_hidden", "reseed",
                                                     "reseed_median", "plan_lookahead")}
    c = VIMConfig.from_saved(old)
    assert (c.tracking, c.merge) == ("paper", "none")
    held = VIMConfig.from_saved({**v1, "reseed": False})
    assert held.tracking == "occlusion" and held.hold_hidden and not held.reseed
    assert migrate({**v1, "version": 1})["version"] == CONFIG_VERSION
    with pytest.raises(ValueError, match="unknown config version 99"):
        VIMConfig.from_dict({"version": 99})
    with pytest.raises(ValueError, match="unknown VIMConfig fields"):
        VIMConfig.from_dict({"num_slotz": 3})


def test_overrides_take_flat_and_sectioned_keys():
    from pyro_vim.overrides import apply_overrides, config_keys
    c = apply_overrides(VIMConfig(), ["num_slots=5", "perception.tracking=paper",
                                      "schedule.merge=none", "data.step=2"])
    assert (c.num_slots, c.tracking, c.merge, c.data.step) == (5, "paper", "none", 2)
    assert "tracking" in config_keys() and "version" not in config_keys()
    with pytest.raises(ValueError, match="unknown config key"):
        apply_overrides(VIMConfig(), ["perception.num_slots=3"])
