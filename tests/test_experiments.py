"""Experiment definitions: module widths that keep the parameter count, step-error metric."""
import numpy as np
import pytest

from pyro_vim.config import VIMConfig
from pyro_vim.evaluate import module_step_errors
from pyro_vim.experiments import (
    SHORT_SCHEDULE,
    get_experiment,
    module_hidden_for,
    transition_parameters,
)
from pyro_vim.nn import TransitionModules


def test_parameter_count_formula_matches_the_network():
    for m, d, h in ((1, 32, 154), (4, 32, 64), (8, 8, 16)):
        net = TransitionModules(m, d, h)
        assert transition_parameters(m, d, h) == sum(p.numel() for p in net.parameters())


def test_every_module_count_has_the_same_transition_parameters():
    exp = get_experiment("module_count")
    reference = transition_parameters(4, 32, 64)
    seen = set()
    for variant in exp.variants:
        c = exp.config(variant, seed=1)
        seen.add(c.num_modules)
        n = transition_parameters(c.num_modules, c.slot_dim, c.module_hidden)
        assert abs(n / reference - 1) <= 0.05, (variant, n)
        assert c.seed == 1 and c.pretrain_steps == SHORT_SCHEDULE["pretrain_steps"]
    assert seen == {1, 2, 3, 4, 5, 8}
    assert module_hidden_for(4, VIMConfig()) == 64
    # the user's sizes are respected: widths follow the overridden slot size
    c = exp.config("num_modules=2", 0, ["slot_dim=8", "module_hidden=16"])
    assert abs(transition_parameters(2, 8, c.module_hidden) / transition_parameters(4, 8, 16)
               - 1) <= 0.05


def test_variant_keys_win_and_unknown_variants_are_named():
    exp = get_experiment("ablations")
    assert exp.config("prior=uniform", 0, ["prior=keyquery"]).prior == "uniform"
    default = exp.config("default", 0)
    assert (default.r_kl, default.prior_octaves) == ("categorical", -1)
    assert exp.config("r_kl=sample", 0).r_kl == "sample"
    assert exp.config("prior_octaves=0", 0).prior_octaves == 0
    with pytest.raises(ValueError, match="no variant 'prior=flat'"):
        exp.config("prior=flat", 0)
    with pytest.raises(ValueError, match="unknown experiment"):
        get_experiment("fig9")


def test_module_step_errors_on_hand_set_modules():
    confusion = np.diag([5, 5, 5, 5])
    perfect = [[0, -3], [0, 3], [-3, 0], [3, 0]]              # up, down, left, right
    errors = module_step_errors(confusion, {0: 0, 1: 1, 2: 2, 3: 3}, perfect, 3)
    assert errors == {"up": 0.0, "down": 0.0, "left": 0.0, "right": 0.0}
    short = [[0, -2], [0, 3], [-3, 0], [3, 0]]                # "up" moves 2 px of 3
    assert module_step_errors(confusion, {0: 0, 1: 1, 2: 2, 3: 3}, short, 3)["up"] == 1.0
    # one module shared by every rule (monolithic): each rule scored against it
    shared = module_step_errors(np.ones((4, 1)), {0: 0}, [[0, 0]], 3)
    assert shared == {"up": 3.0, "down": 3.0, "left": 3.0, "right": 3.0}
    # a rule that never happened is left out
    assert "left" not in module_step_errors(np.diag([5, 5, 0, 5]), {0: 0, 1: 1, 3: 3},
                                            perfect, 3)


def test_vim2_compositions_trains_with_the_hard_choice():
    """Fig. 6's VIM-2 mixes the candidates by the hard choice in training (straight-through):
    with the relaxed mix, split choices blended two modules into a diagonal."""
    from pyro_vim.experiments import get_experiment
    e = get_experiment("vim2_compositions")
    variant = next(iter(e.variants)) if e.variants else None
    c = e.config(variant, 0)
    assert c.straight_through and c.iterations == 2 and c.num_modules == 5
    assert not e.config(variant, 0, ["straight_through=false"]).straight_through
    # both choices of a transition from p(r | h_{t-1}); a prior per iteration is an override
    assert c.iteration_prior == "start"
    assert e.config(variant, 0, ["iteration_prior=current"]).iteration_prior == "current"
