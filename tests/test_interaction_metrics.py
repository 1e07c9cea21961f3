"""The interaction experiment's metrics and baselines (pyro_vim/evaluate/interactions.py), its
runner experiment and evaluation, the evaluate CLI on bouncing balls and the report's keys."""
import json
import os

import numpy as np
import pytest
import torch

from pyro_vim import VIM, report
from pyro_vim.data.bouncing import BouncingBalls
from pyro_vim.evaluate import interactions as I
from pyro_vim.evaluate.cli import main as evaluate_main
from pyro_vim.experiments import get_experiment
from pyro_vim.run.evaluation import interactions_evaluation

from .helpers import tiny_config


def bouncing_config(**overrides):
    base = dict(data={"name": "bouncing", "radius": 2, "speed": 1.5},
                interaction={"num_binary_modules": 1, "velocity": True}, num_modules=2)
    base.update(overrides)
    return tiny_config(**base)


# -- attribution on hand-made choices ------------------------------------------------------
def collision_case():
    """One video, 5 transitions, 3 balls matched to slots (2, 0, 1): balls 0 and 1 collide at
    transition 2."""
    coll = np.zeros((1, 5, 3, 3), bool)
    coll[0, 2, 0, 1] = coll[0, 2, 1, 0] = True
    matching = np.array([[2, 0, 1]])
    sel = np.zeros((1, 5, 3), np.int64)            # unary module 0 everywhere
    partners = np.full((1, 5, 3), -1)
    return coll, matching, sel, partners


def choose(sel, partners, t, slot, partner_slot, module=2):
    sel[0, t, slot] = module
    partners[0, t, slot] = partner_slot


def test_attribution_exact_shifted_and_wrong_partner():
    coll, matching, sel, partners = collision_case()
    # exact: ball 0 (slot 2) picks ball 1 (slot 0) and vice versa at t = 2
    s, p = sel.copy(), partners.copy()
    choose(s, p, 2, 2, 0)
    choose(s, p, 2, 0, 2)
    out = I.attribution_scores(s, p, matching, coll, num_unary=2)
    assert out["precision"] == 1 and out["recall"] == 1 and out["partner_accuracy"] == 1
    assert out["predicted_interactions"] == 2 and out["collision_events"] == 2
    assert out["binary_share_at_collisions"] == 1
    # one frame early / late still counts (tolerance 1), not with tolerance 0
    s, p = sel.copy(), partners.copy()
    choose(s, p, 1, 2, 0)
    choose(s, p, 3, 0, 2)
    out = I.attribution_scores(s, p, matching, coll, num_unary=2)
    assert out["precision"] == 1 and out["recall"] == 1
    assert out["partner_accuracy"] is None            # no binary choice at the collision itself
    out0 = I.attribution_scores(s, p, matching, coll, num_unary=2, tolerance=0)
    assert out0["precision"] == 0 and out0["recall"] == 0
    # two frames off: wrong
    s, p = sel.copy(), partners.copy()
    choose(s, p, 4, 2, 0)
    assert I.attribution_scores(s, p, matching, coll, 2)["precision"] == 0
    # wrong partner: ball 0 picks ball 2 (slot 1)
    s, p = sel.copy(), partners.copy()
    choose(s, p, 2, 2, 1)
    out = I.attribution_scores(s, p, matching, coll, num_unary=2)
    assert out["precision"] == 0 and out["recall"] == 0 and out["partner_accuracy"] == 0
    # a unary module with a partner is no interaction; no binary modules at all
    s, p = sel.copy(), partners.copy()
    choose(s, p, 2, 2, 0, module=1)
    out = I.attribution_scores(s, p, matching, coll, num_unary=2)
    assert out["precision"] is None and out["recall"] == 0
    assert I.attribution_scores(sel, None, matching, coll, 2)["predicted_interactions"] == 0
    # chance: 3 of 15 ball-transitions near the collision (t = 1, 2, 3 for balls 0 and 1) ...
    assert out["chance_precision"] == pytest.approx(6 * 0.5 / 15)


class FakeModel(torch.nn.Module):
    """``infer`` returns the true masks in permuted slots and given choices."""

    def __init__(self, batch, perm, selections, partners, num_modules):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.masks = torch.from_numpy(batch.masks[:, :, perm].astype(np.float32))
        self.sel, self.part = torch.as_tensor(selections), torch.as_tensor(partners)
        self.config = type("C", (), {"num_modules": num_modules,
                                     "num_choices": int(selections.max()) + 1})()

    def infer(self, frames):
        n = len(frames)
        return {"masks": self.masks[:n], "selections": self.sel[:n], "partners": self.part[:n]}


def test_collision_attribution_and_unary_identification_of_a_fake_model():
    gen = BouncingBalls(num_objects=3, image_size=16, radius=2, speed=1.5)
    batch = gen.generate(16, 10, 3)
    # one partner per ball and transition (a slot chooses one): no three-ball collisions
    single = batch.extra["collisions"].sum(-1).max((1, 2)) <= 1
    batch = batch[np.nonzero(single)[0]]
    coll = batch.extra["collisions"]
    assert coll.any() and len(batch.frames) >= 4
    perm = np.array([1, 2, 0])                    # slot k shows ball perm[k]
    slot_of = np.argsort(perm)                    # ball o sits in slot slot_of[o]
    n, steps, o = coll.shape[:3]
    moves = batch.moves[..., 0]
    # unary 0 = free, 1 = wall, binary 2 with the true partner at collisions
    sel = np.zeros((n, steps, o), np.int64)
    partners = np.full((n, steps, o), -1)
    for v, t, i in zip(*np.nonzero(moves == 1)):
        sel[v, t, slot_of[i]] = 1
    for v, t, i, j in zip(*np.nonzero(coll)):
        sel[v, t, slot_of[i]] = 2
        partners[v, t, slot_of[i]] = slot_of[j]
    model = FakeModel(batch, perm, sel, partners, num_modules=2)
    att = I.collision_attribution(model, batch)
    assert att["precision"] == 1 and att["recall"] == 1
    uni = I.unary_identification(model, batch)
    assert uni["accuracy"] == 1 and uni["binary_share"] == 0
    assert uni["assignment"] == {"free": 0, "wall": 1}
    # the same choices on the wrong slots (no permutation applied): not the truth
    wrong = FakeModel(batch, perm, sel[:, :, perm], partners[:, :, perm], num_modules=2)
    assert I.collision_attribution(wrong, batch)["precision"] < 1


def test_unary_scores_leave_collisions_out():
    moves = np.array([[[0, 1, 2], [0, 0, 2]]])            # (1, 2, 3)
    sel = np.array([[[1, 0, 2], [1, 2, 0]]])              # free -> 1, wall -> 0
    out = I.unary_scores(moves, sel, np.array([[0, 1, 2]]), num_unary=2, num_choices=3)
    assert out["transitions"] == 4
    assert out["assignment"] == {"free": 1, "wall": 0}
    assert out["accuracy"] == pytest.approx(3 / 4) and out["binary_share"] == pytest.approx(1 / 4)


# -- rollouts --------------------------------------------------------------------------------
def test_score_rollouts_mean_best_and_collision_split():
    true = np.zeros((2, 3, 1, 2))
    pred = np.zeros((2, 2, 3, 1, 2))
    pred[0, ..., 0] = 2.0            # sample 0 off by +2 px, sample 1 by -2: mean exact
    pred[1, ..., 0] = -2.0
    pred[1, 1, :, :, 0] = -1.0       # video 1: sample 1 only 1 px off
    collided = np.array([[False, True, True], [False, False, False]])
    out = I.score_rollouts(pred, true, collided, horizons=(1, 3, 5))
    assert out["horizons"] == [1, 3]
    assert out["all"]["best"] == {"1": 1.5, "3": 1.5}
    assert out["all"]["mean"]["1"] == pytest.approx(0.25)            # video 1 mean at 0.5
    assert out["collision"]["videos"] == {"1": 0, "3": 1}
    assert out["collision"]["best"] == {"1": None, "3": 2.0}


def test_baselines_are_exact_where_their_physics_holds():
    gen = BouncingBalls(num_objects=3, image_size=32, radius=2, speed=1.5)
    batch = gen.generate(64, 12, 1)
    c, h = 2, 10
    true = batch.positions[:, c:c + h].astype(np.float64)
    walls = batch.extra["wall_bounces"]
    coll = batch.extra["collisions"].any(-1)
    # constant velocity: exact for a ball flying freely from the context's transition on
    cv = I.constant_velocity_rollout(batch, c, h)
    free = ~(walls | coll)[:, c - 2:c - 1 + h].any(1)                # (N, O)
    assert free.sum() > 0
    np.testing.assert_allclose(cv[:, :, :][free.nonzero()[0], :, free.nonzero()[1]],
                               true[free.nonzero()[0], :, free.nonzero()[1]], atol=1e-3)
    # walls only: exact for every video without a collision (and no wall at the context step)
    wo = I.walls_only_rollout(batch, c, h)
    ok = ~coll[:, c - 2:c - 1 + h].any((1, 2)) & ~walls[:, c - 2].any(-1)
    assert ok.sum() > 0 and (~ok).sum() > 0
    np.testing.assert_allclose(wo[ok], true[ok], atol=1e-3)
    assert np.abs(wo[~ok] - true[~ok]).max() > 0.1
    # the flag: no collision recorded and the same walls as the generator without a pair
    sim = gen.simulate(batch.positions[:, 0], batch.extra["velocities"][:, 0], 5,
                       collisions=False)
    assert not sim["collisions"].any()
    scores = I.baseline_rollouts(batch, c, (1, 5, 10, 20))
    assert scores["walls_only"]["horizons"] == [1, 5, 10]
    assert scores["walls_only"]["all"]["mean"]["10"] < scores["constant_velocity"]["all"][
        "mean"]["10"]


def test_model_metrics_on_a_tiny_untrained_vim():
    torch.manual_seed(0)
    c = bouncing_config(num_slots=6)
    vim = VIM(c).eval()
    batch = c.make_generator().generate(3, 8, 7)
    five = c.replace(data={"num_objects": 5}).make_generator().generate(3, 8, 7)
    out = I.interaction_metrics(vim, batch, samples=2, transfer=five)
    assert out["rollout"]["horizons"] == [1, 5] and out["rollout"]["samples"] == 2
    r = out["rollout"]["all"]
    assert all(np.isfinite(r[k][h]) for k in ("mean", "best") for h in ("1", "5"))
    assert set(out["attribution"]) >= {"precision", "recall", "chance_precision"}
    assert len(out["unary"]["confusion"]) == 2 and len(out["unary"]["confusion"][0]) == 3
    assert out["transfer"]["num_objects"] == 5 and set(out["transfer"]["rollout_ratio"]) == {
        "1", "5"}
    with pytest.raises(ValueError, match="bouncing"):
        I.rollout_errors(vim, tiny_config().make_generator().generate(2, 4, 0))


# -- runner, CLI, report ---------------------------------------------------------------------
def test_experiment_builds_its_configs():
    e = get_experiment("interactions")
    assert e.seeds == (0, 1, 2) and set(e.variants) == {"binary", "unary"}
    assert e.evaluations == ("interactions",)
    for variant, b in (("binary", 1), ("unary", 0)):
        c = e.config(variant, 2)
        assert (c.data.name, c.data.num_objects, c.num_slots) == ("bouncing", 3, 6)
        assert c.velocity and c.num_binary_modules == b and c.time_budget_s == 1800
        assert c.seed == 2
        assert c.replace(data={"num_objects": 5}).make_generator().num_objects == 5   # fits
    assert e.ground_truth_needed()


def test_run_list_names_the_experiment(capsys):
    from pyro_vim.run import main as run_main
    assert run_main(["--list"]) == 0
    assert "interactions" in capsys.readouterr().out


def test_runner_evaluation_block():
    c = bouncing_config(num_slots=6)
    vim = VIM(c).eval()
    spec = {"sequences": 2, "seq_len": 7, "samples": 2}
    out = interactions_evaluation(vim, c, 11, spec)
    assert out["rollout"]["horizons"] == [1, 5] and out["transfer"]["num_objects"] == 5
    small = bouncing_config()                       # 4 slots: no 5-ball test
    out = interactions_evaluation(VIM(small).eval(), small, 11, spec)
    assert "transfer" not in out and "4 slots" in out["transfer_note"]
    crowded = bouncing_config(num_slots=6, data={"name": "bouncing", "radius": 3})
    out = interactions_evaluation(VIM(crowded).eval(), crowded, 11, spec)
    assert "transfer" not in out and "no 5-ball test" in out["transfer_note"]


def test_evaluate_cli_on_a_bouncing_checkpoint(tmp_path):
    c = bouncing_config()
    path = tmp_path / "ckpt.pt"
    VIM(c).save(str(path))
    out = tmp_path / "eval"
    assert evaluate_main([str(path), "--out", str(out), "--num-sequences", "3",
                          "--seq-len", "7", "--num-samples", "2"]) == 0
    data = json.loads((out / "metrics.json").read_text())
    block = data["interactions"]
    assert block["rollout"]["horizons"] == [1, 5]
    assert set(block["baselines"]) == {"constant_velocity", "walls_only"}
    assert "precision" in block["attribution"] and "accuracy" in block["unary"]


def test_report_flattens_the_interaction_keys(tmp_path):
    block = {"rollout": {"all": {"best": {"10": 1.0}}}, "attribution": {"precision": 0.5}}
    for seed in (0, 1, 2):
        folder = tmp_path / "interactions" / "binary" / f"seed={seed}"
        os.makedirs(folder)
        metrics = {"interactions": json.loads(json.dumps(block).replace("1.0", f"{seed}.0")),
                   "interactions_rollout_best_10": float(seed)}
        (folder / "metrics.json").write_text(json.dumps({
            "experiment": "interactions", "variant": "binary", "seed": seed, "steps": 10,
            "train_seconds": 1.0, "metrics": metrics, "before_learning": metrics}))
    rep = report.aggregate(tmp_path)
    group = rep["experiments"]["interactions"]["binary"]
    stat = group["metrics"]["interactions.rollout.all.best.10"]
    assert stat["mean"] == pytest.approx(1.0) and stat["n"] == 3
    assert group["metrics"]["interactions.attribution.precision"]["mean"] == 0.5
    assert "interactions_rollout_best_10" in group["before_learning"]
    # the Markdown tables show the top-level headlines; the nested block is in report.json
    table = report.render_markdown(rep)
    assert "interactions_rollout_best_10" in table
    assert "interactions.rollout.all.best.10" not in table


def test_experiment_run_scores_interactions_before_and_after(tmp_path, monkeypatch):
    """The runner end to end on the experiment's config made tiny: a couple of SVI steps, the
    held-out summary (bouncing: no Random Walk fidelity metrics) and the "interactions"
    evaluation after pre-training (before_learning) and after training."""
    from pyro_vim.run import evaluation
    from pyro_vim.run.single import run_one

    monkeypatch.setitem(evaluation.INTERACTIONS_TEST, "sequences", 2)
    monkeypatch.setitem(evaluation.INTERACTIONS_TEST, "seq_len", 7)
    monkeypatch.setitem(evaluation.INTERACTIONS_TEST, "samples", 2)
    tiny = ["image_size=16", "slot_dim=8", "encoder_channels=8", "decoder_channels=8",
            "module_hidden=16", "update_hidden=16", "keyquery_dim=8", "batch_size=2",
            "pretrain_steps=1", "steps=2", "warmup_steps=1", "seq_len_start=3",
            "seq_len_max=3", "eval_every=0", "time_budget_s=0", "data.radius=2",
            "data.speed=1.5", "num_modules=2"]
    e = get_experiment("interactions")
    c = e.config("binary", 0, tiny)
    result = run_one(c, str(tmp_path / "run"), eval_sequences=2, eval_seq_len=4,
                     experiment="interactions", variant="binary", checkpoint_every=0,
                     evaluations=e.evaluations)
    for section in ("metrics", "before_learning"):
        block = result[section]
        assert block["interactions"]["rollout"]["horizons"] == [1, 5]
        assert block["interactions"]["transfer"]["num_objects"] == 5
        assert "interactions_attribution_recall" in block
        assert "module_step_error" not in block
