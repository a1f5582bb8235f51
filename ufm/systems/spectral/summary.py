"""Tables of an SSL comparison and the stability verdict of the power family.

Inputs are result rows (a dict of column arrays, e.g. ``ExperimentJob.rows``, or the DataFrame of
:func:`ufm.load_results`). Statistics are over seeds at the last checkpoint of each
configuration; a seed whose training failed (``status`` diverged / nan) is counted as failed and
its metrics (those of its last finite parameters) are left out of the means.

**Stability of the power family** (:func:`power_sweep`). A power ``p`` (the ``power`` runs, and
``whiten`` as ``p = 1/2``) is called *stable* when all of

1. ``finite``: no seed failed (non-finite loss, gradient or parameters, or divergence);
2. ``no_collapse``: the mean final effective rank of ``Z`` is at least ``collapse_frac`` (0.5) of
   the largest mean over the sweep: the embedding kept its dimensions;
3. ``accuracy``: the mean final linear-probe accuracy on ``H`` is within ``acc_drop`` (0.02) of the
   best ``p`` of the sweep;
4. ``smooth``: the final epoch's training loss is not above ``blowup`` (1.5) times the lowest epoch
   loss of the run (mean over seeds): training did not blow up late.

The *stable range* is the contiguous run of stable ``p`` (in sorted order) that contains the best
stable ``p`` by probe accuracy. The thresholds are parameters (:class:`StabilityCriteria`); the
table reports every criterion separately so the reader can apply other ones.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ufm.report.tables import format_table

FAILED = ("diverged", "nan")


@dataclasses.dataclass(frozen=True)
class StabilityCriteria:
    """Thresholds of the stability verdict (module docstring)."""

    collapse_frac: float = 0.5
    acc_drop: float = 0.02
    blowup: float = 1.5


def columns(rows) -> dict:
    """Rows as a dict of NumPy arrays (a DataFrame or a dict of arrays)."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        return {k: rows[k].to_numpy() for k in rows.columns}
    return {k: np.asarray(v) for k, v in rows.items()}


def configs(rows) -> list[str]:
    """Configuration labels in order of first appearance."""
    return list(dict.fromkeys(np.asarray(rows["label"]).astype(str).tolist()))


def final_rows(rows, label: str) -> dict:
    """The rows of ``label`` at its last checkpoint epoch."""
    keep = np.asarray(rows["label"]).astype(str) == label
    sub = {k: np.asarray(v)[keep] for k, v in rows.items()}
    last = sub["epoch"] == sub["epoch"].max()
    return {k: v[last] for k, v in sub.items()}


def _ok(sub) -> np.ndarray:
    return ~np.isin(np.asarray(sub["status"]).astype(str), FAILED)


def _mean_sd(x) -> tuple[float, float]:
    x = np.asarray(x, np.float64)
    if x.size == 0:
        return math.nan, math.nan
    return float(np.mean(x)), float(np.std(x, ddof=1)) if x.size > 1 else 0.0


def _fmt(ms, digits=2) -> str:
    m, s = ms
    if math.isnan(m):
        return "-"
    return f"{m:.{digits}f} +- {s:.{digits}f}"


METHOD_COLUMNS = (
    ("erank_z", "erank Z", 2),
    ("erank_zhat", "erank Z_hat", 2),
    ("rankme_z", "RankMe Z", 2),
    ("erank_h", "erank H", 2),
    ("knn_acc_h", "kNN H", 3),
    ("probe_acc_h", "probe H", 3),
    ("probe_acc_z", "probe Z", 3),
)


def method_entries(rows) -> list[dict]:
    """Per configuration: seeds, failed seeds and mean / sd over the finished seeds of the
    final measures."""
    rows = columns(rows)
    out = []
    for label in configs(rows):
        sub = final_rows(rows, label)
        ok = _ok(sub)
        e = {
            "method": label,
            "epoch": int(sub["epoch"].max()),
            "seeds": int(len(ok)),
            "failed": int((~ok).sum()),
        }
        for col, _, _ in METHOD_COLUMNS:
            m, s = _mean_sd(np.asarray(sub[col], np.float64)[ok])
            e[col], e[col + "_sd"] = m, s
        out.append(e)
    return out


def method_table(rows) -> str:
    """The comparison table: per method, the final measures over seeds (mean +- sd)."""
    entries = method_entries(rows)
    headers = ["method", "seeds", "failed"] + [h for _, h, _ in METHOD_COLUMNS]
    body = [
        [e["method"], e["seeds"], e["failed"]]
        + [_fmt((e[c], e[c + "_sd"]), d) for c, _, d in METHOD_COLUMNS]
        for e in entries
    ]
    return format_table(headers, body)


def _power_of(rows, label) -> tuple[float | None, str | None]:
    sub = final_rows(rows, label)
    method = str(sub["method"][0])
    if method == "power":
        return float(sub["p"][0]), str(sub["side"][0])
    if method == "whiten":
        return 0.5, str(sub["side"][0])
    return None, None


def _loss_blowup(rows, label) -> float:
    """Final epoch loss over the lowest epoch loss of the run (mean over finished seeds)."""
    keep = np.asarray(rows["label"]).astype(str) == label
    ep = np.asarray(rows["epoch"])[keep]
    loss = np.asarray(rows["epoch_loss"], np.float64)[keep]
    seed = np.asarray(rows["seed"])[keep]
    ratios = []
    for s in np.unique(seed):
        m = (seed == s) & (ep > 0) & np.isfinite(loss)
        if m.sum() < 1:
            continue
        order = np.argsort(ep[m])
        curve = loss[m][order]
        low = np.min(curve)
        ratios.append(curve[-1] / low if low > 0 else (1.0 if curve[-1] <= low else math.inf))
    return float(np.mean(ratios)) if ratios else math.nan


def power_sweep(rows, criteria: StabilityCriteria = StabilityCriteria()) -> list[dict]:
    """Per power ``p`` (sorted; one side): failures, final measures and the criteria (module
    docstring); ``stable`` marks the stable range."""
    rows = columns(rows)
    entries = []
    for label in configs(rows):
        p, side = _power_of(rows, label)
        if p is None:
            continue
        sub = final_rows(rows, label)
        ok = _ok(sub)
        e = {"p": p, "side": side, "label": label, "seeds": int(len(ok))}
        e["failed"] = int((~ok).sum())
        for col in ("erank_z", "erank_zhat", "probe_acc_h", "knn_acc_h", "probe_acc_z"):
            e[col], e[col + "_sd"] = _mean_sd(np.asarray(sub[col], np.float64)[ok])
        e["loss_ratio"] = _loss_blowup(rows, label)
        entries.append(e)
    if not entries:
        return []
    sides = {e["side"] for e in entries}
    if len(sides) > 1:  # keep the side of the most entries
        side = max(sides, key=lambda s: sum(e["side"] == s for e in entries))
        entries = [e for e in entries if e["side"] == side]
    entries.sort(key=lambda e: e["p"])
    top_rank = np.nanmax([e["erank_z"] for e in entries])
    best_acc = np.nanmax([e["probe_acc_h"] for e in entries])
    for e in entries:
        e["finite"] = e["failed"] == 0
        e["no_collapse"] = bool(e["erank_z"] >= criteria.collapse_frac * top_rank)
        e["accuracy"] = bool(e["probe_acc_h"] >= best_acc - criteria.acc_drop)
        e["smooth"] = bool(e["loss_ratio"] <= criteria.blowup)
        e["ok"] = e["finite"] and e["no_collapse"] and e["accuracy"] and e["smooth"]
    ok = [i for i, e in enumerate(entries) if e["ok"]]
    for e in entries:
        e["stable"] = False
    if ok:
        best = max(ok, key=lambda i: entries[i]["probe_acc_h"])
        lo = hi = best
        while lo - 1 >= 0 and entries[lo - 1]["ok"]:
            lo -= 1
        while hi + 1 < len(entries) and entries[hi + 1]["ok"]:
            hi += 1
        for i in range(lo, hi + 1):
            entries[i]["stable"] = True
    return entries


def stable_range(entries) -> tuple[float, float] | None:
    """``(p_min, p_max)`` of the stable range of :func:`power_sweep` entries (``None``: none)."""
    ps = [e["p"] for e in entries if e["stable"]]
    return (min(ps), max(ps)) if ps else None


def power_table(entries) -> str:
    """The p-sweep table with every stability criterion."""
    yes = lambda b: "yes" if b else "no"  # noqa: E731
    body = [
        [
            f"{e['p']:g}",
            f"{e['failed']}/{e['seeds']}",
            _fmt((e["erank_z"], e["erank_z_sd"])),
            _fmt((e["erank_zhat"], e["erank_zhat_sd"])),
            _fmt((e["probe_acc_h"], e["probe_acc_h_sd"]), 3),
            _fmt((e["knn_acc_h"], e["knn_acc_h_sd"]), 3),
            f"{e['loss_ratio']:.2f}",
            yes(e["no_collapse"]),
            yes(e["accuracy"]),
            yes(e["smooth"]),
            "STABLE" if e["stable"] else ("ok" if e["ok"] else "-"),
        ]
        for e in entries
    ]
    headers = [
        "p",
        "failed",
        "erank Z",
        "erank Z_hat",
        "probe H",
        "kNN H",
        "loss end/min",
        "no collapse",
        "accuracy",
        "smooth",
        "verdict",
    ]
    return format_table(headers, body)


def verdict(entries, criteria: StabilityCriteria = StabilityCriteria()) -> str:
    """One paragraph: the stable range and why the other powers are outside it."""
    if not entries:
        return "No power-family runs in these results."
    rng = stable_range(entries)
    top = float(np.nanmax([e["erank_z"] for e in entries]))
    lines = []
    if rng is None:
        lines.append("No power p met every stability criterion.")
    else:
        lines.append(
            f"Stable range of the power family ({entries[0]['side']} side): "
            f"p in [{rng[0]:g}, {rng[1]:g}]."
        )
    for e in entries:
        if e["stable"]:
            continue
        why = []
        if not e["finite"]:
            why.append(f"{e['failed']}/{e['seeds']} seeds failed")
        if not e["no_collapse"]:
            why.append(
                f"erank Z {e['erank_z']:.2f} < {criteria.collapse_frac:g} x the sweep's largest "
                f"{top:.2f}"
            )
        if not e["accuracy"]:
            why.append(f"probe accuracy {e['probe_acc_h']:.3f} (drop > {criteria.acc_drop:g})")
        if not e["smooth"]:
            why.append(f"final loss {e['loss_ratio']:.2f} x its minimum")
        if not why:
            why.append("not contiguous with the best p")
        lines.append(f"  p = {e['p']:g}: " + "; ".join(why))
    return "\n".join(lines)
