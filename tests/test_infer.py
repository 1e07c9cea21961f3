"""pyro_vim.infer: sampled futures, counterfactual rollouts, module rollouts, their metrics."""
import numpy as np
import pyro
import pytest
import torch
from pyro import poutine

from pyro_vim import VIM, VIMConfig
from pyro_vim.data import RandomWalk
from pyro_vim.infer import (
    UseMeans,
    counterfactual,
    match_predicted_slots,
    module_rollouts,
    module_translations,
    predict,
    prediction_metrics,
    selection_diversity,
)

S, K, M = 16, 4, 4


@pytest.fixture
def vim():
    config = VIMConfig(image_size=S, slot_dim=8, encoder_channels=8, decoder_channels=8,
                       module_hidden=16, update_hidden=16, keyquery_dim=8, num_slots=K,
                       num_modules=M, num_objects=3)
    return VIM(config).eval()


@pytest.fixture(scope="module")
def batch():
    return RandomWalk(num_objects=3, image_size=S).generate(num_sequences=3, seq_len=6, seed=7)


@pytest.fixture
def frames(batch):
    return torch.from_numpy(batch.frames)


# ------------------------------------------------------------------------------------- predict
def test_predict_shapes(vim, frames):
    pred = predict(vim, frames[:, :2], horizon=4, num_samples=5)
    n = frames.shape[0]
    assert pred["frames"].shape == (5, n, 4, 3, S, S)
    assert pred["positions"].shape == (5, n, 4, K, 2)
    assert pred["masks"].shape == (5, n, 4, K, S, S)
    assert pred["selections"].shape == (5, n, 4, K)
    assert pred["selections"].dtype == torch.long
    assert pred["selection_samples"].shape == (5, n, 4, K, M)
    assert pred["context_positions"].shape == (5, n, K, 2)
    assert torch.equal(pred["selections"], pred["selection_samples"].argmax(-1))
    assert torch.allclose(pred["masks"].sum(-3), torch.ones(5, n, 4, S, S), atol=1e-5)
    assert ((pred["frames"] >= 0) & (pred["frames"] <= 1)).all()


def test_predicted_samples_differ(vim, frames):
    pred = predict(vim, frames[:, :2], horizon=4, num_samples=6)
    # different samples choose different modules ...
    sel = pred["selections"]
    assert any(not torch.equal(sel[0], sel[s]) for s in range(1, 6))
    assert selection_diversity(sel) > 0.5
    # ... and so render different futures (for every video)
    spread = (pred["frames"] - pred["frames"][:1]).abs().amax(dim=(0, 2, 3, 4, 5))
    assert (spread > 1e-3).all()
    # the video order is kept: sample s of video n is predicted from video n's context
    assert not torch.allclose(pred["context_positions"][:, 0], pred["context_positions"][:, 1])


def test_predict_from_one_frame(vim, frames):
    pred = predict(vim, frames[:, 0], horizon=2, num_samples=2)     # (N, 3, S, S): one frame
    assert pred["frames"].shape == (2, frames.shape[0], 2, 3, S, S)
    assert pred["context_positions"].shape == (2, frames.shape[0], K, 2)


@pytest.mark.parametrize("kwargs, error", [
    (dict(horizon=0), ValueError),
    (dict(horizon=2.0), TypeError),
    (dict(horizon=True), TypeError),
    (dict(num_samples=0), ValueError),
    (dict(num_samples="3"), TypeError),
])
def test_predict_bad_numbers(vim, frames, kwargs, error):
    args = dict(horizon=2, num_samples=2)
    args.update(kwargs)
    with pytest.raises(error):
        predict(vim, frames[:, :2], **args)


def test_predict_bad_context(vim, frames):
    with pytest.raises(TypeError, match="torch.Tensor"):
        predict(vim, frames[:, :2].numpy(), horizon=2, num_samples=2)
    with pytest.raises(ValueError, match="image_size"):
        predict(vim, torch.zeros(2, 2, 3, 8, 8), horizon=2, num_samples=2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        predict(vim, frames[:, :2] * 2, horizon=2, num_samples=2)
    with pytest.raises(TypeError, match="floating"):
        predict(vim, (frames[:, :2] * 255).to(torch.uint8), horizon=2, num_samples=2)
    with pytest.raises(TypeError, match="VIM"):
        predict("model", frames[:, :2], horizon=2, num_samples=2)


# ---------------------------------------------------------------------------------- metrics
def _fake_prediction(true_frames, true_positions, noise):
    """3 samples; sample 1 is the truth (slots 0..O-1 sit on the objects), others are off."""
    s = 3
    frames = np.clip(true_frames[None] + noise * np.ones((s, 1, 1, 1, 1, 1)), 0, 1)
    frames[1] = true_frames
    n, h, o = true_positions.shape[:3]
    pos = np.zeros((s, n, h, K, 2))
    pos[:, :, :, :o] = true_positions[None]
    pos[:, :, :, :o, 0] += 2.0                                    # every sample 2 px off in x
    pos[2, :, :, :o, 1] += 1.0                                    # sample 2 also 1 px off in y
    sel = np.zeros((s, n, h, K), dtype=np.int64)
    sel[2] = 1
    return {"frames": frames, "positions": pos, "selections": sel}


def test_prediction_metrics_values(batch):
    truth, true_pos = batch.frames[:, 3:], batch.positions[:, 3:]
    pred = _fake_prediction(truth, true_pos, noise=0.5)
    n, h, o = true_pos.shape[:3]
    matching = np.tile(np.arange(o), (n, 1))
    out = prediction_metrics(pred, truth, true_pos, matching)
    assert out["mse"].shape == out["mse_best"].shape == out["mse_per_pixel"].shape == (h,)
    assert out["mse_samples"].shape == (3, n, h)
    np.testing.assert_allclose(out["mse_best"], 0.0, atol=1e-9)
    expected = ((pred["frames"] - truth[None]) ** 2).sum(axis=(3, 4, 5)).mean(axis=(0, 1))
    np.testing.assert_allclose(out["mse"], expected)
    np.testing.assert_allclose(out["mse_per_pixel"], expected / (3 * S * S))
    # position errors: samples 0 and 1 are 2 px off, sample 2 is sqrt(5) px off
    np.testing.assert_allclose(out["position_error"], (2 + 2 + np.sqrt(5)) / 3)
    np.testing.assert_allclose(out["position_error_best"], 2.0)
    # one of the three pairs chooses the same modules
    assert out["selection_diversity"] == pytest.approx(2 / 3)
    # a per-sample matching that points at a wrong slot is scored as such
    bad = np.broadcast_to(matching, (3, n, o)).copy()
    bad[0, :, 0] = K - 1
    assert (prediction_metrics(pred, truth, true_pos, bad)["position_error"]
            > out["position_error"]).all()


def test_prediction_metrics_bad_input(batch):
    truth, true_pos = batch.frames[:, 3:], batch.positions[:, 3:]
    pred = _fake_prediction(truth, true_pos, noise=0.1)
    with pytest.raises(ValueError, match="matching"):
        prediction_metrics(pred, truth, true_pos)
    with pytest.raises(ValueError, match="true_frames"):
        prediction_metrics(pred, truth[:, :2])
    with pytest.raises(ValueError, match="matching"):
        prediction_metrics(pred, truth, true_pos, np.zeros((2, 2), dtype=int))
    with pytest.raises(TypeError):
        prediction_metrics({"frames": pred["frames"]}, truth)


def test_selection_diversity():
    same = np.zeros((4, 2, 3, K), dtype=np.int64)
    assert selection_diversity(same) == 0.0
    diff = same.copy()
    diff[np.arange(4), :, 0, 0] = np.arange(4)[:, None]
    assert selection_diversity(diff) == 1.0
    assert np.isnan(selection_diversity(same[:1]))
    with pytest.raises(ValueError):
        selection_diversity(same[0])


def test_match_predicted_slots(vim, frames, batch):
    pred = predict(vim, frames[:, :2], horizon=1, num_samples=2)
    matching = match_predicted_slots(pred, batch.positions[:, 1])
    assert matching.shape == (2, frames.shape[0], 3)
    assert all(len(set(row)) == 3 for row in matching.reshape(-1, 3))   # one-to-one
    with pytest.raises(ValueError):
        match_predicted_slots(pred, batch.positions[:2, 1])


# ---------------------------------------------------------------------------- counterfactual
def test_counterfactual_modules_move_slots_differently(vim, frames):
    h = 3
    a = counterfactual(vim, frames[:, :1], torch.zeros(h, K, dtype=torch.long))
    b = counterfactual(vim, frames[:, :1], torch.ones(h, K, dtype=torch.long))
    again = counterfactual(vim, frames[:, :1], np.zeros((h, K), dtype=np.int64))
    n = frames.shape[0]
    assert a["frames"].shape == (n, h, 3, S, S)
    assert a["positions"].shape == (n, h, K, 2)
    assert a["masks"].shape == (n, h, K, S, S)
    assert a["slot_renders"].shape == (n, h, K, 3, S, S)
    assert a["start_frame"].shape == (n, 3, S, S)
    assert a["start_positions"].shape == (n, K, 2)
    # same start, different modules -> different positions at every step
    torch.testing.assert_close(a["start_positions"], b["start_positions"])
    assert ((a["positions"] - b["positions"]).norm(dim=-1) > 1e-3).all()
    # deterministic by default (means of z)
    torch.testing.assert_close(a["positions"], again["positions"])
    # a frame is the sum of its slots rendered alone
    torch.testing.assert_close(a["slot_renders"].sum(2), a["frames"], atol=1e-5, rtol=0)


def test_counterfactual_conditions_on_hard_one_hots(vim, frames):
    d, h = 2, 3
    modules = torch.tensor([[0, 1, 2, 3], [3, 3, 0, 0], [1, 2, 1, 2]])   # (H, K)
    per_video = modules.expand(frames.shape[0], h, K).clone()
    per_video[1, 0, 0] = 2
    out = counterfactual(vim, frames[:, :d], per_video)
    trace = out["trace"]
    for j in range(h):
        site = trace.nodes[f"r_{d + j}"]
        assert site["is_observed"]
        value = site["value"]
        assert ((value == 0) | (value == 1)).all() and (value.sum(-1) == 1).all()
        assert torch.equal(value.argmax(-1), per_video[:, j])
        lp = site["fn"].log_prob(value)
        assert torch.isfinite(lp).all()
    # the context's own module choices come from the guide, not from the condition
    assert not trace.nodes["r_1"]["is_observed"]
    assert torch.isfinite(out["log_density"])
    assert torch.isfinite(trace.log_prob_sum())
    # the same conditioning written by hand gives the same finite density
    data = {f"r_{d + j}": torch.nn.functional.one_hot(per_video[:, j], M).float()
            for j in range(h)}
    guide = UseMeans(["z_0", "r_1", "z_1"])(vim.guide)
    guide_trace = poutine.trace(guide).get_trace(frames[:, :d], horizon=h)
    model = UseMeans([f"z_{d + j}" for j in range(h)])(
        poutine.condition(poutine.replay(vim.model, trace=guide_trace), data=data))
    manual = poutine.trace(model).get_trace(frames[:, :d], horizon=h)
    torch.testing.assert_close(manual.log_prob_sum(), out["log_density"])


def test_counterfactual_sampled_updates_vary(vim, frames):
    modules = torch.zeros(2, K, dtype=torch.long)
    a = counterfactual(vim, frames[:, :1], modules, sample_updates=True)
    b = counterfactual(vim, frames[:, :1], modules, sample_updates=True)
    assert not torch.allclose(a["positions"], b["positions"])
    assert torch.isfinite(a["log_density"])


@pytest.mark.parametrize("modules, error, match", [
    (torch.full((2, K), M), ValueError, "module indices"),
    (torch.full((2, K), -1), ValueError, "module indices"),
    (torch.zeros(2, K), TypeError, "integer"),
    (np.zeros((2, K), dtype=bool), TypeError, "integer"),
    (torch.zeros(2, K + 1, dtype=torch.long), ValueError, "shape"),
    (torch.zeros(5, 2, K, dtype=torch.long), ValueError, "shape"),
    (torch.zeros(K, dtype=torch.long), ValueError, "shape"),
    (torch.zeros(0, K, dtype=torch.long), ValueError, "shape"),
])
def test_counterfactual_bad_modules(vim, frames, modules, error, match):
    with pytest.raises(error, match=match):
        counterfactual(vim, frames[:, :1], modules)


def test_counterfactual_bad_inputs(vim, frames):
    modules = torch.zeros(2, K, dtype=torch.long)
    with pytest.raises(TypeError):
        counterfactual(vim, frames[:, :1], modules, sample_updates="yes")
    with pytest.raises(ValueError):
        counterfactual(vim, torch.zeros(2, 1, 3, S + 1, S + 1), modules)
    with pytest.raises(TypeError):
        counterfactual(None, frames[:, :1], modules)


# ---------------------------------------------------------------------------- module rollouts
def test_module_rollouts(vim, frames):
    steps = 3
    out = module_rollouts(vim, frames[0, 0], slot=1, num_steps=steps)
    assert out["renders"].shape == (M, steps + 1, 3, S, S)
    assert out["positions"].shape == (M, steps + 1, 2)
    assert out["frames"].shape == (M, steps + 1, 3, S, S)
    # every rollout starts from the same reconstruction, then the modules take it apart
    torch.testing.assert_close(out["renders"][:, 0], out["renders"][:1, 0].expand(M, 3, S, S))
    final = out["positions"][:, -1]
    assert (torch.cdist(final, final) + torch.eye(M) > 1e-3).all()
    # the slot alone is part of the full frame
    assert (out["renders"] <= out["frames"] + 1e-5).all()
    # the same as counterfactual with all slots on module m
    cf = counterfactual(vim, frames[:1, :1], torch.full((steps, K), 2))
    torch.testing.assert_close(out["positions"][2, 1:], cf["positions"][0, :, 1])
    # a (1, 3, S, S) frame works too
    assert module_rollouts(vim, frames[0, :1], 0, 1)["renders"].shape == (M, 2, 3, S, S)


@pytest.mark.parametrize("kwargs, error", [
    (dict(slot=K), ValueError),
    (dict(slot=-1), ValueError),
    (dict(slot=1.0), TypeError),
    (dict(num_steps=0), ValueError),
    (dict(frame="frame"), TypeError),
    (dict(frame=torch.zeros(2, 3, S, S)), ValueError),
])
def test_module_rollouts_bad_inputs(vim, frames, kwargs, error):
    args = dict(frame=frames[0, 0], slot=0, num_steps=2)
    args.update(kwargs)
    with pytest.raises(error):
        module_rollouts(vim, **args)


def test_module_translations_are_the_modules_mean_moves_in_pixels():
    vim = VIM(VIMConfig(image_size=S, slot_dim=8, encoder_channels=8, decoder_channels=8,
                        module_hidden=16, update_hidden=16, keyquery_dim=8, num_slots=K,
                        num_modules=M))
    steps = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0], [0.0, -1.5]])   # pixels
    with torch.no_grad():
        vim.transition.l3.weight.zero_()
        vim.transition.l3.bias[:, :2] = steps * (2.0 / (S - 1))
    states = torch.randn(5, 3, K, vim.config.state_dim)
    out = module_translations(vim, states)
    assert out.shape == (M, 2)
    assert torch.allclose(out, steps, atol=1e-5)
    with pytest.raises(ValueError, match="states"):
        module_translations(vim, torch.zeros(2, K, 3))


def test_infer_in_time_chunks_gives_the_same_results():
    from .helpers import tiny_config
    vim = VIM(tiny_config()).eval()
    frames = torch.from_numpy(RandomWalk(image_size=16).generate(2, 9, 4).frames)
    whole, chunked = vim.infer(frames, chunk=64), vim.infer(frames, chunk=2)
    for key in whole:
        assert torch.allclose(whole[key].float(), chunked[key].float(), atol=1e-5), key
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        vim.infer(frames, chunk=0)


# ------------------------------------------------------------------- chunks of videos x samples
def _assert_same(a, b, keys=None, atol=1e-5):
    for key in keys or a:
        if isinstance(a[key], torch.Tensor):
            assert a[key].shape == b[key].shape, key
            torch.testing.assert_close(a[key], b[key], atol=atol, rtol=1e-5, msg=key)


def test_predict_in_chunks_equals_one_run_under_means(vim, frames):
    """Every row's distributions are the same however the rows are chunked: with every latent
    at its mean / mode (deterministic) the chunked futures equal the one-run futures."""
    with UseMeans():
        whole = predict(vim, frames[:, :2], horizon=3, num_samples=3, max_batch=None)
        for max_batch in (1, 2, 4):                   # 9 rows: uneven last chunks
            chunked = predict(vim, frames[:, :2], horizon=3, num_samples=3, max_batch=max_batch)
            assert list(chunked) == list(whole)
            _assert_same(whole, chunked)
            assert torch.equal(whole["selections"], chunked["selections"])
    assert whole["frames"].shape == (3, frames.shape[0], 3, 3, S, S)


def test_predict_in_chunks_is_reproducible_and_samples_alike(vim, frames):
    def run(seed, max_batch, **kw):
        pyro.set_rng_seed(seed)
        return predict(vim, frames[:1, :2], max_batch=max_batch, **kw)

    a, b = run(1, 5, horizon=2, num_samples=4), run(1, 5, horizon=2, num_samples=4)
    _assert_same(a, b, atol=0)
    assert a["frames"].shape == (4, 1, 2, 3, S, S)
    # a chunk that holds every row draws exactly what one run draws
    _assert_same(run(2, 4, horizon=2, num_samples=4), run(2, None, horizon=2, num_samples=4),
                 atol=0)
    # chunked draws come from the same distribution: module frequencies agree
    freq = [np.bincount(run(3, mb, horizon=2, num_samples=64)["selections"].reshape(-1),
                        minlength=M) / (64 * 2 * K) for mb in (None, 5)]
    np.testing.assert_allclose(freq[0], freq[1], atol=0.08)


@pytest.mark.parametrize("max_batch", [0, -3, 2.5, True, "4"])
def test_bad_max_batch_is_named(vim, frames, max_batch):
    modules = torch.zeros(2, K, dtype=torch.long)
    with pytest.raises(ValueError, match="max_batch must be a positive int"):
        predict(vim, frames[:, :2], horizon=2, num_samples=2, max_batch=max_batch)
    with pytest.raises(ValueError, match="max_batch must be a positive int"):
        counterfactual(vim, frames[:, :1], modules, max_batch=max_batch)


def test_counterfactual_in_chunks_equals_one_run(vim, frames):
    d, h, n = 2, 3, frames.shape[0]
    modules = torch.randint(0, M, (n, h, K))
    whole = counterfactual(vim, frames[:, :d], modules, max_batch=None)
    chunked = counterfactual(vim, frames[:, :d], modules, max_batch=2)
    assert list(chunked) == list(whole)
    _assert_same(whole, chunked)
    # the joined trace is the trace of all videos: values, densities, the videos plate
    joined, one = chunked["trace"], whole["trace"]
    for name in ("z_0", "r_1", "z_1", f"r_{d}", f"z_{d + h - 1}", "x", "future_frames"):
        site, ref = joined.nodes[name], one.nodes[name]
        assert site["is_observed"] == ref["is_observed"], name
        torch.testing.assert_close(site["value"], ref["value"], atol=1e-5, rtol=1e-5)
        assert site["fn"].batch_shape == ref["fn"].batch_shape, name
        torch.testing.assert_close(site["fn"].log_prob(site["value"]),
                                   ref["fn"].log_prob(ref["value"]), atol=1e-3, rtol=1e-5)
        assert [f.size for f in site["cond_indep_stack"]] == \
            [f.size for f in ref["cond_indep_stack"]], name
    assert joined.nodes["videos"]["value"].tolist() == list(range(n))
    assert "_RETURN" not in joined.nodes
    torch.testing.assert_close(chunked["log_density"], whole["log_density"], rtol=1e-5,
                               atol=1e-3)
    fresh = poutine.Trace()                         # log densities computed anew, not cached
    for name, node in joined.nodes.items():
        fresh.add_node(name, **{k: v for k, v in node.items() if k != "log_prob_sum"})
    torch.testing.assert_close(fresh.log_prob_sum(), whole["log_density"], rtol=1e-5, atol=1e-3)
    # one chunk of all videos is the one-run trace itself
    assert "_RETURN" in counterfactual(vim, frames[:, :d], modules, max_batch=n)["trace"].nodes
    # sampled updates run in chunks too
    sampled = counterfactual(vim, frames[:, :d], modules, sample_updates=True, max_batch=1)
    assert sampled["positions"].shape == (n, h, K, 2)
    assert torch.isfinite(sampled["log_density"])
