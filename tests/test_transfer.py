"""Dynamics transfer: rules recognised on targets, replayed on other objects (Sec. 5.3)."""
import numpy as np
import pytest
import torch

from pyro_vim.data import OODRandomWalk, RandomWalk
from pyro_vim.fidelity import placeable, transfer_errors
from pyro_vim.infer import transfer
from pyro_vim.metrics import match_objects_to_slots

from .test_fidelity import hand_set_vim

S = 24


@pytest.mark.parametrize("make", [
    lambda: RandomWalk(num_objects=3),
    lambda: RandomWalk(num_objects=2, image_size=20, radius=2, step=2, background="texture"),
])
def test_render_agrees_with_the_generator(make):
    gen = make()
    batch = gen.generate(5, 3, seed=2)
    for t in range(3):
        assert np.array_equal(gen.render(batch.positions[:, t], batch.attributes["color"]),
                              batch.frames[:, t])


def test_render_rejects_bad_positions():
    gen = RandomWalk()
    with pytest.raises(ValueError, match="shape"):
        gen.render(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="inside the frame"):
        gen.render(np.array([[[1, 10]]]))
    with pytest.raises(ValueError, match="whole pixel"):
        gen.render(np.array([[[10.5, 10]]]))
    with pytest.raises(ValueError, match="colors"):
        gen.render(np.array([[[10, 10]]]), colors=[[2, 0, 0]])


def test_transfer_with_hand_set_modules_replays_the_targets_moves():
    vim = hand_set_vim(3.0)
    target = RandomWalk(image_size=S, num_objects=2, radius=2,
                        colors=[[0.5, 1.0, 0.5], [1.0, 0.5, 0.5]]).generate(8, 6, seed=0)
    source_gen = RandomWalk(image_size=S, num_objects=2, radius=2)   # other colours
    source = source_gen.render(target.positions[:, 0])
    out = transfer(vim, torch.from_numpy(target.frames), torch.from_numpy(source))
    assert out["frames"].shape == (8, 5, 3, S, S) and out["positions"].shape == (8, 5, 4, 2)
    assert out["start_positions"].shape == (8, 4, 2)
    matching = match_objects_to_slots(target.positions[:, 0], out["start_positions"].numpy())
    chosen = np.take_along_axis(out["modules"].numpy(), matching[:, None, :].repeat(5, 1), 2)
    right = chosen == target.moves[..., 0]                  # module m is move m (hand-set)
    assert right.mean() >= 0.9
    track = np.take_along_axis(out["positions"].numpy(),
                               np.broadcast_to(matching[:, None, :, None], (8, 5, 2, 2)), 2)
    start = np.take_along_axis(out["start_positions"].numpy(), matching[..., None].repeat(2, -1),
                               1)
    moved = track - start[:, None]
    true = target.positions[:, 1:] - target.positions[:, :1]
    exact = right.all(axis=(1, 2))                          # videos with every move recognised
    assert exact.any()
    assert np.abs(moved[exact] - true[exact]).max() < 1e-3   # replayed exactly


def test_transfer_errors_on_unseen_objects():
    vim = hand_set_vim(3.0)
    target = OODRandomWalk(image_size=S, num_objects=2).generate(12, 5, seed=1)
    source_gen = RandomWalk(image_size=S, num_objects=2, radius=2)
    keep = placeable(target, source_gen)
    out = transfer_errors(vim, target[keep], source_gen)
    assert len(out["per_step"]) == 4 and out["mean"] < 1.0
    with pytest.raises(ValueError, match="source_frame must be"):
        transfer(vim, torch.from_numpy(target.frames[:2]),
                 torch.from_numpy(source_gen.render(target.positions[keep][:3, 0])))


def test_transfer_in_chunks_equals_one_run():
    vim = hand_set_vim(3.0)
    target = RandomWalk(image_size=S, num_objects=2, radius=2).generate(5, 4, seed=3)
    source = RandomWalk(image_size=S, num_objects=2, radius=2,
                        colors=[[0.5, 1.0, 0.5], [1.0, 0.5, 0.5]]).render(target.positions[:, 0])
    args = torch.from_numpy(target.frames), torch.from_numpy(source)
    whole = transfer(vim, *args, max_batch=None)
    chunked = transfer(vim, *args, max_batch=2)                     # chunks of 2, 2 and 1
    assert list(chunked) == list(whole)
    for key in ("modules", "slot_map"):
        assert torch.equal(chunked[key], whole[key]), key
    for key in ("frames", "positions", "start_positions"):
        assert chunked[key].shape == whole[key].shape
        torch.testing.assert_close(chunked[key], whole[key], atol=1e-5, rtol=1e-5)
    for bad in (0, 1.0, "2"):
        with pytest.raises(ValueError, match="max_batch"):
            transfer(vim, *args, max_batch=bad)
