"""Evaluation metrics for VIM (Sec. 5.1 of the paper): rule/module identification and tracking.

This module is Pyro-free and works on numpy arrays; every function also accepts torch tensors
(they are detached and moved to the CPU) and returns numpy arrays or python scalars.

Conventions
-----------
* Positions are ``(x, y)`` pairs in pixels with ``x`` the column and ``y`` the row: pixel
  ``(row r, column c)`` has coordinate ``(c, r)``.
* Moves are indices into :data:`MOVES` (``0=up, 1=down, 2=left, 3=right``); ``-1`` marks
  padding or a missing object and is ignored by every count.
* ``moves[n, t, o]`` is the move of object ``o`` between frames ``t`` and ``t + 1`` and
  ``selections[n, t, k]`` the module selected by slot ``k`` for that same transition, so both
  have ``T - 1`` steps for ``T`` frames.

Sec. 5.1 evaluation (:func:`identification_report`): the centroid of each slot's decoded mask
gives the slot's position; each ground-truth ball is matched to a slot on the first frame and the
matching is kept for the whole sequence; the module selected by the matched slot at every step is
then compared with the ball's true move. Two balls that start on one pixel (one hidden behind the
other) are equally close to every slot on the first frame, so the first frame cannot decide
between their slots; that tie is broken by the balls' visible tracks rather than by the order of
the slots. The report also scores a whole-track matching (:func:`match_tracks_to_slots`: each
ball to the slot closest to it on average over the frames where the ball is visible) as
``track_rule_module_accuracy``; it differs from the first-frame matching wherever a slot
takes over a ball after the first frame.
"""

import numpy as np

__all__ = [
    "MOVES",
    "linear_sum_assignment",
    "mask_centroids",
    "match_objects_to_slots",
    "match_tracks_to_slots",
    "track_distances",
    "TIE_TOLERANCE",
    "selection_confusion",
    "rule_module_accuracy",
    "module_usage",
    "normalized_mutual_info",
    "adjusted_rand_index",
    "position_error",
    "identification_report",
]

MOVES = ("up", "down", "left", "right")


# --------------------------------------------------------------------------------------------
# Input helpers
# --------------------------------------------------------------------------------------------


def _to_numpy(x, name):
    """Convert ``x`` (numpy array, torch tensor, list, scalar) to a numpy array."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch
        x = x.detach().cpu()
        if x.dtype.is_floating_point:
            x = x.double()  # also handles bfloat16/half, which numpy cannot take directly
        x = x.numpy()
    try:
        return np.asarray(x)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} could not be converted to an array: {e}") from e


def _as_float(x, name):
    arr = _to_numpy(x, name)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _as_int(x, name):
    arr = _to_numpy(x, name)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must contain integers, got non-integral values")
        return arr.astype(np.int64)
    raise ValueError(f"{name} must be an integer array, got dtype {arr.dtype}")


def _shape_str(shape):
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _check_ndim(arr, name, ndim, expected):
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have shape {expected}, got {_shape_str(arr.shape)}")


# --------------------------------------------------------------------------------------------
# Linear assignment
# --------------------------------------------------------------------------------------------


def linear_sum_assignment(cost):
    """Solve the rectangular linear assignment problem exactly.

    Shortest-augmenting-path Hungarian algorithm with dual potentials (Jonker-Volgenant style,
    ``O(n^2 m)`` for an ``n x m`` problem with ``n <= m``).

    Args:
        cost: ``(R, C)`` finite cost matrix.

    Returns:
        ``(row_ind, col_ind)``: int64 arrays of length ``min(R, C)``; ``row_ind`` is sorted and
        each row/column is used at most once; ``cost[row_ind, col_ind].sum()`` is minimal.
    """
    c = _as_float(cost, "cost")
    _check_ndim(c, "cost", 2, "(R, C)")
    if not np.all(np.isfinite(c)):
        raise ValueError("cost must contain only finite values")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()

    # 1-based arrays as in the classical formulation; index 0 is a virtual column/row.
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=np.int64)  # p[j]: row assigned to column j (0 = none)
    way = np.zeros(m + 1, dtype=np.int64)
    a = np.zeros((n + 1, m + 1))
    a[1:, 1:] = c
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used
            free[0] = False
            cur = a[i0] - u[i0] - v
            better = free & (cur < minv)
            minv[better] = cur[better]
            way[better] = j0
            cand = np.where(free, minv, np.inf)
            j1 = int(np.argmin(cand))
            delta = cand[j1]
            u[p[used]] += delta
            v[used] -= delta
            minv[free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:  # augment along the alternating path
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break

    cols = np.nonzero(p[1:])[0]
    rows = p[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows, kind="stable")
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


# --------------------------------------------------------------------------------------------
# Positions and matching
# --------------------------------------------------------------------------------------------


def mask_centroids(masks):
    """Weighted mean pixel coordinate of each mask (the paper's slot location).

    Args:
        masks: ``(..., H, W)`` non-negative weights (bool or float).

    Returns:
        ``(..., 2)`` float64 array of ``(x, y) = (column, row)`` centroids; a mask with zero total
        mass gives ``(nan, nan)``.
    """
    m = _as_float(masks, "masks")
    if m.ndim < 2:
        raise ValueError(f"masks must have shape (..., H, W), got {_shape_str(m.shape)}")
    if np.any(m < 0):
        raise ValueError("masks must be non-negative")
    h, w = m.shape[-2:]
    mass = m.sum(axis=(-2, -1))
    x_sum = (m.sum(axis=-2) * np.arange(w, dtype=np.float64)).sum(axis=-1)
    y_sum = (m.sum(axis=-1) * np.arange(h, dtype=np.float64)).sum(axis=-1)
    ok = mass > 0
    safe = np.where(ok, mass, 1.0)
    out = np.stack([x_sum / safe, y_sum / safe], axis=-1)
    out[~ok] = np.nan
    return out


def match_objects_to_slots(object_positions, slot_positions, tie_break=None):
    """Match each object to a distinct slot by position (the paper's "closest slot").

    The matching is one-to-one: per sequence it minimises the total Euclidean distance between
    objects and their slots (exact linear assignment), so two objects never share a slot, and
    conflicts that a greedy nearest-slot rule would resolve arbitrarily are resolved by the
    assignment. Non-finite distances (e.g. a slot with an empty mask, whose centroid is nan) are
    replaced by a penalty larger than any possible total of finite distances, so such slots are
    used only when unavoidable.

    Exact ties remain where two objects share a position (a ball hidden behind another on the
    first frame): swapping their slots leaves the total unchanged. Without ``tie_break`` the
    solver's index order decides them; with it, among the assignments whose totals are equal
    (to :data:`TIE_TOLERANCE` px per pair), the one with the least ``tie_break`` total is taken.
    Where the first-frame optimum is unique, ``tie_break`` changes nothing.

    Args:
        object_positions: ``(N, O, 2)`` ground-truth ``(x, y)`` positions.
        slot_positions: ``(N, K, 2)`` slot ``(x, y)`` positions, ``K >= O``.
        tie_break: optional ``(N, O, K)`` secondary cost, e.g. :func:`track_distances` (nan
            entries count as the largest).

    Returns:
        ``(N, O)`` int64 slot index per object.
    """
    obj = _as_float(object_positions, "object_positions")
    slots = _as_float(slot_positions, "slot_positions")
    if obj.ndim != 3 or obj.shape[-1] != 2:
        raise ValueError(
            f"object_positions must have shape (N, O, 2), got {_shape_str(obj.shape)}"
        )
    if slots.ndim != 3 or slots.shape[-1] != 2:
        raise ValueError(
            f"slot_positions must have shape (N, K, 2), got {_shape_str(slots.shape)}"
        )
    if obj.shape[0] != slots.shape[0]:
        raise ValueError(
            "object_positions and slot_positions must have the same N, got "
            f"{obj.shape[0]} and {slots.shape[0]}"
        )
    n, o = obj.shape[:2]
    k = slots.shape[1]
    if k < o:
        raise ValueError(
            f"slot_positions must have K >= O slots to match one-to-one, got K={k} < O={o}"
        )
    with np.errstate(invalid="ignore"):
        dist = np.sqrt(((obj[:, :, None, :] - slots[:, None, :, :]) ** 2).sum(-1))  # (N, O, K)
    if tie_break is not None:
        tie_break = _as_float(tie_break, "tie_break")
        if tie_break.shape != dist.shape:
            raise ValueError(f"tie_break must have shape (N, O, K) = {_shape_str(dist.shape)}, "
                             f"got {_shape_str(tie_break.shape)}")
    return _assign(dist, tie_break)


TIE_TOLERANCE = 1e-6
"""Distances (px) that :func:`match_objects_to_slots` treats as equal when it breaks ties."""


def _assign(dist, tie_break=None):
    """One-to-one assignment per sequence on an ``(N, O, K)`` cost; non-finite costs get a
    penalty larger than any total of finite ones. With ``tie_break``, the cost is rounded to
    :data:`TIE_TOLERANCE` and the secondary cost, scaled so that its total over the ``O`` pairs
    stays below one rounding unit, decides between equal totals (a lexicographic assignment)."""
    n, o, _ = dist.shape
    finite = np.isfinite(dist)
    big = 1.0 + (float(dist[finite].max()) if finite.any() else 0.0) * (o + 1)
    dist = np.where(finite, dist, big)
    if tie_break is not None:
        ok = np.isfinite(tie_break)
        top = float(np.abs(tie_break[ok]).max()) if ok.any() else 0.0
        second = np.where(ok, tie_break, top) / (top + 1.0)        # in (-1, 1)
        dist = np.round(dist / TIE_TOLERANCE) + second / (2 * o + 2)
    matching = np.zeros((n, o), dtype=np.int64)
    for i in range(n):
        rows, cols = linear_sum_assignment(dist[i])
        matching[i, rows] = cols
    return matching


def track_distances(object_tracks, slot_tracks, visible=None):
    """Each object's mean distance to each slot over the frames where the object is visible.

    Args:
        object_tracks: ``(N, T, O, 2)`` ground-truth ``(x, y)`` positions.
        slot_tracks: ``(N, T, K, 2)`` slot positions, ``K >= O`` (nan where a slot has no
            position, e.g. an empty mask).
        visible: optional ``(N, T, O)`` bool, True where the object has visible pixels; frames
            where it is hidden are left out of its mean (an object never visible falls back to
            all frames). Default: every frame counts.

    Returns:
        ``(N, O, K)`` float64 mean distances (nan where a slot never has a position).
    """
    obj = _as_float(object_tracks, "object_tracks")
    slots = _as_float(slot_tracks, "slot_tracks")
    _check_ndim(obj, "object_tracks", 4, "(N, T, O, 2)")
    _check_ndim(slots, "slot_tracks", 4, "(N, T, K, 2)")
    if obj.shape[-1] != 2 or slots.shape[-1] != 2:
        raise ValueError(f"object_tracks and slot_tracks must end in (x, y) pairs, got "
                         f"{_shape_str(obj.shape)} and {_shape_str(slots.shape)}")
    if obj.shape[:2] != slots.shape[:2]:
        raise ValueError(f"object_tracks and slot_tracks must have the same (N, T), got "
                         f"{_shape_str(obj.shape)} and {_shape_str(slots.shape)}")
    n, t, o = obj.shape[:3]
    if slots.shape[2] < o:
        raise ValueError(f"slot_tracks must have K >= O slots to match one-to-one, got "
                         f"K={slots.shape[2]} < O={o}")
    if visible is None:
        vis = np.ones((n, t, o), dtype=bool)
    else:
        vis = _to_numpy(visible, "visible").astype(bool)
        if vis.shape != (n, t, o):
            raise ValueError(f"visible must have shape (N, T, O) = ({n}, {t}, {o}), got "
                             f"{_shape_str(vis.shape)}")
        vis = np.where(vis.any(axis=1, keepdims=True), vis, True)   # never visible: all frames
    with np.errstate(invalid="ignore"):
        dist = np.sqrt(((obj[:, :, :, None, :] - slots[:, :, None, :, :]) ** 2).sum(-1))
    dist = np.where(vis[..., None], dist, np.nan)                   # (N, T, O, K)
    return _finite_mean(dist, axis=1)


def match_tracks_to_slots(object_tracks, slot_tracks, visible=None):
    """Match each object to a distinct slot by whole tracks: the one-to-one assignment (per
    sequence) minimising the total of each object's mean distance to its slot over the frames
    where the object is visible (:func:`track_distances`).

    The first-frame matching of :func:`match_objects_to_slots` is the paper's; it cannot place a
    ball that starts hidden behind another (both balls have the same first-frame position, so
    either slot is as close). Matching on the tracks uses the frames where each ball can be
    seen, so it scores what the model selects for the ball once it is tracked.

    Args: as :func:`track_distances`.

    Returns:
        ``(N, O)`` int64 slot index per object.
    """
    return _assign(track_distances(object_tracks, slot_tracks, visible))


# --------------------------------------------------------------------------------------------
# Rule / module identification
# --------------------------------------------------------------------------------------------


def _moves_3d(moves, name="moves"):
    mv = _as_int(moves, name)
    if mv.ndim == 4:
        if mv.shape[-1] != 1:
            raise ValueError(
                f"{name} has S={mv.shape[-1]} simultaneous moves per object (shape "
                f"{_shape_str(mv.shape)}); only single-move datasets (S=1) can be scored this way"
            )
        mv = mv[..., 0]
    if mv.ndim != 3:
        raise ValueError(
            f"{name} must have shape (N, T-1, O) or (N, T-1, O, 1), got {_shape_str(mv.shape)}"
        )
    return mv


def selection_confusion(moves, selections, matching, num_modules, num_rules=4):
    """Count (true move, selected module) pairs through a fixed object-to-slot matching.

    Args:
        moves: ``(N, T-1, O)`` or ``(N, T-1, O, 1)`` int moves in ``[-1, num_rules)``; ``-1``
            entries are ignored.
        selections: ``(N, T-1, K)`` int module indices in ``[0, num_modules)``.
        matching: ``(N, O)`` int slot index per object in ``[0, K)``.
        num_modules: number of modules ``M``.
        num_rules: number of distinct moves (4 for :data:`MOVES`).

    Returns:
        ``(num_rules, num_modules)`` int64 counts; entry ``[r, m]`` counts steps ``(n, t, o)``
        where object ``o`` made move ``r`` and slot ``matching[n, o]`` selected module ``m``.
    """
    mv = _moves_3d(moves)
    sel = _as_int(selections, "selections")
    mt = _as_int(matching, "matching")
    _check_ndim(sel, "selections", 3, "(N, T-1, K)")
    _check_ndim(mt, "matching", 2, "(N, O)")
    num_modules = int(num_modules)
    num_rules = int(num_rules)
    if num_modules < 1 or num_rules < 1:
        raise ValueError("num_modules and num_rules must be >= 1")
    n, t, o = mv.shape
    if sel.shape[:2] != (n, t):
        raise ValueError(
            f"selections must have shape (N, T-1, K) = ({n}, {t}, K) to match moves, got "
            f"{_shape_str(sel.shape)}"
        )
    if mt.shape != (n, o):
        raise ValueError(
            f"matching must have shape (N, O) = ({n}, {o}) to match moves, got "
            f"{_shape_str(mt.shape)}"
        )
    k = sel.shape[2]
    if mv.size and (mv.min() < -1 or mv.max() >= num_rules):
        raise ValueError(f"moves must be in [-1, {num_rules}), got [{mv.min()}, {mv.max()}]")
    if sel.size and (sel.min() < 0 or sel.max() >= num_modules):
        raise ValueError(
            f"selections must be in [0, {num_modules}), got [{sel.min()}, {sel.max()}]"
        )
    if mt.size and (mt.min() < 0 or mt.max() >= k):
        raise ValueError(f"matching must be in [0, K={k}), got [{mt.min()}, {mt.max()}]")
    # matched[n, t, o] = selections[n, t, matching[n, o]]
    idx = np.broadcast_to(mt[:, None, :], (n, t, o))
    matched = np.take_along_axis(sel, idx, axis=2)
    valid = mv >= 0
    flat = mv[valid] * num_modules + matched[valid]
    counts = np.bincount(flat, minlength=num_rules * num_modules)
    return counts.reshape(num_rules, num_modules).astype(np.int64)


def _check_confusion(confusion):
    c = _as_float(confusion, "confusion")
    _check_ndim(c, "confusion", 2, "(num_rules, num_modules)")
    if np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError("confusion must contain finite non-negative counts")
    return c


def rule_module_accuracy(confusion):
    """Accuracy of the best one-to-one rule-to-module labelling.

    Args:
        confusion: ``(num_rules, num_modules)`` counts (see :func:`selection_confusion`).

    Returns:
        ``(accuracy, assignment)``: ``assignment`` maps each rule to a distinct module so that the
        total matched count is maximal (with more rules than modules, only ``num_modules`` rules
        are assigned); ``accuracy`` is that count over the total count (``nan`` if the total is 0).
    """
    c = _check_confusion(confusion)
    rows, cols = linear_sum_assignment(-c)
    assignment = {int(r): int(m) for r, m in zip(rows, cols)}
    total = c.sum()
    acc = float(c[rows, cols].sum() / total) if total > 0 else float("nan")
    return acc, assignment


def assignment_accuracy(confusion, assignment):
    """Share of the counts of ``confusion`` (``num_rules x M``) that a *fixed* rule -> module
    ``assignment`` gets right (keys: rule index or name in :data:`MOVES`), e.g. a whole run's
    assignment scored on a subset of its videos or transitions; ``nan`` if there are none."""
    c = _check_confusion(confusion)
    total = c.sum()
    if total <= 0:
        return float("nan")
    hits = sum(c[MOVES.index(r) if isinstance(r, str) else int(r), int(m)]
               for r, m in assignment.items())
    return float(hits / total)


def module_usage(selections, num_modules, mask=None):
    """Frequency with which each module is selected.

    Args:
        selections: int array of any shape with values in ``[0, num_modules)``.
        num_modules: number of modules ``M``.
        mask: optional bool array of the same shape; only entries where it is True are counted.

    Returns:
        ``(num_modules,)`` float64 frequencies summing to 1 (all ``nan`` if nothing is counted).
    """
    sel = _as_int(selections, "selections")
    num_modules = int(num_modules)
    if num_modules < 1:
        raise ValueError("num_modules must be >= 1")
    if mask is not None:
        mk = _to_numpy(mask, "mask")
        if mk.shape != sel.shape:
            raise ValueError(
                f"mask must have the same shape as selections {_shape_str(sel.shape)}, got "
                f"{_shape_str(mk.shape)}"
            )
        sel = sel[mk.astype(bool)]
    sel = sel.reshape(-1)
    if sel.size and (sel.min() < 0 or sel.max() >= num_modules):
        raise ValueError(
            f"selections must be in [0, {num_modules}), got [{sel.min()}, {sel.max()}]"
        )
    counts = np.bincount(sel, minlength=num_modules).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return np.full(num_modules, np.nan)
    return counts / total


def _entropy(p):
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(confusion):
    """Normalised mutual information between rules and modules.

    ``NMI = I(R; M) / ((H(R) + H(M)) / 2)`` (arithmetic-mean normalisation, as the scikit-learn
    default) of the joint distribution ``confusion / confusion.sum()``.

    Degenerate cases: if both entropies are 0 (a single rule and a single module are observed,
    i.e. the two labellings are trivially identical partitions) the result is ``1.0``; if exactly
    one entropy is 0 the mutual information is 0 and the result is ``0.0``; an all-zero
    confusion gives ``nan``.

    Returns:
        float in ``[0, 1]``.
    """
    c = _check_confusion(confusion)
    total = c.sum()
    if total == 0:
        return float("nan")
    pxy = c / total
    px = pxy.sum(axis=1)
    py = pxy.sum(axis=0)
    hx = _entropy(px)
    hy = _entropy(py)
    if hx == 0.0 and hy == 0.0:
        return 1.0
    if hx == 0.0 or hy == 0.0:
        return 0.0
    nz = pxy > 0
    outer = px[:, None] * py[None, :]
    mi = float((pxy[nz] * np.log(pxy[nz] / outer[nz])).sum())
    return float(np.clip(mi / (0.5 * (hx + hy)), 0.0, 1.0))


# --------------------------------------------------------------------------------------------
# Segmentation and tracking
# --------------------------------------------------------------------------------------------


def adjusted_rand_index(true_masks, pred_masks, foreground_only=False):
    """Adjusted Rand index between ground-truth instance masks and predicted slot masks.

    Ground-truth labels: pixel gets label ``o + 1`` for the first object ``o`` whose mask covers
    it, and label 0 (background) if no mask covers it. Predicted labels: ``argmax`` over the slot
    axis (ties go to the lowest slot index).

    With ``foreground_only=True`` only pixels covered by some true mask are scored (FG-ARI as in
    Greff et al. 2019 / Locatello et al. 2020); otherwise background is its own cluster.

    Degenerate cases: when the ARI denominator vanishes, which happens exactly when both sides are
    a single cluster or both sides are all singletons (including a single scored pixel), the
    partitions are identical and the result is ``1.0``. An image with no scored pixel (e.g. no
    foreground with ``foreground_only=True``) gives ``nan``.

    Args:
        true_masks: ``(N, O, H, W)`` bool instance masks; extra leading dims ``(..., O, H, W)``
            are allowed.
        pred_masks: ``(N, K, H, W)`` probabilities / logits / one-hot masks with the same leading
            dims and ``H, W``.
        foreground_only: score only foreground pixels.

    Returns:
        float64 array with the leading dims (``(N,)`` or ``(...)``): ARI per image.
    """
    tm = _to_numpy(true_masks, "true_masks")
    pm = _as_float(pred_masks, "pred_masks")
    if tm.ndim < 4:
        raise ValueError(
            f"true_masks must have shape (N, O, H, W) (or (..., O, H, W)), got "
            f"{_shape_str(tm.shape)}"
        )
    if pm.ndim != tm.ndim:
        raise ValueError(
            f"pred_masks must have shape (N, K, H, W) with the same rank as true_masks "
            f"{_shape_str(tm.shape)}, got {_shape_str(pm.shape)}"
        )
    lead = tm.shape[:-3]
    if pm.shape[:-3] != lead or pm.shape[-2:] != tm.shape[-2:]:
        raise ValueError(
            f"pred_masks must have shape {_shape_str(lead + ('K',) + tm.shape[-2:])} to match "
            f"true_masks, got {_shape_str(pm.shape)}"
        )
    o = tm.shape[-3]
    k = pm.shape[-3]
    if k < 1:
        raise ValueError("pred_masks must have at least one slot (K >= 1)")
    b = int(np.prod(lead)) if lead else 1
    tm = tm.astype(bool).reshape(b, o, -1)
    pm = pm.reshape(b, k, -1)

    any_fg = tm.any(axis=1)  # (B, P)
    if o > 0:
        true_lab = np.where(any_fg, np.argmax(tm, axis=1) + 1, 0)
    else:
        true_lab = np.zeros(any_fg.shape, dtype=np.int64)
    pred_lab = np.argmax(pm, axis=1)
    weights = any_fg if foreground_only else np.ones_like(any_fg)

    nt, npred = o + 1, k
    flat = (np.arange(b)[:, None] * nt + true_lab) * npred + pred_lab
    cont = np.bincount(
        flat.reshape(-1), weights=weights.reshape(-1).astype(np.float64), minlength=b * nt * npred
    ).reshape(b, nt, npred)

    def comb2(x):
        return x * (x - 1.0) / 2.0

    n_pix = cont.sum(axis=(1, 2))
    sum_ij = comb2(cont).sum(axis=(1, 2))
    sum_a = comb2(cont.sum(axis=2)).sum(axis=1)
    sum_b = comb2(cont.sum(axis=1)).sum(axis=1)
    pairs = comb2(n_pix)
    expected = np.where(pairs > 0, sum_a * sum_b / np.where(pairs > 0, pairs, 1.0), 0.0)
    max_index = 0.5 * (sum_a + sum_b)
    denom = max_index - expected
    degenerate = np.isclose(denom, 0.0, rtol=0.0, atol=1e-9 * np.maximum(pairs, 1.0))
    ari = np.where(degenerate, 1.0, (sum_ij - expected) / np.where(degenerate, 1.0, denom))
    ari = np.where(n_pix > 0, ari, np.nan)
    return ari.reshape(lead)


def position_error(pred_positions, true_positions):
    """Euclidean distance between predicted and true ``(x, y)`` positions (nan-propagating).

    Args:
        pred_positions: ``(..., 2)``.
        true_positions: same shape.

    Returns:
        ``(...)`` float64 distances.
    """
    p = _as_float(pred_positions, "pred_positions")
    t = _as_float(true_positions, "true_positions")
    if p.ndim < 1 or p.shape[-1] != 2:
        raise ValueError(f"pred_positions must have shape (..., 2), got {_shape_str(p.shape)}")
    if t.shape != p.shape:
        raise ValueError(
            f"true_positions must have the same shape as pred_positions {_shape_str(p.shape)}, "
            f"got {_shape_str(t.shape)}"
        )
    return np.sqrt(((p - t) ** 2).sum(axis=-1))


def _finite_mean(x, axis=None):
    """Mean over finite entries; nan where there is none (no RuntimeWarning)."""
    ok = np.isfinite(x)
    s = np.where(ok, x, 0.0).sum(axis=axis)
    c = ok.sum(axis=axis)
    return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def identification_report(moves, object_positions, slot_masks, selections, num_modules,
                          visible=None):
    """Full Sec. 5.1 evaluation: match balls to slots on frame 0, then score module selection.

    Steps: slot positions are the centroids of ``slot_masks`` (:func:`mask_centroids`); objects
    are matched one-to-one to slots on the first frame (:func:`match_objects_to_slots`) and the
    matching is kept for all frames; the matched slots' selections are compared with the true
    moves (:func:`selection_confusion` with ``num_rules=len(MOVES)``). Where the first frame
    leaves the matching undecided (two objects on one position, so that swapping their slots
    costs nothing), the tie is broken by the objects' whole visible tracks
    (:func:`track_distances`) instead of by the order of the slots.

    Args:
        moves: ``(N, T-1, O)`` or ``(N, T-1, O, 1)`` int moves, ``-1`` = padding.
        object_positions: ``(N, T, O, 2)`` true ``(x, y)`` positions.
        slot_masks: ``(N, T, K, H, W)`` decoded slot masks.
        selections: ``(N, T-1, K)`` int module selected by each slot at each transition.
        num_modules: number of modules ``M``.
        visible: optional ``(N, T, O)`` bool, True where an object has visible pixels (e.g.
            ``visible`` of a :class:`~pyro_vim.data.VideoBatch`), used by the
            whole-track matching.

    Returns:
        A plain, JSON-serialisable dict:

        * ``rule_module_accuracy`` (float): see :func:`rule_module_accuracy`.
        * ``assignment`` (dict int -> int): best rule -> module labelling.
        * ``confusion`` (list of lists, ``num_rules x M``): counts.
        * ``module_usage`` (list, length ``M``): selection frequencies of the matched slots at
          the scored steps (where the move is not ``-1``), i.e. ``confusion`` column sums
          normalised.
        * ``nmi`` (float): :func:`normalized_mutual_info` of ``confusion``.
        * ``matching`` (list of lists, ``N x O``): slot index of each object.
        * ``position_error`` (list, length ``T``): per-frame tracking error (distance between the
          matched slot's centroid and the true position), averaged over ``N, O`` ignoring
          non-finite entries (e.g. empty masks or nan positions).
        * ``mean_position_error`` (float): the same averaged over all frames.
        * ``track_rule_module_accuracy`` (float) and ``track_matching`` (``N x O``): the same
          accuracy with balls matched to slots on their whole visible tracks
          (:func:`match_tracks_to_slots`) instead of on the first frame; the two differ where a
          ball starts hidden or a slot takes over a ball later.
        * ``tied_objects`` (int): objects that share their first-frame position with another
          (the frame-0 ties that the tracks break).
    """
    mv = _moves_3d(moves)
    pos = _as_float(object_positions, "object_positions")
    masks = _as_float(slot_masks, "slot_masks")
    sel = _as_int(selections, "selections")
    if pos.ndim != 4 or pos.shape[-1] != 2:
        raise ValueError(
            f"object_positions must have shape (N, T, O, 2), got {_shape_str(pos.shape)}"
        )
    _check_ndim(masks, "slot_masks", 5, "(N, T, K, H, W)")
    _check_ndim(sel, "selections", 3, "(N, T-1, K)")
    n, t, o = pos.shape[:3]
    if mv.shape != (n, t - 1, o):
        raise ValueError(
            f"moves must have shape (N, T-1, O) = ({n}, {t - 1}, {o}) given object_positions "
            f"{_shape_str(pos.shape)}, got {_shape_str(mv.shape)}"
        )
    if masks.shape[:2] != (n, t):
        raise ValueError(
            f"slot_masks must have shape (N, T, K, H, W) with N={n}, T={t}, got "
            f"{_shape_str(masks.shape)}"
        )
    k = masks.shape[2]
    if sel.shape != (n, t - 1, k):
        raise ValueError(
            f"selections must have shape (N, T-1, K) = ({n}, {t - 1}, {k}), got "
            f"{_shape_str(sel.shape)}"
        )
    slot_pos = mask_centroids(masks)  # (N, T, K, 2)
    track_cost = track_distances(pos, slot_pos, visible)  # (N, O, K)
    matching = match_objects_to_slots(pos[:, 0], slot_pos[:, 0], tie_break=track_cost)  # (N, O)
    confusion = selection_confusion(mv, sel, matching, num_modules, num_rules=len(MOVES))
    acc, assignment = rule_module_accuracy(confusion)
    col = confusion.sum(axis=0).astype(np.float64)
    usage = col / col.sum() if col.sum() > 0 else np.full(col.shape, np.nan)
    nmi = normalized_mutual_info(confusion)
    idx = np.broadcast_to(matching[:, None, :, None], (n, t, o, 2))
    matched_pos = np.take_along_axis(slot_pos, idx, axis=2)  # (N, T, O, 2)
    err = position_error(matched_pos, pos)  # (N, T, O)
    per_frame = _finite_mean(err.transpose(1, 0, 2).reshape(t, -1), axis=1)
    mean_err = float(_finite_mean(err.reshape(-1)))
    track = _assign(track_cost)
    gap = np.sqrt(((pos[:, 0, :, None] - pos[:, 0, None, :]) ** 2).sum(-1))  # (N, O, O)
    tied = ((gap <= TIE_TOLERANCE) & ~np.eye(o, dtype=bool)).any(-1)
    track_acc, _ = rule_module_accuracy(
        selection_confusion(mv, sel, track, num_modules, num_rules=len(MOVES)))
    return {
        "rule_module_accuracy": acc,
        "assignment": assignment,
        "confusion": confusion.tolist(),
        "module_usage": usage.tolist(),
        "nmi": nmi,
        "matching": matching.tolist(),
        "position_error": [float(v) for v in per_frame],
        "mean_position_error": mean_err,
        "track_rule_module_accuracy": track_acc,
        "track_matching": track.tolist(),
        "tied_objects": int(tied.sum()),
    }
