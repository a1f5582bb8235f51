"""Class reduction of the block-arrow Hessian near a collapsed point (Weyl-certified counts).

At a critical point of an objective with per-sample features and ``lambda_H > 0`` (the UFM), the
feature ``h_i`` of sample ``i`` minimises a strongly convex per-sample problem that depends only on
the global parameters and the label of ``i``, so every sample of a class carries the *same*
feature. With ``H'`` the class means (docs/theory.md section 3.9):

* the Hessian ``Hess'`` at ``(theta, H')`` splits exactly into the class-symmetric subspace
  (feature perturbations ``v_k / sqrt(n_k)`` on every sample of class ``k``), where it is the
  ``(P + K d) x (P + K d)`` Hessian of the reduced objective ``g(theta, V) = f(theta, H' + E V)``,
  and its complement (perturbations summing to zero within each class), where it is
  ``blockdiag(D'_k)`` with multiplicity ``n_k - 1``: its whole spectrum costs one dense
  ``eigvalsh`` of size ``P + K d`` instead of ``O(N K^2 d^2)`` per Schur-complement evaluation;
* Weyl's inequality ``|lambda_j(Hess) - lambda_j(Hess')| <= ||Hess - Hess'||_2 <= eps`` turns
  that spectrum into certified facts about ``Hess`` itself: the count below a shift ``s`` is known
  when ``Hess'`` has as many eigenvalues below ``s - eps`` as below ``s + eps``, and
  ``lambda_j(Hess)`` lies in ``[lambda_j(Hess') - eps, lambda_j(Hess') + eps]``.

``eps`` bounds the block-arrow difference ``[[dA, dB], [dB^T, blockdiag(dD_i)]]`` by
``max(||dA||_2, max_i ||dD_i||_2) + ||dB||_F`` (the system's hook bounds ``dB`` and ``dD``;
``dA`` is exact from the built structure) plus a rounding allowance ``32 m eps_mach ||Hess'||``
for the dense eigenvalues (``m = P + K d``). At a collapsed point (closed forms, planted saddles)
``eps`` is rounding; at a point found by an optimiser it is of the order of the within-class
spread of the features, and where it is too large to decide a count the callers fall back to the
Schur complement (:mod:`ufm.hessian.inertia`). A non-finite point gives ``eps = inf`` (nothing
certified).

Systems provide the reduced matrix and the two bounds through the ``class_reduction`` hook
(:class:`ReducedParts`); the UFM's is :func:`ufm.systems.ufm.ufm_class_reduction`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..core.registry import system_of
from ..kernels import eigvalsh

__all__ = [
    "ClassReduction",
    "ReducedParts",
    "certified_count",
    "class_reduction",
    "reduced_count",
    "reduced_eigenvalue",
    "reduced_lambda_min",
]


class ReducedParts(NamedTuple):
    """What a system's ``class_reduction`` hook returns (module docstring).

    ``matrix``: the Hessian of the reduced objective at ``(theta, 0)``, ``theta`` first (in the
    order of the block-arrow ``A``), then the ``K`` class features ``v_k`` of ``block_dim``
    entries each; ``multiplicity (K,)``: ``n_k - 1``; ``offdiag_bound >= ||B - B'||_F`` and
    ``diag_bound >= max_i ||D_i - D'_i||_2`` between the structure at the point and at the class
    means."""

    matrix: jax.Array
    theta_size: int
    block_dim: int
    multiplicity: jax.Array
    offdiag_bound: jax.Array
    diag_bound: jax.Array


class ClassReduction(NamedTuple):
    """Spectrum of the Hessian at the class means and the Weyl radius ``eps`` around it.

    ``eigs (m,)``: ascending eigenvalues of the reduced matrix; ``block_eigs (K, d)``: those of
    every ``D'_k``, each counted ``multiplicity[k]`` times; ``eps``: the certified bound on
    ``||Hess - Hess'||_2`` (``inf`` when anything is non-finite)."""

    eigs: jax.Array
    block_eigs: jax.Array
    multiplicity: jax.Array
    eps: jax.Array


def class_reduction(spec, params, A) -> ClassReduction | None:
    """The :class:`ClassReduction` of ``spec`` at ``params`` (``None`` when the system registers
    no ``class_reduction`` hook); ``A`` is the global block of the built block-arrow structure
    (``ufm.hessian.block_arrow(spec, params).A``), compared exactly with the reduced one."""
    hook = system_of(spec).class_reduction
    if hook is None:
        return None
    parts = hook(spec, params)
    M = 0.5 * (parts.matrix + parts.matrix.T)
    P, d = parts.theta_size, parts.block_dim
    m = M.shape[0]
    K = (m - P) // d
    ok = jnp.all(jnp.isfinite(M)) & jnp.all(jnp.isfinite(A))
    M = jnp.where(ok, M, 0.0)
    eigs = eigvalsh(M)
    at = [slice(P + k * d, P + (k + 1) * d) for k in range(K)]
    blocks = jnp.stack([M[s, s] for s in at])
    block_eigs = eigvalsh(blocks)
    dA = eigvalsh(jnp.where(ok, A, 0.0) - M[:P, :P])
    dA_norm = jnp.maximum(jnp.abs(dA[0]), jnp.abs(dA[-1]))
    norm = jnp.maximum(jnp.max(jnp.abs(eigs)), jnp.max(jnp.abs(block_eigs)))
    unit = jnp.finfo(M.dtype).eps
    eps = jnp.maximum(dA_norm, parts.diag_bound) + parts.offdiag_bound
    eps = eps * (1.0 + 1e3 * unit) + 32.0 * m * unit * norm
    ok = ok & jnp.isfinite(eps)
    return ClassReduction(
        eigs=eigs,
        block_eigs=block_eigs,
        multiplicity=jnp.asarray(parts.multiplicity, jnp.int32),
        eps=jnp.where(ok, eps, jnp.inf),
    )


def reduced_count(red: ClassReduction, s):
    """Number of eigenvalues of the class-mean Hessian ``Hess'`` below ``s``."""
    return _weighted_count(red, red.eigs < s, red.block_eigs < s)


def certified_count(red: ClassReduction, s):
    """Number of eigenvalues of ``Hess`` below ``s`` when the reduction decides it, else ``-1``
    (the counts of ``Hess'`` below ``s - eps`` and ``s + eps`` agree: Weyl)."""
    lo, hi = reduced_count(red, s - red.eps), reduced_count(red, s + red.eps)
    return jnp.where((lo == hi) & jnp.isfinite(red.eps), lo, jnp.int32(-1))


def reduced_lambda_min(red: ClassReduction):
    """Smallest eigenvalue of ``Hess'`` (``lambda_min(Hess)`` lies within ``eps`` of it)."""
    blocks = jnp.where(red.multiplicity > 0, red.block_eigs[:, 0], jnp.inf)
    return jnp.minimum(red.eigs[0], jnp.min(blocks))


def reduced_eigenvalue(red: ClassReduction, c):
    """The ``c``-th smallest eigenvalue of ``Hess'`` (0-based, multiplicities counted; ``inf``
    past the end); ``lambda_c(Hess)`` lies within ``eps`` of it."""
    cand = jnp.concatenate([red.eigs, red.block_eigs.reshape(-1)])
    upto = jax.vmap(lambda v: reduced_count(red, v) + _count_equal(red, v))(cand)
    return jnp.min(jnp.where(upto > c, cand, jnp.inf))


def _count_equal(red, v):
    return _weighted_count(red, red.eigs == v, red.block_eigs == v)


def _weighted_count(red, in_eigs, in_blocks):
    """``sum(in_eigs) + sum_k multiplicity[k] * sum(in_blocks[k])`` (``int32``)."""
    blocks = jnp.where(in_blocks, red.multiplicity[:, None], jnp.int32(0))
    return jnp.sum(in_eigs, dtype=jnp.int32) + jnp.sum(blocks, dtype=jnp.int32)
