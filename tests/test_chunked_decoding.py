"""Long videos without gradients are encoded and decoded a few frames at a time (bounded
memory, benchmarks/memory.py); the results must not change."""
import numpy as np
import pyro
import pytest
import torch

from pyro_vim import VIM
from pyro_vim.evaluate import _elbo_terms
from pyro_vim.infer import predict

from .helpers import tiny_config


@pytest.fixture
def vim_and_frames():
    torch.manual_seed(0)
    vim = VIM(tiny_config()).eval()
    frames = vim.config.make_generator().generate(3, 7, 4).frames
    return vim, frames


def run_model(vim, frames, chunk):
    vim.chunk_frames = chunk
    pyro.set_rng_seed(1)
    with torch.no_grad():
        _, likelihood = vim._model(torch.from_numpy(frames), observe=False)
    return likelihood


def test_chunked_likelihood_equals_whole(vim_and_frames):
    vim, frames = vim_and_frames
    whole = run_model(vim, frames, 0)
    chunked = run_model(vim, frames, 2)
    assert torch.allclose(whole.means, chunked.means, atol=1e-6)
    assert torch.allclose(whole.mask_logits, chunked.mask_logits, atol=1e-5)


def test_chunked_elbo_terms_equal_whole(vim_and_frames):
    vim, frames = vim_and_frames
    terms = {}
    for chunk in (0, 2):
        vim.chunk_frames = chunk
        pyro.set_rng_seed(3)
        terms[chunk] = _elbo_terms(vim, frames)
    assert terms[0].keys() == terms[2].keys()
    for k in terms[0]:
        assert terms[2][k] == pytest.approx(terms[0][k], rel=1e-5, abs=1e-4), k


def test_chunked_predictions_equal_whole(vim_and_frames):
    vim, frames = vim_and_frames
    out = {}
    for chunk in (0, 2):
        vim.chunk_frames = chunk
        pyro.set_rng_seed(5)
        out[chunk] = predict(vim, torch.from_numpy(frames[:, :2]), horizon=5, num_samples=2)
    assert torch.allclose(out[0]["frames"], out[2]["frames"], atol=1e-5)
    np.testing.assert_allclose(out[0]["positions"], out[2]["positions"], atol=1e-5)


def test_training_decodes_whole_videos(vim_and_frames):
    """With gradients the decoder runs once over all frames (chunks would save nothing)."""
    vim, frames = vim_and_frames
    vim.chunk_frames = 2
    calls = []
    decode = vim.decode
    vim.decode = lambda pos, feat: calls.append(pos.shape[1]) or decode(pos, feat)
    vim._model(torch.from_numpy(frames))
    assert calls == [frames.shape[1]]


def test_decoding_in_blocks_of_videos_equals_whole(vim_and_frames):
    """Without gradients the decoder takes at most ``decode_batch`` (video, frame) pairs."""
    vim, frames = vim_and_frames
    vim.decode_batch = 0
    whole = run_model(vim, frames, 0)
    calls = []
    decode = vim.decode
    vim.decode = lambda pos, feat: calls.append(pos.shape[:2]) or decode(pos, feat)
    vim.decode_batch = 5
    for chunk in (0, 2):                  # 7 frames: blocks of 5 frames x 1 video, 2 x 2 videos
        calls.clear()
        blocks = run_model(vim, frames, chunk)
        assert calls and all(v * t <= 5 for v, t in calls), calls
        assert sum(v * t for v, t in calls) == frames.shape[0] * frames.shape[1]
        assert torch.allclose(whole.means, blocks.means, atol=1e-6)
        assert torch.allclose(whole.mask_logits, blocks.mask_logits, atol=1e-5)
    vim.decode_batch = 0
    whole_infer = vim.infer(torch.from_numpy(frames), chunk=3)
    vim.decode_batch = 4
    calls.clear()
    blocks_infer = vim.infer(torch.from_numpy(frames), chunk=3)
    assert all(v * t <= 4 for v, t in calls), calls
    for key in ("masks", "recon"):
        assert torch.allclose(whole_infer[key], blocks_infer[key], atol=1e-5), key
