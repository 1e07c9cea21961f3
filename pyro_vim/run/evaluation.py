"""How a run's model is scored: held-out data and the experiment's extra evaluations.

The held-out data are the run's own data settings (changed by the experiment's ``eval_data``)
generated with :func:`pyro_vim.evaluate.default_seed`.  A model family with its own
``summary_metrics`` or ``evaluation_metrics`` (a baseline such as G-SWM) is scored by them, VIM
by :func:`pyro_vim.evaluate.summary_metrics`.  The experiment's ``evaluations`` may add
"composition" and "transfer" (VIM, Figs. 5 and 7), "med" (G-SWM's MED on Compositional Random
Walk, single-step and multi-step) and "table1" (Table 1).  Scoring restores the RNGs, so it
never changes what training draws.
"""
from __future__ import annotations

from typing import Any, Dict

import pyro

from ..baselines.med import model_med
from ..checkpoint import rng_state, set_rng_state
from ..config import VIMConfig
from ..evaluate import default_seed, reconstruction_metrics, summary_metrics
from ..fidelity import (
    composition_errors,
    composition_test_batch,
    transfer_errors,
    transfer_test_batch,
)


def _held_out(config: VIMConfig, sequences: int, seq_len: int):
    return config.make_generator().generate(sequences, seq_len, default_seed(config))


#: Compositional test data of the "composition" evaluation (Fig. 5): sequences, frames, k.
COMPOSITION_TEST = {"sequences": 32, "seq_len": 6, "iterations": 8}


#: Unseen-object targets of the "transfer" evaluation (Fig. 7): sequences, frames (10 steps).
TRANSFER_TEST = {"sequences": 32, "seq_len": 11}


#: The "table1" evaluation (Table 1): 5-frame held-out sequences (as many as --eval-sequences),
#: and VIM's prior samples per one-step prediction.
TABLE1_TEST = {"seq_len": 5, "prior_samples": 8}


#: The "med" evaluation (Sec. 5.2 / Fig. 4: G-SWM's MED on Compositional Random Walk, 1-5
#: moves per frame): sequences, frames, and the multi-step model's iterations between frames.
MED_TEST = {"sequences": 32, "seq_len": 6, "iterations": 8}


#: The "interactions" evaluation (docs/interactions.md): held-out bouncing videos (sequences,
#: frames: 2 context + 20 predicted), context frames, prior samples, horizons, and the balls of
#: the second held-out batch (train on 3, test on 5 without retraining; left out when the model
#: has fewer slots).
INTERACTIONS_TEST = {"sequences": 64, "seq_len": 22, "context": 2, "samples": 8,
                     "horizons": (1, 5, 10, 20), "transfer_objects": 5}


def interactions_evaluation(model, config: VIMConfig, seed: int,
                            spec: Dict[str, Any] = None) -> Dict[str, Any]:
    """The "interactions" block: :func:`pyro_vim.evaluate.interactions.interaction_metrics`
    on ``spec["sequences"]`` held-out videos of ``config``'s data (and of the same data with
    ``spec["transfer_objects"]`` balls, when the model has the slots)."""
    from ..evaluate.interactions import interaction_metrics
    spec = dict(INTERACTIONS_TEST, **(spec or {}))
    if config.data.name != "bouncing":
        raise ValueError(f"the 'interactions' evaluation needs data.name=bouncing, got "
                         f"{config.data.name!r}")
    batch = config.make_generator().generate(spec["sequences"], spec["seq_len"], seed)
    transfer, note = None, None
    more = spec.get("transfer_objects")
    if more and more != config.data.num_objects:
        if more > config.num_slots:
            note = f"no {more}-ball test: the model has {config.num_slots} slots"
        else:
            try:
                transfer = config.replace(data={"num_objects": more}).make_generator().generate(
                    spec["sequences"], spec["seq_len"], seed)
            except ValueError as e:           # e.g. more balls than fit the frame
                note = f"no {more}-ball test: {e}"
    out = interaction_metrics(model, batch, spec["context"], spec["horizons"],
                              spec["samples"], transfer=transfer)
    if note:
        out["transfer_note"] = note
    return out


def _evaluate(model, config, sequences, seq_len, evaluations=(), eval_data=None
              ) -> Dict[str, Any]:
    """Held-out metrics (on ``config``'s data changed by ``eval_data``) and the experiment's
    extra ``evaluations``; the RNGs are restored, so evaluating never changes what training
    draws (a resumed run equals an uninterrupted one)."""
    was_training, rng = model.training, rng_state()
    model.eval()
    try:
        pyro.set_rng_seed(default_seed(config) % 2 ** 32)
        test = config.replace(data=dict(eval_data)) if eval_data else config
        held_out = _held_out(test, sequences, seq_len)
        # a family with its own held-out metrics (a baseline without module selections: RIM,
        # SCOFF, G-SWM) is scored by them; VIM by the paper's summary metrics
        own = getattr(model, "summary_metrics", None) or getattr(model, "evaluation_metrics",
                                                                 None)
        if own is not None:
            out = dict(own(held_out))
        elif held_out.moves is None:       # recorded videos without ground truth
            out = reconstruction_metrics(model, held_out.frames)
        else:
            out = summary_metrics(model, held_out)
        seed = default_seed(config)
        if "med" in evaluations:
            batch = composition_test_batch(config, MED_TEST["sequences"], MED_TEST["seq_len"],
                                           seed)
            single = model_med(model, batch, 1)
            multi = model_med(model, batch, MED_TEST["iterations"])
            out["compositional_med"] = {"single_step": single, "multi_step": multi}
            out["compositional_med_single"] = single["med"]
            out["compositional_med_multi"] = multi["med"]
        if "composition" in evaluations:
            batch = composition_test_batch(config, COMPOSITION_TEST["sequences"],
                                           COMPOSITION_TEST["seq_len"], seed)
            out["composition"] = composition_errors(model, batch,
                                                    COMPOSITION_TEST["iterations"])
            out["composition_final_error"] = out["composition"]["final"]
        if "transfer" in evaluations:
            targets = transfer_test_batch(config, TRANSFER_TEST["sequences"],
                                          TRANSFER_TEST["seq_len"], seed)
            out["transfer"] = transfer_errors(model, targets, config.make_generator())
            out["transfer_error_mean"] = out["transfer"]["mean"]
        if "table1" in evaluations:
            from ..baselines.table1 import table1_metrics
            batch = _held_out(test, sequences, TABLE1_TEST["seq_len"])
            out["table1"] = table1_metrics(model, batch, TABLE1_TEST["prior_samples"])
            out["table1_mse"] = out["table1"]["mse"]
            if "unit_centroids" in out["table1"]:          # RIM/SCOFF: where the units are
                out["table1_unit_centroid_px"] = out["table1"]["unit_centroids"]["previous"]
            if "mse_prior_one_step" in out["table1"]:      # VIM: (c), one step from the prior
                out["table1_prior_mse"] = out["table1"]["mse_prior_one_step"]
                out["table1_prior_mean_mse"] = out["table1"]["vim_prior_mean"]["per_frame"]
        if "interactions" in evaluations:
            block = interactions_evaluation(model, test, seed)
            out["interactions"] = block
            # headlines (the report's Markdown columns; the whole block is in report.json):
            # rollout error (best of 8) at 10 steps overall and at collisions, at 20 steps,
            # the baselines' at 10 steps, attribution, free vs wall, 5 balls / 3 balls at 10
            out["interactions_rollout_best_10"] = block["rollout"]["all"]["best"].get("10")
            out["interactions_rollout_best_10_collision"] = (
                block["rollout"]["collision"]["best"].get("10"))
            out["interactions_rollout_best_20"] = block["rollout"]["all"]["best"].get("20")
            for name in ("walls_only", "constant_velocity"):
                out[f"interactions_{name}_10"] = (
                    block["baselines"][name]["all"]["mean"].get("10"))
            out["interactions_attribution_precision"] = block["attribution"]["precision"]
            out["interactions_attribution_recall"] = block["attribution"]["recall"]
            out["interactions_unary_accuracy"] = block["unary"]["accuracy"]
            if "transfer" in block:
                out["interactions_transfer_ratio_10"] = block["transfer"]["rollout_ratio"].get(
                    "10")
        return out
    finally:
        model.train(was_training)
        set_rng_state(rng)
