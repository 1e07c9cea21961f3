"""Tracking policies are named parts of the guide's perception (pyro_vim.tracking)."""
import pytest
import torch

from pyro_vim import VIM, VIMConfig
from pyro_vim.nn.slot_attention import SlotAttention
from pyro_vim.registry import TRACKING
from pyro_vim.tracking import OcclusionTracking, PaperTracking

from .helpers import tiny_config


def _frame_with_a_hidden_object(size=16):
    """A red square on black: pixels (1, HW, 3) and the grid (HW, 2)."""
    frame = torch.zeros(3, size, size)
    frame[0, 3:6, 3:6] = 1.0
    grid = torch.stack(torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size),
                                      indexing="xy"), -1).reshape(-1, 2)
    return frame.flatten(1).T[None], grid


def test_policies_are_registered_and_chosen_by_name():
    assert set(TRACKING) >= {"paper", "occlusion"}
    assert type(VIM(tiny_config()).tracking) is OcclusionTracking      # the default
    assert type(VIM(tiny_config(tracking="paper")).tracking) is PaperTracking
    with pytest.raises(ValueError, match="tracking must be one of"):
        VIMConfig(tracking="kalman")


def test_occlusion_options_come_from_its_config_section():
    policy = VIM(tiny_config(hold_hidden=False, reseed_median=False)).tracking
    assert (policy.hold, policy.reseed, policy.reseed_median) == (False, True, False)
    assert VIM(tiny_config(perception={"tracking": "paper"})).config.tracking == "paper"


def test_paper_policy_starts_from_the_slots_and_occlusion_reseeds_duplicates():
    pixels, grid = _frame_with_a_hidden_object()
    sa = SlotAttention(num_slots=3, in_dim=4, slot_dim=8, init="seeded")
    # slot 2 duplicates slot 1 (same place, same colour); no pixel is unexplained but the red
    # square, which slot 1 holds, so only a duplicate of a *background* colour moves
    pos = torch.tensor([[[0.0, 0.0], [0.5, 0.5], [0.5, 0.5]]])
    colour = torch.tensor([[[0.0, 0, 0], [0.0, 0, 0], [0.0, 0, 0]]])
    pixel = 2.0 / 15
    start_pos, start_colour = PaperTracking().start(sa, pixels, grid, pos, colour, pixel)
    assert start_pos is pos and start_colour is colour
    moved_pos, moved_colour = OcclusionTracking().start(sa, pixels, grid, pos, colour, pixel)
    # both object slots duplicate the (black) background: the first goes to the red square
    assert torch.allclose(moved_colour[0, 1], torch.tensor([1.0, 0, 0]))
    assert not torch.allclose(moved_pos, pos)
    kept_pos, _ = OcclusionTracking(reseed=False).start(sa, pixels, grid, pos, colour, pixel)
    assert kept_pos is pos


def test_observe_runs_the_policys_slot_attention():
    vim = VIM(tiny_config(tracking="paper"))
    frames = torch.as_tensor(vim.config.make_generator().generate(1, 2, seed=0).frames).float()
    features = vim.encode(frames)
    with torch.no_grad():
        h, colour = vim.discovery(frames, features)
        obs = vim.observe(features[:, 1], frames[:, 1], h, colour)
        direct = vim.slot_attention(features[:, 1], vim.pixels(frames[:, 1]), vim.grid,
                                    pos=h.pos, feat=h.feat, colour=colour, iters=1, hold=False)
    torch.testing.assert_close(obs.pos, direct.pos)
