"""The text of a landscape run: the two summary tables and the verdict.

:func:`landscape_tables` formats the random-start table (closed-form comparison, NC metrics) and
the Hessian-classification table of every point; :func:`verdict` states in words what the rows
show (how many random starts reached ``f*``, the classes of all critical points, and every reason
a row was left out), each sentence a claim the tests check at its edges
(tests/systems/ufm/test_landscape_verdict.py, test_landscape_e2e.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...landscape.classes import CLASS_NAMES
from ...report.summaries import (
    AT_OPTIMUM_RTOL,
    class_summary,
    columns,
    optimum_summary,
    valid_rows,
)
from ...report.tables import fmt, format_table

if TYPE_CHECKING:  # the config type only (landscape.py imports this module)
    from .landscape import LandscapeConfig

__all__ = ["TABLE_METRICS", "landscape_tables", "verdict", "format_summary_rows"]

#: Final NC metrics shown in the summary table.
TABLE_METRICS = ("nc1_pinv", "nc2_etf_W", "nc3_zhu")


def _label(entry: dict) -> str:
    """``ce-free K=3 n=4 d=3 lW=0.005 lH=0.005`` from a manifest entry of a UFM configuration."""
    s = entry.get("spec", {})
    if entry.get("model") != "ufm" or not s:
        return entry.get("label", "")
    n = ",".join(map(str, s["n"])) if isinstance(s["n"], (list, tuple)) else s["n"]
    lab = (
        f"{s['loss']}-{s['bias']} K={s['K']} n={n} d={s['d']} lW={s['lambda_W']:g} "
        f"lH={s['lambda_H']:g}"
    )
    return lab + (f" lb={s['lambda_b']:g}" if s["bias"] == "regularized" else "")


def landscape_tables(rows) -> tuple[str, str]:
    """The two tables ``ufm landscape`` prints: random starts against the closed form, and the
    Hessian classes of every point (empty without a ``class`` column)."""
    rows = columns(rows)
    opt = optimum_summary(rows, by=("config_hash",), metrics=TABLE_METRICS)
    head = [
        "configuration",
        "runs",
        "conv",
        "budget",
        "failed",
        "critical",
        "at f*",
        "max|f-f*|",
        "max|grad|",
        "NC1",
        "NC2(W)",
        "NC3",
    ]
    lines = [
        [
            e["label"],
            e["runs"],
            e["converged"],
            e["max_steps"],
            e["excluded_diverged"] + e["excluded_nan"] + e["excluded_nonfinite"],
            e["critical"],
            "n/a" if e["at_optimum"] is None else e["at_optimum"],
            e["max_abs_gap"],
            e["max_grad_norm"],
        ]
        + [e[m] for m in TABLE_METRICS]
        for e in opt
    ]
    first = format_table(head, lines)
    classes = class_summary(rows, by=("config_hash",))
    if not classes:
        return first, ""
    short = {
        "global_min": "global",
        "strict_saddle": "saddle",
        "local_min": "local",
        "spurious_min": "SPURIOUS",
        "degenerate": "DEGEN",
        "not_critical": "noncrit",
        "undecided": "undecid",
    }
    # non_finite rows are failed rows: counted in "failed" (the exclusions), not as a class
    names = [c for c in CLASS_NAMES if c in classes[0] and c != "non_finite"]
    head = (
        ["configuration", "points"]
        + [short.get(c, c) for c in names]
        + ["failed", "saddle lmin", "weakest saddle", "minima lmin", "minima lpos", "lmin-bound"]
    )
    lines = [
        [e["label"], e["points"]]
        + [e[c] for c in names]
        + [
            e["excluded_diverged"] + e["excluded_nan"] + e["excluded_nonfinite"],
            e["saddle_lambda_min"],
            e["saddle_lambda_max"],
            e["minima_lambda_min"],
            e["minima_lambda_pos_min"],
            e["bound_excess"],
        ]
        for e in classes
    ]
    return first, format_table(head, lines)


def verdict(rows, config: LandscapeConfig) -> str:
    """The conclusion ``ufm landscape`` prints: where the random starts ended (judged on the
    polished end points), how the first-order runs went (with advice where it applies), and the
    Hessian classes."""
    rows = columns(rows)
    src = np.asarray(rows["source"]).astype(str)
    random = src == "random"
    valid = valid_rows(rows)
    status = np.asarray(rows["status"]).astype(str)
    f_star = (
        np.asarray(rows["f_star"], np.float64) if "f_star" in rows else np.full(random.size, np.nan)
    )
    known = random & np.isfinite(f_star)
    at = known & valid & np.asarray(rows.get("at_optimum", np.zeros(random.size, bool)), bool)
    failed = random & ~valid
    lines = []
    total = int(random.sum())
    rtol = (
        np.asarray(rows["at_optimum_rtol"], np.float64)
        if "at_optimum_rtol" in rows
        else np.full(random.size, AT_OPTIMUM_RTOL)
    )
    rtols = sorted({float(x) for x in rtol[known & np.isfinite(rtol)]}) or [AT_OPTIMUM_RTOL]
    if known.any():
        lines.append(
            f"{total} random starts: {int(at.sum())} of the {int((known & valid).sum())} valid "
            f"ones with a closed form end at the closed-form optimum after polishing "
            f"(|f - f*| <= {' or '.join(f'{x:g}' for x in rtols)} max(1, |f*|))"
            + (
                f"; {int((random & valid & ~known).sum())} have no closed form at this d"
                if (random & valid & ~known).any()
                else ""
            )
            + "."
        )
    else:
        lines.append(
            f"{total} random starts; no closed form at these d (d below the rank of "
            "the minimiser): their end points are judged by the Hessian only."
        )
    imbalanced = [sp for sp in config.specs() if not sp.balanced]
    if imbalanced:
        lines.append(
            f"{len(imbalanced)} configurations have class sizes: their f* is the closed form "
            "(MSE, bias none or free) or the value of the convex program (docs/theory.md "
            "section 9, duality gap <= 1e-7), so minima are certified global against it"
            + (
                "; planted saddles lie below the rank of their minimiser (ufm.saddle_dims)."
                if config.starts.planted_per_dim
                else "."
            )
        )
    conv = int((random & (status == "converged")).sum())
    budget = int((random & (status == "max_steps")).sum())
    diverged = random & (status == "diverged")
    nan = random & (status == "nan")
    nonfinite = failed & ~diverged & ~nan  # a finished run whose end point is not finite
    lines.append(
        f"First-order runs: {conv} met the tolerance {config.optimizer.tol:g}, {budget} "
        f"used the step budget ({config.optimizer.max_steps}), "
        f"{int(diverged.sum())} diverged, {int(nan.sum())} NaN"
        + (f", {int(nonfinite.sum())} with a non-finite end point" if nonfinite.any() else "")
        + (
            f"; {int(failed.sum())} failed runs are left out of every statistic."
            if failed.any()
            else "."
        )
    )
    if diverged.any():
        loss = np.asarray(rows.get("loss", np.full(random.size, ""))).astype(str)
        advice = (
            f"the learning rate ({config.optimizer.learning_rate:g}) is too large for them: "
            "try a smaller --lr"
        )
        if (diverged & (loss == "mse")).any() and config.optimizer.name == "gd":
            advice += " (GD on MSE needs lr < 2 / (1 + lambda_b) at least)"
        lines.append(f"Diverged runs usually mean {advice}.")
    if nan.any():
        lines.append(
            "NaN runs had a non-finite start (e.g. --init-scale) or overflowed on the way (a "
            "too large --lr)."
        )
    if budget:
        unpolished = (
            random
            & valid
            & (status == "max_steps")
            & ~np.asarray(rows.get("polished", np.ones(random.size, bool)), bool)
        )
        if unpolished.any():
            lines.append(
                f"{int(unpolished.sum())} runs stopped at the step budget and did not "
                "polish to a critical point: try more --steps."
            )
    if config.hessian and "class" in rows:
        cls = np.asarray(rows["class"]).astype(str)
        ok = valid
        bad = int((ok & np.isin(cls, ["spurious_min", "degenerate"])).sum())
        undecided = int((ok & (cls == "undecided")).sum())
        crit = ok & ~np.isin(cls, ["not_critical", "non_finite", "", "None"])
        lines.append(
            f"{int(crit.sum())} critical points classified: "
            f"{int((ok & (cls == 'global_min')).sum())} global minima, "
            f"{int((ok & (cls == 'strict_saddle')).sum())} strict saddles, "
            f"{int((ok & (cls == 'local_min')).sum())} local minima of undecided global status "
            "(no closed form at this d)"
            + (
                f", {undecided} undecided (zero modes not resolved at this precision, e.g. next "
                "to a collapse threshold; not counterexamples)"
                if undecided
                else ""
            )
            + f", {bad} spurious or degenerate"
            + (" -- CANDIDATE COUNTEREXAMPLES, see the warnings." if bad else ".")
        )
    return "\n".join(lines)


def format_summary_rows(rows) -> list[dict]:
    """The per-configuration summary written to ``summary.csv``."""
    opt = optimum_summary(columns(rows), by=("config_hash",), metrics=TABLE_METRICS)
    return [
        {k: (v if not isinstance(v, float) else fmt(v, ".6g")) for k, v in e.items()} for e in opt
    ]
