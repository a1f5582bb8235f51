"""The Hessian spectrum of the UFM at its collapsed optimum, in closed form (MSE, no bias).

At the global minimum of the MSE UFM without bias (``K s < 1``, ``d >= K``; docs/theory.md
section 2) the classifier is an orthogonal frame ``W = a Q`` (``Q`` with orthonormal rows, ``a^2 =
sqrt(n lH / lW) (1 - K s)``) and every feature sits on its class's direction, ``h_{k,i} = b q_k``
(``lW a^2 = n lH b^2``, ``a b = 1 - K s``). Writing a perturbation as ``dW = A Q + B Q_perp``,
``dH = Q^T C + Q_perp^T D`` and splitting ``C, D`` into class-mean parts (``C = Cbar Y + C_w``) and
within-class parts, the second variation

    (1/N) ||dW H + W dH||^2 + (2/N) <WH - Y, dW dH> + lW ||dW||^2 + lH ||dH||^2

decouples into independent blocks (the derivation is in docs/theory.md section 8; Garrod &
Keating 2024, arXiv 2404.06106, give the spectra at collapse for MSE and CE):

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

The zero eigenvalues are the rotation modes (``K(K-1)/2 + K(d-K) = d(d-1)/2 - (d-K)(d-K-1)/2``,
:func:`ufm.zero_mode_count`); every other eigenvalue is positive. The smallest non-zero eigenvalue
(the curvature that matters once the symmetry modes are removed) is returned separately.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...core.validation import SpecError
from .spec import UFMSpec
from .theory import optimal_value

__all__ = ["CollapseSpectrum", "collapse_spectrum"]


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

    Implemented for MSE without bias, ``d >= K`` and ``K s < 1`` (the collapsed optimum);
    other cases raise ``SpecError`` naming what is missing.

    Example:
        >>> import ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=4, loss="mse", lambda_W=5e-3, lambda_H=5e-3)
        >>> sp = ufm.systems.ufm.collapse_spectrum(spec)
        >>> int(sp.multiplicities.sum()) == spec.num_params, sp.zero_modes
        (True, 6)
    """
    if not isinstance(spec, UFMSpec):
        raise TypeError(f"collapse_spectrum needs a UFMSpec, got {type(spec).__name__}")
    if spec.loss != "mse" or spec.bias != "none":
        raise SpecError(
            "collapse_spectrum has the closed form for loss='mse', bias='none' only "
            f"(got loss={spec.loss!r}, bias={spec.bias!r}); use "
            "ufm.hessian.hessian_spectrum_dense or block_arrow_spectrum otherwise"
        )
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
    blocks += [(float(sym[0]), K * (K + 1) // 2), (float(sym[1]), K * (K + 1) // 2)]
    vals = {}
    for v, m in blocks:
        if m == 0:
            continue
        key = round(float(v), 15) if v != 0.0 else 0.0
        vals[key] = vals.get(key, 0) + m
    values = np.array(sorted(vals))
    mult = np.array([vals[v] for v in values], np.int64)
    positive = values[values > 0]
    return CollapseSpectrum(values, mult, float(positive.min()), int(vals.get(0.0, 0)))
