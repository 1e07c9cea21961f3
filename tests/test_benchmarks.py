"""The benchmark scripts run (tiny arguments); their numbers are recorded in BENCHMARKS.md."""
import json
import math

import numpy as np
import pytest

from .helpers import load_script


def load(name):
    return load_script("benchmarks", name)


def test_time_to_identification_smoke(tmp_path):
    bench = load("time_to_identification")
    out = tmp_path / "tti"
    result = bench.main(bench.parse_args(["--minutes", "0.02", "--eval-every-minutes", "0.01",
                                          "--eval-sequences", "2", "--eval-seq-len", "3",
                                          "--num-modules", "5", "--out", str(out),
                                          "--set", "pretrain_steps=7", "data.step=2"]))
    assert result["curve"] and 0.0 <= result["curve"][-1]["accuracy"] <= 1.0
    assert result["num_modules"] == 5
    assert result["config"]["schedule"]["pretrain_steps"] == 7
    assert result["config"]["data"]["step"] == 2
    assert len(result["curve"][-1]["module_translation_px"]) == 5
    point = result["curve"][-1]
    assert point["module_step_error_max"] >= 0 and len(point["rollout_error"]) == 2
    assert "max_deviation" in point["prior_calibration"]
    saved = json.loads((out / "curve.json").read_text())
    assert saved["curve"] == result["curve"]
    assert (out / "checkpoint.pt").exists()


def test_time_to_identification_rejects_bad_sizes(tmp_path):
    import pytest

    bench = load("time_to_identification")
    with pytest.raises(SystemExit, match="num_modules"):
        bench.main(bench.parse_args(["--num-modules", "0", "--out", str(tmp_path / "x")]))
    with pytest.raises(SystemExit, match="unknown config key 'steps_pre'"):
        bench.main(bench.parse_args(["--set", "steps_pre=1", "--out", str(tmp_path / "x")]))
    assert not (tmp_path / "x").exists()


def test_throughput_smoke():
    result = load("throughput").main(["--repeats", "1"])
    assert result["generate_32x10_ms"] > 0 and result["pretrain_step_s"] > 0


def test_throughput_scaling_smoke(tmp_path):
    result = load("throughput").main(["--scaling", "--only", "num_modules", "--max-points", "2",
                                      "--repeats", "1",
                                      "--out", str(tmp_path / "s.json")])
    curve = result["scaling"]["num_modules"]
    assert [pt["value"] for pt in curve["points"]] == [1, 2]
    assert all(pt["step_s"] > 0 and pt["peak_rss_mb"] > 0 for pt in curve["points"])
    assert curve["linear_ratio"] == 2 and curve["ratio_last_first"] > 0
    assert (tmp_path / "s.json").exists()


def test_pyro_overhead_smoke():
    result = load("pyro_overhead").main([
        "--set", "image_size=16", "slot_dim=8", "encoder_channels=8", "decoder_channels=8",
        "module_hidden=16", "update_hidden=16", "keyquery_dim=8", "--batch-size", "3",
        "--seq-len", "3", "--repeats", "1"])
    # the hand-written ELBO is the same function as Trace_ELBO's (same noise, same loss)
    assert result["max_loss_difference"] < 1e-5
    assert result["pyro_step_s"] > 0 and result["torch_step_s"] > 0 and result["ratio"] > 0


def test_long_sequences_smoke(tmp_path):
    from pyro_vim import VIM

    from .helpers import tiny_config
    path = tmp_path / "m.pt"
    VIM(tiny_config()).save(str(path))
    result = load("long_sequences").main([str(path), "--lengths", "3", "5",
                                          "--num-sequences", "2"])
    assert [r["seq_len"] for r in result["rows"]] == [3, 5]
    assert all(0 <= r["accuracy"] <= 1 and r["tracking_error_mean"] >= 0 for r in result["rows"])
    assert all(0 <= r["lost_last_frame"] <= 1 and r["median_error_last_frame"] >= 0
               and 0 <= r["accuracy_last_transitions"] <= 1 for r in result["rows"])


def test_prior_diagnosis_smoke(tmp_path):
    from pyro_vim import VIM

    from .helpers import tiny_config
    path = tmp_path / "m.pt"
    VIM(tiny_config()).save(str(path))
    script = load("prior_diagnosis")
    out = script.main([str(path), "--what", "walls", "--videos", "2"])
    assert 0 <= out["q_impossible_at_walls"] <= 1 and 0 <= out["p_impossible_at_walls"] <= 1
    curve = script.main([str(path), "--what", "refit", "--octaves", "2", "--steps", "5",
                         "--videos", "3"])
    assert [row[0] for row in curve] == [0, 1, 2, 3, 4, 5]
    mixed = script.main([str(path), "--what", "mixing", "--videos", "2"])
    assert 0 < mixed["relaxed_weight"] <= 1 and 0 < mixed["q_max"] <= 1
    sampled = script.main([str(path), "--what", "sampling", "--videos", "2"])
    assert len(sampled) == 4


def test_selection_errors_smoke(tmp_path):
    from pyro_vim import VIM

    from .helpers import tiny_config
    path = tmp_path / "m.pt"
    VIM(tiny_config()).save(str(path))
    out = load("selection_errors").main([str(path), "--num-sequences", "3", "--seq-len", "3"])
    assert 0 <= out["accuracy"] <= 1 and out["wrong"] >= 0
    assert sum(out["wrong_per_ball_histogram"]) == 3 * tiny_config().num_objects
    assert 0 <= out["accuracy_frame0_ties_by_slot_order"] <= 1 and out["tied_balls"] >= 0
    if out["tied_balls"] == 0:   # no tie to break: both frame-0 matchings agree
        assert out["accuracy_frame0_ties_by_slot_order"] == out["accuracy"]


def test_memory_smoke(tmp_path):
    from pyro_vim import VIM

    from .helpers import tiny_config
    path = tmp_path / "m.pt"
    VIM(tiny_config()).save(str(path))
    result = load("memory").main([str(path), "--seq-len", "4", "--num-sequences", "2",
                                  "--json", str(tmp_path / "mem.json")])
    assert result["peak_rss_gb"] > 0 and result["seq_len"] == 4
    assert 0 <= result["rule_module_accuracy"] <= 1
    assert json.loads((tmp_path / "mem.json").read_text()) == result


def test_predict_memory_smoke(tmp_path):
    result = load("predict_memory").main([
        "--videos", "2", "--samples", "3", "--context", "1", "--horizon", "1",
        "--image-size", "16", "--max-batch", "2", "--json", str(tmp_path / "p.json")])
    (row,) = result["rows"]
    assert row["videos"] == 2 and row["samples"] == 3 and row["peak_rss_gb"] > 0, row
    assert json.loads((tmp_path / "p.json").read_text()) == result


def test_gpu_benchmark_smoke_on_cpu(tmp_path):
    bench = load("gpu")
    result = bench.main(bench.parse_args([
        "--device", "cpu", "--presets", "cpu", "--variants", "fp32", "bf16", "--warmup", "1",
        "--repeats", "1", "--out", str(tmp_path / "g.json"),
        "--set", "batch_size=2", "image_size=16", "seq_len_start=3", "seq_len_max=3"]))
    fp32, bf16 = result["points"]
    assert fp32["variant"] == "fp32" and fp32["loss_rel_diff_vs_fp32"] == 0
    assert fp32["sequences_per_s"] > 0 and "error" not in bf16
    assert 0 < bf16["loss_rel_diff_vs_fp32"] < 0.05


def test_composition_factorisations(tmp_path):
    """Fig. 6's two exact module sets: both reach the bound H(D) with a free guide; VIM's greedy
    planner reaches it with the atomic set only; a set that cannot explain the data is None."""
    import math
    bench = load("composition_factorisations")
    out = bench.main(["--restarts", "0", "--out", str(tmp_path / "f.json")])
    h = out["atomic"]["displacement_entropy_nats"]
    assert abs(h - math.log(8)) < 1e-9   # 1/4 log 16 (straight) + 1/2 log 8 (diagonal) + 1/4 log 4
    for name in ("atomic", "diagonal"):
        assert out[name]["kl_nats"] >= h - 1e-9
        assert abs(out[name]["kl_nats"] - h) < 1e-6
    assert abs(out["atomic"]["planner_nats"] - h) < 1e-9
    assert out["diagonal"]["planner_nats"] > h + 0.2
    assert out["atomic"]["deterministic_nats"] > h + 0.1     # ties must be split to reach it
    assert json.loads((tmp_path / "f.json").read_text())["diagonal"]["num_modules"] == 5
    single = bench.main(["--restarts", "0", "--moves", "1"])
    assert single["diagonal"] is None and abs(single["atomic"]["kl_nats"] - math.log(4)) < 1e-9


def test_composition_factorisations_shared_prior_and_lookahead():
    """The planner's atomic+identity set costs more KL than the diagonal set; one prior for both
    choices raises the diagonal set's cost (the atomic bound stays), a lookahead narrows the gap."""
    import math
    bench = load("composition_factorisations")
    h = math.log(8)
    greedy = bench.main(["--restarts", "0"])
    shared = bench.main(["--restarts", "0", "--iteration-prior", "start"])
    ahead = bench.main(["--restarts", "0", "--lookahead"])
    assert greedy["atomic+identity"]["planner_nats"] > greedy["diagonal"]["planner_nats"] + 0.4
    assert abs(shared["atomic"]["planner_nats"] - h) < 1e-9
    assert shared["diagonal"]["planner_nats"] > greedy["diagonal"]["planner_nats"] + 0.2
    gap = ahead["atomic+identity"]["planner_nats"] - ahead["diagonal"]["planner_nats"]
    assert 0 < gap < 0.1


def test_vim2_factorisation_smoke(tmp_path):
    from pyro_vim import VIM

    from .helpers import tiny_config
    path = tmp_path / "m.pt"
    config = tiny_config(iterations=2, num_modules=5)
    config = config.replace(data=dict(config.data.__dict__, name="compositional", min_moves=2,
                                      max_moves=2))
    VIM(config).save(str(path))
    out = load("vim2_factorisation").main([str(path), "--num-sequences", "2", "--seq-len", "3",
                                           "--repeats", "2", "--threads", "1",
                                           "--out", str(tmp_path / "v.json")])
    row = out[str(path)]
    assert math.isfinite(row["elbo"]) and row["iterations"] == 2
    counted = sum(d["count"] for d in row["displacements"].values())
    assert counted == 2 * 2 * config.data.num_objects            # videos x transitions x balls
    for d in row["displacements"].values():
        assert all(len(pair) == 2 for pair, _ in d["pairs"])
    assert json.loads((tmp_path / "v.json").read_text())[str(path)]["num_modules"] == 5


def test_decode_window_benchmark_smoke(tmp_path):
    out = load("decode_window").main(load("decode_window").parse_args(
        ["--threads", "1", "--warmup", "0", "--repeats", "1", "--window", "6",
         "--precisions", "fp32", "--out", str(tmp_path / "w.json"), "--set", "image_size=16",
         "slot_dim=8", "encoder_channels=8", "decoder_channels=8", "module_hidden=16",
         "update_hidden=16", "keyquery_dim=8", "batch_size=2", "seq_len_start=3",
         "seq_len_max=3"]))
    assert [p["decode_window"] for p in out["points"]] == [0, 6]
    assert out["points"][0]["speedup"] == 1.0 and out["points"][1]["dynamics_step_s"] > 0
    assert json.loads((tmp_path / "w.json").read_text())["seq_len"] == 3


def test_table1_references(tmp_path):
    out = load("table1_references").main(["--seeds", "0,1", "--sequences", "4", "--draws", "8",
                                          "--set", "image_size=16", "--out",
                                          str(tmp_path / "r.json")])
    for r in out["seeds"].values():
        # the mean of the draws errs less than a draw on average (the squared error is convex)
        assert 0 < r["oracle_mean"] < r["oracle_sample"]
        assert r["background"] > 0 and r["previous_frame"] > 0
    assert json.loads((tmp_path / "r.json").read_text())["draws"] == 8


def test_train_more_smoke(tmp_path):
    from pyro_vim.train import Trainer

    from .helpers import tiny_config
    run = Trainer(tiny_config(model="rim", pretrain_steps=0, steps=2, eval_every=0),
                  out_dir=str(tmp_path / "run"), progress=False, tensorboard=False)
    run.run(2)
    run.close()
    out = load("train_more").main([str(tmp_path / "run" / "checkpoint.pt"), "--minutes",
                                   "0.01", "--sequences", "2", "--out", str(tmp_path / "more")])
    assert out["model"] == "rim" and out["steps_more"] >= 1
    assert out["table1_mse_before"] > 0 and out["table1_mse_after"] > 0
    assert json.loads((tmp_path / "more" / "result.json").read_text()) == out
    again = load("train_more").main([str(tmp_path / "run" / "checkpoint.pt"), "--minutes",
                                     "0.01", "--sequences", "2", "--no-pretraining", "--out",
                                     str(tmp_path / "more2")])
    with open(tmp_path / "more2" / "log.jsonl") as f:
        assert {json.loads(line)["phase"] for line in f} == {"dynamics"}
    assert again["steps_more"] >= 1


def test_baseline_diagnosis_smoke(tmp_path):
    from pyro_vim.models import build_model

    from .helpers import tiny_config
    path = str(tmp_path / "rim.pt")
    build_model(tiny_config(model="rim")).save(path)
    out = load("baseline_diagnosis").main([path, "--sequences", "3", "--out",
                                           str(tmp_path / "d.json")])
    assert out["teacher_forced"] > 0 and out["perception"] > 0 and out["empty_frame"] > 0
    assert 0 <= out["object_units_at_the_border"] <= 1
    assert out["unit_centroids"]["previous"] >= 0
    assert out["settings"]["input_attention"] == "slots"
    assert json.loads((tmp_path / "d.json").read_text()) == out
    vim = str(tmp_path / "vim.pt")
    build_model(tiny_config()).save(vim)
    with pytest.raises(SystemExit):
        load("baseline_diagnosis").main([vim])


def test_table1_sample_errors_smoke(tmp_path):
    from pyro_vim import VIM

    from .helpers import tiny_config
    path = tmp_path / "m.pt"
    VIM(tiny_config()).save(str(path))
    out = load("table1_sample_errors").main([str(path), "--sequences", "3", "--samples", "2",
                                             "--draws", "2", "--out", str(tmp_path / "s.json")])
    r = out[0]
    o = tiny_config().data.num_objects
    assert len(r["vim_se_by_wrong_balls"]) == o + 1
    assert abs(sum(r["vim_share_by_wrong_balls"]) - 1) < 1e-9
    assert abs(sum(r["oracle_share_by_wrong_balls"]) - 1) < 1e-9
    assert r["oracle_se_by_wrong_balls"][0] == 0 or r["oracle_share_by_wrong_balls"][0] == 0
    assert r["vim_sample_se"] > 0 and r["ball_energy_true"] > 0
    assert json.loads((tmp_path / "s.json").read_text())[0]["samples"] == 2


def test_occlusion_smoke(tmp_path):
    from pyro_vim import VIM
    from pyro_vim.models import load_model

    from .helpers import tiny_config
    path = tmp_path / "m.pt"
    VIM(tiny_config()).save(str(path))
    result = load("occlusion").main([str(path), "--lengths", "3", "4", "--num-sequences", "2"])
    settings = [(r["seq_len"], r["hold_hidden"], r["reseed"], r["reseed_median"])
                for r in result["rows"]]
    assert settings == [(t, *s) for t in (3, 4) for s in
                        ((False, False, False), (True, False, False), (False, True, False),
                         (True, True, False), (True, True, True))]
    assert all(0 <= r["accuracy"] <= 1 and 0 <= r["lost_last_frame"] <= 1
               and 0 <= r["track_accuracy"] <= 1
               and r["tracking_error_mean"] >= 0 for r in result["rows"])
    # the checkpoint itself is untouched
    assert result["trained_with"] == {"hold_hidden": True, "reseed": True,
                                      "reseed_median": True}
    assert load_model(str(path)).config.reseed_median is True


def test_ood_perception_smoke(tmp_path):
    from pyro_vim import VIM

    from .helpers import tiny_config
    path = tmp_path / "m.pt"
    VIM(tiny_config()).save(str(path))
    out = load("ood_perception").main([str(path), "--num-sequences", "2"])
    colours = [k for k in out if k.startswith("colour")]
    kinds = [k for k in out if not k.startswith("colour")]
    assert colours and kinds
    # every object counted once by kind and once by colour (the targets are the placeable
    # ones of twice as many drawn, so there may be fewer than asked for)
    total = sum(out[k]["objects"] for k in colours)
    assert total == sum(out[k]["objects"] for k in kinds)
    assert 0 < total <= 2 * tiny_config().num_objects and total % tiny_config().num_objects == 0
    assert all(0 <= v["over_2px"] <= 1 and v["median_px"] >= 0 for v in out.values())


def test_tracking_cases_smoke(tmp_path):
    from pyro_vim import VIM

    from .helpers import tiny_config
    path = tmp_path / "m.pt"
    VIM(tiny_config()).save(str(path))
    script = load("tracking_cases")
    cases = script.main([str(path), "--what", "lost", "--num-sequences", "2", "--seq-len", "4"])
    assert all(0 <= c["lost_at"] < 4 and len(c["visible_px"]) == len(c["slot_error_px"])
               for c in cases)
    videos = script.main([str(path), "--what", "coincident", "--num-sequences", "3",
                          "--seq-len", "3", "--reseed", "off", "--hold", "on"])
    assert all(len(v["frames"]) == 3 and len(v["matching"]) == 3 for v in videos)
    rows = script.main([str(path), "--what", "visibility", "--num-sequences", "3",
                        "--seq-len", "3"])
    assert abs(sum(r["share"] for r in rows) - 1.0) < 1e-9
    assert all(r["share"] == 0 or r["centroid_error_px"] >= 0 for r in rows)


def test_duplicate_modules_kl():
    """The analytic module KL is flat in how a rule is split between two identical modules; the
    relaxed Monte Carlo KL with a fitted prior penalises the split."""
    rows = load("duplicate_modules").main(["--shares", "0", "0.5", "--samples", "4000",
                                           "--fit-steps", "60"])
    assert abs(rows[0]["categorical"] - rows[1]["categorical"]) < 0.01
    assert rows[1]["fitted"] > rows[0]["fitted"] + 0.5
    with pytest.raises(SystemExit):
        load("duplicate_modules").main(["--modules", "4", "--rules", "4"])


def test_train_npz_smoke(tmp_path):
    """The timing of python -m pyro_vim.train on npz shards: a short run, projected."""
    bench = load("train_npz")
    result = bench.main(["--out", str(tmp_path / "t"), "--videos", "12", "--frames", "6",
                         "--image-size", "16", "--steps", "6", "--threads", "1",
                         "--set", "slot_dim=8", "encoder_channels=8", "decoder_channels=8",
                         "module_hidden=16", "update_hidden=16", "keyquery_dim=8",
                         "batch_size=4", "eval_sequences=4", "eval_seq_len=4"])
    assert set(result["step_s"]) == {"pretrain", "dyn4", "dyn6"}
    assert result["projected_minutes"] > 0 and result["derived"][0].startswith("data: ")
    assert json.loads((tmp_path / "t" / "timing.json").read_text()) == result


def test_bouncing_stats_smoke(capsys):
    results = load("bouncing_stats").main(["--num-sequences", "20", "--seq-len", "4",
                                           "--compare"])
    assert [r["setting"]["num_objects"] for r in results] == [3, 4, 3]
    assert results[2]["setting"]["speed"] == 2.5
    curve = results[0]["collision_videos_by_transitions"]
    assert list(curve) == [1, 2, 3] and all(0 <= v <= 1 for v in curve.values())
    assert curve[1] <= curve[2] <= curve[3]
    assert sum(results[0]["label_shares"].values()) == pytest.approx(1.0)
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_stroke_recording_draws_same_coloured_digits_with_their_ground_truth():
    bench = load("stroke_recording")
    batch = bench.record(4, 5, seed=3)
    frames = batch.frames                                  # (N, T, 3, H, W)
    foreground = (frames != bench.BACKGROUND[None, None, :, None, None]).any(2)
    colours = frames.transpose(0, 1, 3, 4, 2)[foreground]
    assert np.allclose(colours, bench.FOREGROUND)          # every object pixel has one colour
    # each object's visible pixels are foreground, and its position is its pixels' centroid
    assert not (batch.masks & ~foreground[:, :, None]).any()
    steps = np.diff(batch.positions, axis=1)
    assert np.allclose(np.abs(steps).sum(-1), 2.0)         # 2 px along one axis per frame
    dx = bench.MOVES[batch.moves[..., 0]] * 2
    assert np.allclose(steps, dx)                          # the moves are the true rules


def test_stroke_recording_smoke(tmp_path):
    """Write the recording, pre-train, train through --data, score before and after."""
    result = load("stroke_recording").main([
        "--out", str(tmp_path / "s"), "--videos", "16", "--frames", "6", "--eval-videos", "4",
        "--threads", "1", "--steps", "6", "--pretrain-steps", "3",
        "--set", "slot_dim=8", "encoder_channels=8", "decoder_channels=8", "module_hidden=16",
        "update_hidden=16", "keyquery_dim=8", "batch_size=4", "eval_sequences=4",
        "eval_every=3", "seq_len_start=3", "seq_len_max=4"])
    assert result["derived"][0].startswith("data: ")
    for name in ("before_learning", "trained"):
        assert 0.0 <= result[name]["rule_module_accuracy"] <= 1.0
        assert result[name]["slot_distance_px"] >= 0.0
    assert not (tmp_path / "s" / "shards" / "dataset.json").exists()
