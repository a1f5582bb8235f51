"""Text tables of feature-map results: MF/EF verdicts per configuration, the ETF comparison.

Both read result rows (a dict of arrays, a pandas DataFrame from :func:`ufm.load_results`); a
configuration is a value of the ``config`` column (the preset's name). Statistics use the rows
whose training status is neither ``diverged`` nor ``nan``; the ``seeds`` column says how many
seeds were used and how many failed.
"""

from __future__ import annotations

import math

import numpy as np

from ...report.summaries import columns
from ...report.tables import format_table

__all__ = ["verdict_table", "etf_table", "final_rows", "config_order"]

_FAILED = ("diverged", "nan")


def config_order(rows) -> list:
    """The configurations in order of first appearance."""
    return list(dict.fromkeys(np.asarray(columns(rows)["config"]).astype(str).tolist()))


def final_rows(rows) -> dict:
    """The rows at each configuration's last checkpoint (its largest epoch)."""
    rows = columns(rows)
    cfg = rows["config"].astype(str)
    epoch = rows["epoch"].astype(np.int64)
    last = {c: epoch[cfg == c].max() for c in set(cfg.tolist())}
    keep = np.array([e == last[c] for c, e in zip(cfg, epoch)], dtype=bool)
    return {k: v[keep] for k, v in rows.items()}


def _ok(rows) -> np.ndarray:
    return ~np.isin(np.asarray(rows["status"]).astype(str), _FAILED)


def _pm(values, spec=".3f") -> str:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return "-"
    if v.size == 1:
        return format(float(v[0]), spec)
    return f"{format(float(v.mean()), spec)} ± {format(float(v.std()), spec)}"


def _counts(labels) -> str:
    labels = list(labels)
    parts = [f"{k} {labels.count(k)}/{len(labels)}" for k in ("MF", "mixed", "EF") if k in labels]
    return ", ".join(parts) or "-"


def _seeds(sel_all, ok) -> str:
    n, bad = int(sel_all.sum()), int((sel_all & ~ok).sum())
    return f"{n - bad}" + (f" ({bad} failed)" if bad else "")


def _first_mf(rows, config: str) -> str:
    """Median over seeds of the first checkpoint epoch with verdict MF (``-`` if a majority
    never reaches it)."""
    sel = (rows["config"].astype(str) == config) & _ok(rows)
    seeds = rows["seed"][sel]
    firsts = []
    for s in dict.fromkeys(seeds.tolist()):
        m = sel & (rows["seed"] == s) & (rows["verdict"].astype(str) == "MF")
        firsts.append(rows["epoch"][m].min() if m.any() else math.inf)
    med = float(np.median(firsts)) if firsts else math.inf
    return "-" if not math.isfinite(med) else f"{med:g}"


def verdict_table(rows) -> str:
    """One line per configuration at its last checkpoint: seeds, epochs, test accuracy,
    ``Pi*(C)``, ``Pi_hat(C)``, centred effective rank, centred gap, ``D_LR``, NC1, the verdict
    counts over seeds and the median first epoch with an MF verdict (mean ± std over seeds).

    Example:
        >>> import numpy as np
        >>> rows = {"config": np.array(["a", "a"]), "seed": np.array([0, 1]),
        ...         "epoch": np.array([5, 5]), "status": np.array(["max_steps"] * 2),
        ...         "verdict": np.array(["MF", "EF"]), "test_acc": np.array([0.9, 0.8]),
        ...         "pi_star_C": np.ones(2), "pi_hat_C": np.ones(2), "effective_rank": np.ones(2),
        ...         "centred_gap": np.zeros(2), "d_lr": np.zeros(2), "nc1_quotient": np.zeros(2)}
        >>> print(verdict_table(rows).splitlines()[2])  # doctest: +NORMALIZE_WHITESPACE
        a  2  5  0.850 ± 0.050  1.000 ± 0.000  1.000 ± 0.000  1.00 ± 0.00  0.000 ± 0.000
        0.000 ± 0.000  0.000 ± 0.000  MF 1/2, EF 1/2  -
    """
    all_rows = columns(rows)
    last = final_rows(all_rows)
    ok = _ok(last)
    out = []
    for c in config_order(all_rows):
        sel_all = last["config"].astype(str) == c
        sel = sel_all & ok
        out.append(
            [
                c,
                _seeds(sel_all, ok),
                int(last["epoch"][sel_all].max()),
                _pm(last["test_acc"][sel]),
                _pm(last["pi_star_C"][sel]),
                _pm(last["pi_hat_C"][sel]),
                _pm(last["effective_rank"][sel], ".2f"),
                _pm(last["centred_gap"][sel]),
                _pm(last["d_lr"][sel]),
                _pm(last["nc1_quotient"][sel]),
                _counts(last["verdict"][sel].astype(str)),
                _first_mf(all_rows, c),
            ]
        )
    headers = [
        "config",
        "seeds",
        "epoch",
        "test acc",
        "Pi*(C)",
        "Pi_hat(C)",
        "erank_c",
        "gap_c",
        "D_LR",
        "NC1",
        "verdicts",
        "MF from",
    ]
    return format_table(headers, out)


def _mib(values) -> str:
    v = np.asarray(values, np.float64)
    return "-" if not v.size or not np.isfinite(v).any() else f"{np.nanmean(v) / 2**20:.3g}"


def etf_table(rows) -> str:
    """The fixed-ETF comparison: one line per ``etf`` configuration at its last checkpoint:
    head, penultimate width ``p``, trained parameters, the compiled step's memory (MiB), the
    peak RSS of a one-seed training process and its increase over the process before training
    (MiB, ``-`` if not measured; compilation included), test
    accuracy, NC1, NC2 (ETF error of the class means), the verdicts and the seeds."""
    all_rows = columns(rows)
    role = all_rows.get("role")
    if role is not None:
        all_rows = {k: v[np.asarray(role).astype(str) == "etf"] for k, v in all_rows.items()}
    if not len(all_rows["config"]):
        return "(no etf configurations)"
    last = final_rows(all_rows)
    ok = _ok(last)
    out = []
    for c in config_order(all_rows):
        sel_all = last["config"].astype(str) == c
        sel = sel_all & ok
        widths = last["widths"][sel_all][0]
        rss = last["rss_delta_bytes"][sel_all] if "rss_delta_bytes" in last else []
        peak = last["rss_peak_bytes"][sel_all] if "rss_peak_bytes" in last else []
        out.append(
            [
                c,
                str(last["head"][sel_all][0]),
                int(np.asarray(widths)[-1]),
                int(last["params_trainable"][sel_all][0]),
                _mib(last["step_bytes"][sel_all]) if "step_bytes" in last else "-",
                _mib(peak),
                _mib(rss),
                _pm(last["test_acc"][sel]),
                _pm(last["nc1_quotient"][sel]),
                _pm(last["nc2_etf_means"][sel]),
                _counts(last["verdict"][sel].astype(str)),
                _seeds(sel_all, ok),
            ]
        )
    headers = [
        "config",
        "head",
        "p",
        "params",
        "step MiB",
        "RSS MiB",
        "RSS+ MiB",
        "test acc",
        "NC1",
        "NC2 means",
        "verdicts",
        "seeds",
    ]
    return format_table(headers, out)
