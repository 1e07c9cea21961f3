import numpy as np
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyro_vim import VIM, VIMConfig
from pyro_vim.data import RandomWalk
from pyro_vim.nn import SlotAttention, coordinate_grid

from .helpers import tiny_config


def first_frames(n, size=32, seed=3):
    batch = RandomWalk(image_size=size).generate(n, 2, seed)
    pixels = torch.from_numpy(batch.frames[:, 0]).flatten(-2).transpose(-1, -2)
    return batch, pixels


def test_seeding_gives_every_visible_ball_its_own_slot():
    n = 256
    batch, pixels = first_frames(n)
    sa = SlotAttention(num_slots=4, in_dim=8, slot_dim=8, init="seeded")
    idx = sa._seed_indices(pixels, coordinate_grid(32, 32)).numpy()     # (N, K-1)
    masks = batch.masks[:, 0].reshape(n, 3, -1)                           # (N, O, HW)
    seeded = np.take_along_axis(masks, np.repeat(idx[:, None, :], 3, 1), 2).any(-1)
    visible = masks.any(-1)
    assert np.all(seeded | ~visible)
    pos, colour = sa.seeds(pixels, coordinate_grid(32, 32))
    assert pos.shape == (n, 4, 2) and colour.shape == (n, 4, 3)
    # slots 1..K-1 start on the colour of the pixel they were seeded on: never the background
    assert (colour[:, 1:].amax(-1) > 0.5).all()


def test_seeding_separates_same_coloured_objects_by_position():
    pixels = torch.zeros(1, 16 * 16, 3)
    img = pixels.view(1, 16, 16, 3)
    img[0, 1:3, 1:3] = torch.tensor([1.0, 0.0, 0.0])
    img[0, 12:14, 12:14] = torch.tensor([1.0, 0.0, 0.0])
    sa = SlotAttention(num_slots=3, in_dim=8, slot_dim=8, init="seeded")
    idx = sa._seed_indices(pixels, coordinate_grid(16, 16))[0]
    rows = sorted(int(i) // 16 for i in idx)
    assert rows[0] < 3 and rows[1] >= 12


@pytest.mark.parametrize("init", ["learned", "seeded"])
def test_both_initialisations_train_every_parameter(init):
    vim = VIM(tiny_config(slot_init=init))
    frames = torch.from_numpy(RandomWalk(image_size=16).generate(3, 3, 0).frames)
    Trace_ELBO()(vim.model, vim.guide)(frames).backward()
    missing = [name for name, p in vim.named_parameters()
               if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []
    assert vim.slot_attention.init_pos.shape[0] == (vim.config.num_slots if init == "learned"
                                                   else 1)


def test_a_single_slot_is_the_background_slot():
    sa = SlotAttention(num_slots=1, in_dim=8, slot_dim=8, init="seeded")
    _, pixels = first_frames(2, size=16)
    out = sa(torch.randn(2, 256, 8), pixels, coordinate_grid(16, 16))
    assert out.pos.shape == (2, 1, 2) and torch.isfinite(out.pos).all()


def test_unknown_initialisation_is_rejected():
    with pytest.raises(ValueError, match="slot_init"):
        VIMConfig(slot_init="random")
    with pytest.raises(ValueError, match="slot initialisation"):
        SlotAttention(4, 8, 8, init="random")


def test_object_slot_masks_get_a_spatial_extent_term_and_the_background_slot_none():
    from pyro_vim.nn import BroadcastDecoder

    torch.manual_seed(0)
    local_dec = BroadcastDecoder(8, 16, channels=8, kernel=1, layers=1, extent=0.3)
    plain = BroadcastDecoder(8, 16, channels=8, kernel=1, layers=1)
    plain.load_state_dict({k: v for k, v in local_dec.state_dict().items()
                           if not k.startswith("extent")})
    grid = coordinate_grid(16, 16)
    pos, feat = torch.tensor([[0.5, -0.5], [0.0, 0.0]]), torch.randn(2, 8)
    _, with_extent = local_dec(pos, feat, grid, local=torch.tensor([True, False]))
    _, without = plain(pos, feat, grid)
    d2 = (grid - pos[0]).pow(2).sum(-1).reshape(16, 16)
    e = torch.nn.functional.softplus(local_dec.extent(feat[0])) + 1e-3
    assert torch.allclose(without[0] - with_extent[0], d2 / (2 * e * e), atol=1e-5)
    assert torch.allclose(without[1], with_extent[1])       # the background row is untouched


def test_decoded_object_masks_are_local_in_a_fresh_model():
    vim = VIM(tiny_config(image_size=16))
    pos = torch.tensor([[[0.0, 0.0], [-0.8, -0.8], [0.8, 0.8], [0.8, -0.8]]])   # (1, K, 2)
    feat = torch.randn(1, 4, vim.config.slot_dim)
    _, logits = vim.decode(pos, feat)
    masks = logits.softmax(-3)[0]                                # (K, H, W)
    # an object slot in one corner takes almost nothing of the opposite corner
    assert masks[1, -1, -1] < 0.05 and masks[3, -1, 0] < 0.05
