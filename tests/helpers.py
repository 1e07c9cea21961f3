"""Tiny configurations shared by the tests."""
from pyro_vim.config import VIMConfig


def tiny_config(**overrides) -> VIMConfig:
    base = dict(image_size=16, slot_dim=8, encoder_channels=8, decoder_channels=8,
                module_hidden=16, update_hidden=16, keyquery_dim=8, num_slots=4, num_modules=4,
                num_objects=3, batch_size=4, pretrain_steps=2, steps=4, warmup_steps=1,
                seq_len_start=3, seq_len_max=3, eval_every=2, eval_sequences=4, eval_seq_len=3)
    base.update(overrides)
    return VIMConfig(**base)
