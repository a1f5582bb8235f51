"""The Hessian facts of a classification (:func:`ufm.classify`): spectrum, inertia, tolerances.

:func:`hessian_facts` runs one Hessian routine (dense ``eigh``, the block-arrow inertia of
:mod:`ufm.hessian.inertia`, or Lanczos) on a point that already passed the classifier's finiteness
guard and returns a :class:`Spectrum`: extreme eigenvalues, the counts of negative, zero and
positive eigenvalues at ``zero_tol`` and a function counting the eigenvalues below any admissible
shift. :func:`tolerance_dependent` uses that function to tell a firm zero-mode mismatch from one
that only exists at this tolerance (the ``UNDECIDED`` class).

The smallest eigenvalue above the zero band, ``lambda_pos_min`` (the curvature that remains once
the symmetry zero modes are set aside), comes from every method:

* dense: the smallest eigenvalue ``>= zero_tol`` of ``eigh``;
* block-arrow: on a fast path (the UFM) safeguarded Newton on the sorted eigenvalue of the Schur
  complement whose root is the wanted eigenvalue, bracketed on both sides by one evaluation
  (:func:`positive_min_by_newton`; docs/theory.md 3.8); on the generic structure
  (:func:`positive_min_by_inertia`) geometric bisection on the shift ``sigma`` with
  the exact Haynsworth counts ``#{lambda < sigma}`` (Sylvester's law of inertia on the Schur
  complement), from ``zero_tol_upper`` (the count of the zero band and below) up to a certified
  upper bound; both to the relative accuracy :data:`POS_MIN_RTOL`. On the fast path, whose shifts
  must stay below ``min_i lambda_min(D_i)``, the interlacing bound ``lambda_{c+1}(Hess) <=
  lambda_{c+1}(blockdiag D_i)`` (Cauchy: a principal submatrix)
  closes the bracket when the answer is that pole itself (e.g. ``lambda_H`` at a CE minimum;
  then accurate to ``max(rtol pole / 4, 4 sqrt(eps) ||Hess||)``, the distance the shifts keep
  from the pole); ``nan`` where neither reaches the accuracy;
* Lanczos: the smallest Ritz value ``>= zero_tol`` of the HVP Lanczos run (an eigenvalue lies
  within its Ritz residual; in exact arithmetic it is an upper bound of the smallest eigenvalue
  above the band; it matches dense once the Krylov space resolves the bottom of the spectrum,
  e.g. ``num_matvecs`` at least the number of distinct eigenvalues).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..hessian.dense import hessian_dense
from ..hessian.inertia import block_arrow_inertia, spectrum_of_structure
from ..hessian.lanczos import lanczos_extremes
from ..hessian.reduction import certified_count, class_reduction, reduced_eigenvalue
from ..hessian.structure import BlockArrow, block_arrow
from ..kernels import eigvalsh
from .facts import all_finite

__all__ = [
    "Spectrum",
    "hessian_facts",
    "tolerance_dependent",
    "positive_min_by_inertia",
    "positive_min_by_newton",
    "POS_MIN_RTOL",
    "below_many",
]

#: Relative accuracy of the block-arrow ``lambda_pos_min`` (bisection on inertia counts):
#: the reported value ``v`` and the true one ``x`` satisfy ``x <= v <= (1 + POS_MIN_RTOL) x``.
POS_MIN_RTOL = 1e-6
_POS_MIN_MAX_ITER = 64


def _feature_block_eigenvalues(ba):
    """The ``d N`` eigenvalues of ``blockdiag(D_i)``, ascending, from ``d`` products with it (any
    structure: ``d_apply`` on the unit vector ``e_a`` in every column)."""
    d, N = ba.feature_dim, ba.num_samples
    dtype = ba.A.dtype
    cols = [ba.d_apply(jnp.zeros((d, N), dtype).at[a].set(1.0)) for a in range(d)]
    D = jnp.stack(cols, axis=1)  # D[:, a, i] = D_i e_a
    D = jnp.moveaxis(0.5 * (D + jnp.swapaxes(D, 0, 1)), -1, 0)
    return jnp.sort(jnp.linalg.eigvalsh(D).reshape(-1))


def _interlacing_bound(ba, count0):
    """``lambda_{count0}(blockdiag D_i)`` (0-based; ``inf`` past the end): an upper bound of
    ``lambda_{count0}(Hess)`` (Cauchy interlacing, a principal submatrix). A structure with a
    ``diag_eigenvalue(c, all_eigenvalues)`` method answers from its closed form (the UFM:
    ``lambda_H`` for most ``c``), else all ``d N`` eigenvalues are computed (``N`` small
    ``eigvalsh``: about 1 s at ``N = 10^5``)."""
    dn = ba.feature_dim * ba.num_samples

    def every():
        cf = _feature_block_eigenvalues(ba)
        return jnp.where(count0 < dn, cf[jnp.clip(count0, 0, dn - 1)], jnp.inf)

    hook = getattr(ba, "diag_eigenvalue", None)
    return every() if hook is None else hook(count0, every)


def positive_min_by_inertia(ba, below, count0, lower, cap, scale, rtol=POS_MIN_RTOL):
    """Smallest Hessian eigenvalue ``>= lower`` of a block-arrow structure ``ba`` by bisection on
    the exact inertia counts ``below(sigma)`` (module docstring); ``count0 = below(lower)``
    (eigenvalues below the zero band's top ``lower > 0``), shifts kept below ``cap``. Returns
    ``(value, bracket_ok)``: ``value`` within relative ``rtol`` above the true one, or, when the
    answer is the pole ``cap`` of the fast path, the interlacing bound there (the true value lies
    in ``[cap - margin, value]``, ``margin = max(rtol cap / 4, 4 sqrt(eps) scale)``); ``nan``
    when there is no such eigenvalue or the bracket does not close."""
    lo0, hi0, s_max = _pos_min_bracket(ba, count0, lower, cap, scale, rtol)

    def body(state):
        k, lo, hi = state
        mid = jnp.sqrt(lo) * jnp.sqrt(hi)
        sig = jnp.minimum(mid, s_max)
        more = below(sig) > count0
        return k + 1, jnp.where(more, lo, sig), jnp.where(more, sig, hi)

    def cond(state):
        k, lo, hi = state
        stuck = lo >= s_max  # the fast path cannot shift further up
        return (hi > (1.0 + rtol) * lo) & ~stuck & (k < _POS_MIN_MAX_ITER)

    _, lo, hi = jax.lax.while_loop(cond, body, (jnp.int32(0), lo0, hi0))
    return _pos_min_result(ba, lo, hi, s_max, count0, cap, rtol)


def positive_min_by_newton(ba, count0, lower, cap, scale, start, rtol=POS_MIN_RTOL):
    """:func:`positive_min_by_inertia` for a fast-path structure (``D_i - sigma I`` definite below
    ``cap``, so ``count(sigma) = #{ev(S(sigma)) < 0}``) by safeguarded Newton on ``nu(sigma) =
    ev_c(S(sigma))``, the ``c = count0``-th smallest eigenvalue of the Schur complement, whose
    root is the wanted eigenvalue: ``S(s') <= S(s) - (s' - s) I`` for ``s < s' < cap``
    (resolvent identity), so by Weyl every sorted eigenvalue of ``S`` falls with slope ``<= -1``
    and one evaluation bounds the answer on both sides: in ``[sigma, sigma + nu]`` where ``nu >=
    0`` (the count is ``count0``) and in ``[sigma + nu, sigma]`` where ``nu < 0``. The next shift
    is the Newton root ``sigma - nu / nu'`` (``nu' = -(1 + ||(D_i - sigma I)^{-1} B_i^T u||^2)``
    for the eigenvector ``u``) when it falls inside the bracket, else the geometric midpoint;
    ``start`` (e.g. the class reduction's estimate) is the first shift when inside. A few
    evaluations instead of the bisection's twenty or so at ``rtol = 1e-6``. Same return value and
    pole rule as :func:`positive_min_by_inertia`."""
    P = ba.A.shape[0]
    eps = jnp.finfo(ba.A.dtype).eps
    lo0, hi0, s_max = _pos_min_bracket(ba, count0, lower, cap, scale, rtol)
    j = jnp.clip(count0, 0, P - 1)

    def nxt(lo, hi, t):
        mid = jnp.sqrt(lo) * jnp.sqrt(hi)
        return jnp.minimum(jnp.where((t > lo) & (t < hi), t, mid), s_max)

    def body(state):
        k, lo, hi, sig = state
        S, Cinv = ba.schur(sig)
        ev, V = jnp.linalg.eigh(S)
        nu = ev[j]
        y = ba.apply_cinv(Cinv, ba.bt(V[:, j]))
        dnu = -(1.0 + jnp.sum(y**2))
        left = jnp.sum(ev < 0) <= count0  # sig <= the wanted eigenvalue, nu >= 0
        # slope <= -1: a bound on the other side (below the pole), widened by the rounding of
        # nu, of order P eps ||S(sig)|| (large near the pole)
        err = 8.0 * P * eps * jnp.max(jnp.abs(ev))
        up, down = sig + nu + err, sig + nu - err
        lo = jnp.where(left, jnp.maximum(lo, sig), jnp.maximum(lo, down))
        hi = jnp.where(left, jnp.where(up < cap, jnp.minimum(hi, up), hi), jnp.minimum(hi, sig))
        return k + 1, lo, hi, nxt(lo, hi, sig - nu / dnu)

    def cond(state):
        k, lo, hi, _ = state
        return (hi > (1.0 + rtol) * lo) & (lo < s_max) & (k < _POS_MIN_MAX_ITER)

    # count0 = P: every eigenvalue of S is negative at `lower`, so none lies in [lower, cap) (the
    # count is at most P below the pole): straight to the pole rule
    lo0 = jnp.where(count0 >= P, jnp.maximum(lo0, s_max), lo0)
    init = (jnp.int32(0), lo0, hi0, nxt(lo0, hi0, start))
    _, lo, hi = jax.lax.while_loop(cond, body, init)[:3]
    return _pos_min_result(ba, lo, hi, s_max, count0, cap, rtol)


def _pos_min_bracket(ba, count0, lower, cap, scale, rtol):
    """``(lo0, hi0, s_max)`` of the ``lambda_pos_min`` searches: ``[max(lower, tiny),
    min(interlacing bound, 2 scale + lower)]`` and the largest shift ``cap - margin``."""
    dtype = ba.A.dtype
    # Cauchy interlacing with the principal submatrix blockdiag(D_i): lambda_{c+1}(Hess) <=
    # lambda_{c+1}(blockdiag D), an upper bound that also holds at the fast path's pole
    cf = _interlacing_bound(ba, count0)
    top = 2.0 * scale + lower  # scale >= ||Hess||_2: every eigenvalue lies below it
    hi0 = jnp.minimum(cf, top).astype(dtype)
    lo0 = jnp.maximum(lower, jnp.finfo(dtype).tiny)
    # shifts stay clear of the pole: S(sigma) carries rounding of order eps ||B||^2 / (cap - sigma)
    margin = jnp.maximum(0.25 * rtol * cap, 4.0 * jnp.sqrt(jnp.finfo(dtype).eps) * scale)
    s_max = jnp.where(jnp.isfinite(cap), cap - margin, jnp.inf)
    return lo0, hi0, s_max


def _pos_min_result(ba, lo, hi, s_max, count0, cap, rtol):
    """``(value, ok)`` from a final bracket: closed to ``rtol``, or at the pole (no eigenvalue in
    ``[lower, cap - margin)`` and the interlacing bound at the pole itself, e.g. ``lambda_H`` at a
    CE minimum); ``nan`` otherwise."""
    total = ba.A.shape[0] + ba.feature_dim * ba.num_samples
    pole = (lo >= s_max) & (hi <= (1.0 + rtol) * cap)
    ok = ((hi <= (1.0 + rtol) * lo) | pole) & (count0 < total) & jnp.isfinite(hi)
    return jnp.where(ok, hi, jnp.nan), ok


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
        ev = eigvalsh(jnp.where(ok, hess, 0.0))  # values only (LAPACK job N on CPU)
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
            # near a collapsed point the class reduction certifies counts without a Schur
            # complement (ufm.hessian.reduction); elsewhere every count is a Schur evaluation
            red = class_reduction(spec, params, ba.A)
            res = spectrum_of_structure(
                ba,
                zero_rtol=0.0,
                zero_atol=0.0,
                key=jax.random.key(0),
                reduction=red,
                need_counts=False,
            )
            tol = tol_of_norm(res.scale)
            if isinstance(ba, BlockArrow):  # LU per sample: any shift that is no D_i eigenvalue
                cap, upper = inf, tol
            else:  # fast paths factor D_i - sigma I by Cholesky: shifts stay below diag_min
                cap = ba.diag_min
                upper = jnp.where(cap > 0, jnp.minimum(tol, 0.5 * cap), tol)

        def below(sigma):
            with jax.numpy_dtype_promotion("standard"):
                # no eigenvalue lies below the search's certified lower bound of lambda_min
                known = jnp.where(sigma <= res.lambda_min_lower, 0, -1).astype(jnp.int32)
                if red is not None:
                    known = jnp.where(known < 0, certified_count(red, sigma), known)
                return jax.lax.cond(
                    known >= 0,
                    lambda: known,
                    lambda: block_arrow_inertia(ba, sigma).astype(jnp.int32),
                )

        # one compiled copy of the count for both shifts (each call site inlines a Schur
        # complement, and compile time grows with the copies)
        below_neg, below_pos = below_many(below, jnp.stack([-tol, upper]))  # any negative shift
        with jax.numpy_dtype_promotion("standard"):
            pos_min = _positive_min(ba, below, below_pos, upper, cap, res.scale, red)

        total = spec.num_params
        counts = [
            x.astype(jnp.int32) for x in (below_neg, below_pos - below_neg, total - below_pos)
        ]
        return Spectrum(
            res.lambda_min, nan, res.scale, pos_min, nan, *counts, tol, upper, ok, below, cap
        )
    # lanczos
    m = min(num_matvecs, spec.num_params)
    res = lanczos_extremes(spec, params, key, m)
    hnorm = jnp.maximum(jnp.abs(res.lambda_min), jnp.abs(res.lambda_max))
    tol = tol_of_norm(hnorm)
    ok = jnp.isfinite(hnorm)
    unknown = jnp.asarray(-1, jnp.int32)
    ritz_pos = jnp.min(jnp.where(res.ritz_values >= tol, res.ritz_values, jnp.inf))
    return Spectrum(
        res.lambda_min,
        res.lambda_max,
        hnorm,
        jnp.where(jnp.isfinite(ritz_pos), ritz_pos, nan),
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


def below_many(below, shifts):
    """``below(sigma)`` at every shift of ``shifts`` (1-D), one after the other in a ``lax.map``:
    one compiled copy of the count however many shifts (the block-arrow count is a Schur
    complement, inlined at every call site, and compile time grows with the copies)."""
    return jax.lax.map(below, shifts)


def _positive_min(ba, below, count0, lower, cap, scale, red):
    """``lambda_pos_min``: from the class reduction when its Weyl interval ``lambda_c(Hess') +-
    eps`` (``c = count0``) is within :data:`POS_MIN_RTOL` (the upper end is reported, as by the
    bisection), else :func:`positive_min_by_inertia`."""

    fast = not isinstance(ba, BlockArrow)  # D_i - sigma I definite below cap
    v = jnp.asarray(jnp.nan, ba.A.dtype) if red is None else reduced_eigenvalue(red, count0)

    def search():
        if fast:
            return positive_min_by_newton(ba, count0, lower, cap, scale, v)[0]
        return positive_min_by_inertia(ba, below, count0, lower, cap, scale)[0]

    if red is None:
        return search()
    lo, hi = v - red.eps, v + red.eps
    good = (lo >= lower) & (lo > 0) & (hi <= (1.0 + POS_MIN_RTOL) * lo) & jnp.isfinite(hi)
    return jax.lax.cond(good, lambda: hi, search)


def tolerance_dependent(sp: Spectrum, predicted, factor):
    """Whether a zero-mode mismatch at a point without negative curvature depends on the
    tolerance: extra zero modes that are not all within ``zero_tol / factor`` of zero, or
    missing ones that reappear with ``factor * zero_tol`` (not checkable above ``cap``)."""
    tol, n_zero = sp.zero_tol, sp.n_zero

    def check(_):
        half_cap = 0.5 * sp.cap  # shifts of the fast block-arrow path stay below the cap
        lo, hi = tol / factor, factor * tol
        shifts = jnp.stack([jnp.minimum(lo, half_cap), -lo, jnp.minimum(hi, half_cap), -tol])
        c = below_many(sp.below, shifts)
        firm, wide = c[0] - c[1], c[2] - c[3]
        extra_firm = (n_zero > predicted) & (lo < half_cap) & (firm > predicted)
        missing_firm = (n_zero < predicted) & (hi < half_cap) & (wide < predicted)
        return ~(extra_firm | missing_firm)

    need = (sp.n_neg == 0) & (n_zero >= 0) & (n_zero != predicted)
    return jax.lax.cond(need, check, lambda _: jnp.asarray(False), None)
