"""Classification of deep-UFM critical points: the model facts behind :func:`ufm.classify`.

:func:`ufm.classify` and :func:`ufm.classify_batch` accept a :class:`ufm.DeepUFMSpec` and return
the same :class:`ufm.landscape.CriticalPointRecord` fields and columns as for the UFM. This module
registers
the deep UFM's facts with the hooks of :mod:`ufm.systems.ufm.facts`:

* reference value ``f_star = L_DNC`` (:func:`ufm.deep.dnc_loss`; MSE without bias, else ``nan``),
  ``f_gap = f - L_DNC``. It is *not* the global minimum: low-rank solutions can go below it
  (Sukenik, Lampert, Mondelli 2024, arXiv 2405.14468), so ``f_gap < 0`` is possible and decides
  nothing by itself;
* no global-optimality certificate and no curvature bound: ``sigma_1``, ``certificate_gap``,
  ``cert_tol`` and ``curvature_bound`` are ``nan``;
* ``rank``: the numerical rank ``r_1`` of ``[W_1; H_1^T]`` (``= rank W_1 = rank H_1`` at a critical
  point, where ``lambda_W[0] W_1^T W_1 = lambda_H1 H_1 H_1^T``), thresholds ``rank_rtol``,
  ``rank_atol`` as for the UFM;
* ``zero_modes_predicted``: :func:`deep_zero_mode_count`, the dimension of the orbit of the
  continuous symmetry group through the point.

Classes (tolerances as for the UFM, :mod:`ufm.landscape.classify`): ``NOT_CRITICAL`` (``||grad f|| >
grad_tol``), ``STRICT_SADDLE`` (``lambda_min < -zero_tol``), and for points without negative
curvature ``LOCAL_MIN`` (zero modes as predicted: a Morse-Bott local minimum whose global status is
undecided, since the deep UFM has no closed-form optimum), ``UNDECIDED`` (a zero-mode mismatch
that depends on the tolerance) or ``DEGENERATE`` (firmly extra or missing zero modes: the
second-order test is inconclusive; warned about); ``NON_FINITE`` points never reach LAPACK.
Never ``GLOBAL_MIN`` or ``SPURIOUS_MIN``. ``orbit_scale`` (the smallest non-zero singular value of
the unit-norm generator tangents) widens ``zero_tol`` as for the UFM. The deep UFM is not benign:
for ``L >= 2`` the origin is a strict local minimum (Hessian ``diag(lambda)``, ``f = 1/2`` for
MSE) and rank-deficient points are local minima too.

Continuous symmetries (``f`` invariant; each contributes zero modes):

* always ``O(d_1)``: ``W_1 -> W_1 Q``, ``H_1 -> Q^T H_1``;
* identity activation: ``O(d_l)`` at every hidden layer ``l = 2..L``: ``W_{l-1} -> Q W_{l-1}``,
  ``b_{l-1} -> Q b_{l-1}``, ``W_l -> W_l Q^T``; for MSE also the class rotations ``W_L -> O W_L``,
  ``b_L -> O b_L``, ``H_1 -> H_1 (O^T (x) I_n)`` (the network is linear in ``H_1`` and ``O Y (O^T
  (x) I_n) = Y``), ``O in O(K)`` (with biases ``O 1 = 1``: ``O(K-1)``); for free biases the
  translations ``b_{l-1} -> b_{l-1} + v``, ``b_l -> b_l - W_l v``;
* CE with a free bias: ``b_L -> b_L + c 1``;
* elementwise smooth activations (``tanh``, ``softplus``, ``gelu``, ``silu``) break the hidden
  rotations to permutations (no zero modes); ReLU and leaky ReLU away from their kinks keep them
  on the locally linear piece: rotations among units whose pre-activation has one sign on all
  samples, translations of such units' free biases, and the class rotations when every hidden unit
  is of that kind. The within-class rotations of a locally linear network (``H_1 -> H_1 R``, ``R``
  acting on the ``N - K`` within-class directions) are left out: features are collapsed at its
  critical points, so they move nothing there.

Zero-mode formula (verified against dense Hessians in ``tests/test_classify_deep.py``; ``z(d, r) =
d(d-1)/2 - (d-r)(d-r-1)/2``, ``dim O(d)`` minus the stabiliser ``O(d - r)``):

* smooth activations: ``z(d_1, r_1)`` (``+1`` for CE with a free bias), computed so;
* identity, MSE, no bias, at a critical point: the class-mean map ``T = W_L ... W_1 M`` (``M`` the
  class means of ``H_1``) is symmetric PSD with ``r`` non-zero eigenvalues of multiplicities
  ``m_1, m_2, ...`` (each a stationary point of the scalar problem of :func:`ufm.deep.dnc_loss`, so
  at
  most two distinct values) and every ``W_l`` has rank ``r``; the chain ``M, W_1, ..., W_L`` is a
  loop through the class space, and the stabiliser is ``prod_l O(d_l - r) x O(K - r) x prod_j
  O(m_j)``, so ``#zero = sum_{l=1}^{L} z(d_l, r) + z(K, r) - sum_j m_j (m_j - 1)/2``. At the DNC
  point (``r = K``) that is ``sum_l z(d_l, K)``; with ``r < K`` classes at the DNC scale it is
  ``sum_l z(d_l, r) + r (K - r)`` (the Grassmannian of the fitted class subspace).

Several groups acting on shared matrices (identity, ReLU) can have a stabiliser larger than the
product of their stabilisers, so there the count is computed directly: the numerical rank of the
``G x p`` matrix of generator tangents (``G = sum_l d_l(d_l-1)/2 + K(K-1)/2 + sum_l d_l + 1`` at
most; an SVD of ``O(G^2 p)``, about 2 s per point for ``K = 10``, ``L = 4``, widths 30 on a CPU
core: widths up to ~50). Checked equal to the dense Hessian's zero count at every point of the
tests: identity DNC and ``t_a/t_b/0`` patterns (``L = 2, 3``), an identity network with free biases
(rank ``K - 1``: ``sum_l z(d_l, K-1)`` plus ``sum_{l>=2} d_l`` translations, the ``O(K-1)`` class
rotations absorbed), the same point on the linear piece of ReLU, tanh minima and saddles.

ReLU and leaky ReLU: the Hessian is not defined where a pre-activation ``Z_l = W_l H_l (+ b_l)``,
``l < L``, has an entry at 0. :func:`ufm.classify` raises ``ValueError`` naming the layer and the
number of entries with ``|z| <= kink_rtol max |Z_l|``. Such exact zeros are the rule at DNC and
low-rank ReLU solutions (dead units with weight decay): study those with ``identity`` or a smooth
activation. Away from kinks the classification is that of the locally smooth (piecewise linear)
piece, whose Hessian autodiff returns.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ...landscape.facts import (
    ModelFacts,
    default_tolerances,
    numerical_rank_of,
    orbit_rank_and_scale,
)
from .model import LEAKY_SLOPE, DeepUFMParams, DeepUFMSpec, deep_features
from .theory import dnc_loss

__all__ = [
    "deep_zero_mode_count",
    "deep_validate_params",
    "deep_classification_facts",
    "deep_num_global_params",
    "deep_classification_check",
    "KINKED",
]

#: Activations with a kink at 0 (no Hessian there).
KINKED = ("relu", "leaky_relu")
#: Activations for which the hidden-layer symmetries are (locally) linear rotations.
PIECEWISE_LINEAR = ("identity",) + KINKED


def _z(d: int, r):
    return d * (d - 1) // 2 - (d - r) * (d - r - 1) // 2


# -- input checks and the ReLU kink test --------------------------------------------------------
def deep_validate_params(spec: DeepUFMSpec, params, *, batched: bool, tols) -> None:
    """Shape checks of a deep-UFM point (or batch), and the ReLU kink test."""
    if not isinstance(params, DeepUFMParams):
        raise TypeError(
            f"params must be DeepUFMParams for a DeepUFMSpec, got {type(params).__name__}"
        )
    if len(params.Ws) != spec.L:
        raise ValueError(f"params.Ws has {len(params.Ws)} matrices, spec.L = {spec.L}")
    for i, (W, shape) in enumerate(zip(params.Ws, spec.weight_shapes)):
        if W.shape[-2:] != shape:
            raise ValueError(f"params.Ws[{i}] (W_{i + 1}) has shape {W.shape}, expected {shape}")
    if params.H1.shape[-2:] != (spec.widths[0], spec.N):
        raise ValueError(
            f"params.H1 has shape {params.H1.shape}, expected {(spec.widths[0], spec.N)}"
        )
    if (params.biases is None) == spec.has_bias:
        raise ValueError(
            f"params.biases must be {'a tuple' if spec.has_bias else 'None'} for bias={spec.bias!r}"
        )
    if spec.activation in KINKED and spec.L > 1:
        _check_kinks(spec, params, batched, tols.kink_rtol)


@jax.jit
def _kink_counts(spec, params, rtol):
    """Entries of each pre-activation ``Z_l`` (``l < L``) with ``|z| <= rtol * max |Z_l|``."""
    Zs = deep_features(spec, params).Z[:-1]
    return jnp.stack([jnp.sum(jnp.abs(Z) <= rtol * jnp.max(jnp.abs(Z))) for Z in Zs])


def _check_kinks(spec, params, batched: bool, rtol: float) -> None:
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(params)):
        raise ValueError(
            f"classify cannot check the kinks of activation={spec.activation!r} on traced params: "
            "call ufm.classify outside jit/vmap, or ufm.classify_batch for a batch"
        )
    fn = jax.vmap(_kink_counts, in_axes=(None, 0, None)) if batched else _kink_counts
    counts = np.asarray(fn(spec, params, rtol)).reshape(-1, spec.L - 1)
    bad = np.flatnonzero(counts.sum(axis=1))
    if not bad.size:
        return
    size = spec.N * np.asarray(spec.widths[1:])

    def describe(c):
        return ", ".join(
            f"layer {l + 1}: {c[l]} of {size[l]} entries of Z_{l + 1} = W_{l + 1} H_{l + 1}"
            for l in np.flatnonzero(c)
        )

    where = (
        describe(counts[0])
        if not batched
        else "; ".join(f"point {i}: {describe(counts[i])}" for i in bad[:5])
        + (f"; ... ({bad.size} points in all)" if bad.size > 5 else "")
    )
    raise ValueError(
        f"the Hessian is not defined at a kink of activation={spec.activation!r}: pre-activation "
        f"entries within kink_rtol={rtol:g} * max|Z_l| of 0 ({where}). Exact zeros are common at "
        "DNC and low-rank ReLU solutions; classify such points with activation='identity' or a "
        "smooth activation (tanh, softplus, gelu)"
    )


# -- symmetry zero modes --------------------------------------------------------------------------
def _skew_basis(d: int, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Basis ``e_j e_k^T - e_k e_j^T`` (``j < k``) of ``so(d)``, ``(m, d, d)``, and the pairs."""
    j, k = np.triu_indices(d, 1)
    E = np.zeros((j.size, d, d), dtype)
    E[np.arange(j.size), j, k] = 1.0
    E[np.arange(j.size), k, j] = -1.0
    return E, j, k


def _unit_signs(spec: DeepUFMSpec, params: DeepUFMParams):
    """Per hidden layer: ``(linear, slope)`` of each unit on the locally linear piece.

    ``linear[j]``: the unit's pre-activation has one sign on every sample (identity: every unit);
    ``slope[j]``: the activation's slope there. Rotations may mix units of equal slope only.
    """
    Zs = deep_features(spec, params).Z[:-1]
    out = []
    for Z in Zs:
        if spec.activation == "identity":
            lin = jnp.ones(Z.shape[0], bool)
            slope = jnp.ones(Z.shape[0], Z.dtype)
        else:
            pos, neg = jnp.all(Z > 0, axis=1), jnp.all(Z < 0, axis=1)
            lin = pos | neg
            neg_slope = 0.0 if spec.activation == "relu" else LEAKY_SLOPE
            slope = jnp.where(pos, 1.0, neg_slope).astype(Z.dtype)
        out.append((lin, slope))
    return out


def _tangents(spec: DeepUFMSpec, params: DeepUFMParams):
    """Rows: flattened tangent vectors of the symmetry generators (masked rows are zero)."""
    dtype = params.H1.dtype
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    flat = lambda t: ravel_pytree(t)[0]  # noqa: E731
    rows = []

    def add(fn, basis, mask=None):
        if basis.shape[0] == 0:
            return
        basis = np.asarray(basis, dtype)  # generators of unit Frobenius norm (the orbit scale)
        basis = basis / np.linalg.norm(basis.reshape(basis.shape[0], -1), axis=1).reshape(
            (-1,) + (1,) * (basis.ndim - 1)
        )
        T = jax.vmap(lambda x: flat(fn(x)))(jnp.asarray(basis, dtype))
        rows.append(T if mask is None else T * mask[:, None].astype(dtype))

    def set_w(t, i, v):
        return t._replace(Ws=tuple(v if m == i else w for m, w in enumerate(t.Ws)))

    def set_b(t, i, v):
        return t._replace(biases=tuple(v if m == i else b for m, b in enumerate(t.biases)))

    Ws, H1, bs = params.Ws, params.H1, params.biases
    # O(d_1) on (W_1, H_1)
    E, _, _ = _skew_basis(spec.widths[0], dtype)
    add(lambda X: set_w(zero._replace(H1=-X @ H1), 0, Ws[0] @ X), E)
    if spec.activation in PIECEWISE_LINEAR:
        signs = _unit_signs(spec, params)
        for i in range(1, spec.L):  # hidden node H_{i+1}: rows of W_i, columns of W_{i+1}
            lin, slope = signs[i - 1]
            E, j, k = _skew_basis(spec.widths[i], dtype)

            def rot(X, i=i):
                t = set_w(set_w(zero, i - 1, X @ Ws[i - 1]), i, -Ws[i] @ X)
                return t if bs is None else set_b(t, i - 1, X @ bs[i - 1])

            add(rot, E, lin[j] & lin[k] & (slope[j] == slope[k]))
            if spec.bias == "free":  # b_i -> b_i + v, b_{i+1} -> b_{i+1} - slope W_{i+1} v
                add(
                    lambda v, i=i, s=slope: set_b(set_b(zero, i - 1, v), i, -Ws[i] @ (s * v)),
                    np.eye(spec.widths[i], dtype=dtype),
                    lin,
                )
        if spec.loss == "mse":  # class rotations, valid where the network is affine in H_1
            affine = jnp.all(jnp.stack([jnp.all(lin) for lin, _ in signs])) if signs else True
            K, n = spec.K, spec.n
            if spec.has_bias:  # O(K-1) fixing 1_K
                U = np.linalg.svd(np.eye(K) - 1.0 / K)[0][:, : K - 1]
                basis = np.einsum("ia,mab,jb->mij", U, _skew_basis(K - 1, dtype)[0], U)
            else:
                basis = _skew_basis(K, dtype)[0]

            def cls(A):
                t = set_w(
                    zero._replace(H1=H1 @ jnp.kron(A.T, jnp.eye(n, dtype=dtype))),
                    spec.L - 1,
                    A @ Ws[-1],
                )
                return t if bs is None else set_b(t, spec.L - 1, A @ bs[-1])

            add(cls, basis, jnp.broadcast_to(jnp.asarray(affine), (basis.shape[0],)))
    if spec.loss == "ce" and spec.bias == "free":
        add(lambda v: set_b(zero, spec.L - 1, v), np.ones((1, spec.K), dtype))
    return jnp.concatenate(rows) if rows else jnp.zeros((0, 1), dtype)


def _first_layer_rank(params, rtol, atol):
    return numerical_rank_of(jnp.concatenate([params.Ws[0], params.H1.T], axis=0), rtol, atol)


def _zero_modes_and_scale(spec, params, rtol, atol):
    """Orbit dimension (the predicted zero modes) and the orbit scale
    (:func:`ufm.landscape.facts.orbit_rank_and_scale`) of the symmetry generators at the point."""
    if spec.activation in PIECEWISE_LINEAR:
        return orbit_rank_and_scale(_tangents(spec, params), rtol, atol)
    E, _, _ = _skew_basis(spec.widths[0], params.H1.dtype)  # O(d_1) on (W_1, H_1) only
    E = E / np.sqrt(2.0)
    W1, H1 = params.Ws[0], params.H1
    if H1.shape[1] > H1.shape[0]:  # ||E H_1||_F depends on H_1 H_1^T only: compress exactly
        H1 = jnp.linalg.qr(H1.T, mode="r").T
    T = jnp.concatenate(
        [
            jnp.einsum("kd,mde->mke", W1, E).reshape(E.shape[0], -1),
            jnp.einsum("mde,en->mdn", E, H1).reshape(E.shape[0], -1),
        ],
        axis=1,
    )
    rank, scale = orbit_rank_and_scale(T, rtol, atol)
    extra = 1 if (spec.loss == "ce" and spec.bias == "free") else 0
    return (rank + extra).astype(jnp.int32), scale


def _zero_modes(spec, params, rtol, atol):
    return _zero_modes_and_scale(spec, params, rtol, atol)[0]


def deep_zero_mode_count(
    spec: DeepUFMSpec, params: DeepUFMParams, *, rank_rtol=None, rank_atol=None
) -> jax.Array:
    """Predicted number of symmetry zero modes of the Hessian at a deep-UFM point.

    The dimension of the orbit through ``params`` of the continuous symmetry group (module
    docstring): for smooth activations ``z(d_1, r_1) = d_1(d_1-1)/2 - (d_1-r_1)(d_1-r_1-1)/2``
    with ``r_1`` the numerical rank of ``[W_1; H_1^T]`` (``+1`` for CE with a free bias); for
    identity, ReLU and leaky ReLU the numerical rank of the generator tangents, which at critical
    points of the deep linear MSE model equals ``sum_l z(d_l, r) + z(K, r) - sum_j m_j(m_j-1)/2``.
    At a Morse-Bott critical point every other Hessian eigenvalue is non-zero. Singular values
    count above ``max(rank_rtol * sigma_1, rank_atol)`` (defaults ``1e-8``, ``1e-6``; float32
    ``1e-3``, ``1e-3``). Jit-compiled (one compilation per spec shape), vmappable; returns an
    ``int32`` scalar.

    Example:
        >>> import ufm
        >>> spec = ufm.DeepUFMSpec(K=3, n=2, L=2, widths=4, activation="identity")
        >>> int(ufm.deep.deep_zero_mode_count(spec, ufm.deep.dnc_point(spec)))  # 2 * z(4, 3)
        12
    """
    tols = default_tolerances(
        jax.tree_util.tree_leaves(params)[0].dtype, rank_rtol=rank_rtol, rank_atol=rank_atol
    )
    dtype = params.H1.dtype
    return _zero_modes_jit(
        spec, params, jnp.asarray(tols.rank_rtol, dtype), jnp.asarray(tols.rank_atol, dtype)
    )


_zero_modes_jit = jax.jit(_zero_modes)


# -- the facts of a record ------------------------------------------------------------------------
def deep_classification_facts(spec: DeepUFMSpec, params, tols) -> ModelFacts:
    """The deep UFM's facts for :func:`ufm.classify` (module docstring)."""
    dtype = params.H1.dtype
    c = lambda v: jnp.asarray(v, dtype)  # noqa: E731
    nan = c(jnp.nan)
    rtol, atol = c(tols.rank_rtol), c(tols.rank_atol)
    f_ref = dnc_loss(spec).astype(dtype) if (spec.loss == "mse" and spec.bias == "none") else nan
    zero_modes, scale = _zero_modes_and_scale(spec, params, rtol, atol)
    return ModelFacts(
        f_star=f_ref,
        ref_is_optimum=jnp.asarray(False),
        sigma_1=nan,
        certificate_gap=nan,
        cert_bound=nan,
        curvature_bound=nan,
        rank=_first_layer_rank(params, rtol, atol),
        zero_modes_predicted=zero_modes,
        orbit_scale=scale,
    )


def deep_num_global_params(spec: DeepUFMSpec) -> int:
    """Size of the global block (everything but ``H_1``)."""
    return spec.num_params - spec.widths[0] * spec.N


def deep_classification_check(spec: DeepUFMSpec) -> None:
    """Reject kinked activations up front (the ``hessian`` analysis of a sweep)."""
    if spec.activation in KINKED:
        raise ValueError(
            f"activation={spec.activation!r}: trained end points sit at its kink "
            "(dead units, exact zeros), where the Hessian is not defined; the hessian "
            "analysis needs a smooth activation (identity, tanh, softplus, gelu, ...). "
            "Classify single ReLU points away from kinks with ufm.classify"
        )
