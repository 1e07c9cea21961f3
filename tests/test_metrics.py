import itertools

import numpy as np
import pytest
import torch

from pyro_vim.metrics import (
    MOVES,
    adjusted_rand_index,
    identification_report,
    linear_sum_assignment,
    mask_centroids,
    match_objects_to_slots,
    module_usage,
    normalized_mutual_info,
    position_error,
    rule_module_accuracy,
    selection_confusion,
)

# --------------------------------------------------------------------------------------------
# Linear assignment
# --------------------------------------------------------------------------------------------


def _brute_force_min(cost):
    r, c = cost.shape
    if r <= c:
        return min(cost[np.arange(r), list(p)].sum() for p in itertools.permutations(range(c), r))
    return min(cost[list(p), np.arange(c)].sum() for p in itertools.permutations(range(r), c))


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (5, 5), (6, 6), (2, 5), (3, 6), (6, 4), (5, 1)])
def test_linear_sum_assignment_matches_brute_force(shape):
    rng = np.random.default_rng(sum(shape))
    for trial in range(15):
        if trial % 3 == 0:  # many ties
            cost = rng.integers(0, 3, size=shape).astype(float)
        else:
            cost = rng.normal(size=shape) * 10.0
        rows, cols = linear_sum_assignment(cost)
        assert len(rows) == len(cols) == min(shape)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert np.all(np.diff(rows) > 0)
        assert cost[rows, cols].sum() == pytest.approx(_brute_force_min(cost), abs=1e-9)


def test_linear_sum_assignment_torch_and_empty():
    rows, cols = linear_sum_assignment(torch.tensor([[4.0, 1.0], [2.0, 0.0]]))
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]
    rows, cols = linear_sum_assignment(np.zeros((0, 3)))
    assert rows.shape == cols.shape == (0,)


def test_linear_sum_assignment_errors():
    with pytest.raises(ValueError, match=r"cost must have shape \(R, C\)"):
        linear_sum_assignment(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        linear_sum_assignment(np.array([[np.inf, 1.0], [0.0, 1.0]]))


# --------------------------------------------------------------------------------------------
# Centroids and matching
# --------------------------------------------------------------------------------------------


def test_mask_centroids_synthetic_blobs():
    h, w = 24, 32
    rr, cc = np.mgrid[:h, :w]
    square = (rr >= 2) & (rr <= 6) & (cc >= 10) & (cc <= 14)  # rows 2..6, cols 10..14
    disc = (cc - 20) ** 2 + (rr - 15) ** 2 <= 9  # centred at x=20, y=15
    weighted = np.zeros((h, w))
    weighted[0, 0] = 1.0
    weighted[0, 4] = 3.0  # x = (0 * 1 + 4 * 3) / 4 = 3, y = 0
    empty = np.zeros((h, w))
    masks = np.stack([square, disc, weighted, empty]).astype(float)
    out = mask_centroids(masks)
    assert out.shape == (4, 2)
    np.testing.assert_allclose(out[0], [12.0, 4.0])
    np.testing.assert_allclose(out[1], [20.0, 15.0])
    np.testing.assert_allclose(out[2], [3.0, 0.0])
    assert np.isnan(out[3]).all()
    # bool input, torch input and extra leading dims
    np.testing.assert_allclose(mask_centroids(square), [12.0, 4.0])
    batched = mask_centroids(torch.from_numpy(masks[:3]).reshape(3, 1, h, w).expand(3, 2, h, w))
    assert batched.shape == (3, 2, 2)
    np.testing.assert_allclose(batched[:, 1], out[:3])


def test_mask_centroids_errors():
    with pytest.raises(ValueError, match=r"masks must have shape \(\.\.\., H, W\)"):
        mask_centroids(np.ones(5))
    with pytest.raises(ValueError, match="non-negative"):
        mask_centroids(-np.ones((2, 2)))


def test_match_objects_to_slots_one_to_one_where_greedy_double_assigns():
    # Both objects' nearest slot is slot 1; greedy nearest matching would give [1, 1].
    objects = np.array([[[0.0, 0.0], [1.0, 0.0]]])
    slots = np.array([[[10.0, 0.0], [0.4, 0.0], [-50.0, 0.0]]])
    dist = np.linalg.norm(objects[0][:, None] - slots[0][None], axis=-1)
    assert (dist.argmin(axis=1) == 1).all()
    matching = match_objects_to_slots(objects, slots)
    # [1, 0] costs 0.4 + 9 = 9.4 < [0, 1] = 10 + 0.6 = 10.6
    assert matching.tolist() == [[1, 0]]


def test_match_objects_to_slots_permutation_and_nan_slots():
    rng = np.random.default_rng(1)
    objects = rng.uniform(0, 32, size=(5, 3, 2))
    perm = np.array([2, 0, 3])  # object o lives in slot perm[o]
    slots = np.full((5, 4, 2), np.nan)  # slot 1 has an empty mask (nan centroid)
    slots[:, perm] = objects + 0.1
    matching = match_objects_to_slots(torch.from_numpy(objects), slots)
    assert matching.dtype == np.int64
    assert (matching == perm).all()


def test_match_objects_to_slots_errors():
    with pytest.raises(ValueError, match=r"object_positions must have shape \(N, O, 2\)"):
        match_objects_to_slots(np.zeros((3, 2)), np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match=r"slot_positions must have shape \(N, K, 2\)"):
        match_objects_to_slots(np.zeros((1, 2, 2)), np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="same N"):
        match_objects_to_slots(np.zeros((2, 2, 2)), np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match="K >= O"):
        match_objects_to_slots(np.zeros((1, 3, 2)), np.zeros((1, 2, 2)))


# --------------------------------------------------------------------------------------------
# Confusion, accuracy, usage, NMI
# --------------------------------------------------------------------------------------------


def test_selection_confusion_hand_built():
    # N=1, T-1=3, O=2, K=3; object 0 -> slot 2, object 1 -> slot 0.
    moves = np.array([[[0, 3], [1, -1], [-1, 3]]])
    selections = np.array([[[4, 9, 1], [0, 0, 2], [2, 0, 0]]]) % 5  # [[4,4,1],[0,0,2],[2,0,0]]
    matching = np.array([[2, 0]])
    conf = selection_confusion(moves, selections, matching, num_modules=5)
    expected = np.zeros((4, 5), dtype=np.int64)
    expected[0, 1] += 1  # t=0, obj 0: move up, slot 2 selected module 1
    expected[3, 4] += 1  # t=0, obj 1: move right, slot 0 selected module 4
    expected[1, 2] += 1  # t=1, obj 0: move down, slot 2 selected module 2
    expected[3, 2] += 1  # t=2, obj 1: move right, slot 0 selected module 2
    assert conf.dtype == np.int64 and conf.shape == (4, 5)
    np.testing.assert_array_equal(conf, expected)
    # a trailing singleton move axis and torch inputs give the same result
    conf2 = selection_confusion(
        torch.from_numpy(moves[..., None]), torch.from_numpy(selections), matching, 5
    )
    np.testing.assert_array_equal(conf2, expected)


def test_selection_confusion_errors():
    sel = np.zeros((1, 3, 3), dtype=int)
    mt = np.zeros((1, 2), dtype=int)
    mv = np.zeros((1, 3, 2), dtype=int)
    with pytest.raises(ValueError, match="only single-move datasets"):
        selection_confusion(np.zeros((1, 3, 2, 2), dtype=int), sel, mt, 4)
    with pytest.raises(ValueError, match=r"moves must have shape \(N, T-1, O\)"):
        selection_confusion(np.zeros((1, 3), dtype=int), sel, mt, 4)
    with pytest.raises(ValueError, match=r"selections must have shape \(N, T-1, K\)"):
        selection_confusion(mv, np.zeros((2, 3, 3), dtype=int), mt, 4)
    with pytest.raises(ValueError, match=r"selections must have shape \(N, T-1, K\)"):
        selection_confusion(mv, np.zeros((1, 3), dtype=int), mt, 4)
    with pytest.raises(ValueError, match=r"matching must have shape \(N, O\)"):
        selection_confusion(mv, sel, np.zeros((2, 2), dtype=int), 4)
    with pytest.raises(ValueError, match=r"selections must be in \[0, 4\)"):
        selection_confusion(mv, sel + 4, mt, 4)
    with pytest.raises(ValueError, match=r"moves must be in \[-1, 4\)"):
        selection_confusion(mv + 4, sel, mt, 4)
    with pytest.raises(ValueError, match=r"matching must be in \[0, K=3\)"):
        selection_confusion(mv, sel, mt + 3, 4)
    with pytest.raises(ValueError, match="integers"):
        selection_confusion(mv + 0.5, sel, mt, 4)


def _random_moves_and_matching(rng, n=50, t=20, o=3, k=4):
    moves = rng.integers(0, 4, size=(n, t, o))
    matching = np.stack([rng.permutation(k)[:o] for _ in range(n)])
    return moves, matching


def _selections_from_moves(rng, moves, matching, label, num_modules, k=4):
    n, t, _ = moves.shape
    selections = rng.integers(0, num_modules, size=(n, t, k))
    for i in range(n):
        selections[i][:, matching[i]] = label[moves[i]]
    return selections


def test_perfect_selections_accuracy_and_nmi_one():
    rng = np.random.default_rng(0)
    moves, matching = _random_moves_and_matching(rng)
    selections = _selections_from_moves(rng, moves, matching, np.arange(4), 4)
    conf = selection_confusion(moves, selections, matching, 4)
    acc, assignment = rule_module_accuracy(conf)
    assert acc == 1.0
    assert assignment == {0: 0, 1: 1, 2: 2, 3: 3}
    assert normalized_mutual_info(conf) == pytest.approx(1.0)


def test_permuted_module_labelling_is_recovered():
    rng = np.random.default_rng(1)
    moves, matching = _random_moves_and_matching(rng)
    label = np.array([3, 0, 4, 1])  # rule r -> module label[r]; module 2 unused
    selections = _selections_from_moves(rng, moves, matching, label, 5)
    conf = selection_confusion(moves, selections, matching, 5)
    acc, assignment = rule_module_accuracy(conf)
    assert acc == 1.0
    assert assignment == {r: int(m) for r, m in enumerate(label)}
    assert normalized_mutual_info(conf) == pytest.approx(1.0)
    assert conf[:, 2].sum() == 0


def test_random_selections_are_at_chance():
    rng = np.random.default_rng(2)
    moves, matching = _random_moves_and_matching(rng, n=400, t=20)
    selections = rng.integers(0, 4, size=(400, 20, 4))
    conf = selection_confusion(moves, selections, matching, 4)
    acc, assignment = rule_module_accuracy(conf)
    assert 0.2 < acc < 0.35
    assert sorted(assignment.values()) == [0, 1, 2, 3]
    assert normalized_mutual_info(conf) < 0.01


def test_rule_module_accuracy_and_nmi_edge_cases():
    acc, assignment = rule_module_accuracy(np.zeros((4, 4)))
    assert np.isnan(acc)
    # more rules than modules: only two rules can be assigned
    conf = np.array([[5, 0], [0, 3], [2, 0], [0, 1]])
    acc, assignment = rule_module_accuracy(conf)
    assert acc == pytest.approx(8 / 11)
    assert assignment == {0: 0, 1: 1}
    assert np.isnan(normalized_mutual_info(np.zeros((2, 2))))
    assert normalized_mutual_info(np.array([[0, 7], [0, 0]])) == 1.0  # both entropies 0
    assert normalized_mutual_info(np.array([[3, 7], [0, 0]])) == 0.0  # H(rules) = 0
    # hand-computed: p = [[.5, 0], [.25, .25]]: H(X)=ln2, H(Y)=H(.75,.25),
    # I = .5 ln(.5/(.5*.75)) + .25 ln(.25/(.5*.75)) + .25 ln(.25/(.5*.25))
    hx = np.log(2)
    hy = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    mi = 0.5 * np.log(4 / 3) + 0.25 * np.log(2 / 3) + 0.25 * np.log(2)
    assert normalized_mutual_info(np.array([[2, 0], [1, 1]])) == pytest.approx(
        mi / (0.5 * (hx + hy))
    )
    with pytest.raises(ValueError, match=r"confusion must have shape \(num_rules, num_modules\)"):
        rule_module_accuracy(np.zeros(4))
    with pytest.raises(ValueError, match="non-negative"):
        normalized_mutual_info(-np.ones((2, 2)))


def test_module_usage():
    sel = np.array([[0, 1, 1], [3, 3, 3]])
    np.testing.assert_allclose(module_usage(sel, 5), [1 / 6, 2 / 6, 0, 3 / 6, 0])
    mask = np.array([[True, True, False], [False, False, True]])
    np.testing.assert_allclose(module_usage(torch.tensor(sel), 4, mask), [1 / 3, 1 / 3, 0, 1 / 3])
    assert np.isnan(module_usage(sel, 4, np.zeros_like(mask))).all()
    with pytest.raises(ValueError, match="mask must have the same shape as selections"):
        module_usage(sel, 4, mask[0])
    with pytest.raises(ValueError, match=r"selections must be in \[0, 3\)"):
        module_usage(sel, 3)


# --------------------------------------------------------------------------------------------
# ARI and position error
# --------------------------------------------------------------------------------------------


def _one_hot(labels, k):
    labels = np.asarray(labels)
    return np.moveaxis(np.eye(k)[labels], -1, -3)  # (..., H, W) -> (..., K, H, W)


def test_ari_hand_computed():
    # 2x3 image; true: background on the top row, one object on the bottom row.
    true = np.zeros((1, 1, 2, 3), dtype=bool)
    true[0, 0, 1, :] = True  # labels [[0,0,0],[1,1,1]]
    pred = _one_hot([[[0, 0, 1], [1, 1, 1]]], 2)  # labels [[0,0,1],[1,1,1]]
    # contingency (true x pred): bg: [2, 1], obj: [0, 3]
    # sum C(n_ij, 2) = 1 + 0 + 3 = 4; a = C(3,2) + C(3,2) = 6; b = C(2,2) + C(4,2) = 7
    # expected = a * b / C(6,2) = 42 / 15 = 2.8; max = (6 + 7) / 2 = 6.5
    # ARI = (4 - 2.8) / (6.5 - 2.8) = 1.2 / 3.7 = 12 / 37
    ari = adjusted_rand_index(true, pred)
    assert ari.shape == (1,)
    assert ari[0] == pytest.approx(12 / 37)
    # FG-ARI: only the bottom row is scored, and it is all one predicted cluster -> 1.0
    assert adjusted_rand_index(true, pred, foreground_only=True)[0] == pytest.approx(1.0)


def test_ari_permutation_invariance_and_fg():
    rng = np.random.default_rng(3)
    h = w = 8
    labels = rng.integers(0, 4, size=(3, h, w))  # 0 = background, 1..3 objects
    true = np.stack([labels == o for o in (1, 2, 3)], axis=1)  # (3, 3, H, W)
    perm = np.array([2, 4, 0, 1, 3])  # relabel clusters into K=5 slots
    pred = _one_hot(perm[labels], 5) * 0.9 + 0.02  # soft probabilities, same argmax
    np.testing.assert_allclose(adjusted_rand_index(true, pred), 1.0)
    # background split into two predicted slots: ARI < 1 but FG-ARI ignores it
    split = perm[labels].copy()
    split[(labels == 0) & (np.arange(w) < w // 2)] = perm[1]  # merge half the bg with object 1
    pred2 = torch.from_numpy(_one_hot(split, 5))
    ari = adjusted_rand_index(torch.from_numpy(true), pred2)
    assert (ari < 1.0).all()
    np.testing.assert_allclose(adjusted_rand_index(true, pred2, foreground_only=True), 1.0)
    # extra leading dims (N, T, ...) are flattened and restored
    ari_nt = adjusted_rand_index(true.reshape(1, 3, 3, h, w), pred2.numpy().reshape(1, 3, 5, h, w))
    assert ari_nt.shape == (1, 3)
    np.testing.assert_allclose(ari_nt[0], ari)


def test_ari_degenerate_cases():
    true = np.zeros((2, 1, 4, 4), dtype=bool)
    true[1, 0, :2] = True
    pred = np.zeros((2, 3, 4, 4))
    pred[:, 1] = 1.0  # everything in one predicted cluster
    ari = adjusted_rand_index(true, pred)
    assert ari[0] == 1.0  # single cluster on both sides
    assert ari[1] == pytest.approx(0.0)  # all-in-one prediction vs two true clusters
    fg = adjusted_rand_index(true, pred, foreground_only=True)
    assert np.isnan(fg[0])  # no foreground pixel to score
    assert fg[1] == 1.0


def test_ari_errors():
    with pytest.raises(ValueError, match=r"true_masks must have shape \(N, O, H, W\)"):
        adjusted_rand_index(np.zeros((2, 4, 4), dtype=bool), np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="pred_masks must have shape"):
        adjusted_rand_index(np.zeros((2, 1, 4, 4), dtype=bool), np.zeros((3, 2, 4, 4)))
    with pytest.raises(ValueError, match="pred_masks must have shape"):
        adjusted_rand_index(np.zeros((2, 1, 4, 4), dtype=bool), np.zeros((2, 2, 4, 5)))
    with pytest.raises(ValueError, match="same rank"):
        adjusted_rand_index(np.zeros((2, 1, 4, 4), dtype=bool), np.zeros((2, 1, 2, 4, 4)))


def test_position_error():
    pred = np.array([[0.0, 0.0], [3.0, 4.0], [np.nan, 1.0]])
    true = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    err = position_error(torch.tensor(pred), true)
    assert err.shape == (3,)
    np.testing.assert_allclose(err[:2], [0.0, 5.0])
    assert np.isnan(err[2])
    with pytest.raises(ValueError, match=r"pred_positions must have shape \(\.\.\., 2\)"):
        position_error(np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="true_positions must have the same shape"):
        position_error(np.zeros((3, 2)), np.zeros((2, 2)))


# --------------------------------------------------------------------------------------------
# End-to-end Sec. 5.1 report
# --------------------------------------------------------------------------------------------

_STEP = {0: (0, -2), 1: (0, 2), 2: (-2, 0), 3: (2, 0)}  # (dx, dy): up = decreasing row


def _synthetic_episode(rng, n=3, t=6, o=3, k=4, size=32, radius=2.5, num_modules=5):
    moves = rng.integers(0, 4, size=(n, t - 1, o))
    pos = np.zeros((n, t, o, 2))
    pos[:, 0] = rng.choice(np.arange(8, size - 8, 4), size=(n, o, 2), replace=True)
    for step in range(t - 1):
        delta = np.array([_STEP[m] for m in moves[:, step].reshape(-1)]).reshape(n, o, 2)
        pos[:, step + 1] = pos[:, step] + delta
    rr, cc = np.mgrid[:size, :size]
    slot_of = np.stack([rng.permutation(k)[:o] for _ in range(n)])  # object o -> slot
    masks = np.zeros((n, t, k, size, size))
    for i in range(n):
        for obj in range(o):
            x, y = pos[i, :, obj, 0], pos[i, :, obj, 1]
            disc = (cc - x[:, None, None]) ** 2 + (rr - y[:, None, None]) ** 2 <= radius**2
            masks[i, :, slot_of[i, obj]] = disc
        bg = [s for s in range(k) if s not in slot_of[i]]
        masks[i, :, bg[0]] = 1.0 - masks[i].sum(axis=1).clip(0, 1)  # background slot
    label = np.array([2, 4, 0, 1])  # rule -> module; module 3 never used by balls
    selections = rng.integers(0, num_modules, size=(n, t - 1, k))
    for i in range(n):
        selections[i][:, slot_of[i]] = label[moves[i]]
    return moves, pos, masks, selections, slot_of, label


def test_identification_report_end_to_end():
    rng = np.random.default_rng(4)
    moves, pos, masks, selections, slot_of, label = _synthetic_episode(rng)
    moves[0, -1, 1] = -1  # padding is ignored
    report = identification_report(
        torch.from_numpy(moves), pos, torch.from_numpy(masks).float(), selections, 5
    )
    assert set(report) == {
        "rule_module_accuracy", "assignment", "confusion", "module_usage", "nmi", "matching",
        "position_error", "mean_position_error", "track_rule_module_accuracy", "track_matching",
        "tied_objects",
    }
    assert report["rule_module_accuracy"] == 1.0
    assert report["track_rule_module_accuracy"] == 1.0
    assert report["track_matching"] == slot_of.tolist()
    assert report["assignment"] == {r: int(m) for r, m in enumerate(label)}
    assert report["matching"] == slot_of.tolist()
    conf = np.array(report["confusion"])
    assert conf.shape == (len(MOVES), 5)
    assert conf.sum() == moves.size - 1
    assert report["nmi"] == pytest.approx(1.0)
    usage = np.array(report["module_usage"])
    assert usage.sum() == pytest.approx(1.0) and usage[3] == 0.0
    assert len(report["position_error"]) == pos.shape[1]
    np.testing.assert_allclose(report["position_error"], 0.0, atol=1e-6)
    assert report["mean_position_error"] == pytest.approx(0.0, abs=1e-6)


def test_identification_report_errors():
    rng = np.random.default_rng(5)
    moves, pos, masks, selections, _, _ = _synthetic_episode(rng, n=2, t=3)
    with pytest.raises(ValueError, match=r"object_positions must have shape \(N, T, O, 2\)"):
        identification_report(moves, pos[..., 0], masks, selections, 5)
    with pytest.raises(ValueError, match=r"moves must have shape \(N, T-1, O\)"):
        identification_report(moves[:, :1], pos, masks, selections, 5)
    with pytest.raises(ValueError, match=r"slot_masks must have shape \(N, T, K, H, W\)"):
        identification_report(moves, pos, masks[:1], selections, 5)
    with pytest.raises(ValueError, match=r"slot_masks must have shape \(N, T, K, H, W\)"):
        identification_report(moves, pos, masks[0], selections, 5)
    with pytest.raises(ValueError, match=r"selections must have shape \(N, T-1, K\)"):
        identification_report(moves, pos, masks, selections[:, :, :2], 5)
    with pytest.raises(ValueError, match="only single-move datasets"):
        identification_report(np.stack([moves, moves], -1), pos, masks, selections, 5)
    with pytest.raises(ValueError, match="K >= O"):
        identification_report(moves, pos, masks[:, :, :2], selections[:, :, :2], 5)


def test_assignment_accuracy_scores_a_fixed_labelling():
    from pyro_vim.metrics import assignment_accuracy
    conf = np.array([[8, 2, 0, 0], [0, 10, 0, 0], [0, 0, 5, 5], [0, 0, 0, 10]])
    assert assignment_accuracy(conf, {0: 0, 1: 1, 2: 2, 3: 3}) == pytest.approx(33 / 40)
    assert assignment_accuracy(conf, {"up": 1, "down": 0}) == pytest.approx(2 / 40)
    assert np.isnan(assignment_accuracy(np.zeros((4, 4)), {0: 0}))


def test_match_tracks_to_slots_places_a_ball_hidden_on_frame_0():
    from pyro_vim.metrics import match_tracks_to_slots, track_distances
    # two balls start on one pixel (ball 1 hidden behind ball 0), then separate; slot 2 sits on
    # ball 0 throughout, slot 0 picks up ball 1 once it appears, slot 1 stays on frame 0's
    # shared position and then drifts away
    t = 5
    balls = np.zeros((1, t, 2, 2))
    balls[0, :, 0] = [[10, 10]] * t
    balls[0, :, 1] = [[10, 10], [13, 10], [16, 10], [19, 10], [22, 10]]
    slots = np.zeros((1, t, 3, 2))
    slots[0, :, 2] = balls[0, :, 0] + 0.1
    slots[0, :, 0] = [[25, 25], [13, 10], [16, 10], [19, 10], [22, 10]]
    slots[0, :, 1] = [[10, 10], [10, 13], [10, 16], [10, 19], [10, 22]]
    visible = np.ones((1, t, 2), bool)
    visible[0, 0, 1] = False
    first = match_objects_to_slots(balls[:, 0], slots[:, 0])
    assert first[0].tolist() == [2, 1] or first[0].tolist() == [1, 2]   # frame 0 cannot tell
    # the tracks break the tie, but only among frame 0's best assignments (slot 0 is 21 px off)
    tracks = track_distances(balls, slots, visible)
    assert tracks.shape == (1, 2, 3)
    assert match_objects_to_slots(balls[:, 0], slots[:, 0], tie_break=tracks)[0].tolist() == [2, 1]
    assert match_objects_to_slots(balls[:, 0], slots[:, 0], tie_break=-tracks)[0].tolist() == [1, 2]
    assert match_tracks_to_slots(balls, slots, visible)[0].tolist() == [2, 0]
    # the hidden frame is what misleads: counted, slot 1's frame-0 distance 0 is not enough
    # to beat slot 0, but a never-visible ball falls back to every frame
    never = np.zeros((1, t, 2), bool)
    assert match_tracks_to_slots(balls, slots, never)[0].tolist() == \
        match_tracks_to_slots(balls, slots)[0].tolist()
    # torch input, nan slots avoided
    slots_nan = np.concatenate([slots, np.full((1, t, 1, 2), np.nan)], 2)
    assert match_tracks_to_slots(torch.from_numpy(balls), slots_nan, visible)[0].tolist() == [2, 0]


def _point_masks(slot_xy, size):
    """One-pixel masks at ``slot_xy`` ``(N, T, K, 2)``: each slot's centroid is its position."""
    n, t, k, _ = slot_xy.shape
    masks = np.zeros((n, t, k, size, size))
    x, y = slot_xy[..., 0].astype(int), slot_xy[..., 1].astype(int)
    i, ti, j = np.meshgrid(range(n), range(t), range(k), indexing="ij")
    masks[i, ti, j, y, x] = 1.0
    return masks


def test_identification_report_track_matching_scores_a_late_found_ball():
    # ball 1 hidden on frame 0: the frame-0 matching gives it the wrong slot, whose selections
    # are wrong; the whole-track matching gives it the slot that follows it
    t, k, size = 6, 3, 32
    pos = np.zeros((1, t, 2, 2))
    pos[0, :, 0] = [[8, 8]] * t
    pos[0, :, 1] = [[8 + 3 * i, 8] for i in range(t)]
    moves = np.full((1, t - 1, 2), 0)
    moves[0, :, 1] = 3                                       # ball 1 moves right, ball 0 "up"
    slot_xy = np.zeros((1, t, k, 2))
    slot_xy[0, :, 0] = pos[0, :, 0]
    slot_xy[0, :, 1] = [[8, 8]] + [[28, 28]] * (t - 1)       # a spare slot on frame 0's pixel
    slot_xy[0, :, 2] = [[28, 4]] + [list(p) for p in pos[0, 1:, 1]]
    masks = _point_masks(slot_xy, size)
    sel = np.zeros((1, t - 1, k), np.int64)
    sel[0, :, 2] = 3                                          # slot 2 selects "right"
    sel[0, :, 1] = 0                                          # the spare slot: "up"
    visible = np.ones((1, t, 2), bool)
    visible[0, 0, 1] = False
    rep = identification_report(moves, pos, masks, sel, 4, visible=visible)
    assert rep["track_rule_module_accuracy"] == 1.0
    assert rep["track_matching"] == [[0, 2]]
    assert rep["tied_objects"] == 2
    # frame 0 puts slot 2 4.5 px from the balls and slots 0, 1 on them: the tie between slots 0
    # and 1 is broken by the tracks (ball 0 keeps slot 0), ball 1 gets the spare slot 1
    assert rep["matching"] == [[0, 1]]
    assert rep["rule_module_accuracy"] == 0.5                # "right" scored on the spare slot
    with pytest.raises(ValueError, match=r"visible must have shape \(N, T, O\)"):
        identification_report(moves, pos, masks, sel, 4, visible=visible[:, :1])


def test_identification_report_breaks_a_frame_0_tie_by_the_tracks():
    # two balls on one pixel on frame 0 and two slots on that pixel; slot 0 follows ball 1 and
    # slot 1 follows ball 0. The slots' index order would pair them the wrong way round (every
    # selection wrong); frame 0 cannot tell, so the tracks decide.
    t, k, size = 6, 3, 32
    pos = np.zeros((1, t, 2, 2))
    pos[0, :, 0] = [[8, 8 + 3 * i] for i in range(t)]        # ball 0 moves down
    pos[0, :, 1] = [[8 + 3 * i, 8] for i in range(t)]        # ball 1 moves right
    moves = np.stack([np.full((1, t - 1), 1), np.full((1, t - 1), 3)], -1)
    slot_xy = np.zeros((1, t, k, 2))
    slot_xy[0, :, 0] = pos[0, :, 1]
    slot_xy[0, :, 1] = pos[0, :, 0]
    slot_xy[0, :, 2] = [[28, 28]] * t                         # the background
    masks = _point_masks(slot_xy, size)
    sel = np.zeros((1, t - 1, k), np.int64)
    sel[0, :, 0] = 3
    sel[0, :, 1] = 1
    assert match_objects_to_slots(pos[:, 0], slot_xy[:, 0])[0].tolist() == [0, 1]  # index order
    rep = identification_report(moves, pos, masks, sel, 4)
    assert rep["matching"] == [[1, 0]]
    assert rep["rule_module_accuracy"] == 1.0
    assert rep["tied_objects"] == 2
    # apart by a pixel, the balls are no tie: frame 0 decides even against the tracks
    pos2 = pos.copy()
    pos2[0, 0, 1] = [9, 8]
    slot2 = slot_xy.copy()
    slot2[0, 0, 0] = [8, 8]
    slot2[0, 0, 1] = [9, 8]
    rep2 = identification_report(moves, pos2, _point_masks(slot2, size), sel, 4)
    assert rep2["matching"] == [[0, 1]] and rep2["tied_objects"] == 0
    with pytest.raises(ValueError, match=r"tie_break must have shape \(N, O, K\)"):
        match_objects_to_slots(pos[:, 0], slot_xy[:, 0], tie_break=np.zeros((1, 2, 2)))
