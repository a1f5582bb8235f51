"""The Hessian spectrum of the UFM at its collapsed optimum, in closed form (MSE and CE).

:func:`collapse_spectrum` returns the eigenvalues with multiplicities (summing to the parameter
count) at the global minimum of section 2 of docs/theory.md, for balanced classes. The derivations
(section 8) are the project's own, checked against the dense, Lanczos and block-arrow Hessians;
Garrod & Keating 2024 (arXiv 2404.06106) derive spectra of layer-wise Hessians at (deep) neural
collapse for MSE and CE in terms of the class means.

**MSE, no bias** (``K s < 1``, ``d >= K``). The classifier is an orthogonal frame ``W = a Q``
(``Q`` with orthonormal rows, ``a^2 = sqrt(n lH / lW) (1 - K s)``) and every feature sits on its
class's direction, ``h_{k,i} = b q_k`` (``lW a^2 = n lH b^2``, ``a b = 1 - K s``). Writing a
perturbation as ``dW = A Q + B Q_perp``, ``dH = Q^T C + Q_perp^T D`` and splitting ``C, D`` into
class-mean parts (``C = Cbar Y + C_w``) and within-class parts, the second variation

    (1/N) ||dW H + W dH||^2 + (2/N) <WH - Y, dW dH> + lW ||dW||^2 + lH ||dH||^2

decouples into independent blocks:

================================  =========================================  ================
block                             eigenvalues (each)                         multiplicity
================================  =========================================  ================
within-class, inside span(Q)      ``a^2 / N + lH``                           ``K (N - K)``
within-class, outside span(Q)     ``lH``                                     ``(d-K)(N-K)``
``B``, ``Dbar`` (rotations out)   ``0`` and ``lW + lH``                      ``K (d - K)``
``A``, ``Cbar``, antisymmetric    ``0`` and ``b/(K a) + a/(K n b)``          ``K(K-1)/2``
``A``, ``Cbar``, symmetric        eig ``[[b/(K a), c], [c, a/(K n b)]]``     ``K(K+1)/2``
                                  with ``c = (2 a b - 1) / (K sqrt(n))``
================================  =========================================  ================

**CE, any bias** (``s < 1/K``, ``d >= K - 1``; section 8.2). At the simplex ETF, with ``p = 1 -
(K-1) s`` (softmax of the true class; each other class has ``s``), the logit margin ``nu =
log(p / s)``, ``tau = 1 + nu/K``, ``m = d - K + 1`` and ``pair(x, y)`` the eigenvalues of ``[[lW
x, sqrt(lW lH) y], [sqrt(lW lH) y, lH x]]``: within-class ``lH (1 + p nu)`` (``N - K``), ``lH
tau`` (``(K-2)(N-K)``), ``lH`` (``m (N-K)``); rotations out of the ETF span ``0`` and ``lW +
lH`` (``(K-1) m`` each); row / feature shifts ``lW`` (``m + K - 1``), ``lH`` (``m``);
antisymmetric ``0`` and ``tau (lW + lH)`` (``(K-1)(K-2)/2`` each); ``pair(tau, tau - 2)``
(``K(K-3)/2`` each); ``pair(1 + p nu, p nu - 1)`` (once each); the eigenvalues of the explicit
``3 x 3`` (``4 x 4`` with a bias) matrix :func:`ce_std_matrix` (``K - 1`` each); ``lambda_b``
for the bias along ``1`` (once).

**MSE with a bias, ETF phase** (``K s < 1``, free bias or ``lambda_b <= lambda_b*``; section 8.3):
with ``x = 1/(K s)``: ``lH x`` and ``lH`` within-class, ``0``/``lW + lH`` rotations out,
``0``/``x (lW + lH)`` antisymmetric, ``pair(x, x - 2)`` symmetric, a ``2 x 2`` for the common
shifts outside the span, a ``3 x 3`` for the row / feature / bias shifts, ``1 + lambda_b`` for
the bias along ``1``. The bias-dominated phase is not covered.

The zero eigenvalues are the rotation modes (``d(d-1)/2 - (d-r)(d-r-1)/2`` for the rank ``r`` of
the optimum, plus the free-bias shift: :func:`ufm.zero_mode_count`); every other eigenvalue is
positive. The smallest non-zero eigenvalue (the curvature that matters once the symmetry modes are
removed) is returned separately.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...core.validation import SpecError
from ...runs.analyses import register_analysis
from .spec import UFMSpec
from .theory import ce_optimal_rho, mse_bias_threshold, optimal_value

__all__ = ["CollapseSpectrum", "ce_std_matrix", "collapse_spectrum", "collapse_spectrum_columns"]


class CollapseSpectrum(NamedTuple):
    """Closed-form Hessian eigenvalues at the collapsed optimum."""

    values: np.ndarray  # distinct eigenvalues (ascending)
    multiplicities: np.ndarray  # their multiplicities (summing to the parameter count)
    smallest_nonzero: float  # the smallest positive eigenvalue
    zero_modes: int  # multiplicity of 0

    def full(self) -> np.ndarray:
        """Every eigenvalue with its multiplicity, ascending (length = number of parameters)."""
        return np.repeat(self.values, self.multiplicities)


def collapse_spectrum(spec: UFMSpec) -> CollapseSpectrum:
    """The Hessian spectrum of the UFM at its global minimum, in closed form (module docstring).

    Implemented for balanced classes, ``loss="mse"`` with ``bias="none"`` (``d >= K``, ``K s <
    1``: the orthogonal frame), ``loss="ce"`` with every bias variant (``d >= K - 1``, ``s <
    1/K``: the simplex ETF; docs/theory.md section 8.2) and ``loss="mse"`` with a free or
    regularised bias in the ETF phase (``lambda_b <= lambda_b*``, section 8.3); other cases
    (imbalanced classes, the collapse to zero, the bias-dominated phase) raise ``SpecError``.
    The CE eigenvalues are closed forms except the ``K - 1``-fold ones of the standard block,
    the eigenvalues of the explicit ``3 x 3`` (``4 x 4`` with a bias) matrix
    :func:`ce_std_matrix` (without a bias: the roots of an explicit cubic, section 8.2).

    Example:
        >>> import ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=4, loss="mse", lambda_W=5e-3, lambda_H=5e-3)
        >>> sp = ufm.systems.ufm.collapse_spectrum(spec)
        >>> int(sp.multiplicities.sum()) == spec.num_params, sp.zero_modes
        (True, 6)
        >>> ce_spec = spec.replace(loss="ce", bias="free")
        >>> ce = ufm.systems.ufm.collapse_spectrum(ce_spec)
        >>> int(ce.multiplicities.sum()) == ce_spec.num_params, ce.zero_modes
        (True, 6)
    """
    if not isinstance(spec, UFMSpec):
        raise TypeError(f"collapse_spectrum needs a UFMSpec, got {type(spec).__name__}")
    spec.require_balanced("collapse_spectrum")
    if spec.loss == "ce":
        optimal_value(spec)  # validates d and the lambdas
        blocks = _ce_blocks(spec)
    elif spec.bias != "none":
        blocks = _mse_etf_blocks(spec)
    else:
        blocks = _mse_blocks(spec)
    vals = _merge(blocks)
    values = np.array(sorted(vals))
    mult = np.array([vals[v] for v in values], np.int64)
    positive = values[values > 0]
    return CollapseSpectrum(values, mult, float(positive.min()), int(vals.get(0.0, 0)))


def _mse_blocks(spec: UFMSpec) -> list:
    """``(eigenvalue, multiplicity)`` pairs of the MSE no-bias Hessian at the orthogonal frame."""
    K, n, d, N = spec.K, spec.n, spec.d, spec.N
    lW, lH = float(spec.lambda_W), float(spec.lambda_H)
    s = float(spec.s)
    if d < K:
        raise SpecError(f"collapse_spectrum needs d >= K (got d={d}, K={K})")
    if not K * s < 1:
        raise SpecError(f"K s = {K * s:g} >= 1: the optimum is the origin, not collapsed")
    optimal_value(spec)  # validates the regime
    a2 = np.sqrt(n * lH / lW) * (1 - K * s)
    a = np.sqrt(a2)
    b = np.sqrt(lW * a2 / (lH * n))
    blocks = [
        (a2 / N + lH, K * (N - K)),
        (lH, (d - K) * (N - K)),
        (0.0, K * (d - K)),
        (lW + lH, K * (d - K)),
        (0.0, K * (K - 1) // 2),
        (b / (K * a) + a / (K * n * b), K * (K - 1) // 2),
    ]
    c = (2 * a * b - 1) / (K * np.sqrt(n))
    sym = np.linalg.eigvalsh(np.array([[b / (K * a), c], [c, a / (K * n * b)]]))
    return blocks + [(float(sym[0]), K * (K + 1) // 2), (float(sym[1]), K * (K + 1) // 2)]


def _merge(blocks) -> dict:
    """Merge ``(value, multiplicity)`` pairs whose values agree to 12 significant digits (the same
    eigenvalue reached by two formulas); ``0`` merges only with exact zeros."""
    merged: list[list] = []
    for v, m in sorted((float(v), int(m)) for v, m in blocks if m > 0):
        if merged and v - merged[-1][0] <= 1e-12 * abs(v):
            merged[-1][1] += m
        else:
            merged.append([v, m])
    return {v: m for v, m in merged}


def _pair(lW: float, lH: float, x: float, y: float) -> np.ndarray:
    """Eigenvalues of ``[[lW x, sqrt(lW lH) y], [sqrt(lW lH) y, lH x]]`` (ascending)."""
    mid, rad = x * (lW + lH) / 2, np.sqrt((x * (lW - lH) / 2) ** 2 + lW * lH * y * y)
    return np.array([mid - rad, mid + rad])


def ce_std_matrix(spec: UFMSpec) -> np.ndarray:
    """The ``3 x 3`` (``4 x 4`` with a bias) matrix of the CE UFM Hessian's standard-representation
    block at the collapsed optimum (docs/theory.md section 8.2); each eigenvalue has multiplicity
    ``K - 1``. Coordinates: the symmetric class-mean classifier / feature perturbations ``a``, ``c``
    (``K >= 3`` only), the class-constant feature shift ``sigma`` and the bias ``t``.

    Example:
        >>> import ufm
        >>> ufm.systems.ufm.ce_std_matrix(ufm.UFMSpec(K=4, n=5, d=4, bias="free")).shape
        (4, 4)
    """
    _check_ce(spec)
    K = spec.K
    lW, lH, lb = float(spec.lambda_W), float(spec.lambda_H), float(spec.lambda_b)
    s = float(spec.s)
    p, q = 1.0 - (K - 1) * s, s
    nu = K * float(ce_optimal_rho(K, s)) / (K - 1)  # alpha beta: true-class logit is nu (K-1)/K
    beta, alpha_n = np.sqrt(lW * nu / q), np.sqrt(lH * nu / q)  # beta and alpha / sqrt(n)
    g = np.array([beta, alpha_n, 0.0, 0.0])  # coefficient of P diag(v) P (normalised) in M
    e = np.array([0.0, 0.0, alpha_n, np.sqrt(K)])  # coefficient of v 1^T / sqrt(K) in M
    h = np.sqrt(1.0 - 2.0 / K) * g + e / np.sqrt(K)  # coefficient of v in diag(M)
    r = np.diag([lW, lH, lH, lb])
    r[0, 1] = r[1, 0] = -np.sqrt(lW * lH)
    mat = (q / K) * (np.outer(g, g) + np.outer(e, e)) + q * (p - q) * np.outer(h, h) + r
    keep = ([0, 1] if K >= 3 else []) + [2] + ([3] if spec.bias != "none" else [])
    return mat[np.ix_(keep, keep)]


def _check_ce(spec: UFMSpec) -> None:
    if not isinstance(spec, UFMSpec) or spec.loss != "ce":
        raise SpecError(f"needs a UFMSpec with loss='ce' (got {spec!r})")
    spec.require_balanced("collapse_spectrum")
    if spec.d < spec.K - 1:
        raise SpecError(f"collapse_spectrum needs d >= K - 1 for CE (got d={spec.d}, K={spec.K})")
    if not spec.K * float(spec.s) < 1:
        raise SpecError(
            f"s = {float(spec.s):g} >= 1/K: the CE optimum is the origin, not collapsed"
        )


def _ce_blocks(spec: UFMSpec) -> list:
    """``(eigenvalue, multiplicity)`` pairs of the CE Hessian at the ETF optimum (section 8.2)."""
    _check_ce(spec)
    K, d, N = spec.K, spec.d, spec.N
    lW, lH, lb = float(spec.lambda_W), float(spec.lambda_H), float(spec.lambda_b)
    s = float(spec.s)
    p = 1.0 - (K - 1) * s
    nu = K * float(ce_optimal_rho(K, s)) / (K - 1)
    tau = 1.0 + nu / K
    m = d - K + 1  # dimension outside the span of the ETF
    blocks = [
        (lH * (1 + p * nu), N - K),  # within-class, along the own class's ETF direction
        (lH * tau, (K - 2) * (N - K)),  # within-class, the other ETF directions
        (lH, m * (N - K)),  # within-class, outside the ETF span
        (0.0, (K - 1) * m),  # rotations out of the ETF span
        (lW + lH, (K - 1) * m),
        (lW, m),  # common shift of the classifier rows outside the span
        (lH, m),  # common shift of all features outside the span
        (lW, K - 1),  # common shift of the classifier rows inside the span
        (0.0, (K - 1) * (K - 2) // 2),  # rotations inside the span (antisymmetric)
        (tau * (lW + lH), (K - 1) * (K - 2) // 2),
    ]
    blocks += [(v, 1) for v in _pair(lW, lH, 1 + p * nu, p * nu - 1)]  # trivial (scale)
    blocks += [(v, K * (K - 3) // 2) for v in _pair(lW, lH, tau, tau - 2)]  # (K-2, 2)
    blocks += [(v, K - 1) for v in np.linalg.eigvalsh(ce_std_matrix(spec))]  # standard
    if spec.bias != "none":
        blocks.append((lb, 1))  # bias along 1: the softmax ignores it (0 for a free bias)
    return blocks


def _mse_etf_blocks(spec: UFMSpec) -> list:
    """``(eigenvalue, multiplicity)`` pairs of the MSE Hessian with a bias at the simplex-ETF
    optimum (free bias, or regularised bias with ``lambda_b <= lambda_b*``; section 8.3)."""
    K, d, N, n = spec.K, spec.d, spec.N, spec.n
    lW, lH, lb = float(spec.lambda_W), float(spec.lambda_H), float(spec.lambda_b)
    s = float(spec.s)
    if not K * s < 1:
        raise SpecError(f"K s = {K * s:g} >= 1: the optimum is the origin, not collapsed")
    if spec.bias == "regularized" and lb > mse_bias_threshold(spec):
        raise SpecError(
            f"collapse_spectrum: lambda_b={lb:g} is above the threshold lambda_b* = "
            f"{mse_bias_threshold(spec):g} (bias-dominated phase, not an ETF): no closed form here"
        )
    optimal_value(spec)  # validates d >= K - 1
    m = d - K + 1
    g = -lb / (K * (1.0 + lb)) / np.sqrt(n)  # (b* - 1/K) / sqrt(n): the 1-part of grad_Z g
    x = 1.0 / (K * s)  # 1 + alpha beta / (K s) with alpha beta = 1 - K s
    beta2, alpha2_n = lW * (1 - K * s) / s, lH * (1 - K * s) / s  # beta^2, alpha^2 / n
    blocks = [
        (lH * x, (K - 1) * (N - K)),  # within-class inside the ETF span
        (lH, m * (N - K)),  # within-class outside it
        (0.0, (K - 1) * m),  # rotations out of the span
        (lW + lH, (K - 1) * m),
        (0.0, (K - 1) * (K - 2) // 2),  # rotations inside the span
        (x * (lW + lH), (K - 1) * (K - 2) // 2),
        (1.0 + lb, 1),  # bias along 1
    ]
    blocks += [(v, m) for v in np.linalg.eigvalsh([[lW, g], [g, lH]])]  # shifts outside the span
    blocks += [(v, K * (K - 1) // 2) for v in _pair(lW, lH, x, x - 2)]  # symmetric A_0, C_0
    std = np.array(  # row shift r, feature shift sigma, bias t (standard representation)
        [
            [beta2 / K + lW, g, 0.0],
            [g, alpha2_n / K + lH, np.sqrt(alpha2_n / K)],
            [0.0, np.sqrt(alpha2_n / K), 1.0 + lb],
        ]
    )
    return blocks + [(v, K - 1) for v in np.linalg.eigvalsh(std)]


def _check_ufm(spec) -> None:
    if not isinstance(spec, UFMSpec):
        raise TypeError(f"collapse_spectrum analysis: needs a UFMSpec, got {type(spec).__name__}")


@register_analysis(
    "collapse_spectrum",
    check=_check_ufm,
    options=(),
    columns={
        "lambda_pos_star": "smallest non-zero Hessian eigenvalue at the collapsed optimum in "
        "closed form (ufm.systems.ufm.collapse_spectrum; docs/theory.md section 8), the value "
        "lambda_pos_min of a global minimum should have; nan where there is no closed form "
        "(class sizes, the collapse to zero, MSE's bias-dominated phase, d below the rank)",
    },
)
def collapse_spectrum_columns(spec: UFMSpec, result) -> dict:
    """The ``collapse_spectrum`` analysis (:func:`ufm.run_points`): ``lambda_pos_star``, the
    closed-form smallest non-zero Hessian eigenvalue at the global minimum
    (:func:`collapse_spectrum`), the same for every point of the configuration; ``nan`` where
    :func:`collapse_spectrum` has no closed form. Compare with the ``hessian`` analysis's
    ``lambda_pos_min`` at the points classified ``global_min``
    (:func:`ufm.report.figures.plot_lambda_pos_min`).

    Example:
        >>> import types, numpy as np, ufm
        >>> from ufm.systems.ufm.spectra import collapse_spectrum_columns
        >>> points = types.SimpleNamespace(loss=np.zeros(2))  # an OptimizeResult of two points
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce")
        >>> collapse_spectrum_columns(spec, points)["lambda_pos_star"].tolist()
        [0.005, 0.005]
        >>> spec = ufm.UFMSpec(K=3, n=(4, 4, 1), d=3, loss="ce")  # class sizes: no closed form
        >>> collapse_spectrum_columns(spec, points)["lambda_pos_star"].tolist()
        [nan, nan]
    """
    try:
        value = collapse_spectrum(spec).smallest_nonzero
    except ValueError:  # SpecError: no closed form for this spec
        value = float("nan")
    return {"lambda_pos_star": np.full(np.shape(result.loss), value, np.float64)}
