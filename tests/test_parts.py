"""The trainer's merge step and the choice mixing are named parts with their own tests."""
import torch

from pyro_vim.choices import ChoiceMixing
from pyro_vim.config import VIMConfig
from pyro_vim.duplicates import DuplicateMerge, NoMerge
from pyro_vim.registry import MERGES, lookup

from .helpers import tiny_config


def test_merge_steps_are_registered_and_scheduled():
    assert lookup("merge", "duplicates") is DuplicateMerge and lookup("merge", "none") is NoMerge
    assert set(MERGES) >= {"duplicates", "none"}
    step = DuplicateMerge.from_config(tiny_config(merge_every=5, warmup_steps=10))
    assert [s for s in range(30) if step.due(s)] == [10, 15, 20, 25]
    assert not any(NoMerge.from_config(VIMConfig()).due(s) for s in range(100))
    # merge_every=0, as in commands written before the merge step had a name: never
    assert not any(DuplicateMerge.from_config(VIMConfig(merge_every=0)).due(s) for s in range(99))
    assert NoMerge()(None, None) == {}


def test_choice_mixing_relaxed_in_training_hard_in_eval():
    r = torch.tensor([[0.6, 0.3, 0.1]], requires_grad=True)
    mixing = ChoiceMixing("hard", straight_through=False)
    assert mixing.weights(r, training=True) is r
    hard = mixing.weights(r, training=False)
    assert hard.tolist() == [[1.0, 0.0, 0.0]]
    hard.sum().backward()                          # the relaxed sample's gradient flows back
    assert r.grad is not None
    assert ChoiceMixing("relaxed").weights(r, training=False) is r
    assert ChoiceMixing("relaxed", straight_through=True).hard(training=True)
