"""Duplicate-module detection and reset (pyro_vim.duplicates, VIMConfig.merge_every)."""
import pytest
import torch

from pyro_vim import VIM
from pyro_vim.data import MOVE_VECTORS, RandomWalk
from pyro_vim.duplicates import find_duplicates, merge_duplicates, reset_modules
from pyro_vim.train import Trainer

from .helpers import tiny_config

S = 24


def vim_with(translations_px, **overrides):
    """A VIM whose module m translates every slot by ``translations_px[m]`` (x, y) pixels."""
    vim = VIM(tiny_config(image_size=S, num_modules=len(translations_px), **overrides))
    pixel = 2.0 / (S - 1)
    with torch.no_grad():
        vim.transition.l3.weight.zero_()
        vim.transition.l3.bias.zero_()
        for m, t in enumerate(translations_px):
            vim.transition.l3.bias[m, :2] = torch.tensor(t, dtype=torch.float32) * pixel
    return vim


def frames(n=4, t=4, seed=0):
    return torch.from_numpy(RandomWalk(image_size=S).generate(n, t, seed).frames)


RULES = [tuple(3.0 * v) for v in MOVE_VECTORS]


def test_identical_modules_are_all_copies_of_the_most_used():
    vim = vim_with([(3.0, 0.0)] * 5)
    pairs = find_duplicates(vim, frames())
    kept = {a for _, a in pairs}
    assert len(pairs) == 4 and len(kept) == 1
    assert sorted(b for b, _ in pairs) == sorted(set(range(5)) - kept)


def test_distinct_rules_and_an_identity_are_not_copies():
    assert find_duplicates(vim_with(RULES + [(0.0, 0.0)]), frames()) == []


def test_a_copy_within_the_selection_scale_is_found_and_a_farther_one_is_not():
    near = RULES + [(RULES[0][0] + 0.5, RULES[0][1] + 0.4)]      # 0.64 px from a rule
    far = RULES + [(RULES[0][0] + 1.0, RULES[0][1] + 1.0)]       # 1.41 px from it
    assert {frozenset(p) for p in find_duplicates(vim_with(near), frames())} \
        <= {frozenset((0, 4))}
    assert find_duplicates(vim_with(far), frames()) == []
    # the guide's scale decides: at 2 px the farther one is a copy too (if either is picked)
    coarse = vim_with(far, selection_scale=2.0)
    assert all(frozenset(p) == frozenset((0, 4)) for p in find_duplicates(coarse, frames()))


def test_reset_makes_the_identity_and_clears_adam_state():
    vim = vim_with(RULES + [RULES[0]])
    opt = torch.optim.Adam(vim.parameters(), lr=1e-3)
    loss = sum(p.sum() for p in vim.transition.parameters())
    loss.backward()
    opt.step()
    reset_modules(vim, [4], opt)
    h = torch.zeros(7, 2 + vim.config.slot_dim)
    dpos, dfeat = vim.transition(h[:, :2], h[:, 2:])
    assert torch.all(dpos[:, 4] == 0) and torch.all(dfeat[:, 4] == 0)
    assert torch.all(dpos[:, 0].abs().sum(-1) > 0)           # the others are untouched
    state = opt.state[vim.transition.l3.weight]
    assert torch.all(state["exp_avg"][4] == 0) and torch.all(state["exp_avg_sq"][4] == 0)
    assert torch.any(state["exp_avg"][0] != 0)


def test_merge_duplicates_returns_what_it_reset():
    vim = vim_with([(0.0, 3.0)] * 3)
    merged = merge_duplicates(vim, frames())
    assert len(merged) == 2
    h = torch.zeros(1, 2 + vim.config.slot_dim)
    dpos, _ = vim.transition(h[:, :2], h[:, 2:])
    for b in merged:
        assert torch.all(dpos[0, b] == 0)


def test_trainer_checks_duplicates_every_merge_every_steps(tmp_path):
    config = tiny_config(image_size=S, num_modules=3, merge_every=1, warmup_steps=1,
                         pretrain_steps=1, steps=4, eval_every=0, lr=1e-6)
    trainer = Trainer(config, out_dir=str(tmp_path), progress=False, tensorboard=False)
    pixel = 2.0 / (S - 1)
    with torch.no_grad():                   # three copies of one rule before the dynamics
        trainer.vim.transition.l3.weight.zero_()
        trainer.vim.transition.l3.bias.zero_()
        trainer.vim.transition.l3.bias[:, 0] = 3.0 * pixel
    records = []
    trainer.run(config.steps, callback=lambda t, r: records.append(r))
    merged = [r["merged"] for r in records if "merged" in r]
    assert merged and len(merged[0]) == 2            # two copies reset at the first check
    assert all(r["step"] >= config.pretrain_steps + config.warmup_steps
               for r in records if "merged" in r)


def test_a_hand_written_loop_of_train_steps_merges_too(tmp_path):
    """Scripts that call ``train_step`` themselves (the benchmarks) get the check as well."""
    config = tiny_config(image_size=S, num_modules=3, merge_every=1, warmup_steps=1,
                         pretrain_steps=1, steps=4, eval_every=0, lr=1e-6)
    trainer = Trainer(config, progress=False, tensorboard=False)
    pixel = 2.0 / (S - 1)
    with torch.no_grad():
        trainer.vim.transition.l3.weight.zero_()
        trainer.vim.transition.l3.bias.zero_()
        trainer.vim.transition.l3.bias[:, 1] = 3.0 * pixel
    records = [trainer.train_step() for _ in range(3)]
    assert "merged" not in records[0] and len(records[1]["merged"]) == 2


def test_merge_every_must_be_a_non_negative_int():
    for bad in (-1, 1.5, True, "5"):
        with pytest.raises(ValueError, match="merge_every"):
            tiny_config(merge_every=bad)


def test_the_check_infers_without_decoding_and_gets_the_same_slots():
    vim = vim_with(RULES + [RULES[0]]).eval()
    full, light = vim.infer(frames()), vim.infer(frames(), decode=False)
    assert "masks" not in light and "recon" not in light
    assert torch.allclose(full["slots"], light["slots"])
    assert torch.equal(full["selections"], light["selections"])
