"""Lay the metrics of several evaluation runs side by side, with deltas against a baseline run.

    python benchmarks/compare.py RUN_DIR1 RUN_DIR2 ... [--names a,b,...] [--baseline NAME] [--out table.md]
        [--other] [--digits 4] [--group-seeds]

A RUN is a run directory of ``benchmarks/eval.py`` (holding ``metrics.json``), a ``metrics.json`` file, or a
folder whose sub-folders are run directories (e.g. ``outputs/eval/<model>``: one run per suite); then rows
are named ``<sub-folder>/<metric>`` (the sub-folder is the suite name in eval.py's default layout).
One row per metric (the union over runs, in first-seen order), one column per run, and after every
non-baseline run a ``Δ`` column = run - baseline (``–`` where either is missing). ``--baseline`` names the
baseline column (default: the first run). ``--other`` adds the counts / unbounded values (``other`` in
metrics.json) below the scores. Markdown on stdout, and to ``--out``.

``--group-seeds`` aggregates seeds: run names of the form ``<group>_s<seed>`` are grouped by ``<group>`` (in
first-seen order; a name without the suffix is a group of its own, n=1). Each group is one column of
``mean ± sd (n=K)`` (sample sd, ddof=1; K = the group's runs that report the metric, so a metric missing from
some seeds is averaged over the others), then a second table gives min–max per group. ``--baseline`` then names
a group; the ``Δ`` columns are differences of means, suffixed ``~`` ("within noise") when |Δ| <= the larger of
the two groups' sd, or ``†`` when either group has n < 2 (no sd to judge against). A footnote explains this.

Exit status: 0 ok; 2 bad usage (a run without metrics, unknown baseline, names/runs mismatch, with
``--group-seeds`` a run name given twice or a name that is both a run and a seed group).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys

SEED_RE = re.compile(r"^(.*)_s(\d+)$")


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _load(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    if not isinstance(d, dict) or not isinstance(d.get("metrics"), dict):
        raise UsageError(f"{path} is not a benchmarks/eval.py metrics.json (no 'metrics' mapping)")
    return d


def load_run(path: str, section: str = "metrics") -> tuple[dict, str]:
    """(flat {row: value}, default name) of one run argument."""
    if os.path.isfile(path):
        d = _load(path)
        return dict(d.get(section) or {}), os.path.basename(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(path):
        raise UsageError(f"run '{path}' does not exist")
    name = os.path.basename(os.path.normpath(path))
    own = os.path.join(path, "metrics.json")
    if os.path.isfile(own):
        return dict(_load(own).get(section) or {}), name
    rows: dict = {}
    subs = sorted(s for s in os.listdir(path) if os.path.isfile(os.path.join(path, s, "metrics.json")))
    if not subs:
        raise UsageError(f"run '{path}' has no metrics.json (nor sub-folders with one)")
    for s in subs:
        d = _load(os.path.join(path, s, "metrics.json"))
        rows.update({f"{s}/{k}": v for k, v in (d.get(section) or {}).items()})
    return rows, name


def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _fmt(v, digits: int) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}f}"


def _delta(v, b, digits: int) -> str:
    v, b = _num(v), _num(b)
    if v is None or b is None:
        return "–"
    d = v - b
    if isinstance(d, int):
        return f"{d:+d}"
    return f"{d:+.{digits}f}"


def table(runs: list[dict], names: list[str], baseline: int, digits: int = 4) -> str:
    """Markdown table: rows = union of keys of ``runs`` (first-seen order), a Δ column after each non-baseline."""
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r if k not in keys]
    head = ["metric"]
    for i, n in enumerate(names):
        head.append(f"{n} (baseline)" if i == baseline else n)
        if i != baseline:
            head.append(f"Δ {n}")
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for k in keys:
        cells = [k]
        for i, r in enumerate(runs):
            cells.append(_fmt(r.get(k), digits))
            if i != baseline:
                cells.append(_delta(r.get(k), runs[baseline].get(k), digits))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def group_names(names: list[str]) -> list[tuple[str, list[int], list[str]]]:
    """[(group, [run indices], [seed labels])] in first-seen order; ``<group>_s<seed>`` names share a group."""
    groups: dict[str, tuple[list[int], list[str]]] = {}
    plain: set[str] = set()
    for i, n in enumerate(names):
        m = SEED_RE.match(n)
        g, seed = (m.group(1), f"s{m.group(2)}") if m else (n, None)
        if (seed is None and g in groups) or (seed is not None and g in plain):
            raise UsageError(f"'{g}' is both a run name and a seed group (of '{g}_s<seed>' runs): rename one")
        if seed is None:
            plain.add(g)
        idx, seeds = groups.setdefault(g, ([], []))
        idx.append(i)
        if seed is not None:
            seeds.append(seed)
    return [(g, idx, seeds) for g, (idx, seeds) in groups.items()]


def _stats(values: list) -> dict | None:
    """n, mean, sd (ddof=1; None when n < 2), min, max of the numbers in ``values``; None when there are none."""
    xs = [x for x in (_num(v) for v in values) if x is not None]
    if not xs:
        return None
    return {"n": len(xs), "mean": statistics.fmean(xs), "sd": statistics.stdev(xs) if len(xs) > 1 else None,
            "min": min(xs), "max": max(xs)}


def _fmt_stats(st: dict | None, digits: int) -> str:
    if st is None:
        return "–"
    if st["sd"] is None:
        return f"{st['mean']:.{digits}f} (n={st['n']})"
    return f"{st['mean']:.{digits}f} ± {st['sd']:.{digits}f} (n={st['n']})"


def _fmt_range(st: dict | None, digits: int) -> str:
    if st is None:
        return "–"
    lo, hi = _fmt(st["min"], digits), _fmt(st["max"], digits)
    return lo if st["n"] == 1 else f"{lo}–{hi}"


def _grouped_delta(st: dict | None, base: dict | None, digits: int) -> str:
    if st is None or base is None:
        return "–"
    d = st["mean"] - base["mean"]
    cell = f"{d:+.{digits}f}"
    if st["sd"] is None or base["sd"] is None:
        return cell + " †"
    if abs(d) <= max(st["sd"], base["sd"]) * (1 + 1e-9) + 1e-12:  # tolerance: a Δ equal to the sd counts as noise
        cell += " ~"
    return cell


def grouped_tables(runs: list[dict], names: list[str], baseline: str | None, digits: int = 4) -> tuple[str, str]:
    """(mean ± sd table with Δ columns, min–max table) over the seed groups of ``names`` (see ``group_names``)."""
    groups = group_names(names)
    gnames = [g for g, _, _ in groups]
    b = 0
    if baseline is not None:
        if baseline not in gnames:
            raise UsageError(f"--baseline '{baseline}' is not one of the seed groups: {', '.join(gnames)}")
        b = gnames.index(baseline)
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r if k not in keys]
    stats = {k: [_stats([runs[i][k] for i in idx if k in runs[i]]) for _, idx, _ in groups] for k in keys}

    head = ["metric"]
    for j, (g, idx, _) in enumerate(groups):
        size = f"{len(idx)} run" + ("s" if len(idx) != 1 else "")
        head.append(f"{g} (baseline, {size})" if j == b else f"{g} ({size})")
        if j != b:
            head.append(f"Δ {g}")
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for k in keys:
        cells = [k]
        for j, st in enumerate(stats[k]):
            cells.append(_fmt_stats(st, digits))
            if j != b:
                cells.append(_grouped_delta(st, stats[k][b], digits))
        lines.append("| " + " | ".join(cells) + " |")
    main = "\n".join(lines) + "\n"

    head = ["metric"] + [f"{g} ({','.join(seeds)})" if seeds else g for g, _, seeds in groups]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for k in keys:
        lines.append("| " + " | ".join([k] + [_fmt_range(st, digits) for st in stats[k]]) + " |")
    spread = "\n".join(lines) + "\n"
    return main, spread


GROUPED_NOTES = """Notes (seed groups):
- A column is a group of runs named `<group>_s<seed>` (a name without the suffix is a group of its own); the
  header gives its number of runs.
- `mean ± sd (n=K)`: mean and sample standard deviation (ddof=1) over the K runs of the group that report the
  metric (K below the group's runs: the metric is missing from some runs). With n=1: the single value, no sd.
- `Δ <group>`: group mean − baseline mean.
  `~` within noise: |Δ| ≤ the larger of the two groups' sd.
  `†` n<2 in the group or the baseline: no sd to judge the Δ against, so no claim either way.
  A Δ with no mark exceeds both sds: a rough screen over few seeds, not a significance test.
- `–`: no run of the group reports the metric. Min–max table: smallest–largest value over the group's runs
  (the header lists the seeds); a single value where n=1.
"""


def compare(paths: list[str], names: list[str] | None = None, baseline: str | None = None,
            other: bool = False, digits: int = 4, group_seeds: bool = False) -> str:
    loaded = [load_run(p) for p in paths]
    runs = [r for r, _ in loaded]
    names = names or [n for _, n in loaded]
    if len(names) != len(runs):
        raise UsageError(f"--names gives {len(names)} names for {len(runs)} runs")
    if group_seeds:
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise UsageError(f"--group-seeds: run name(s) given more than once: {', '.join(dup)} (use --names)")
        main, spread = grouped_tables(runs, names, baseline, digits)
        parts = [main, "Min–max over the runs of each group:\n\n" + spread]
        if other:
            extra = [load_run(p, "other")[0] for p in paths]
            if any(extra):
                o_main, o_spread = grouped_tables(extra, names, baseline, digits)
                parts += ["Counts and unbounded values (`other`):\n\n" + o_main, "Min–max over the runs of each group:\n\n" + o_spread]
        return "\n".join(parts + [GROUPED_NOTES])
    if len(set(names)) != len(names):
        names = [f"{n}#{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]
    b = 0
    if baseline is not None:
        if baseline not in names:
            raise UsageError(f"--baseline '{baseline}' is not one of the run names: {', '.join(names)}")
        b = names.index(baseline)
    out = table(runs, names, b, digits)
    if other:
        extra = [load_run(p, "other")[0] for p in paths]
        if any(extra):
            out += "\n" + table(extra, names, b, digits)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog="benchmarks/compare.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories / metrics.json files")
    ap.add_argument("--names", help="comma list of column names, one per run")
    ap.add_argument("--baseline", help="name of the baseline column (default: the first run); a group name with --group-seeds")
    ap.add_argument("--out", help="also write the Markdown table here")
    ap.add_argument("--other", action="store_true", help="also compare counts / unbounded values")
    ap.add_argument("--digits", type=int, default=4)
    ap.add_argument("--group-seeds", action="store_true",
                    help="group runs named <group>_s<seed>: mean ± sd (n) per group, min–max, Δ of means marked ~ within noise")
    try:
        a = ap.parse_args(argv)
        names = [n.strip() for n in a.names.split(",")] if a.names else None
        md = compare(a.runs, names, a.baseline, a.other, a.digits, a.group_seeds)
    except UsageError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(md)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
