"""REPRODUCTION.md written from the runs of a sweep folder (:func:`write_reproduction`).

One line per :data:`~pyro_vim.report.paper_results.RESULTS` entry: the paper's number or claim,
ours (mean ± sample standard deviation over the seeds, ``ddof=1``; a single seed has no ±),
the same number before learning where the runs record one, the goal, whether it is met (with
"k of n seeds" when not every seed meets it), the seeds, the command that regenerates the
runs, and a link to the docs/ page with the method and any diagnosis.  A result whose runs are
not in the folder says "not run".

The commit and the machine are stated once, in the header, when every run of the paper's
experiments shares them; otherwise the header lists each with its runs, and every row whose
runs come from more than one commit, or from another commit than the first, names its commits.
Runs under the folder that belong to no experiment of :mod:`pyro_vim.experiments` are listed,
not used.  The text is computed whole, then written atomically.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..files import atomic_write
from .aggregation import aggregate
from .paper_results import DERIVED, OPS, RESULTS, Goal, PaperResult
from .runs import METRICS_FILE, PathLike, _load_metrics, _seed_key, _seed_of
from .statistics import _scalar_stats

#: The file name written into the sweep folder when no path is given.
FILE_NAME = "REPRODUCTION.md"


@dataclass
class Run:
    seed: Any
    folder: Path
    result: Dict[str, Any]

    @property
    def commit(self) -> str:
        c = self.result.get("commit")
        return c if isinstance(c, str) and c else "unknown"


@dataclass
class Group:
    experiment: str
    variant: str
    runs: List[Run] = field(default_factory=list)
    incomplete: List[str] = field(default_factory=list)


def _groups(root: Path) -> Dict[Tuple[str, str], Group]:
    """Every (experiment, variant) group under ``root``, its complete runs read, by seed."""
    report = aggregate(root)
    groups = {}
    for exp, variants in report["experiments"].items():
        for var, g in variants.items():
            group = Group(exp, var, incomplete=list(g["incomplete"]))
            for rel in g["runs"]:
                folder = root / rel
                result = _load_metrics(folder / METRICS_FILE)
                group.runs.append(Run(_seed_of(folder, result), folder, result))
            group.runs.sort(key=lambda r: _seed_key(r.seed))
            groups[(exp, var)] = group
    return groups


def _number(x: Any) -> Optional[float]:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def lookup(block: Any, path: str) -> Any:
    """``block[a][b]...`` for the key path ``"a.b..."`` (``None`` where a key is missing); a
    key that itself holds dots is found too."""
    if not isinstance(block, dict):
        return None
    if path in block:
        return block[path]
    head, _, rest = path.partition(".")
    while rest:
        if head in block:
            found = lookup(block[head], rest)
            if found is not None:
                return found
        more, _, rest = rest.partition(".")
        head = f"{head}.{more}"
    return None


def run_value(result: Dict[str, Any], metric: str, section: str = "metrics"
              ) -> Optional[float]:
    """One run's number: ``metric`` (a key path or a :data:`DERIVED` name) in ``section`` of its
    ``metrics.json`` (``"run"``: the top level)."""
    block = result if section == "run" else result.get(section)
    if not isinstance(block, dict):
        return None
    if metric in DERIVED:
        return _number(DERIVED[metric](block))
    return _number(lookup(block, metric))


def _values(group: Optional[Group], metric: str, section: str) -> Dict[Any, float]:
    """``{seed: value}`` of the group's runs that record the number."""
    if group is None:
        return {}
    out = {}
    for run in group.runs:
        v = run_value(run.result, metric, section)
        if v is not None:
            out[run.seed] = v
    return out


def _fmt(x: Optional[float], digits: int) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _mean_std(values: Sequence[float], digits: int, unit: str = "") -> str:
    stats = _scalar_stats(list(values))
    if stats["n"] == 0 or stats["mean"] is None:
        return "—"
    text = _fmt(stats["mean"], digits)
    if stats["n"] > 1:
        text += f" ± {_fmt(stats['std'], digits)}"
    return text + (f" {unit}" if unit else "")


def _seeds_text(seeds: Sequence[Any]) -> str:
    return ", ".join(str(s) for s in seeds) if seeds else "—"


def _group_label(experiment: str, variant: str) -> str:
    return f"{experiment}/{variant}" if variant else experiment


@dataclass
class Judgement:
    goal: str
    met: str


#: How the goals' comparisons are written.
SYMBOLS = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}


def _goal_text(goal: Goal, row: PaperResult, refs: List[Tuple[str, Optional[float]]]) -> str:
    unit = f" {row.unit}" if row.unit else ""
    op = SYMBOLS[goal.op]
    if goal.than:
        scale = "" if goal.factor == 1.0 else f"{goal.factor:g} × "
        parts = [f"{scale}{label}'s " + ("(not run)" if mean is None
                                        else _fmt(mean, row.digits))
                 for label, mean in refs]
        return f"{op} " + " and ".join(parts) + " (the mean; each seed against the same seed)"
    text = f"mean {op} {goal.value:g}{unit}"
    if goal.seed_value is not None:
        text += f", each seed {op} {goal.seed_value:g}"
    return text


def judge(goal: Optional[Goal], row: PaperResult, values: Dict[Any, float],
          groups: Dict[Tuple[str, str], Group]) -> Judgement:
    """The goal's text and whether ``values`` (seed -> number) meet it."""
    if goal is None:
        return Judgement("—", "—")
    compare = OPS[goal.op]
    mean = _scalar_stats(list(values.values()))["mean"]
    if goal.than:
        refs = []
        for exp, var, metric in goal.than:
            ref = _values(groups.get((exp, var)), metric, row.section)
            label = _group_label(exp, var) + ("" if metric == row.metric else f" {metric}")
            refs.append((label, ref))
        ref_means = [(label, _scalar_stats(list(v.values()))["mean"]) for label, v in refs]
        text = _goal_text(goal, row, ref_means)
        missing = [label for label, m in ref_means if m is None]
        if missing:
            return Judgement(text, f"not judged: {', '.join(missing)} not run")
        if mean is None:
            return Judgement(text, "—")
        mean_ok = all(compare(mean, goal.factor * m) for _, m in ref_means)
        judged = [s for s in values if all(s in v for _, v in refs)]
        ok = [s for s in judged if all(compare(values[s], goal.factor * v[s])
                                       for _, v in refs)]
    else:
        text = _goal_text(goal, row, [])
        if mean is None:
            return Judgement(text, "—")
        mean_ok = compare(mean, goal.value)
        threshold = goal.value if goal.seed_value is None else goal.seed_value
        judged = list(values)
        ok = [s for s in judged if compare(values[s], threshold)]
    seeds = f"{len(ok)} of {len(judged)} seeds"
    if mean_ok and len(ok) == len(judged):
        met = "**met**"
    elif mean_ok:
        met = f"met by the mean; {seeds}"
    else:       # the mean with one more digit: it may round to the threshold
        met = f"not met (the mean, {_fmt(mean, row.digits + 1)}; {seeds})"
    return Judgement(text, met)


def _settings(group: Group) -> Tuple[List[str], bool]:
    """(``--set`` overrides that turn the experiment's config into the runs', whether the runs'
    settings differ from each other); the experiment's own settings give ``[]``."""
    from ..config import VIMConfig
    from ..run.commands import overrides_for
    found: List[List[str]] = []
    for run in group.runs:
        try:
            with open(run.folder / "config.json") as f:
                sets = overrides_for(group.experiment, group.variant,
                                     VIMConfig.from_saved(json.load(f)))
        except (OSError, ValueError, TypeError):
            continue
        if sets is not None and sets not in found:
            found.append(sets)
    return (found[0] if found else []), len(found) > 1


def command(group: Optional[Group], experiment: str, variant: str, out: str) -> str:
    """The runner command that regenerates the group's runs into ``out`` (in backticks; a note
    when the seeds' settings differ)."""
    from ..run.commands import runner_command
    seeds, sets, note, precision = None, [], "", "fp32"
    if group is not None and group.runs:
        if all(isinstance(r.seed, int) for r in group.runs):
            seeds = [r.seed for r in group.runs]
        sets, differ = _settings(group)
        if differ:
            note = " (the seeds' settings differ: see their config.json)"
        found = {r.result.get("precision") for r in group.runs} - {None}
        if len(found) == 1:
            precision = str(found.pop())
    return f"`{runner_command(experiment, out, variant, seeds, sets, precision)}`{note}"


def _docs_link(topic: str, out_dir: Path) -> str:
    """docs/<topic>.md relative to the written file when the source tree's docs/ folder is
    found beside the package, ``docs/<topic>.md`` otherwise."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    target = f"docs/{topic}.md"
    if docs.is_dir():
        target = os.path.relpath(docs / f"{topic}.md", out_dir.resolve()).replace(os.sep, "/")
    return f"[{topic}]({target})"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _commit_marks(runs: Sequence[Run], seeds: Sequence[Any], main: str) -> str:
    """`` [at X]`` / `` [at X (seeds 0, 1), Y (seed 2)]`` when the row's runs are not all at
    ``main``; ``""`` otherwise."""
    by_commit: Dict[str, List[Any]] = {}
    for run in runs:
        if run.seed in seeds:
            by_commit.setdefault(run.commit, []).append(run.seed)
    if set(by_commit) <= {main}:
        return ""
    if len(by_commit) == 1:
        return f" [at `{next(iter(by_commit))}`]"
    parts = [f"`{c}` (seed{'s' if len(s) > 1 else ''} {_seeds_text(s)})"
             for c, s in by_commit.items()]
    return " [at " + ", ".join(parts) + "]"


def _row(row: PaperResult, groups: Dict[Tuple[str, str], Group], out: str, main_commit: str,
         out_dir: Path) -> List[str]:
    group = groups.get((row.experiment, row.variant))
    result = f"{row.paper} — {row.what} ({_docs_link(row.docs, out_dir)})"
    cmd = command(group, row.experiment, row.variant, out)
    if group is None or not group.runs:
        label = _group_label(row.experiment, row.variant)
        return [result, row.claim, f"not run ({label})", "—", judge(row.goal, row, {}, groups)
                .goal, "not run", "—", cmd]
    values = _values(group, row.metric, row.section)
    ours = _mean_std(list(values.values()), row.digits, row.unit)
    if values and len(values) < len(group.runs):
        ours += f" ({len(values)} of {len(group.runs)} runs record it)"
    elif not values:
        ours = f"— (none of the {len(group.runs)} runs records `{row.metric}`)"
    ours += _commit_marks(group.runs, list(values), main_commit)
    before = "—"
    if row.section == "metrics":
        b = _values(group, row.metric, "before_learning")
        before = _mean_std(list(b.values()), row.digits, row.unit)
    verdict = judge(row.goal, row, values, groups)
    seeds = sorted(values, key=_seed_key)
    return [result, row.claim, ours, before, verdict.goal, verdict.met, _seeds_text(seeds), cmd]


def _provenance_lines(runs: Sequence[Run]) -> Tuple[List[str], str]:
    """The header's commit and machine lines, and the commit most runs come from."""
    from ..run.provenance import split_machine
    counts: Dict[str, List[Run]] = {}
    machines: Dict[str, List[Run]] = {}
    versions: Dict[str, int] = {}
    threads: Dict[str, int] = {}
    for run in runs:
        counts.setdefault(run.commit, []).append(run)
        machine, version, t = split_machine(run.result)
        machines.setdefault(machine or "unknown", []).append(run)
        versions[version or "unknown"] = versions.get(version or "unknown", 0) + 1
        key = "unknown" if t is None else str(t)
        threads[key] = threads.get(key, 0) + 1
    main = max(counts, key=lambda c: len(counts[c]))

    def where(rs: Sequence[Run]) -> str:
        names: List[str] = []
        for r in rs:
            label = _group_label(r.result.get("experiment") or "?", r.result.get("variant") or "")
            if label not in names:
                names.append(label)
        return ", ".join(names)

    lines = []
    if len(counts) == 1:
        lines.append(f"- **Commit** `{main}` (all {len(runs)} runs).")
    else:
        listed = "; ".join(f"`{c}`: {len(rs)} run(s) ({where(rs)})"
                           for c, rs in sorted(counts.items(), key=lambda kv: -len(kv[1])))
        lines.append(f"- **Commits: the runs come from {len(counts)} commits**, not one: "
                     f"{listed}. Rows whose runs are not all at `{main}` name their commits.")
    if len(machines) == 1:
        lines.append(f"- **Machine** {next(iter(machines))} (all runs).")
    else:
        listed = "; ".join(f"{m}: {len(rs)} run(s) ({where(rs)})"
                           for m, rs in machines.items())
        lines.append(f"- **Machines: the runs come from {len(machines)} machines**: {listed}.")
    lines.append("- torch " + ", ".join(f"{v} ({n} runs)" if len(versions) > 1 else v
                                          for v, n in versions.items())
                 + "; threads a run: " + ", ".join(f"{t} ({n} runs)"
                                                  for t, n in sorted(threads.items())) + ".")
    dirty = [r for r in runs if r.result.get("commit_dirty") is True]
    if dirty:
        lines.append(f"- {len(dirty)} run(s) were trained with uncommitted changes to the "
                     f"code ({where(dirty)}): their commit is not all of their code.")
    rescored: Dict[str, List[Run]] = {}
    for r in runs:
        e = r.result.get("evaluated_commit")
        if isinstance(e, str) and e != r.commit:
            rescored.setdefault(e, []).append(r)
    for c, rs in rescored.items():
        lines.append(f"- {len(rs)} run(s) re-scored at `{c}` (`--reevaluate`; trained at "
                     f"their commit): {where(rs)}.")
    return lines, main


def _runs_table(groups: Dict[Tuple[str, str], Group], one_commit: bool) -> List[str]:
    """Per group: seeds, incomplete runs, training minutes, threads (and commits, when the
    header lists more than one)."""
    from ..run.provenance import split_machine
    header = ["experiment", "variant", "complete seeds", "incomplete",
              "training minutes a run (mean, min–max)", "threads"]
    if not one_commit:
        header.append("commits")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (exp, var), g in groups.items():
        minutes = [m for m in (run_value(r.result, "train_minutes", "run") for r in g.runs)
                   if m is not None]
        span = (f"{_mean_std(minutes, 1)} ({min(minutes):.1f}–{max(minutes):.1f})"
                if minutes else "—")
        threads = sorted({str(split_machine(r.result)[2]) for r in g.runs})
        cells = [exp, var or "—", _seeds_text([r.seed for r in g.runs]),
                 str(len(g.incomplete)), span, ", ".join(threads) or "—"]
        if not one_commit:
            cells.append(", ".join(f"`{c}`" for c in sorted({r.commit for r in g.runs})))
        lines.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    return lines


def render_reproduction(root: PathLike, out_dir: PathLike = ".",
                        results: Sequence[PaperResult] = RESULTS) -> str:
    """The REPRODUCTION.md text for the runs under ``root``; links relative to ``out_dir``
    (the folder the file goes to)."""
    from ..experiments import EXPERIMENTS
    path = Path(root)
    all_groups = _groups(path)
    groups = {k: g for k, g in all_groups.items() if k[0] in EXPERIMENTS}
    others = {k: g for k, g in all_groups.items() if k[0] not in EXPERIMENTS}
    runs = [r for g in groups.values() for r in g.runs]
    out = os.fspath(root).rstrip("/") or "."
    lines = ["# Reproducing VIM (Assouel et al., CLeaR 2022)", "",
             f"Every number below is computed from the runs in `{out}` by `python -m "
             f"pyro_vim.report {out} --reproduction`; none is edited by hand. The runs come "
             f"from `python -m pyro_vim.run paper --out {out}` (every experiment, resumable; "
             "`--plan` lists the runs and their training minutes) or from each row's command.",
             ""]
    main = "unknown"
    if runs:
        prov, main = _provenance_lines(runs)
        lines += prov
    else:
        lines.append("- No run of the paper's experiments is in this folder.")
    total = sum(m for m in (run_value(r.result, "train_minutes", "run") for r in runs)
                if m is not None)
    lines += [f"- {len(runs)} complete runs, "
              f"{sum(len(g.incomplete) for g in groups.values())} incomplete; "
              f"{total:.0f} training minutes in all.", ""]
    header = ["paper result", "paper", "ours", "before learning", "goal", "met", "seeds",
              "command"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in results:
        cells = _row(row, groups, out, main, Path(out_dir))
        lines.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    lines += ["", "Ours: mean ± sample standard deviation (ddof = 1) over the seeds listed, on "
              "held-out data; *before learning*: the same runs after slot-attention "
              "pre-training, with untrained modules. *met*: the goal holds for the mean and "
              "for every seed; otherwise the seeds that meet it are counted. Methods, "
              "definitions and diagnoses: the docs page linked in each row.", "",
              "## Runs", ""]
    one_commit = len({r.commit for r in runs}) <= 1
    lines += (_runs_table(groups, one_commit) if groups
              else ["No runs of the paper's experiments."])
    if others:
        lines += ["", "Also under the folder, from no experiment of `python -m pyro_vim.run "
                  "--list` (not used above): " + ", ".join(
                      f"`{_group_label(*k)}` ({len(g.runs)} run(s))"
                      for k, g in others.items()) + "."]
    return "\n".join(lines) + "\n"


def reproduction_path(root: PathLike, path: Optional[PathLike] = None) -> Path:
    """Where REPRODUCTION.md goes: ``path``, ``path/REPRODUCTION.md`` for a folder, or
    ``root/REPRODUCTION.md``; ``ValueError`` when its folder does not exist."""
    target = Path(root) / FILE_NAME if path is None else Path(path)
    if target.is_dir():
        target = target / FILE_NAME
    if not target.parent.is_dir():
        raise ValueError(f"cannot write {target}: the folder {target.parent} does not exist")
    return target


def write_reproduction(root: PathLike, path: Optional[PathLike] = None) -> Path:
    """Write REPRODUCTION.md for the runs under ``root`` to :func:`reproduction_path`
    atomically (the whole text first; a reader sees the old file or the new one); returns the
    path.  Raises like :func:`~pyro_vim.report.aggregate` for a missing folder or one without
    runs, and ``ValueError`` for a path whose folder does not exist."""
    target = reproduction_path(root, path)
    atomic_write(target, render_reproduction(root, target.parent))
    return target
