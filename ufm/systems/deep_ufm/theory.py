"""Deep-UFM theory: the DNC loss and point, and the low-rank SRG construction (docs/theory.md
section 4).

Both constructions have a fixed *shape* (unit matrices ``A_0`` for the class means of ``H_1`` and
``A_1..A_L`` for the weights) whose network maps every class mean to ``e_k``; only the per-layer
scales are free. For positively homogeneous activations the output is ``t I_K`` with ``t`` the
product of the scales, and minimising the weight decay at fixed ``t`` (AM-GM: balanced terms)
leaves the scalar problem

    min_{t in [0, 1]}  (1 - t)^2 / 2 + c t^{2/(L+1)},
    c = ((L+1)/2) (n lambda_H1 prod_l lambda_W[l] * prod_l ||A_l||_F^2)^{1/(L+1)}.

Deep neural collapse (DNC) has ``A_l`` = identity blocks, ``prod ||A_l||^2 = K^{L+1}`` (the
formula of docs/theory.md). The SRG construction (Sukenik, Lampert, Mondelli 2024, arXiv 2405.14468)
has ``K = C(r, 2)`` classes, the edges of the complete graph on ``r`` vertices, and class means of
rank ``r`` in layers ``1..L-1``; the pre-activation of the last ReLU is ``B^T B - J_K`` (``B`` the
vertex-edge incidence), which the ReLU maps to ``I_K``. Its constant ``c_SRG`` is below ``c_DNC``
for ``L >= 3`` and ``r`` large enough, so DNC is not optimal there.

The scalar problem is solved by bisection on the stationarity condition (fixed iteration count:
``jit``/``vmap``-safe, so the lambdas may be traced).
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ...core.jitting import jit_when_eager
from ...core.validation import SpecError, is_concrete
from .model import POSITIVE_LINEAR, DeepUFMParams, DeepUFMSpec

__all__ = [
    "SRGSolution",
    "dnc_constant",
    "dnc_loss",
    "dnc_point",
    "edge_incidence",
    "power_objective_min",
    "srg_construction",
    "srg_loss",
    "srg_ratio",
]

_BISECTION_STEPS = 100


# -- the scalar problem ------------------------------------------------------------------------
@jit_when_eager(static_argnames=("L",))
def power_objective_min(c, L: int):
    """``min_{t in [0,1]} (1-t)^2/2 + c t^{2/(L+1)}``: returns ``(value, t*)``.

    For ``L = 1`` (``q = 1``) this is ``t* = max(1 - c, 0)``. For ``L >= 2`` (``q = 2/(L+1) < 1``)
    the objective is concave near 0; an interior minimum solves ``t^{1-q} (1-t) = c q`` on the
    decreasing branch ``t >= (1-q)/(2-q)`` (bisection, 100 steps) and competes with ``t = 0``
    (value 1/2). Elementwise in ``c`` (traceable).

    Example:
        >>> v, t = power_objective_min(0.1, 4)
        >>> round(float(v), 6), round(float(t), 6)
        (0.09918, 0.958982)
        >>> float(power_objective_min(1.0, 4)[0])  # large c: the zero solution wins
        0.5
    """
    c = jnp.asarray(c)
    if not jnp.issubdtype(c.dtype, jnp.floating):
        c = c.astype(jnp.result_type(float))
    one = jnp.ones_like(c)
    half = 0.5 * one
    if L == 1:
        t = jnp.clip(1.0 - c, 0.0, 1.0)
        return 0.5 * (1.0 - t) ** 2 + c * t, t
    q = 2.0 / (L + 1)
    t_m = (1.0 - q) / (2.0 - q)
    phi = lambda t: t ** (1.0 - q) * (1.0 - t)  # noqa: E731
    target = c * q

    def body(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        up = phi(mid) > target
        return jnp.where(up, mid, lo), jnp.where(up, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _BISECTION_STEPS, body, (t_m * one, one))
    t = 0.5 * (lo + hi)
    val = 0.5 * (1.0 - t) ** 2 + c * t**q
    ok = (target <= phi(t_m)) & (val < half)
    return jnp.where(ok, val, half), jnp.where(ok, t, jnp.zeros_like(t))


def _lams(spec: DeepUFMSpec):
    """``(n lambda_H1, lambda_W[0], ..., lambda_W[L-1])``: the weights of ``||A_0||^2, ...,
    ||A_L||^2``."""
    return (spec.n * spec.lambda_H1,) + tuple(spec.lambda_W)


def _constant(spec: DeepUFMSpec, log_norms2: float):
    """``c = ((L+1)/2) (prod lams * prod ||A_l||^2)^{1/(L+1)}`` (traceable in the lambdas)."""
    prod = 1.0
    for lam in _lams(spec):
        prod = prod * lam
    e = 1.0 / (spec.L + 1)
    c = 0.5 * (spec.L + 1) * prod**e * math.exp(e * log_norms2)
    return jnp.asarray(c, spec.jnp_dtype)


def dnc_constant(spec: DeepUFMSpec):
    """``c = ((L+1) K / 2) (n lambda_H1 prod_l lambda_W[l])^{1/(L+1)}`` of the DNC loss."""
    _require_mse(spec, "dnc_constant")
    return _constant(spec, (spec.L + 1) * math.log(spec.K))


def dnc_loss(spec: DeepUFMSpec):
    """``L_DNC``: the loss of deep neural collapse with optimal (balanced) scales, MSE, no bias.

    ``L_DNC = min_{t in [0,1]} (1-t)^2/2 + c t^{2/(L+1)}`` with ``c`` = :func:`dnc_constant`
    (docs/theory.md section 4; Sukenik et al. 2023, arXiv 2305.13165). ``L = 1`` gives the MSE
    no-bias
    UFM optimum ``K s (1 - K s/2)`` (``s = sqrt(n lambda_W lambda_H)``), or ``1/2`` for ``K s >=
    1``.
    The value does not depend on the activation; it is attained (:func:`dnc_point`) by ReLU,
    leaky ReLU and identity networks. Traceable in the lambdas.

    Example:
        >>> import ufm
        >>> spec = ufm.DeepUFMSpec(K=4, n=5, L=1, widths=4, lambda_H1=5e-3, lambda_W=5e-3)
        >>> round(float(ufm.deep.dnc_loss(spec)), 7)  # the MSE UFM optimum (docs/theory.md sec. 2)
        0.0437214
    """
    return power_objective_min(dnc_constant(spec), spec.L)[0]


# -- building balanced parameters from a unit shape -----------------------------------------
def _require_mse(spec, fn):
    if not isinstance(spec, DeepUFMSpec):
        raise TypeError(f"{fn} needs a DeepUFMSpec, got {type(spec).__name__}")
    if spec.loss != "mse":
        raise SpecError(f"loss must be 'mse' for {fn} (the DNC/SRG formulas are for the MSE loss)")
    if spec.bias != "none":
        raise SpecError(f"bias must be 'none' for {fn} (the papers' setting)")


def _require_positive(spec):
    for name, lam in [("lambda_H1", spec.lambda_H1)] + [
        (f"lambda_W[{i}]", v) for i, v in enumerate(spec.lambda_W)
    ]:
        if is_concrete(lam) and not lam > 0:
            raise SpecError(f"{name} must be > 0 to build a balanced point (got {lam!r})")


def _embed(A: np.ndarray, shape) -> np.ndarray:
    out = np.zeros(shape)
    out[: A.shape[0], : A.shape[1]] = A
    return out


def _balanced(spec: DeepUFMSpec, mats) -> tuple[DeepUFMParams, jax.Array]:
    """Scale the unit shape ``mats = (A_0, A_1..A_L)`` optimally; returns ``(params, value)``."""
    norms2 = [float(np.sum(A**2)) for A in mats]
    log_norms2 = float(sum(math.log(v) for v in norms2))
    c = _constant(spec, log_norms2)
    value, t = power_objective_min(c, spec.L)
    dtype = spec.jnp_dtype
    # T = t^{2/(L+1)} (prod lam_l ||A_l||^2)^{1/(L+1)}; scale_l = sqrt(T / (lam_l ||A_l||^2))
    T = t ** (2.0 / (spec.L + 1)) * c / (0.5 * (spec.L + 1))
    scales = [jnp.sqrt(T / (lam * nrm)) for lam, nrm in zip(_lams(spec), norms2)]
    H1 = scales[0] * jnp.asarray(np.repeat(mats[0], spec.n, axis=1), dtype)
    Ws = tuple(s * jnp.asarray(A, dtype) for s, A in zip(scales[1:], mats[1:]))
    return DeepUFMParams(Ws, H1.astype(dtype), None), value.astype(dtype)


def dnc_point(spec: DeepUFMSpec) -> DeepUFMParams:
    """The DNC parameters: orthogonal class means of equal norm in every layer, balanced scales.

    ``H_1 = a_0 [I_K; 0] (x) 1_n^T``, ``W_l = a_l [I_K 0; 0 0]``, with ``prod a_l = t*`` and
    ``n lambda_H1 a_0^2 K = lambda_W[l] a_l^2 K`` for all ``l`` (AM-GM), so that
    ``loss(spec, dnc_point(spec)) = dnc_loss(spec)``. It is a critical point for ReLU, leaky ReLU
    and
    identity activations (the off-class pre-activations are exactly 0 with zero residual). Needs
    ``widths >= K``, MSE, no bias, lambdas ``> 0``; ``t* = 0`` gives the origin.

    Example:
        >>> import ufm
        >>> spec = ufm.DeepUFMSpec(K=3, n=2, L=3, widths=4, lambda_H1=4e-3, lambda_W=4e-3)
        >>> p = ufm.deep.dnc_point(spec)
        >>> abs(float(ufm.loss(spec, p) - ufm.deep.dnc_loss(spec))) < 1e-6
        True
    """
    _require_mse(spec, "dnc_point")
    if spec.activation not in POSITIVE_LINEAR:
        raise SpecError(
            f"activation must be one of {', '.join(POSITIVE_LINEAR)} for dnc_point, "
            f"got {spec.activation!r}"
        )
    for i, d in enumerate(spec.widths):
        if d < spec.K:
            raise SpecError(f"widths[{i}] = {d} < K = {spec.K}: DNC needs every width >= K")
    _require_positive(spec)
    K = spec.K
    mats = [_embed(np.eye(K), (spec.widths[0], K))]
    mats += [_embed(np.eye(K), shape) for shape in spec.weight_shapes]
    return _balanced(spec, mats)[0]


# -- the SRG construction ----------------------------------------------------------------------
def edge_incidence(r: int) -> np.ndarray:
    """Vertex-edge incidence matrix ``B`` (``r x C(r,2)``) of the complete graph ``K_r``.

    Edges in lexicographic order ``(0,1), (0,2), ..., (r-2, r-1)``; each column has two ones and
    each
    row ``r - 1``. ``B^T B - J`` has 1 on the diagonal, 0 for edges sharing a vertex and -1 for
    disjoint edges (rank ``r`` for ``r != 4``).

    Example:
        >>> edge_incidence(3).astype(int).tolist()
        [[1, 1, 0], [1, 0, 1], [0, 1, 1]]
    """
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 3:
        raise SpecError(f"r must be an integer >= 3, got {r!r}")
    edges = list(itertools.combinations(range(r), 2))
    B = np.zeros((r, len(edges)))
    for k, (i, j) in enumerate(edges):
        B[i, k] = B[j, k] = 1.0
    return B


def _triangular_root(K: int):
    r = int(round((1 + math.sqrt(1 + 8 * K)) / 2))
    return r if r * (r - 1) // 2 == K else None


def _upper_hull_at(points, nodes) -> np.ndarray:
    """Upper concave hull of ``points`` (sorted by x), evaluated at ``nodes`` (-inf past the last
    point)."""
    hull: list = []
    for p in points:
        while len(hull) >= 2:
            (ax, ay), (bx, by) = hull[-2], hull[-1]
            if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    xs = np.array([h[0] for h in hull], float)
    ys = np.array([h[1] for h in hull], float)
    out = np.interp(nodes, xs, ys)
    return np.where(np.asarray(nodes) > xs[-1], -np.inf, out)


def _srg_offsets(r: int, L: int, optimize_offsets: bool) -> np.ndarray:
    """``x_l = (sigma_1 / sigma_perp)^2`` of the class means of ``H_l``, ``l = 1..L-1``.

    The class means ``X_l = p B + t_l J`` have two singular values: ``sqrt(x_l)`` along ``1_K`` and
    1
    (multiplicity ``r-1``) on the rest of the row space of ``B``. With ``q = (lambda_1 /
    lambda_perp)^2`` the eigenvalue ratio of ``M = B^T B - J``, the cost to minimise is
    ``sum_{l=0}^{L-1} log(x_{l+1}/x_l + r - 1)`` with ``x_0 = 1``, ``x_L = q``; the post-ReLU layers
    ``2..L-1`` need ``X_l >= 0``, i.e. ``x_l >= 2(r-1)/(r-2)``. Convex in ``u = log x`` with a
    lower obstacle: the minimiser is the taut string, the upper concave hull of the endpoints and
    the obstacle points (increments non-increasing, constant off the obstacle; KKT).
    """
    gamma = 2.0 * (r - 1) / (r - 2)
    if not optimize_offsets:
        return np.full(L - 1, gamma)
    lam1 = -(r - 1) * (r - 4) / 2.0
    q = (lam1 / (r - 2)) ** 2
    g = math.log(gamma)
    pts = [(0.0, 0.0)] + [(float(l), g) for l in range(2, L)]
    if q > 0:
        pts.append((float(L), math.log(q)))
    return np.exp(_upper_hull_at(pts, np.arange(1, L, dtype=float)))


def _srg_shape(r: int, L: int, optimize_offsets: bool):
    """Unit shape ``(X_1, W_1, ..., W_L)`` (unembedded) and the offsets ``x``."""
    K = r * (r - 1) // 2
    B = edge_incidence(r)
    J = np.ones((r, K))
    M = B.T @ B - np.ones((K, K))  # ReLU(M) = I_K
    x = _srg_offsets(r, L, optimize_offsets)
    p = 1.0 / math.sqrt(r - 2)
    # X = p B + t J has Gram eigenvalue 1 on the (r-1)-dim part and x along 1_K:
    t = (-2.0 * p * K + np.sqrt(r * K * x)) / (r * K)
    X = [p * B + ti * J for ti in t]
    mats = [X[0]]
    for l in range(L - 2):
        mats.append(X[l + 1] @ np.linalg.pinv(X[l], rcond=1e-10))
    mats.append(M @ np.linalg.pinv(X[L - 2], rcond=1e-10))
    mats.append(np.eye(K))
    return mats, x


def srg_ratio(r: int, L: int, optimize_offsets: bool = True) -> float:
    """``c_SRG / c_DNC`` for ``K = C(r, 2)`` classes and ``L`` layers (independent of n and
    lambdas).

    The SRG construction has the lower loss iff this is ``< 1`` (and the DNC loss is below 1/2).
    With ``optimize_offsets=False`` (class means exactly ``∝ B``) it is
    ``(2^{L-3} r / (r-1)^{L-2})^{1/(L+1)}``.

    Example:
        >>> round(srg_ratio(5, 4), 4), round(srg_ratio(5, 2), 4), round(srg_ratio(12, 3), 4)
        (0.9014, 1.2515, 0.9717)
    """
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 2:
        raise SpecError(f"L must be an integer >= 2 for the SRG construction, got {L!r}")
    mats, _ = _srg_shape(int(r), int(L), optimize_offsets)
    K = r * (r - 1) // 2
    log_p = sum(math.log(float(np.sum(A**2))) for A in mats)
    return math.exp((log_p - (L + 1) * math.log(K)) / (L + 1))


class SRGSolution(NamedTuple):
    """Output of :func:`srg_construction`.

    Attributes:
        params: the constructed :class:`~ufm.DeepUFMParams` (balanced scales).
        loss: its loss ``L_SRG`` (an upper bound on the global minimum).
        r: vertices of the graph, ``K = C(r, 2)``.
        ratio: ``c_SRG / c_DNC`` (:func:`srg_ratio`).
        offsets: ``x_1..x_{L-1}``, squared ratio of the ``1_K`` singular value to the others in the
            class means of ``H_1..H_{L-1}`` (``2(r-1)/(r-2)`` for means exactly ``∝ B``).
        ranks: ranks of the class means of ``H_1..H_L`` and of the last ReLU's pre-activation.
    """

    params: DeepUFMParams
    loss: jax.Array
    r: int
    ratio: float
    offsets: np.ndarray
    ranks: dict


def _check_srg(spec: DeepUFMSpec, r, fn: str) -> int:
    _require_mse(spec, fn)
    if spec.activation != "relu":
        raise SpecError(
            f"activation must be 'relu' for {fn} (the construction relies on ReLU(M) = I)"
        )
    if spec.L < 2:
        raise SpecError(
            f"L must be >= 2 for {fn} (the construction needs a ReLU layer), got {spec.L}"
        )
    r0 = _triangular_root(spec.K)
    if r is None:
        if r0 is None:
            raise SpecError(
                f"K = {spec.K} is not C(r, 2) for an integer r; the SRG construction needs it"
            )
        r = r0
    if (
        isinstance(r, bool)
        or not isinstance(r, (int, np.integer))
        or r < 3
        or r * (r - 1) // 2 != spec.K
    ):
        raise SpecError(f"r must be an integer >= 3 with K = r(r-1)/2 = {spec.K}, got {r!r}")
    return int(r)


def srg_construction(
    spec: DeepUFMSpec, r: int | None = None, *, optimize_offsets: bool = True
) -> SRGSolution:
    """Low-rank SRG-type solution of the deep ReLU UFM (Sukenik, Lampert, Mondelli 2024, arXiv
    2405.14468).

    ``K = C(r, 2)`` classes are the edges of ``K_r`` (``r`` defaults to the root of ``K``). The
    class
    means of ``H_1..H_{L-1}`` are ``X_l = p B + t_l 1 1^T`` (rank ``r``, non-negative for
    ``l >= 2`` so the ReLU is inert), ``W_l = X_{l+1} X_l^+``, the last ReLU's pre-activation is
    ``M = W_{L-1} X_{L-1} = B^T B - J`` (rank ``r``; ``r - 1`` for ``r = 4``), ``H_L = ReLU(M) =
    I_K``
    and ``W_L = I``, all scaled optimally (balanced). docs/theory.md's construction (means exactly
    ``∝ B``)
    is ``optimize_offsets=False``; the default also optimises the offsets ``t_l`` (a convex problem
    solved in closed form, see ``_srg_offsets``), which lowers the loss; :func:`srg_ratio` is then
    ``< 1`` for ``L = 3, r >= 11`` and ``L >= 4, r >= 4`` (``L = 2``: never; means ``∝ B``: ``L =
    3``
    never, ``L >= 4`` from ``r = 4``). The paper's own construction may differ: treat ``L_SRG`` as
    an upper bound on the
    global minimum (it is the exact loss of the returned point).

    Needs MSE, no bias, ReLU, ``L >= 2``, ``widths[l] >= r`` for ``l < L-1`` and ``widths[L-1] >=
    K``,
    lambdas ``> 0``.

    Example:
        >>> import ufm
        >>> spec = ufm.DeepUFMSpec(K=10, n=1, L=4, widths=(5, 5, 5, 10), lambda_H1=4e-3,
        ...                        lambda_W=4e-3)
        >>> sol = ufm.deep.srg_construction(spec)
        >>> bool(sol.loss < ufm.deep.dnc_loss(spec)), sol.ranks["H"]
        (True, (5, 5, 5, 10))
    """
    r = _check_srg(spec, r, "srg_construction")
    K, L = spec.K, spec.L
    for i, d in enumerate(spec.widths):
        need = K if i == L - 1 else r
        if d < need:
            raise SpecError(
                f"widths[{i}] = {d} < {need}: the SRG construction needs d_l >= r for "
                f"l < L and d_L >= K"
            )
    _require_positive(spec)
    mats, x = _srg_shape(r, L, optimize_offsets)
    dims = spec.dims
    emb = [_embed(mats[0], (dims[0], K))] + [
        _embed(A, shape) for A, shape in zip(mats[1:], spec.weight_shapes)
    ]
    params, value = _balanced(spec, emb)
    ranks = {
        "H": tuple(r if xi > 0 else r - 1 for xi in x) + (K,),
        "M": r - 1 if r == 4 else r,
    }
    log_p = sum(math.log(float(np.sum(A**2))) for A in mats)
    ratio = math.exp((log_p - (L + 1) * math.log(K)) / (L + 1))
    return SRGSolution(params, value, r, ratio, x, ranks)


def srg_loss(spec: DeepUFMSpec, r: int | None = None, *, optimize_offsets: bool = True):
    """``L_SRG``, the loss of :func:`srg_construction` (no parameters built; traceable in the
    lambdas).

    ``L_SRG = min_t (1-t)^2/2 + c_SRG t^{2/(L+1)}``, ``c_SRG = srg_ratio(r, L) *
    dnc_constant(spec)``.
    """
    r = _check_srg(spec, r, "srg_loss")
    c = dnc_constant(spec) * srg_ratio(r, spec.L, optimize_offsets)
    return power_objective_min(c, spec.L)[0]


def deep_reference_value(spec: DeepUFMSpec) -> float:
    """The deep UFM's reference value for the ``closed_form`` analysis: :func:`dnc_loss`.

    Raises ``SpecError`` naming the field where ``L_DNC`` is not attained: it needs MSE without
    bias, an activation with ``sigma(x) = x`` for ``x >= 0`` and every width ``>= K``.
    """
    if spec.loss != "mse" or spec.bias != "none":
        raise SpecError(
            "the deep-UFM reference ufm.deep.dnc_loss needs loss = 'mse' and bias = "
            f"'none' (got loss={spec.loss!r}, bias={spec.bias!r})"
        )
    if spec.activation not in POSITIVE_LINEAR:
        raise SpecError(
            f"the deep-UFM reference ufm.deep.dnc_loss is attained only for activation "
            f"in {', '.join(POSITIVE_LINEAR)}; got {spec.activation!r}"
        )
    if min(spec.widths) < spec.K:
        raise SpecError(
            f"the deep-UFM reference ufm.deep.dnc_loss needs every width >= K = "
            f"{spec.K} (orthogonal class means); got widths={spec.widths}"
        )
    return float(dnc_loss(spec))
