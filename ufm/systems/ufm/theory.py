"""Closed-form global optima of the UFM and the frames they live on (docs/theory.md section 2).

The closed forms are *oracles*: they are computed on the host in float64 numpy (values are Python
floats) and the minimisers are returned as :class:`~ufm.UFMParams` in the spec's dtype, ready to
compare with what an optimiser finds. :func:`optimal_value` also accepts specs whose lambdas are
traced or batched (``jit``/``vmap`` over lambdas), for ``f - f*`` inside a sweep.

References:
    Zhu et al. 2021, "A geometric analysis of neural collapse with unconstrained features"
    (arXiv 2105.02375): cross-entropy, simplex ETF.
    Zhou et al. 2022, "On the optimization landscape of neural collapse under MSE loss"
    (arXiv 2203.01238): MSE, orthogonal frame / ETF, bias phases.
    Shen & Gu 2024 (arXiv 2407.10702): the same optima with ``d = K``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ...core.validation import SpecError, is_concrete
from .objective import UFMParams
from .spec import UFMSpec

__all__ = [
    "Optimum",
    "ce_optimal_rho",
    "mse_bias_threshold",
    "optimal_value",
    "optimum",
    "orthogonal_frame",
    "simplex_etf",
]

# Regime names (stable strings: records and plots key on them).
COLLAPSE_TO_ZERO = "collapse-to-zero"
ETF = "etf"
ORTHOGONAL_FRAME = "orthogonal-frame"
BIAS_DOMINATED = "bias-dominated"


# -- frames ------------------------------------------------------------------------------------
def _helmert(K: int) -> np.ndarray:
    """Orthonormal basis of ``1^perp`` in ``R^K`` (columns), the Helmert contrasts, shape (K, K-1).

    Column ``j`` (1-based) is ``(1, ..., 1, -j, 0, ..., 0) / sqrt(j (j+1))`` with ``j`` ones; chosen
    over a QR factorisation because it is deterministic across LAPACK builds.
    """
    Q = np.zeros((K, K - 1))
    for j in range(1, K):
        Q[:j, j - 1] = 1.0
        Q[j, j - 1] = -float(j)
        Q[:, j - 1] /= math.sqrt(j * (j + 1))
    return Q


def _check_dim(name: str, d, minimum: int, what: str):
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < minimum:
        raise ValueError(f"{name}={d!r} is too small: {what} needs {name} >= {minimum}")


def _etf_np(K: int, d: int) -> np.ndarray:
    out = np.zeros((K, d))
    out[:, : K - 1] = math.sqrt(K / (K - 1)) * _helmert(K)
    return out


def simplex_etf(K: int, d: int | None = None, dtype="float64"):
    """A simplex equiangular tight frame: ``K`` unit rows in ``R^d``, Gram ``K/(K-1) (I - J/K)``.

    Rows have unit norm, pairwise inner products ``-1/(K-1)`` and sum to zero; they span a
    ``(K-1)``-dimensional subspace, embedded in the first ``K-1`` coordinates of ``R^d`` (Helmert
    basis, deterministic). Needs ``d >= K - 1`` (default ``d = K``). The neural-collapse geometry of
    classifiers and class means under cross-entropy (Papyan et al. 2020; Zhu et al. 2021,
    arXiv 2105.02375).

    Example:
        >>> import numpy as np, ufm
        >>> M = np.asarray(ufm.simplex_etf(3, 4))
        >>> M.shape, np.round(M @ M.T, 6).tolist()
        ((3, 4), [[1.0, -0.5, -0.5], [-0.5, 1.0, -0.5], [-0.5, -0.5, 1.0]])
    """
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 2:
        raise ValueError(f"K must be an integer >= 2, got {K!r}")
    d = K if d is None else d
    _check_dim("d", d, K - 1, f"a simplex ETF of K={K} vectors")
    return jnp.asarray(_etf_np(int(K), int(d)), dtype=np.dtype(dtype))


def orthogonal_frame(K: int, d: int | None = None, dtype="float64"):
    """``K`` orthonormal rows in ``R^d`` (the first ``K`` coordinate vectors): ``eye(K, d)``.

    The geometry of MSE without bias (Zhou et al. 2022, arXiv 2203.01238) and of post-ReLU class
    means in the deep UFM. Needs ``d >= K`` (default ``d = K``).

    Example:
        >>> import ufm
        >>> ufm.orthogonal_frame(3, 2)
        Traceback (most recent call last):
        ...
        ValueError: d=2 is too small: an orthogonal frame of K=3 vectors needs d >= 3
    """
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
        raise ValueError(f"K must be an integer >= 1, got {K!r}")
    d = K if d is None else d
    _check_dim("d", d, K, f"an orthogonal frame of K={K} vectors")
    return jnp.eye(int(K), int(d), dtype=np.dtype(dtype))


# -- scalar closed forms -----------------------------------------------------------------------
def ce_optimal_rho(K: int, s):
    """Optimal true-class logit ``rho*`` of the CE UFM (Zhu et al. 2021, arXiv 2105.02375).

    ``rho* = ((K-1)/K) log((1 - (K-1) s) / s)`` for ``s < 1/K`` and ``0`` otherwise (collapse to
    zero), where ``s = sqrt(n lambda_W lambda_H)``; off-class logits are ``-rho*/(K-1)``. It
    minimises ``log(1 + (K-1) exp(-rho K/(K-1))) + K s rho`` over ``rho >= 0``. ``s`` may be an
    array (numpy or jax, vmappable); ``s = 0`` gives ``inf``.

    Example:
        >>> import ufm
        >>> round(float(ufm.systems.ufm.ce_optimal_rho(4, 0.0111803399)), 6)
        3.344611
        >>> float(ufm.systems.ufm.ce_optimal_rho(4, 0.3))
        0.0
    """
    xp = jnp if isinstance(s, jax.Array) else np
    s = xp.asarray(s) if xp is jnp else np.asarray(s, dtype=np.float64)
    sc = xp.clip(s, 1e-300, 1.0 / K)
    rho = ((K - 1) / K) * xp.log((1.0 - (K - 1) * sc) / sc)
    rho = xp.where(s > 0, rho, xp.inf)
    return rho if xp is jnp else rho[()]


def mse_bias_threshold(spec: UFMSpec):
    """Phase boundary ``lambda_b* = K s / (1 - K s)`` of the MSE UFM with a regularised bias.

    For ``lambda_b <= lambda_b*`` the optimum is a simplex ETF plus the bias
    ``1/(K(1 + lambda_b))``; above it the bias shrinks to ``s/lambda_b`` and ``W W^T`` becomes full
    rank (Zhou et al. 2022, arXiv 2203.01238). ``inf`` when ``K s >= 1`` (zero solution for all
    ``lambda_b``). Works for traced lambdas.

    Example:
        >>> import ufm
        >>> round(ufm.systems.ufm.mse_bias_threshold(ufm.UFMSpec(K=4, n=5, d=4, loss="mse")), 6)
        0.046815
    """
    Ks = spec.K * spec.s
    if is_concrete(Ks):
        Ks = float(Ks)
        return Ks / (1.0 - Ks) if Ks < 1.0 else math.inf
    u = jnp.minimum(Ks, 1.0)
    return jnp.where(u < 1.0, u / jnp.where(u < 1.0, 1.0 - u, 1.0), jnp.inf)


def _regime(spec: UFMSpec) -> tuple[str, int]:
    """(regime name, rank of the minimiser's W) for concrete lambdas, independent of ``spec.d``."""
    K, s = spec.K, float(spec.s)
    if spec.loss == "ce":
        return (ETF, K - 1) if s < 1.0 / K else (COLLAPSE_TO_ZERO, 0)
    if K * s >= 1.0:
        return COLLAPSE_TO_ZERO, 0
    if spec.bias == "none":
        return ORTHOGONAL_FRAME, K
    if spec.bias == "regularized" and float(spec.lambda_b) > mse_bias_threshold(spec):
        return BIAS_DOMINATED, K
    return ETF, K - 1


def _concrete_lambdas(spec) -> bool:
    return all(is_concrete(getattr(spec, k)) for k in ("lambda_W", "lambda_H", "lambda_b"))


def _require_dim(spec: UFMSpec, rank: int, regime: str):
    if spec.d < rank:
        raise ValueError(
            f"d={spec.d} is too small for the closed-form optimum of this {spec.loss.upper()} UFM "
            f"(bias={spec.bias!r}, regime {regime!r}): the minimiser has rank {rank}, so it needs "
            f"d >= {rank}. Smaller d gives a different (rank-constrained) problem without a "
            "closed form."
        )


def _value_formula(xp, K, loss, bias, s, lb):
    """f* for ``d`` large enough, valid for all ``s >= 0`` (continuous across the thresholds)."""
    if loss == "ce":
        sc = xp.clip(s, 1e-300, 1.0 / K)  # s = 1/K gives log K, s -> 0 gives 0
        t = 1.0 - (K - 1) * sc
        return -xp.log(t) + (K - 1) * sc * xp.log(t / sc)
    u = xp.minimum(K * s, 1.0)
    etf = ((K - 1) / K) * u * (1.0 - u / 2.0)
    if bias == "none":
        return u * (1.0 - u / 2.0)
    if bias == "free":
        return etf
    lb_safe = xp.where(lb > 0, lb, 1.0)
    below = etf + lb / (2.0 * K * (1.0 + lb))
    above = u * (1.0 - u / 2.0) - u * s / (2.0 * lb_safe)
    lbstar = xp.where(u < 1.0, u / xp.where(u < 1.0, 1.0 - u, 1.0), xp.inf)
    return xp.where(lb <= lbstar, below, above)


def _require_ufm(spec, fn: str) -> None:
    if not isinstance(spec, UFMSpec):
        hint = (
            " (for the deep UFM: ufm.deep.dnc_loss)" if type(spec).__name__ == "DeepUFMSpec" else ""
        )
        raise TypeError(f"{fn} needs a UFMSpec, got {type(spec).__name__}{hint}")


def optimal_value(spec: UFMSpec):
    """The global minimum value ``f*`` of the UFM (closed forms of docs/theory.md section 2).

    CE (any bias, Zhu et al. 2021, arXiv 2105.02375): ``log K`` for ``s >= 1/K``, else
    ``-log(1 - (K-1)s) + (K-1) s log((1 - (K-1)s)/s)``. MSE (Zhou et al. 2022, arXiv 2203.01238):
    ``K s (1 - K s/2)`` without bias, ``(K-1) s (1 - K s/2)`` with a free bias, the two phases of
    :func:`mse_bias_threshold` with a regularised bias, and the zero-solution values when
    ``K s >= 1``. Needs ``d`` at least the minimiser's rank (``K - 1``; ``K`` for MSE without bias
    or above the bias threshold), else ``ValueError`` naming ``d``.

    Concrete lambdas give a Python float computed in float64. Traced or batched lambdas give a jax
    array (``nan`` where ``d`` is too small), so ``f - optimal_value(spec)`` works under ``vmap``.

    Example:
        >>> import ufm
        >>> round(ufm.optimal_value(ufm.UFMSpec(K=4, n=5, d=4, loss="ce")), 10)
        0.1836919957
    """
    _require_ufm(spec, "optimal_value")
    K, loss, bias = spec.K, spec.loss, spec.bias
    if _concrete_lambdas(spec):
        regime, rank = _regime(spec)
        _require_dim(spec, rank, regime)
        return float(_value_formula(np, K, loss, bias, float(spec.s), float(spec.lambda_b)))
    lW, lH, lb = (jnp.asarray(getattr(spec, k)) for k in ("lambda_W", "lambda_H", "lambda_b"))
    s = jnp.sqrt(spec.n * lW * lH)
    value = _value_formula(jnp, K, loss, bias, s, lb)
    # Rank of the minimiser, as in _regime, traced.
    nontrivial = s < 1.0 / K
    if loss == "ce" or bias == "free":
        rank = jnp.where(nontrivial, K - 1, 0)
    elif bias == "none":
        rank = jnp.where(nontrivial, K, 0)
    else:
        rank = jnp.where(nontrivial, jnp.where(lb > mse_bias_threshold(spec), K, K - 1), 0)
    return jnp.where(rank <= spec.d, value, jnp.nan)


# -- the minimiser -------------------------------------------------------------------------------
class Optimum(NamedTuple):
    """A closed-form global minimum of the UFM (see :func:`optimum`).

    Attributes:
        value: ``f*`` (Python float, float64 arithmetic).
        params: a global minimiser as :class:`~ufm.UFMParams` at the spec's ``d`` and dtype
            (``b`` is ``None`` for ``bias="none"``).
        regime: ``"collapse-to-zero"`` (``W = H = 0``), ``"etf"`` (``W W^T`` a scaled simplex ETF
            Gram), ``"orthogonal-frame"`` (MSE, no bias), ``"bias-dominated"`` (MSE,
            ``lambda_b > lambda_b*``: ``W W^T`` full rank, not an ETF).
        rank: rank of ``W*`` (and ``H*``); the zero-mode count depends on it.
        w_norm_sq: ``||w_k||^2``, equal for every class.
        gram: ``W* W*^T`` as a float64 ``(K, K)`` numpy array.
        rho: CE only: the optimal true-class logit ``rho*`` (``nan`` for MSE).
        scale: MSE only: the logit scale ``1 - K s`` (``Z* = (1 - K s) Y`` on ``1^perp``; ``0`` for
            collapse to zero; ``nan`` for CE).
        bias: the entries of ``b* = bias 1`` (``0`` for CE, and for ``bias="none"``).
    """

    value: float
    params: UFMParams
    regime: str
    rank: int
    w_norm_sq: float
    gram: np.ndarray
    rho: float
    scale: float
    bias: float


def optimum(spec: UFMSpec) -> Optimum:
    """A closed-form global minimiser of the UFM and its value (docs/theory.md section 2).

    Structure: ``W* W*^T`` is (a) a scaled simplex ETF Gram ``c (I - J/K)`` for CE and for MSE with
    a free bias or a regularised bias below :func:`mse_bias_threshold`; (b) a scaled identity for
    MSE without bias (orthogonal frame); (c) ``sqrt(n lH/lW) [(1 - K s) I - (K s/lambda_b) J/K]``
    for MSE above the bias threshold; (d) zero when ``s >= 1/K`` (CE) or ``K s >= 1`` (MSE).
    Features collapse to their class classifier: ``h_{k,i} = sqrt(lW/(n lH)) w_k``. The bias is
    ``0`` for CE (with a free bias every ``beta 1`` is optimal: ``0`` is returned), ``1/K`` for MSE
    with a free bias, ``1/(K(1 + lambda_b))`` or ``s/lambda_b`` with a regularised one. The frame
    is embedded in the first coordinates of ``R^d`` (any ``W* Q``, ``Q^T H*`` with ``Q``
    orthogonal is also optimal). References: Zhu et al. 2021 (arXiv 2105.02375), Zhou et al.
    2022 (arXiv 2203.01238), Shen & Gu 2024 (arXiv 2407.10702).

    Needs concrete lambdas, ``lambda_W, lambda_H > 0`` and ``d >= rank`` (``ValueError`` naming
    the field otherwise).

    Example:
        >>> import ufm
        >>> opt = ufm.optimum(ufm.UFMSpec(K=4, n=5, d=4, loss="mse", bias="free"))
        >>> opt.regime, round(opt.value, 10), opt.bias, opt.params.W.shape, opt.params.H.shape
        ('etf', 0.0327910197, 0.25, (4, 4), (4, 20))
    """
    _require_ufm(spec, "optimum")
    if not isinstance(spec, UFMSpec):
        raise TypeError(f"optimum expects a UFMSpec, got {type(spec).__name__}")
    if not _concrete_lambdas(spec):
        raise ValueError(
            "optimum needs concrete lambda_W, lambda_H, lambda_b (got traced values); "
            "use optimal_value for f* under jit/vmap"
        )
    for name in ("lambda_W", "lambda_H"):
        if not float(getattr(spec, name)) > 0:
            raise SpecError(
                f"{name} must be > 0 for a minimiser to exist, got {getattr(spec, name)!r}"
            )
    K, n, d = spec.K, spec.n, spec.d
    lW, lH, lb = float(spec.lambda_W), float(spec.lambda_H), float(spec.lambda_b)
    s = float(spec.s)
    regime, rank = _regime(spec)
    _require_dim(spec, rank, regime)
    value = float(_value_formula(np, K, spec.loss, spec.bias, s, lb))
    root = math.sqrt(n * lH / lW)  # ||w||^2 = root * (logit-space norm)
    rho = scale = math.nan
    bias = 0.0
    F = np.zeros((K, d))  # W*, with F F^T = gram
    if spec.loss == "ce":
        rho = float(ce_optimal_rho(K, s))
        if regime == ETF:
            F = math.sqrt(root * rho) * _etf_np(K, d)
    else:
        scale = max(1.0 - K * s, 0.0)
        if spec.bias == "free":
            bias = 1.0 / K
        elif spec.bias == "regularized":
            bias = 1.0 / (K * (1.0 + lb)) if regime != BIAS_DOMINATED else s / lb
        if regime == ORTHOGONAL_FRAME:
            F = math.sqrt(root * scale) * np.eye(K, d)
        elif regime == ETF:  # root * scale * (I - J/K) = F F^T
            F = math.sqrt(root * scale * (K - 1) / K) * _etf_np(K, d)
        elif regime == BIAS_DOMINATED:  # root [scale P + (scale - K s/lb) J/K]
            F[:, : K - 1] = math.sqrt(root * scale) * _helmert(K)
            F[:, K - 1] = math.sqrt(root * (scale - K * s / lb) / K)
    gram = F @ F.T
    Hm = math.sqrt(lW / (n * lH)) * np.repeat(F.T, n, axis=1)  # h_{k,i} = sqrt(lW/(n lH)) w_k
    dt = spec.jnp_dtype
    b = jnp.full((K,), bias, dtype=dt) if spec.has_bias else None
    params = UFMParams(jnp.asarray(F, dtype=dt), jnp.asarray(Hm, dtype=dt), b)
    return Optimum(
        value=value,
        params=params,
        regime=regime,
        rank=rank,
        w_norm_sq=float(np.mean(np.diag(gram))),
        gram=gram,
        rho=rho,
        scale=scale,
        bias=float(bias),
    )
