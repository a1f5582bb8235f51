"""Block-arrow Hessian structure of objectives with independent per-sample features.

For ``f(theta, H) = (1/N) sum_i phi(theta, h_i, i) + r(theta) + (lambda_H/2) ||H||^2`` (the UFM, the
deep UFM with free first-layer features ``H_1``, ...) the feature block ``h_i`` (size ``d``) of
sample ``i`` appears in one term only, so the Hessian in the order ``(theta, h_1, ..., h_N)`` is

    [[A,   B_1 ... B_N],
     [B^T, blockdiag(D_1, ..., D_N)]]          (docs/theory.md section 3, "Hessian structure")

with ``A`` the ``P x P`` global block, ``B_i`` of shape ``P x d`` and ``D_i`` of shape ``d x d``. A
*structure* holds these blocks in a form that makes the Schur complement
``S(sigma) = A - sigma I - sum_i B_i (D_i - sigma I)^{-1} B_i^T`` and the products with ``B``,
``B^T``
and ``D`` cheap. Two implementations share one interface (``A``, ``num_samples``, ``feature_dim``,
``diag_min``, ``diag_max``, ``count_diag_below(sigma)``, ``schur(sigma) -> (S, Cinv)``,
``apply_cinv(Cinv, Y)``,
``bt(u)``, ``b(Y)``, ``d_apply(Y)``, ``matvec(u, Y)``, ``b_fro()``; per-sample arrays are ``(d, N)``
like ``H``):

* :class:`BlockArrow` (generic): explicit ``A``, ``B`` and ``D`` from forward-over-reverse
  Hessian-vector products of the *full* objective ``ufm.loss(spec, .)``: ``P`` products with unit
  ``theta`` tangents give ``A`` and every ``B_i^T e_p``; ``d`` products with the feature tangent
  ``e_a`` in *every* column give every ``D_i e_a`` at once (``D`` is block diagonal). Works for any
  spec type registered with :func:`split_features` (the deep UFM: ``theta`` = all weight matrices,
  features ``H_1``). Memory ``P d N``; Schur complement ``O(P^2 d N)``.
* :class:`ufm.systems.ufm.UFMBlockArrow` (UFM fast path, :mod:`ufm.systems.ufm.structure`): closed
forms, a chunked
  sample loop, ``O(N K^2 d^2)`` per shift. It must agree with the generic path (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..core.jitting import jit_when_eager
from ..core.model import loss
from ..core.registry import system_of
from ..core.validation import check_int, is_concrete

__all__ = [
    "BlockArrow",
    "FeatureSplit",
    "block_arrow",
    "block_arrow_matvec",
    "fast_path_applies",
    "split_features",
]


class FeatureSplit(NamedTuple):
    """Global parameters ``theta`` (a pytree), per-sample features ``(d, N)`` and ``merge``.

    ``merge(theta, features)`` rebuilds the params pytree. Column ``i`` of ``features`` must enter
    the objective only through sample ``i`` (plus a separable regulariser), so that the feature
    block of the Hessian is block diagonal.
    """

    theta: Any
    features: jax.Array
    merge: Callable


def has_split(spec) -> bool:
    """Whether the spec's system provides the ``split_features`` hook (block-arrow structure)."""
    return system_of(spec).has("split_features")


def split_features(spec, params) -> FeatureSplit:
    """Split ``params`` into global parameters and per-sample features (the system's
    ``split_features`` hook: the UFM gives ``theta = (W, b)``, ``features = H``; the deep UFM
    ``theta = (W_1, ..., W_L)``, ``features = H_1``)."""
    fn = system_of(spec).require(
        "split_features", "the block-arrow Hessian structure (use the dense or Lanczos routines)"
    )
    return fn(spec, params)


# -- per-sample small linear algebra (sample axis last; a trailing 1 broadcasts) ----------------


def _small_matmul(X, Y):
    """``out[:, :, i] = X[:, :, i] @ Y[:, :, i]`` for ``X (r, s, N)``, ``Y (s, t, N)``."""
    out = X[:, 0, None, :] * Y[None, 0, :, :]
    for a in range(1, X.shape[1]):
        out = out + X[:, a, None, :] * Y[None, a, :, :]
    return out


def _small_matvec(X, y):
    """``out[:, i] = X[:, :, i] @ y[:, i]`` for ``X (r, s, N)``, ``y (s, N)``."""
    out = X[:, 0, :] * y[0]
    for a in range(1, X.shape[1]):
        out = out + X[:, a, :] * y[a]
    return out


def _sub_diag(Dt, sigma):
    d = Dt.shape[0]
    return Dt - sigma * jnp.eye(d, dtype=Dt.dtype)[:, :, None]


# -- the two structures -----------------------------------------------------------------------


class BlockArrow(NamedTuple):
    """Explicit block-arrow Hessian: ``A (P, P)``, ``B (P, d, N)`` (``B[:, :, i] = B_i``),
    ``D (d, d, N)`` and the eigenvalues ``D_eigs (d, N)`` of every ``D_i``.
    """

    A: jax.Array
    B: jax.Array
    D: jax.Array
    D_eigs: jax.Array

    @property
    def num_samples(self) -> int:
        return self.D.shape[-1]

    @property
    def diag_min(self):
        """``min_i lambda_min(D_i)``."""
        return jnp.min(self.D_eigs)

    @property
    def diag_max(self):
        """``max_i ||D_i||_2``."""
        return jnp.max(jnp.abs(self.D_eigs))

    def count_diag_below(self, sigma):
        """Number of eigenvalues of ``blockdiag(D_i)`` below ``sigma``."""
        return jnp.sum(self.D_eigs < sigma).astype(jnp.int32)

    @property
    def feature_dim(self) -> int:
        return self.D.shape[0]

    def schur(self, sigma):
        """``S(sigma)`` and the per-sample inverses ``C_i = (D_i - sigma I)^{-1}`` (LAPACK LU, so
        ``D_i - sigma I`` may be indefinite); cost ``O(P^2 d N)``."""
        P = self.A.shape[0]
        Ci = jnp.linalg.inv(jnp.moveaxis(_sub_diag(self.D, sigma), -1, 0))
        C = jnp.moveaxis(0.5 * (Ci + jnp.swapaxes(Ci, 1, 2)), 0, -1)
        BC = _small_matmul(self.B, C)
        S = self.A - sigma * jnp.eye(P, dtype=self.A.dtype)
        S = S - BC.reshape(P, -1) @ self.B.reshape(P, -1).T
        return 0.5 * (S + S.T), C

    def apply_cinv(self, C, Y):
        """``C_i y_i`` for every sample, ``C`` from :meth:`schur`."""
        return _small_matvec(C, Y)

    def bt(self, u):
        """``B_i^T u`` for every sample, ``(d, N)``."""
        return jnp.tensordot(u, self.B, axes=1)

    def b(self, Y):
        """``sum_i B_i y_i`` for ``Y (d, N)``, shape ``(P,)``."""
        return self.B.reshape(self.B.shape[0], -1) @ Y.reshape(-1)

    def d_apply(self, Y):
        return _small_matvec(self.D, Y)

    def matvec(self, u, Y):
        """Hessian-vector product ``(A u + sum_i B_i y_i, B_i^T u + D_i y_i)``."""
        return self.A @ u + self.b(Y), self.bt(u) + self.d_apply(Y)

    def b_fro(self):
        """Frobenius norm of the whole coupling block ``[B_1 ... B_N]``."""
        return jnp.linalg.norm(self.B)


def block_arrow_matvec(ba, x):
    """Hessian-vector product in block-arrow order: ``x = concat(u (P,), vec(Y (d, N)))``."""
    P = ba.A.shape[0]
    N = ba.num_samples
    top, bottom = ba.matvec(x[:P], x[P:].reshape(-1, N))
    return jnp.concatenate([top, bottom.reshape(-1)])


# -- builders ---------------------------------------------------------------------------------


def _autodiff_block_arrow(spec, params, chunk_size: int = 64) -> BlockArrow:
    split = split_features(spec, params)
    th, unravel = ravel_pytree(split.theta)
    F = split.features
    if F.ndim != 2:
        raise ValueError(f"features must have shape (d, N), got {F.shape}")
    d, N = F.shape
    P = th.size
    dtype = th.dtype

    def grads(x, Fm):
        def f(x_, F_):
            return loss(spec, split.merge(unravel(x_), F_))

        return jax.grad(f, argnums=(0, 1))(x, Fm)

    _, hvp = jax.linearize(grads, th, F)
    zeroF = jnp.zeros_like(F)
    cols_A, cols_B = jax.lax.map(
        lambda e: hvp(e, zeroF), jnp.eye(P, dtype=dtype), batch_size=chunk_size
    )
    # a feature tangent with e_a in every column returns D_i e_a for every sample at once
    tangents = jnp.broadcast_to(jnp.eye(d, dtype=dtype)[:, :, None], (d, d, N))
    _, cols_D = jax.lax.map(lambda E: hvp(jnp.zeros_like(th), E), tangents, batch_size=chunk_size)
    A = 0.5 * (cols_A + cols_A.T)
    D = 0.5 * (cols_D + jnp.swapaxes(cols_D, 0, 1))
    D_eigs = jnp.linalg.eigvalsh(jnp.moveaxis(D, -1, 0)).T
    return BlockArrow(A=A, B=cols_B, D=D, D_eigs=D_eigs)


def fast_path_applies(spec) -> bool:
    """Whether ``block_arrow(spec, ., method="auto")`` takes the system's fast path.

    Fast paths factor ``D_i - sigma I`` by Cholesky below ``D_i >= lambda_H I``, so they need
    ``lambda_H > 0``; a spec whose (concrete) ``lambda_H`` is ``<= 0`` goes to the generic
    autodiff path, which is exact for any ``D_i`` (LU per sample). A traced ``lambda_H`` cannot be
    checked here: the UFM fast path then returns ``nan`` (``converged=False``) for
    ``lambda_H <= 0`` rather than a wrong inertia.
    """
    if system_of(spec).block_arrow is None:
        return False
    lh = getattr(spec, "lambda_H", None)
    return not (lh is not None and is_concrete(lh) and not float(lh) > 0)


def block_arrow(
    spec, params, *, method: str = "auto", chunk_size: int = 64, sample_chunk: int = 256
):
    """The block-arrow Hessian structure of ``ufm.loss(spec, .)`` at ``params``.

    ``method``: ``"fast"`` (closed form, registered for :class:`ufm.UFMSpec`), ``"autodiff"`` (the
    generic path for any spec with :func:`split_features`: ``P + d`` Hessian-vector products of the
    full objective, ``lax.map`` in chunks of ``chunk_size`` tangents) or ``"auto"`` (fast if
    registered and :func:`fast_path_applies`: ``lambda_H > 0``). Returns a
    :class:`ufm.systems.ufm.UFMBlockArrow` or a :class:`BlockArrow`
    (interface in the
    module docstring), consumed by :func:`ufm.hessian.block_arrow_spectrum` and
    :func:`ufm.hessian.newton_step`.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=4, loss="ce", bias="free")
        >>> p = ufm.init_params(spec, jax.random.key(0))
        >>> @jax.jit
        ... def schur_both(p):  # S(-0.1) by the UFM fast path and by the generic autodiff path
        ...     return [ufm.hessian.block_arrow(spec, p, method=m).schur(-0.1)[0]
        ...             for m in ("fast", "autodiff")]
        >>> fast, generic = schur_both(p)
        >>> fast.shape, bool(jax.numpy.allclose(fast, generic, rtol=1e-12, atol=1e-14))
        ((15, 15), True)
    """
    if method not in ("auto", "fast", "autodiff"):
        raise ValueError(f"method must be one of auto, fast, autodiff; got {method!r}")
    applies = fast_path_applies(spec)
    fast = method == "fast" or (method == "auto" and applies)
    if fast and system_of(spec).block_arrow is None:
        raise TypeError(f"no fast block-arrow path registered for {type(spec).__name__}")
    sample_chunk = check_int("sample_chunk", sample_chunk, 1)
    # a forced fast path with a concrete lambda_H <= 0 runs as it is, so that it refuses it
    build = _build if applies or not fast else _build.plain
    return build(spec, params, fast=fast, chunk_size=chunk_size, sample_chunk=sample_chunk)


@jit_when_eager(static_argnames=("fast", "chunk_size", "sample_chunk"))
def _build(spec, params, *, fast: bool, chunk_size: int, sample_chunk: int):
    if fast:
        return system_of(spec).block_arrow(spec, params, sample_chunk)
    return _autodiff_block_arrow(spec, params, chunk_size)
