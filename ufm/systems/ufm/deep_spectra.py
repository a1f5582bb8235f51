"""The Hessian spectrum of the deep linear UFM at deep neural collapse, in closed form (MSE).

:func:`dnc_spectrum` returns the eigenvalues with multiplicities (summing to the parameter count)
of the Hessian of the deep UFM (docs/theory.md section 4) with the identity activation, MSE and
no bias, at the DNC point :func:`ufm.deep.dnc_point` (``H_1 = a_0 [I_K; 0] (x) 1_n^T``, ``W_l = a_l
[I_K 0; 0 0]``, ``t = a_0 a_1 ... a_L`` the optimal scale, ``n lambda_H1 a_0^2 = lambda_W[l]
a_l^2``). The derivation (docs/theory.md section 8.5) is the project's own and extends section
8.1 (``L = 1``) to ``L`` layers; it is checked against the dense Hessian. With ``lambda_0 =
lambda_H1``, ``lambda_l = lambda_W[l]``, ``m_l = d_l - K`` (``m_{L+1} = 0``) and ``u = (1/(sqrt(n)
a_0), 1/a_1, ..., 1/a_L)``, ``D_u = diag(u)``:

=========================================  ========================================  =============
block                                      eigenvalues (each)                        multiplicity
=========================================  ========================================  =============
within-class, inside the class-mean span   ``(t/a_0)^2 / N + lambda_0``              ``K (N - K)``
within-class, outside it                   ``lambda_0``                              ``m_1 (N-K)``
``W_l`` outside the span on both sides     ``lambda_l`` (``l = 1..L-1``)             ``m_{l+1} m_l``
interface ``i`` (``W_i``, ``W_{i-1}`` or   ``0`` and ``lambda_i + lambda_{i-1}``     ``K m_i``
``H_1``): rotations out of the span        (``i = 1..L``)
antisymmetric class-mean part              ``0``                                     ``L K(K-1)/2``
                                           ``(t/K) |u|^2``                           ``K(K-1)/2``
symmetric class-mean part                  eig ``(t/K) D_u ((2t-1) 1 1^T + 2(1-t)    ``K(K+1)/2``
                                           I) D_u`` (``L + 1`` values)
=========================================  ========================================  =============

The zeros are exactly the symmetry modes: at each of the ``L`` interfaces ``O(d_i)`` acts
(``W_i -> W_i Q^T``, ``W_{i-1} -> Q W_{i-1}``), with an orbit of dimension ``K(K-1)/2 + K m_i``
at a rank-``K`` point. The symmetric block is positive definite exactly when ``t > (L-1)/(2L)``,
the branch of the DNC minimum (:func:`ufm.deep.power_objective_min`), so there every other
eigenvalue is positive. ReLU and leaky-ReLU networks sit on the kink of the activation at DNC
(the off-class pre-activations are exactly 0): their Hessian is not defined there, and autodiff's
one-sided value differs, so only the identity activation is covered. Garrod & Keating 2024 (arXiv
2404.06106) study Hessians at deep neural collapse; this block decomposition is not taken from
them.
"""

from __future__ import annotations

import numpy as np

from ...core.validation import SpecError
from ..deep_ufm.model import DeepUFMSpec
from ..deep_ufm.theory import dnc_point
from .spectra import CollapseSpectrum, _merge

__all__ = ["dnc_spectrum"]


def dnc_spectrum(spec: DeepUFMSpec) -> CollapseSpectrum:
    """The Hessian spectrum of the deep linear UFM at the DNC point, in closed form (module
    docstring): ``activation="identity"``, ``loss="mse"``, ``bias="none"``, every width ``>= K``,
    lambdas ``> 0`` and a non-zero optimal scale ``t`` (else the DNC point is the origin);
    ``SpecError`` otherwise.

    Example:
        >>> import ufm
        >>> from ufm.systems.ufm.deep_spectra import dnc_spectrum
        >>> spec = ufm.DeepUFMSpec(K=3, n=2, L=2, widths=(4, 5), activation="identity",
        ...                        lambda_H1=4e-3, lambda_W=(3e-3, 5e-3))
        >>> sp = dnc_spectrum(spec)
        >>> int(sp.multiplicities.sum()) == spec.num_params, sp.zero_modes  # 2*3 + 3*(1 + 2)
        (True, 15)
    """
    if not isinstance(spec, DeepUFMSpec):
        raise TypeError(f"dnc_spectrum needs a DeepUFMSpec, got {type(spec).__name__}")
    if spec.activation != "identity" or spec.loss != "mse" or spec.bias != "none":
        raise SpecError(
            "dnc_spectrum covers the deep linear UFM: activation='identity', loss='mse', "
            f"bias='none' (got activation={spec.activation!r}, loss={spec.loss!r}, "
            f"bias={spec.bias!r}; ReLU's Hessian is not defined at DNC)"
        )
    p = dnc_point(spec)  # validates the widths and lambdas
    K, n, L, N = spec.K, spec.n, spec.L, spec.N
    a = [float(p.H1[0, 0])] + [float(W[0, 0]) for W in p.Ws]
    t = float(np.prod(a))
    if not t > 0:
        raise SpecError("dnc_spectrum: the optimal scale t is 0 (the DNC point is the origin)")
    lam = [float(spec.lambda_H1)] + [float(x) for x in spec.lambda_W]
    m = [0] + [w - K for w in spec.widths] + [0]  # m_0 = m_{L+1} = 0
    blocks = [((t / a[0]) ** 2 / N + lam[0], K * (N - K)), (lam[0], m[1] * (N - K))]
    blocks += [(lam[i], m[i + 1] * m[i]) for i in range(1, L)]
    for i in range(1, L + 1):
        blocks += [(0.0, K * m[i]), (lam[i] + lam[i - 1], K * m[i])]
    u = np.array([1.0 / (np.sqrt(n) * a[0])] + [1.0 / x for x in a[1:]])
    blocks += [(0.0, L * K * (K - 1) // 2), (t / K * float(u @ u), K * (K - 1) // 2)]
    sym = (t / K) * ((2 * t - 1) * np.outer(u, u) + 2 * (1 - t) * np.diag(u**2))
    blocks += [(float(v), K * (K + 1) // 2) for v in np.linalg.eigvalsh(sym)]
    vals = _merge(blocks)
    values = np.array(sorted(vals))
    mult = np.array([vals[v] for v in values], np.int64)
    positive = values[values > 0]
    return CollapseSpectrum(values, mult, float(positive.min()), int(vals.get(0.0, 0)))
