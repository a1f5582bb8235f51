"""The Hessian facts of a classification (:func:`ufm.classify`): spectrum, inertia, tolerances.

:func:`hessian_facts` runs one Hessian routine (dense ``eigh``, the block-arrow inertia of
:mod:`ufm.hessian.inertia`, or Lanczos) on a point that already passed the classifier's finiteness
guard and returns a :class:`Spectrum`: extreme eigenvalues, the counts of negative, zero and
positive eigenvalues at ``zero_tol`` and a function counting the eigenvalues below any admissible
shift. :func:`tolerance_dependent` uses that function to tell a firm zero-mode mismatch from one
that only exists at this tolerance (the ``UNDECIDED`` class).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..hessian.dense import hessian_dense
from ..hessian.inertia import block_arrow_inertia, spectrum_of_structure
from ..hessian.lanczos import lanczos_extremes
from ..hessian.structure import BlockArrow, block_arrow
from .facts import all_finite

__all__ = ["Spectrum", "hessian_facts", "tolerance_dependent"]


def _dtype(params):
    return jax.tree_util.tree_leaves(params)[0].dtype


class Spectrum(NamedTuple):
    """What a Hessian routine tells the classifier (``below(sigma)``: eigenvalues ``< sigma``,
    valid for ``sigma < cap``)."""

    lambda_min: jax.Array
    lambda_max: jax.Array
    hess_norm: jax.Array
    lambda_pos_min: jax.Array
    zero_max: jax.Array
    n_neg: jax.Array
    n_zero: jax.Array
    n_pos: jax.Array
    zero_tol: jax.Array
    zero_tol_upper: jax.Array
    finite: jax.Array
    below: Any
    cap: jax.Array


def hessian_facts(spec, params, method, tol_of_norm, num_matvecs, key, structure) -> Spectrum:
    """The Hessian facts of the classification by ``method``; ``tol_of_norm(||Hess||)`` gives
    ``zero_tol``. ``params`` are finite (the caller's guard); a Hessian that still overflows
    is replaced by zeros before any LAPACK call and reported by ``finite``."""
    dtype = _dtype(params)
    nan = jnp.asarray(jnp.nan, dtype)
    inf = jnp.asarray(jnp.inf, dtype)
    if method == "dense":
        hess = hessian_dense(spec, params)[0]
        ok = all_finite(hess)
        ev = jnp.linalg.eigvalsh(jnp.where(ok, hess, 0.0))
        hnorm = jnp.maximum(jnp.abs(ev[0]), jnp.abs(ev[-1]))
        tol = tol_of_norm(hnorm)
        neg, pos = ev < -tol, ev >= tol
        zero = ~neg & ~pos
        pos_min = jnp.min(jnp.where(pos, ev, jnp.inf))
        zmax = jnp.max(jnp.where(zero, jnp.abs(ev), 0.0))
        counts = [jnp.sum(m).astype(jnp.int32) for m in (neg, zero, pos)]
        return Spectrum(
            ev[0],
            ev[-1],
            hnorm,
            jnp.where(jnp.isfinite(pos_min), pos_min, nan),
            zmax,
            *counts,
            tol,
            tol,
            ok,
            lambda sigma: jnp.sum(ev < sigma).astype(jnp.int32),
            inf,
        )
    if method == "block_arrow":
        # "standard" promotion: the inertia routines add int32 and int64 counts under x64
        # (they fail with jax_numpy_dtype_promotion="strict").
        with jax.numpy_dtype_promotion("standard"):
            ba = block_arrow(spec, params, method=structure)  # built once
            ok = all_finite(ba)
            ba = jax.tree_util.tree_map(lambda x: jnp.where(ok, x, jnp.ones_like(x)), ba)
            res = spectrum_of_structure(ba, zero_rtol=0.0, zero_atol=0.0, key=jax.random.key(0))
            tol = tol_of_norm(res.scale)
            if isinstance(ba, BlockArrow):  # LU per sample: any shift that is no D_i eigenvalue
                cap, upper = inf, tol
            else:  # fast paths factor D_i - sigma I by Cholesky: shifts stay below diag_min
                cap = ba.diag_min
                upper = jnp.where(cap > 0, jnp.minimum(tol, 0.5 * cap), tol)
            below_neg = block_arrow_inertia(ba, -tol)  # any negative shift is allowed
            below_pos = block_arrow_inertia(ba, upper)

        def below(sigma):
            with jax.numpy_dtype_promotion("standard"):
                return block_arrow_inertia(ba, sigma).astype(jnp.int32)

        total = spec.num_params
        counts = [
            x.astype(jnp.int32) for x in (below_neg, below_pos - below_neg, total - below_pos)
        ]
        return Spectrum(
            res.lambda_min, nan, res.scale, nan, nan, *counts, tol, upper, ok, below, cap
        )
    # lanczos
    m = min(num_matvecs, spec.num_params)
    res = lanczos_extremes(spec, params, key, m)
    hnorm = jnp.maximum(jnp.abs(res.lambda_min), jnp.abs(res.lambda_max))
    tol = tol_of_norm(hnorm)
    ok = jnp.isfinite(hnorm)
    unknown = jnp.asarray(-1, jnp.int32)
    return Spectrum(
        res.lambda_min,
        res.lambda_max,
        hnorm,
        nan,
        nan,
        unknown,
        unknown,
        unknown,
        tol,
        tol,
        ok,
        lambda sigma: unknown,
        -inf,
    )


def tolerance_dependent(sp: Spectrum, predicted, factor):
    """Whether a zero-mode mismatch at a point without negative curvature depends on the
    tolerance: extra zero modes that are not all within ``zero_tol / factor`` of zero, or
    missing ones that reappear with ``factor * zero_tol`` (not checkable above ``cap``)."""
    tol, n_zero = sp.zero_tol, sp.n_zero

    def check(_):
        half_cap = 0.5 * sp.cap  # shifts of the fast block-arrow path stay below the cap
        lo, hi = tol / factor, factor * tol
        firm = sp.below(jnp.minimum(lo, half_cap)) - sp.below(-lo)
        wide = sp.below(jnp.minimum(hi, half_cap)) - sp.below(-tol)
        extra_firm = (n_zero > predicted) & (lo < half_cap) & (firm > predicted)
        missing_firm = (n_zero < predicted) & (hi < half_cap) & (wide < predicted)
        return ~(extra_firm | missing_firm)

    need = (sp.n_neg == 0) & (n_zero >= 0) & (n_zero != predicted)
    return jax.lax.cond(need, check, lambda _: jnp.asarray(False), None)
