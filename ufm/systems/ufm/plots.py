"""Figures of the UFM's closed forms: ``f*`` against ``s`` with the collapse and bias thresholds."""

from __future__ import annotations

import numpy as np

from ...report.figures import plt_module
from .spec import UFMSpec
from .theory import optimal_value

__all__ = ["plot_optimal_value_vs_s"]


def plot_optimal_value_vs_s(
    K: int = 4, n: int = 5, *, lambda_b: float = 1e-2, num: int = 400, ax=None
):
    """``f*`` against ``s = sqrt(n lW lH)`` for CE and the MSE variants, with the threshold ``s =
    1/K``.

    Also marks the MSE regularised-bias phase boundary ``lambda_b* = K s/(1 - K s)`` (where it
    crosses the chosen ``lambda_b``). Closed forms of docs/theory.md section 2.
    """
    plt = plt_module()
    fig, ax = (
        (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4), layout="constrained")
    )
    s = np.linspace(1e-4, 1.6 / K, num)
    lam = s / np.sqrt(n)  # lambda_W = lambda_H = s / sqrt(n)
    curves = [
        ("ce", "none", 0.0),
        ("mse", "none", 0.0),
        ("mse", "free", 0.0),
        ("mse", "regularized", lambda_b),
    ]
    for loss, bias, lb in curves:
        vals = [
            optimal_value(
                UFMSpec(K=K, n=n, d=K, loss=loss, bias=bias, lambda_W=l, lambda_H=l, lambda_b=lb)
            )
            for l in lam
        ]
        lab = f"{loss.upper()} {bias}" + (f" (lb={lb:g})" if lb else "")
        ax.plot(s, vals, label=lab)
    ax.axvline(1.0 / K, color="k", ls="--", lw=0.8, label="collapse threshold s = 1/K")
    # MSE bias phase boundary: lb* = Ks/(1-Ks) = lambda_b  <=>  s = lb / (K (1 + lb))
    s_b = lambda_b / (K * (1 + lambda_b))
    ax.axvline(
        s_b, color="grey", ls=":", lw=0.8, label=r"MSE bias phase boundary $\lambda_b^*=\lambda_b$"
    )
    ax.set_xlabel(r"$s = \sqrt{n \lambda_W \lambda_H}$")
    ax.set_ylabel(r"$f^\star$")
    ax.set_title(f"Closed-form optimum, K={K}, n={n}")
    ax.legend(fontsize=7)
    return fig
