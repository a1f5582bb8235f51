"""Matplotlib figures of the UFM landscape job (theory.md section 6, figures 1-3).

Every function takes plain columns (dicts of numpy arrays, or a pandas DataFrame) and returns a
``matplotlib.figure.Figure``; nothing is shown or saved implicitly. matplotlib is imported lazily.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from ._theory import optimal_value
from ._spec import UFMSpec

_FLOOR = 1e-18


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        import os

        if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _col(rows, key) -> np.ndarray:
    return np.asarray(rows[key])


def plot_gap_distribution(rows: Mapping, *, ax=None, title: Optional[str] = None):
    """Distribution of ``|f - f*|`` at the end of optimisation, per variant (log scale).

    One column of jittered points per ``loss-bias`` variant, coloured by ``K``; seeds that did not
    converge are drawn as crosses. Values below ``1e-18`` are drawn at ``1e-18``.
    """
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(8, 4), layout="constrained")
    variant = np.char.add(np.char.add(_col(rows, "loss").astype(str), "-"), _col(rows, "bias").astype(str))
    names = list(dict.fromkeys(variant.tolist()))
    Ks = np.asarray(_col(rows, "K"))
    cmap = plt.get_cmap("viridis")
    uK = sorted(set(Ks.tolist()))
    rng = np.random.default_rng(0)
    gap = np.maximum(np.abs(_col(rows, "f_gap").astype(float)), _FLOOR)
    conv = _col(rows, "status") == "converged"
    for i, name in enumerate(names):
        for j, K in enumerate(uK):
            sel = (variant == name) & (Ks == K)
            x = i + (j - (len(uK) - 1) / 2) * 0.8 / max(len(uK), 1) + rng.uniform(-0.05, 0.05, sel.sum())
            c = cmap(j / max(len(uK) - 1, 1))
            ax.scatter(x[conv[sel]], gap[sel][conv[sel]], s=6, color=c, alpha=0.6,
                       label=f"K={K}" if i == 0 else None)
            ax.scatter(x[~conv[sel]], gap[sel][~conv[sel]], s=14, marker="x", color=c)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylabel(r"$|f - f^\star|$ after polishing")
    ax.axhline(1e-8, color="grey", ls="--", lw=0.8)
    ax.set_title(title or r"Distance to the closed-form optimum (x: not converged)")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def plot_nc_traces(traces: Mapping[str, Mapping], metrics: Sequence[str] = ("nc1_pinv", "nc2_etf_W",
                   "nc3_zhu", "grad_norm"), *, quantiles=(0.1, 0.9)):
    """NC metrics vs iteration (median over seeds with a quantile band, log-log axes).

    ``traces`` maps a configuration label to a trace dict (``step`` plus ``(R, S)`` arrays), as
    returned by the landscape job or :attr:`ufm.OptimizeResult.trace`.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), layout="constrained",
                             squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ci, (label, tr) in enumerate(traces.items()):
        step = np.asarray(tr["step"], float)
        x = np.maximum(step, 1.0)
        for ax, m in zip(axes[0], metrics):
            if m not in tr:
                continue
            v = np.abs(np.asarray(tr[m], float))
            med = np.nanmedian(v, axis=1)
            lo, hi = np.nanquantile(v, quantiles, axis=1)
            ax.plot(x, np.maximum(med, _FLOOR), color=cmap(ci % 10), lw=1.2, label=label)
            ax.fill_between(x, np.maximum(lo, _FLOOR), np.maximum(hi, _FLOOR), color=cmap(ci % 10),
                            alpha=0.15, lw=0)
    for ax, m in zip(axes[0], metrics):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(m)
    axes[0][0].legend(fontsize=6, loc="lower left")
    return fig


def plot_optimal_value_vs_s(K: int = 4, n: int = 5, *, lambda_b: float = 1e-2, num: int = 400,
                            ax=None):
    """``f*`` against ``s = sqrt(n lW lH)`` for CE and the MSE variants, with the threshold ``s = 1/K``.

    Also marks the MSE regularised-bias phase boundary ``lambda_b* = K s/(1 - K s)`` (where it
    crosses the chosen ``lambda_b``). Closed forms of theory.md section 2.
    """
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4), layout="constrained")
    s = np.linspace(1e-4, 1.6 / K, num)
    lam = s / np.sqrt(n)  # lambda_W = lambda_H = s / sqrt(n)
    curves = [("ce", "none", 0.0), ("mse", "none", 0.0), ("mse", "free", 0.0), ("mse", "regularized", lambda_b)]
    for loss, bias, lb in curves:
        vals = [optimal_value(UFMSpec(K=K, n=n, d=K, loss=loss, bias=bias, lambda_W=l, lambda_H=l,
                                      lambda_b=lb)) for l in lam]
        lab = f"{loss.upper()} {bias}" + (f" (lb={lb:g})" if lb else "")
        ax.plot(s, vals, label=lab)
    ax.axvline(1.0 / K, color="k", ls="--", lw=0.8, label="collapse threshold s = 1/K")
    # MSE bias phase boundary: lb* = Ks/(1-Ks) = lambda_b  <=>  s = lb / (K (1 + lb))
    s_b = lambda_b / (K * (1 + lambda_b))
    ax.axvline(s_b, color="grey", ls=":", lw=0.8, label=rf"MSE bias phase boundary $\lambda_b^*=\lambda_b$")
    ax.set_xlabel(r"$s = \sqrt{n \lambda_W \lambda_H}$")
    ax.set_ylabel(r"$f^\star$")
    ax.set_title(f"Closed-form optimum, K={K}, n={n}")
    ax.legend(fontsize=7)
    return fig
