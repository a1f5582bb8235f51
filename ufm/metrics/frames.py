"""Geometry of a set of K vectors or of a K x K Gram matrix: the label-free half of NC2.

These primitives measure how far K vectors (the columns of a ``(d, K)`` matrix: centred class
means ``M``, or classifier rows ``W^T``) are from a simplex equiangular tight frame (ETF) or from
an orthogonal frame (docs/theory.md section 5). They take no labels, so the deep-UFM metrics and the
feature-collapse subpackage use them on any layer. All are pure ``jax.numpy`` functions with static
shapes: ``jit``- and ``vmap``-compatible, dtype in = dtype out.

Degenerate inputs are defined, never NaN: a zero vector has cosine 0 with every vector, a zero Gram
matrix normalises to 0, and a coefficient of variation with zero mean is 0 (all norms are then 0).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnums=(0, 1))
def _jit_call(fn, static, *args):
    return fn(*args, **dict(static))


def jit_call(fn, *args, **static):
    """``fn(*args, **static)`` as one compiled call, cached per ``(fn, static values, shapes,
    dtypes)``.

    The public metrics validate their inputs in Python, then run a module-level implementation
    through this, so an eager call is one dispatch (not one per primitive) and a call inside an
    outer ``jit``/``vmap`` simply inlines. ``static`` values must be hashable (Python scalars).
    """
    return _jit_call(fn, tuple(sorted(static.items())), *args)


def as_float(x) -> jax.Array:
    """``x`` as a floating JAX array (integers become the default float dtype)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
    """``num / den`` for ``num, den >= 0`` with ``0/0 = 0`` and ``x/0 = inf`` for ``x > 0``."""
    pos = den > 0
    q = num / jnp.where(pos, den, jnp.ones_like(den))
    return jnp.where(pos, q, jnp.where(num > 0, jnp.full_like(q, jnp.inf), jnp.zeros_like(q)))


def fro_normalize(A: jax.Array) -> jax.Array:
    """``A / ||A||_F``, with ``0 / 0 = 0``."""
    nrm = jnp.sqrt(jnp.sum(A**2))
    return A / jnp.where(nrm > 0, nrm, jnp.ones_like(nrm))


def _vectors(vectors, name: str = "vectors") -> jax.Array:
    V = as_float(vectors)
    if V.ndim != 2:
        raise ValueError(
            f"{name} must be a (d, K) matrix whose columns are the vectors, got shape {V.shape}"
        )
    if V.shape[1] < 2:
        raise ValueError(f"{name} must have at least 2 columns (vectors), got shape {V.shape}")
    return V


def _square(G, name: str = "G") -> jax.Array:
    G = as_float(G)
    if G.ndim != 2 or G.shape[0] != G.shape[1] or G.shape[0] < 2:
        raise ValueError(f"{name} must be a K x K matrix with K >= 2, got shape {G.shape}")
    return G


def cosines(vectors) -> jax.Array:
    """The ``K x K`` matrix of cosines between the columns of ``vectors`` (a zero column: cosine
    0)."""
    return jit_call(_cosines, _vectors(vectors))


def _cosines(V):
    nrm = jnp.sqrt(jnp.sum(V**2, axis=0))
    U = V / jnp.where(nrm > 0, nrm, jnp.ones_like(nrm))
    return U.T @ U


def _pairs(K: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(K, 1)


def _check_ddof(count: int, ddof: int, what: str) -> None:
    if count - ddof <= 0:
        raise ValueError(f"ddof={ddof} leaves no degrees of freedom for {count} {what}")


def equinorm(vectors, ddof: int = 0) -> jax.Array:
    """NC2 equinorm: coefficient of variation ``std / mean`` of the column norms of ``vectors``.

    Papyan, Han & Donoho 2020 (arXiv 2008.08186), Fig. 4: pass the centred class means ``M`` (d, K)
    or the classifier ``W.T``. Zero at collapse (all norms equal); ``0`` when every column is zero.
    ``ddof`` is that of ``numpy.std``: the default 0 is the population std; Papyan's code
    (``torch.std``) uses ``ddof=1``.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(equinorm(jnp.array([[3.0, 0.0], [0.0, 1.0]]))), 6)  # norms 3, 1
        0.5
    """
    V = _vectors(vectors)
    _check_ddof(V.shape[1], ddof, "norms")
    return jit_call(_equinorm, V, ddof=int(ddof))


def _equinorm(V, ddof=0):
    norms = jnp.sqrt(jnp.sum(V**2, axis=0))
    return safe_div(jnp.std(norms, ddof=ddof), jnp.mean(norms))


def equiangularity(vectors, ddof: int = 0) -> jax.Array:
    """NC2 equiangularity: standard deviation of the ``K(K-1)/2`` pairwise cosines of the columns.

    Papyan et al. 2020 (arXiv 2008.08186), Fig. 5 ("Std(cos)"). Zero when all angles are equal,
    whatever the angle (an orthogonal frame also gives 0); :func:`max_angle_deviation` measures the
    distance to the simplex angle. ``ddof`` as in :func:`equinorm` (Papyan's code: ``ddof=1``).

    Example:
        >>> import jax.numpy as jnp
        >>> float(equiangularity(jnp.eye(3)))  # all cosines 0
        0.0
    """
    V = _vectors(vectors)
    K = V.shape[1]
    _check_ddof(K * (K - 1) // 2, ddof, "pairs")
    return jit_call(_equiangularity, V, ddof=int(ddof))


def _equiangularity(V, ddof=0):
    return jnp.std(_cosines(V)[_pairs(V.shape[1])], ddof=ddof)


def max_angle_deviation(vectors) -> jax.Array:
    """NC2 maximal-angle equiangularity: mean over pairs of ``|cos(v_i, v_j) + 1/(K-1)|``.

    Papyan et al. 2020 (arXiv 2008.08186), Fig. 6 ("Avg |cos + 1/(C-1)|"). Zero exactly when all
    pairwise angles equal the simplex-ETF angle ``arccos(-1/(K-1))``.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(max_angle_deviation(jnp.eye(3) - 1 / 3)), 6)  # centred basis: a simplex
        0.0
    """
    return jit_call(_max_angle_deviation, _vectors(vectors))


def _max_angle_deviation(V):
    K = V.shape[1]
    return jnp.mean(jnp.abs(_cosines(V)[_pairs(K)] + 1.0 / (K - 1)))


def etf_error(G) -> jax.Array:
    """Simplex-ETF error ``|| G/||G||_F - (I - J/K)/sqrt(K-1) ||_F`` of a ``K x K`` matrix.

    For a Gram ``G = V^T V`` this is zero iff the K columns of ``V`` form a simplex ETF (equal
    norms,
    pairwise cosines ``-1/(K-1)``), up to scale. Zhu et al. 2021 (arXiv 2105.02375) and Zhou et al.
    2022 (arXiv 2203.01238) use it for ``W W^T`` (NC2) and for ``W M`` (NC3, not symmetric). Takes
    values in ``[0, 2]``; ``G = 0`` gives 1 (``0/0`` is taken as 0).

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(etf_error(3.0 * (jnp.eye(4) - 1 / 4))), 6)
        0.0
        >>> round(float(etf_error(jnp.eye(4))), 4)  # orthogonal frame: sqrt(2 - 2 sqrt((K-1)/K))
        0.5176
    """
    return jit_call(_etf_error, _square(G))


def _etf_error(G):
    K = G.shape[0]
    target = (jnp.eye(K, dtype=G.dtype) - 1.0 / K) / math.sqrt(K - 1)
    return jnp.sqrt(jnp.sum((fro_normalize(G) - target) ** 2))


def orthogonal_frame_error(G) -> jax.Array:
    """Orthogonal-frame error ``|| G/||G||_F - I/sqrt(K) ||_F`` of a ``K x K`` matrix.

    Zero iff the Gram ``G = V^T V`` has orthogonal columns of equal norm: the collapse geometry of
    the MSE UFM without bias (Zhou et al. 2022, arXiv 2203.01238) and of post-ReLU class means in
    the
    deep UFM (Sukenik et al. 2023, arXiv 2305.13165), measured on *uncentred* means. ``G = 0`` gives
    1.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(orthogonal_frame_error(2.0 * jnp.eye(3))), 6)
        0.0
    """
    return jit_call(_orthogonal_frame_error, _square(G))


def _orthogonal_frame_error(G):
    K = G.shape[0]
    target = jnp.eye(K, dtype=G.dtype) / math.sqrt(K)
    return jnp.sqrt(jnp.sum((fro_normalize(G) - target) ** 2))


def numerical_rank(M, tau: float = 1e-3) -> jax.Array:
    """Numerical rank ``#{i : sigma_i(M) > tau * sigma_1(M)}`` as an ``int32`` array.

    The rank used for deep neural collapse and low-rank solutions (Sukenik, Lampert, Mondelli 2024,
    arXiv 2405.14468), with relative threshold ``tau`` (default ``1e-3``, state it with the result).
    Zero for ``M = 0``. Singular values *strictly above* the threshold count; one exactly at it
    does not (``diag(1, 1e-3)`` has rank 1 at ``tau = 1e-3``). This is exactly
    ``numpy.linalg.matrix_rank(M, rtol=tau)`` (NumPy >= 2.0), which also counts ``S > tol`` with
    ``tol = S.max() * rtol``. Batched inputs are handled by ``vmap``.

    Example:
        >>> import jax.numpy as jnp
        >>> int(numerical_rank(jnp.diag(jnp.array([1.0, 0.1, 1e-5]))))
        2
        >>> int(numerical_rank(jnp.diag(jnp.array([1.0, 1e-3]))))  # at the threshold: not counted
        1
    """
    M = as_float(M)
    if M.ndim != 2:
        raise ValueError(f"M must be a matrix, got shape {M.shape}")
    if not float(tau) >= 0:
        raise ValueError(f"tau must be >= 0, got {tau!r}")
    return jit_call(_numerical_rank, M, tau=float(tau))


def _numerical_rank(M, tau=1e-3):
    s = jnp.linalg.svd(M, compute_uv=False)
    return jnp.sum(s > tau * s[0]).astype(jnp.int32)
