"""Module fidelity and prior calibration on hand-set models and hand-made samples."""
import numpy as np
import pytest
import torch

from pyro_vim import VIM
from pyro_vim.data import MOVE_VECTORS, RandomWalk
from pyro_vim.fidelity import move_frequencies, prior_calibration, rollout_errors

from .helpers import tiny_config

S = 24


def hand_set_vim(step_px=3.0, num_modules=4):
    """A VIM whose module m translates every slot by ``step_px`` along MOVES[m], exactly."""
    vim = VIM(tiny_config(image_size=S, num_modules=num_modules)).eval()
    pixel = 2.0 / (S - 1)
    with torch.no_grad():
        vim.transition.l3.weight.zero_()
        vim.transition.l3.bias.zero_()
        for m in range(min(num_modules, 4)):
            vim.transition.l3.bias[m, :2] = torch.tensor(MOVE_VECTORS[m], dtype=torch.float32) \
                * step_px * pixel
    return vim


def batch(n=6, t=8, seed=0):
    return RandomWalk(image_size=S).generate(n, t, seed)


def test_perfect_modules_roll_out_the_truth():
    data = batch()
    out = rollout_errors(hand_set_vim(3.0), data, {0: 0, 1: 1, 2: 2, 3: 3}, horizon=7)
    # with no error in the modules the rollout keeps the start offset (slot vs ball) exactly
    assert out["horizon"] == 7 and len(out["per_step"]) == 7
    assert np.allclose(out["per_step"], out["start"], atol=1e-4)


def test_wrong_modules_drift():
    data = batch()
    good = rollout_errors(hand_set_vim(3.0), data, {0: 0, 1: 1, 2: 2, 3: 3})
    short = rollout_errors(hand_set_vim(2.0), data, {0: 0, 1: 1, 2: 2, 3: 3})
    swapped = rollout_errors(hand_set_vim(3.0), data, {0: 1, 1: 0, 2: 2, 3: 3})
    assert short["per_step"][-1] > good["per_step"][-1] + 1.0
    assert swapped["mean"] > good["mean"] + 1.0
    assert rollout_errors(hand_set_vim(), data, {0: 0, 1: 1})["mean"] is None


def test_move_frequencies_uniform_passes_biased_fails():
    rng = np.random.default_rng(0)
    n = 4000
    pos = np.full((n, 2), 15.0)                        # far from the walls of a 32 px frame
    uniform = 3.0 * MOVE_VECTORS[rng.integers(0, 4, n)] + rng.normal(0, 0.3, (n, 2))
    out = move_frequencies(uniform, pos, 3, low=(3, 3), high=(28, 28))
    assert out["away_count"] == n and out["max_deviation"] < 0.05
    biased = 3.0 * MOVE_VECTORS[rng.choice(4, n, p=[0.1, 0.1, 0.5, 0.3])]
    assert move_frequencies(biased, pos, 3, (3, 3), (28, 28))["max_deviation"] > 0.2
    # at the left wall, "left" is impossible
    wall = np.tile([[3.0, 15.0]], (4, 1))
    moves = 3.0 * MOVE_VECTORS[[0, 1, 2, 3]]
    out = move_frequencies(moves, wall, 3, (3, 3), (28, 28))
    assert out["at_walls_count"] == 4 and out["impossible_at_walls"] == 0.25
    with pytest.raises(ValueError, match="same shape"):
        move_frequencies(moves[:2], wall, 3, (3, 3), (28, 28))


def test_prior_calibration_of_a_uniform_prior():
    vim = hand_set_vim(3.0)
    vim = VIM(vim.config.replace(prior="uniform")).eval()
    with torch.no_grad():                          # the same exact modules, a uniform prior
        ref = hand_set_vim(3.0)
        vim.transition.load_state_dict(ref.transition.state_dict())
    out = prior_calibration(vim, batch(n=16, t=3), num_samples=32, chunk=8)
    assert out["away_count"] + out["at_walls_count"] == 16 * 3 * 32
    freqs = np.array(list(out["away"].values()))
    assert abs(freqs.sum() - 1) < 1e-9
    # relaxed samples at temperature 1 from a uniform prior: no move is strongly favoured
    assert out["max_deviation"] < 0.1


def test_move_frequencies_measure_the_size_of_the_moves():
    pos = np.full((4, 2), 15.0)
    exact = 3.0 * MOVE_VECTORS[[0, 1, 2, 3]]
    out = move_frequencies(exact, pos, 3, (3, 3), (28, 28))
    assert out["step"] == 3.0 and out["mean_step"] == pytest.approx(3.0)
    assert out["move_error"] == pytest.approx(0.0, abs=1e-12)
    half = move_frequencies(exact / 2, pos, 3, (3, 3), (28, 28))   # the right way, half as far
    assert half["mean_step"] == pytest.approx(1.5) and half["move_error"] == pytest.approx(1.5)
    assert half["max_deviation"] == pytest.approx(0.0)             # directions alone look right


def test_sampled_futures_move_by_whole_steps_only_with_hard_test_choices():
    """A uniform prior at temperature 1 samples near-uniform relaxed choices: mixing the exact
    modules' candidates by them moves the slots a fraction of a step (a blend); the paper's hard
    test-time choice moves them by one whole module."""
    ref = hand_set_vim(3.0)
    data = batch(n=8, t=3)
    out = {}
    for choices in ("hard", "relaxed"):
        vim = VIM(ref.config.replace(prior="uniform", z_pos_scale=1e-3,
                                     test_choices=choices)).eval()
        vim.transition.load_state_dict(ref.transition.state_dict())
        assert vim.hard_choices == (choices == "hard")
        out[choices] = prior_calibration(vim, data, num_samples=16, chunk=8)
    assert out["hard"]["move_error"] < 0.05
    assert abs(out["hard"]["mean_step"] - 3.0) < 0.05
    assert out["relaxed"]["move_error"] > 0.5 and out["relaxed"]["mean_step"] < 2.5
