"""Summaries of a feature-collapse job: last-epoch means, measured vs predicted norms, verdicts.

Feature collapse: Laurent, von Brecht, Bresson (2023), arXiv 2305.16162 (ICLR 2024).

:func:`summary_entries` reduces the rows of a job (one per seed x checkpoint) to one dict per
configuration; :func:`collapse_verdict` names the collapse type the numbers show;
:func:`summary_text` is the table ``ufm feature-collapse`` prints.
"""

from __future__ import annotations

import json

import numpy as np

from ...report.tables import format_table
from .objective import fc_label

__all__ = [
    "CV_TOL",
    "DIR_TOL",
    "NORM_TOL",
    "RHO_TOL",
    "collapse_verdict",
    "entries_json",
    "summary_entries",
    "summary_text",
]

#: Directions are collapsed when the mean ``1 - cos(phi(w), concept mean)`` is below this.
DIR_TOL = 0.1
#: Norms are equal (type I) when the spread ``std / mean`` of ``||w||`` is below this.
CV_TOL = 0.2
#: Norms follow the frequency (type III) when Spearman(``||w||``, ``mu``) is above this.
RHO_TOL = 0.5
#: A measured norm "matches" its prediction within this relative error (the issue's 5%).
NORM_TOL = 0.05


def collapse_verdict(entry: dict) -> str:
    """The collapse type the final numbers of one configuration show: ``"I"``, ``"II"``,
    ``"III"``, ``"none"`` (directions not collapsed) or ``"?"`` (collapsed directions, but the
    norms neither equal nor ordered by frequency).

    Rules (thresholds :data:`DIR_TOL`, :data:`RHO_TOL`, :data:`CV_TOL`): directions collapse
    when the mean ``1 - cos`` of ``phi(w)`` to its concept mean is below ``DIR_TOL``; then
    with LayerNorm it is type II (``phi`` has equal norms by construction); without, type III
    when the Spearman correlation of ``||w||`` with the word law exceeds ``RHO_TOL`` (norms
    ordered by frequency; NaN for the uniform law), type I when the spread ``std/mean`` of
    ``||w||`` is below ``CV_TOL``.

    >>> collapse_verdict({"layernorm": False, "w_dir_collapse": 0.07, "w_norm_cv": 2.3,
    ...                   "w_norm_mu_spearman": 0.74})
    'III'
    """
    if not entry["w_dir_collapse"] < DIR_TOL:
        return "none"
    if entry["layernorm"]:
        return "II"
    rho = entry["w_norm_mu_spearman"]
    if rho is not None and rho > RHO_TOL:
        return "III"
    if entry["w_norm_cv"] < CV_TOL:
        return "I"
    return "?"


_ROMAN = {1: "I", 2: "II", 3: "III"}


def summary_entries(rows, configs, hashes) -> list[dict]:
    """One dict per configuration: means (and standard deviations) over seeds at the last
    epoch, the peak of the seed-mean test accuracy over the checkpoints, predictions, relative
    errors and the collapse verdicts (``collapse_measured``, ``collapse_predicted``)."""
    out = []
    for spec, h in zip(configs, hashes):
        sel = rows[rows["config_hash"] == h]
        if sel.empty:
            continue
        last = sel[sel["epoch"] == sel["epoch"].max()]
        curve = sel.groupby("epoch")["test_acc"].mean()

        def m(name, frame=last):
            return float(frame[name].mean()) if name in frame else float("nan")

        def s(name, frame=last):
            return float(frame[name].std(ddof=0)) if name in frame else float("nan")

        e = {
            "label": fc_label(spec),
            "config_hash": h,
            "layernorm": spec.layernorm,
            "ln_eps": spec.ln_eps,
            "seeds": int(last["seed"].nunique()),
            "epochs": int(last["epoch"].max()),
            "failed": int((last["status"].isin(["diverged", "nan"])).sum()),
            "train_acc": m("train_acc"),
            "test_acc": m("test_acc"),
            "test_acc_std": s("test_acc"),
            "test_acc_peak": float(curve.max()),
            "test_acc_peak_epoch": int(curve.idxmax()),
            "w_dir_collapse": m("w_dir_collapse"),
            "w_norm_cv": float((last["w_norm_std"] / last["w_norm_mean"]).mean()),
            "w_norm_mu_spearman": m("w_norm_mu_spearman"),
            "collapse_predicted": _ROMAN[spec.collapse_type],
        }
        for q in ("w", "u", "phi"):
            e[f"{q}_norm"] = m(f"{q}_norm_mean")
            e[f"{q}_norm_std"] = s(f"{q}_norm_mean")
            e[f"predicted_{q}_norm"] = m(f"predicted_{q}_norm")
            e[f"{q}_norm_relerr"] = e[f"{q}_norm"] / e[f"predicted_{q}_norm"] - 1.0
        if "w_norm_type3_relerr" in last and last["w_norm_type3_relerr"].notna().any():
            e["w_norm_type3_relerr"] = m("w_norm_type3_relerr")
        e["collapse_measured"] = collapse_verdict(e)
        out.append(e)
    return out


def _pm(mean, std, digits=4):
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if np.isfinite(std) else f"{mean:.{digits}f}"


def summary_text(entries: list[dict]) -> str:
    """The printed summary: accuracies and collapse verdicts, measured vs predicted norms with
    relative errors, and the LayerNorm comparison when a job has both variants."""
    first = format_table(
        [
            "configuration",
            "seeds",
            "epochs",
            "train acc",
            "test acc",
            "peak test acc (epoch)",
            "collapse measured",
            "predicted",
        ],
        [
            [
                e["label"],
                e["seeds"],
                e["epochs"],
                f"{e['train_acc']:.3f}",
                _pm(e["test_acc"], e["test_acc_std"], 3),
                f"{e['test_acc_peak']:.3f} ({e['test_acc_peak_epoch']})",
                e["collapse_measured"],
                e["collapse_predicted"],
            ]
            for e in entries
        ],
    )
    norm_rows = []
    names = {"w": "||w||", "u": "||u||", "phi": "||phi(w)||"}
    for e in entries:
        for q in ("w", "u", "phi"):
            if not np.isfinite(e[f"predicted_{q}_norm"]) or (q == "phi" and not e["layernorm"]):
                continue
            err = e[f"{q}_norm_relerr"]
            norm_rows.append(
                [
                    e["label"],
                    names[q],
                    _pm(e[f"{q}_norm"], e[f"{q}_norm_std"]),
                    f"{e[f'predicted_{q}_norm']:.6f}",
                    f"{100 * err:+.1f}%",
                    "yes" if abs(err) <= NORM_TOL else "no",
                ]
            )
        if "w_norm_type3_relerr" in e:
            norm_rows.append(
                [
                    e["label"],
                    "||w|| per word vs r_beta",
                    "-",
                    "-",
                    f"{100 * e['w_norm_type3_relerr']:.1f}%",
                    "yes" if e["w_norm_type3_relerr"] <= NORM_TOL else "no",
                ]
            )
    parts = ["Accuracy and collapse type at the last epoch (mean ± std over seeds):", first]
    if norm_rows:
        parts += [
            "",
            f"Norms at the last epoch against the collapse theory (within {NORM_TOL:.0%}?):",
            format_table(
                ["configuration", "norm", "measured", "predicted", "rel. err", "match"],
                norm_rows,
            ),
        ]
    for e in entries:
        if e["layernorm"] and abs(e["phi_norm_relerr"]) > NORM_TOL:
            parts.append(
                f"note ({e['label']}): ||phi(w)|| = sqrt(d var/(var + eps)) stays below sqrt(d) "
                f"while the raw embeddings are small (mean ||w|| = {e['w_norm']:.3g}, "
                f"LayerNorm eps = {e['ln_eps']:g}; no weight decay on W with LayerNorm)."
            )
    by_ln = {e["layernorm"]: e for e in entries}
    if len(by_ln) == 2:
        a, b = by_ln[False], by_ln[True]
        parts += [
            "",
            f"LayerNorm: test accuracy {b['test_acc']:.3f} with vs {a['test_acc']:.3f} without "
            f"(gap {b['test_acc'] - a['test_acc']:+.3f}; peak without "
            f"{a['test_acc_peak']:.3f} at epoch {a['test_acc_peak_epoch']}).",
        ]
    parts += [
        "",
        f"Collapse verdict rules: directions collapsed if 1 - cos < {DIR_TOL}; then II with "
        f"LayerNorm, else III if Spearman(||w||, mu) > {RHO_TOL}, I if std/mean of ||w|| < "
        f"{CV_TOL}, ? otherwise.",
    ]
    return "\n".join(parts)


def entries_json(entries: list[dict]) -> str:
    """The summary entries as JSON (``summary.json`` of the results folder; NaN as null)."""
    clean = [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in e.items()}
        for e in entries
    ]
    return json.dumps(clean, indent=1)
