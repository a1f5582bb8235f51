"""Exact Hessian inertia and smallest eigenvalue from the block-arrow structure (Haynsworth).

For the block-arrow Hessian ``[[A, B], [B^T, D]]`` of :mod:`ufm.hessian.structure` and a shift
``sigma``
with ``D - sigma I`` nonsingular, Haynsworth's inertia additivity (Haynsworth 1968, *Linear Algebra
Appl.* 1:73) gives

    In(Hess - sigma I) = In(D - sigma I) + In(S(sigma)),
    S(sigma) = A - sigma I - sum_i B_i (D_i - sigma I)^{-1} B_i^T     (P x P, P = Kd (+K)).

Below ``delta = min_i lambda_min(D_i)`` the first term has no negative eigenvalue, so the number of
Hessian eigenvalues below ``sigma`` is that of ``S(sigma)``: exact inertia for ``O(N K^2 d^2 +
P^3)``
instead of ``O((dN)^3)``. ``lambda_min(Hess) <= delta`` (interlacing), and on ``sigma < delta`` the
function ``mu(sigma) = lambda_min(S(sigma))`` is decreasing (``S' = -I - sum_i B_i C_i^2 B_i^T``)
and concave (``S'' = -2 sum_i B_i C_i^3 B_i^T <= 0``, ``C_i = (D_i - sigma I)^{-1}``), with
``lambda_min(Hess)`` its root (or ``delta`` if ``mu`` stays positive). Newton's tangent root
``sigma - mu/mu'`` is therefore an upper bound of ``lambda_min`` from either side, and a point with
``mu > 0`` a certified lower bound. :func:`block_arrow_spectrum` brackets the root with those
bounds; one ``S(sigma)`` also certifies the counts at nearby shifts where its spectrum has a gap
(:func:`_evaluate`, a Loewner-order bound from the resolvent identity).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..core.validation import check_int
from ..kernels import eigvalsh
from .reduction import ClassReduction, certified_count, class_reduction, reduced_lambda_min
from .structure import block_arrow, block_arrow_matvec

__all__ = [
    "BlockArrowResult",
    "block_arrow_inertia",
    "block_arrow_spectrum",
    "spectrum_of_structure",
]


class BlockArrowResult(NamedTuple):
    """Exact inertia and smallest eigenvalue of the Hessian (:func:`block_arrow_spectrum`).

    ``n_neg``/``n_zero``/``n_pos`` count eigenvalues ``< -zero_tol``, in ``[-zero_tol, zero_tol)``
    and
    ``>= zero_tol``, with ``zero_tol = max(zero_rtol * scale, zero_atol)`` (capped at ``delta / 2``,
    ``delta = min_i lambda_min(D_i)``) and ``scale = max(||A||_2, max_i ||D_i||_2) + ||B||_F``, a
    cheap
    upper estimate of ``||Hess||_2`` (within a small factor; ``max_i ||D_i||_2`` is bounded by
    ``lambda_H + ||W||_2^2 / N`` on the UFM fast path). ``lambda_min`` is the upper and
    ``lambda_min_lower`` the lower end of the certified final bracket (width ``<= 2 lambda_rtol *
    scale`` when ``converged``; ``lambda_min`` itself is a Newton bound, typically exact to
    rounding). ``num_iters`` counts Schur-complement evaluations (inertia and search together).
    """

    n_neg: jax.Array
    n_zero: jax.Array
    n_pos: jax.Array
    lambda_min: jax.Array
    lambda_min_lower: jax.Array
    zero_tol: jax.Array
    scale: jax.Array
    converged: jax.Array
    num_iters: jax.Array


@jax.jit
def _evaluate(ba, sigma, shifts, delta):
    """One Schur-complement evaluation at ``sigma``: eigenvalues of ``S(sigma)``, the Hessian
    eigenvalue count below ``sigma``, ``mu'(sigma)`` and certified counts at ``shifts``.

    ``mu'(sigma) = -(1 + sum_i ||C_i B_i^T u||^2)`` for the bottom eigenvector ``u`` of
    ``S(sigma)``. For each ``s`` in ``shifts`` the count below ``s`` is returned when ``S(sigma)``
    alone decides it (else ``-1``): with ``Delta = s - sigma``, ``T(sigma) = A - sigma I -
    S(sigma) = sum_i B_i C_i B_i^T`` and ``c = 1 / (delta - s)``, the resolvent identity
    ``C_i(s) - C_i(sigma) = Delta C_i(s) C_i(sigma)`` with ``0 < C_i(s) <= c I`` gives
    ``S(s) = S(sigma) - Delta (I + X)``, ``0 <= X <= c T(sigma)`` (Loewner order), so by Weyl's
    monotonicity the count at ``s`` lies between the negative counts of ``S(sigma) - Delta I`` and
    of ``S(sigma) - Delta (I + c T)`` (either order, by the sign of ``Delta``); it is certified
    when they agree. Valid below the pole (``sigma, s < delta``: every ``D_i - s I`` positive
    definite); ``s = sigma`` gives the exact count.
    """
    S, C = ba.schur(sigma)
    ev, V = jnp.linalg.eigh(S)
    y = ba.apply_cinv(C, ba.bt(V[:, 0]))
    below = ba.count_diag_below(sigma) + jnp.sum(ev < 0).astype(jnp.int32)
    P = S.shape[0]
    T = ba.A - sigma * jnp.eye(P, dtype=S.dtype) - S
    T = 0.5 * (T + T.T)

    def certified(s):
        dl = s - sigma
        near = jnp.sum(ev < dl).astype(jnp.int32)  # negative count of S(sigma) - Delta I
        far_ev = eigvalsh(S - dl * (jnp.eye(P, dtype=S.dtype) + T / (delta - s)))
        ok = (near == jnp.sum(far_ev < 0).astype(jnp.int32)) & (sigma < delta) & (s < delta)
        return jnp.where(dl == 0, below, jnp.where(ok, near, jnp.int32(-1)))

    return ev, below, -(1.0 + jnp.sum(y**2)), jax.vmap(certified)(shifts)


@jax.jit  # one trace and one lowered function for the many shifts of a classification
def block_arrow_inertia(ba, sigma):
    """Number of Hessian eigenvalues below ``sigma``, exact by Haynsworth's theorem.

    ``ba`` from :func:`ufm.hessian.block_arrow`; ``sigma`` must not be an eigenvalue of a ``D_i``,
    and for
    the UFM fast path must lie below ``ba.diag_min`` (``>= lambda_H``).
    """
    S, _ = ba.schur(sigma)
    return ba.count_diag_below(sigma) + jnp.sum(eigvalsh(S) < 0).astype(jnp.int32)


def _pole_model_root(p, q, delta):
    """Root of ``m(s) = alpha - s - beta / (delta - s)`` through the points ``p = (s_p, m_p)`` and
    ``q = (s_q, m_q)`` (``s < delta``): the shape of ``mu(sigma) = lambda_min(S(sigma))`` when one
    pole ``delta`` dominates (``S' = -I - sum_i B_i C_i^2 B_i^T``). ``nan`` when there is none."""
    (sp, mp), (sq, mq) = p, q
    gp, gq = delta - sp, delta - sq
    # alpha - beta / g = m + s at both points: a 2 x 2 linear system
    beta = ((mp + sp) - (mq + sq)) / (1.0 / gq - 1.0 / gp)
    alpha = mp + sp + beta / gp
    disc = (alpha - delta) ** 2 + 4.0 * beta
    return jnp.where(disc >= 0, 0.5 * ((alpha + delta) - jnp.sqrt(jnp.abs(disc))), jnp.nan)


def _lanczos_plain(matvec, v0, m: int, num_steps):
    """Smallest Ritz value of plain (three-term) Lanczos, ``num_steps <= m`` steps (may be traced).

    A cheap start for the bracketing search: memory of three vectors and ``m`` scalars; lost
    orthogonality only adds copies of converged Ritz values. The trip count may be a traced value
    (0 skips the work even under ``vmap``, where the loop runs to the largest count). Steps after a
    breakdown or beyond ``num_steps`` are masked to decoupled copies of ``alpha_0`` (inside the
    range of the active Ritz values). Returns ``+inf`` when ``num_steps == 0``.
    """
    dtype = v0.dtype
    eps = jnp.finfo(dtype).eps

    def body(j, carry):
        q, q_prev, b_prev, active, alphas, betas, act, nxt_m = carry
        w = matvec(q) - b_prev * q_prev
        a = jnp.dot(q, w)
        w = w - a * q
        w = w - jnp.dot(q, w) * q  # local reorthogonalisation
        b = jnp.linalg.norm(w)
        nxt = active & (b > 1e3 * eps * (jnp.abs(a) + b_prev))
        q_new = jnp.where(nxt, w / jnp.where(nxt, b, 1.0), 0.0)
        return (
            q_new,
            q,
            jnp.where(nxt, b, 0.0),
            nxt,
            alphas.at[j].set(a),
            betas.at[j].set(b),
            act.at[j].set(active),
            nxt_m.at[j].set(nxt),
        )

    z = jnp.zeros((m,), dtype)
    f = jnp.zeros((m,), bool)
    init = (v0, jnp.zeros_like(v0), jnp.zeros((), dtype), jnp.asarray(True), z, z, f, f)
    *_, a, b, act, nxt = jax.lax.fori_loop(0, num_steps, body, init)
    a = jnp.where(act, a, a[0])
    b = jnp.where(nxt, b, 0.0)[:-1]
    ritz = eigvalsh(jnp.diag(a) + jnp.diag(b, 1) + jnp.diag(b, -1))
    return jnp.where(num_steps > 0, ritz[0], jnp.inf)


#: Defaults of the ``lambda_min`` search (shared with :func:`ufm.classify`'s block-arrow path).
LAMBDA_RTOL, MAX_ITER, NUM_MATVECS = 2e-11, 64, 0
#: The class reduction's ``lambda_min`` replaces the Lanczos start when its Weyl radius is at most
#: this times ``scale`` (a point near collapse; elsewhere its bracket is too wide to steer).
REDUCTION_RTOL = 1e-6


def block_arrow_spectrum(
    spec,
    params,
    *,
    zero_rtol=1e-8,
    zero_atol=0.0,
    lambda_rtol=LAMBDA_RTOL,
    max_iter: int = MAX_ITER,
    num_matvecs: int = NUM_MATVECS,
    key=None,
    method: str = "auto",
    chunk_size: int = 64,
    sample_chunk: int = 256,
    reduce: bool = True,
) -> BlockArrowResult:
    """Exact inertia and ``lambda_min`` of the Hessian of a per-sample objective (block-arrow).

    Algorithm (docs/theory.md sections 3.8-3.9): build the block-arrow structure
    (:func:`ufm.hessian.block_arrow`); with ``reduce=True`` (default) and a system that registers
    the ``class_reduction`` hook (the UFM), take the spectrum of the Hessian at the class means
    (:mod:`ufm.hessian.reduction`: one dense ``eigvalsh`` of size ``P + K d``) and its Weyl radius
    ``eps``: it certifies the counts at ``+-zero_tol`` that lie more than ``eps`` from its
    eigenvalues and brackets ``lambda_min`` within ``eps``, so at a collapsed critical point (every
    closed-form one) nothing else is needed; where ``eps <= 1e-6 scale`` its ``lambda_min`` is
    also the first estimate. Otherwise, with ``num_matvecs > 0``, take the smallest Ritz value
    ``theta`` of ``num_matvecs`` steps of plain Lanczos on the structured Hessian-vector product
    (``O(N K d)`` each) as the first estimate. Then shrink the certified bracket
    ``[min(lambda_min(A), delta) - ||B||_F, min(lambda_min(A), delta)]`` around ``lambda_min``:
    every evaluation of ``S(sigma)`` certifies ``sigma`` as a lower (``mu > 0``) or upper bound
    and gives the Newton tangent root ``t = sigma - mu / mu'``, an upper bound by concavity; the
    chord between the nearest evaluated points on either side of the root (both below the pole)
    lies below the concave ``mu``, so its root is a lower bound. The first shift is ``theta -
    ctol`` clipped to the zero band ``[-zero_tol, zero_tol]``; the next ones (best upper
    estimate) ``- ctol`` (``ctol = lambda_rtol * scale``), which lands just left of the root once
    the estimate has converged and so closes the bracket. The estimate is the tangent root, or
    right of the root the root of a model with the pole, ``mu ~ a + b / (delta - sigma)`` matched
    to ``mu`` and ``mu'``; left of the root, where the tangent gives nothing new (a mode that does
    not couple to the features, ``mu' = -1``), the root of ``alpha - sigma - beta / (delta -
    sigma)`` through the two chord end points (bisection whenever a shift leaves the bracket;
    shifts stay ``ctol`` below the pole ``delta``). The inertia is the count at ``-zero_tol`` and
    ``+zero_tol`` (Haynsworth's theorem): each evaluation certifies these counts when its
    ``S(sigma)`` has a spectral gap (:func:`_evaluate`: Loewner bounds from the resolvent
    identity, Weyl's monotonicity); a count still unknown once the bracket is closed is evaluated
    at its own shift. Stops when both counts are known and the bracket is narrower than ``2
    lambda_rtol * scale`` or ``max_iter`` search evaluations are spent (a ``while_loop``: under
    ``vmap`` it runs until the slowest member ends, the others masked). Typical cost at ``N =
    10^5`` (``K = d = 10``, ``python benchmarks/perf.py --parts hessian``): no evaluation at the
    closed-form CE minimum and at the origin saddle with the class reduction (two and three with
    ``reduce=False``), four to six at a random point, each ``O(N K^2 d^2)`` for the UFM fast path
    (0.06 s per ``S(sigma)`` on 2 cores with the native sample sums,
    :func:`ufm.kernels.native.ufm_schur_sums`). ``num_matvecs=0`` (default) skips the Lanczos
    start: at ``N = 10^5`` its twelve Hessian-vector products cost more than the evaluations they
    save (the "Lanczos start" column of ``python benchmarks/perf.py --parts hessian``,
    BENCHMARKS.md).

    ``reduce=False`` skips the class reduction (the Schur complement alone, section 3.8: the
    independent reference of the tests and benchmarks).

    Recommended: float64, ``lambda_H > 0`` (the UFM fast path needs ``D_i >= lambda_H I``), defaults
    otherwise (``lambda_rtol=2e-11`` certifies ``lambda_min`` within ``4e-11 * scale``;
    ``lambda_min``
    itself, a Newton bound, is typically exact to rounding). Memory ``O(N (K + d) + sample_chunk K
    d^2)`` for the UFM. Reference: ``numpy.linalg.eigvalsh`` of the
    dense Hessian (:func:`ufm.hessian.hessian_spectrum_dense`) gives the same counts and
    ``lambda_min``.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=4, d=3, loss="ce")
        >>> p = ufm.init_params(spec, jax.random.key(0), scale=0.5)
        >>> res = jax.jit(ufm.hessian.block_arrow_spectrum)(spec, p)
        >>> ev = jax.jit(ufm.hessian.hessian_spectrum_dense)(spec, p)
        >>> bool(res.converged), bool(abs(res.lambda_min - ev[0]) < 1e-10)
        (True, True)
        >>> int(res.n_neg) == int((ev < -res.zero_tol).sum())
        True
    """
    max_iter = check_int("max_iter", max_iter, 1)
    m = check_int("num_matvecs", num_matvecs, 0)
    if m == 1:
        raise ValueError("num_matvecs must be 0 (no Lanczos start) or >= 2, got 1")
    ba = block_arrow(spec, params, method=method, chunk_size=chunk_size, sample_chunk=sample_chunk)
    return spectrum_of_structure(
        ba,
        zero_rtol=zero_rtol,
        zero_atol=zero_atol,
        lambda_rtol=lambda_rtol,
        max_iter=max_iter,
        num_matvecs=m,
        key=jax.random.key(0) if key is None else key,
        reduction=class_reduction(spec, params, ba.A) if reduce else None,
    )


def spectrum_of_structure(
    ba,
    *,
    zero_rtol,
    zero_atol,
    key,
    lambda_rtol=LAMBDA_RTOL,
    max_iter=MAX_ITER,
    num_matvecs=NUM_MATVECS,
    reduction: ClassReduction | None = None,
    need_counts: bool = True,
) -> BlockArrowResult:
    """:func:`block_arrow_spectrum` on an already built structure ``ba`` (:func:`block_arrow`).

    ``reduction`` (:func:`ufm.hessian.reduction.class_reduction` at the same point): its
    certified counts and ``lambda_min`` bracket start the search, and its ``lambda_min`` replaces
    the Lanczos estimate (no Hessian-vector products) when its Weyl radius is at most
    :data:`REDUCTION_RTOL` times ``scale``; at a collapsed point the answer then needs no
    Schur-complement evaluation at all. ``need_counts=False``: only
    ``lambda_min`` is wanted (the counts at ``+-zero_tol`` are neither required nor reported:
    ``-1``)."""
    A = ba.A
    dtype = A.dtype
    P = A.shape[0]
    n_vec = P + ba.feature_dim * ba.num_samples
    m = min(num_matvecs, n_vec)

    # certified initial bracket [lo0, hi0] and a cheap upper estimate of ||Hess||_2
    evA = eigvalsh(A)
    delta = ba.diag_min
    hi0 = jnp.minimum(evA[0], delta)  # interlacing: A and every D_i are principal submatrices
    b_fro = ba.b_fro()
    lo0 = hi0 - b_fro  # Hess >= [[a I, B], [B^T, delta I]]
    scale = jnp.maximum(jnp.maximum(jnp.abs(evA[0]), jnp.abs(evA[-1])), ba.diag_max) + b_fro
    ctol = lambda_rtol * scale
    xtol = 2.0 * ctol
    rounding = 4.0 * P * jnp.finfo(dtype).eps * scale
    cap = delta - ctol  # never evaluate closer than ctol to the pole of S
    zero_tol = jnp.maximum(zero_rtol * scale, zero_atol)
    zero_tol = jnp.where(delta > 0, jnp.minimum(zero_tol, 0.5 * delta), zero_tol)

    def v0():
        v = jax.random.normal(key, (n_vec,), dtype)
        return v / jnp.linalg.norm(v)

    shifts = jnp.stack([-zero_tol, zero_tol])
    # counts at the inertia shifts: -1 wanted and unknown, -2 not wanted
    n_lt0 = jnp.full((2,), -1 if need_counts else -2, jnp.int32)

    def lanczos():
        if m == 0:  # no Lanczos start (the default)
            return jnp.asarray(jnp.inf, dtype)
        return _lanczos_plain(lambda x: block_arrow_matvec(ba, x), v0(), m, m)

    if reduction is None:
        # Start: the smallest Ritz value of plain Lanczos, an (uncertified) upper estimate.
        theta = lanczos()
    else:
        # the class reduction: certified counts and bracket (Weyl; eps = inf certifies nothing);
        # its lambda_min replaces the Lanczos start when the radius is small (near collapse)
        use = reduction.eps <= REDUCTION_RTOL * scale
        lm = reduced_lambda_min(reduction)
        lo0 = jnp.maximum(lo0, lm - reduction.eps)
        hi0 = jnp.minimum(hi0, lm + reduction.eps)
        if need_counts:
            n_lt0 = jax.vmap(lambda s: certified_count(reduction, s))(shifts)
        theta = jax.lax.cond(use, lambda: lm, lanczos)

    # Each step evaluates S at sigma: the count below sigma certifies sigma as a lower bound (count
    # 0) or an upper bound; the tangent root is an upper bound (concavity); the counts at the two
    # inertia shifts +-zero_tol are set when S(sigma) certifies them (_evaluate). Next shift: while
    # the bracket is open (and the search budget lasts), (best upper estimate) - ctol, safeguarded
    # by bisection; then an inertia shift whose count is still unknown.
    def body(state):
        k, n_search, sigma, lo, hi, n_lt, end_l, end_r, prev_left = state
        ev, below, dmu, cert = _evaluate(ba, sigma, shifts, delta)
        hi_before = hi
        n_lt = jnp.where(n_lt == -1, cert, n_lt)
        left = below == 0
        lo = jnp.where(left, jnp.maximum(lo, sigma), lo)
        hi = jnp.where(left, hi, jnp.minimum(hi, sigma))
        # certified counts at the inertia shifts bound lambda_min too
        lo = jnp.where(n_lt[1] == 0, jnp.maximum(lo, shifts[1]), lo)
        lo = jnp.where(n_lt[0] == 0, jnp.maximum(lo, shifts[0]), lo)
        hi = jnp.where(n_lt[0] > 0, jnp.minimum(hi, shifts[0]), hi)
        hi = jnp.where(n_lt[1] > 0, jnp.minimum(hi, shifts[1]), hi)
        t = sigma - ev[0] / dmu  # tangent root: an upper bound of lambda_min (concavity)
        hi = jnp.where((sigma < delta) & (t > lo), jnp.minimum(hi, t), hi)
        # the chord between the nearest evaluated points on either side of the root (mu > 0 and
        # mu < 0, both below the pole) lies below the concave mu: its root is a lower bound
        pole_free = (sigma < delta) & (ba.count_diag_below(sigma) == 0)
        point = jnp.stack([sigma, ev[0]])
        end_l = jnp.where(pole_free & left & (ev[0] > 0) & (sigma > end_l[0]), point, end_l)
        end_r = jnp.where(pole_free & (ev[0] < 0) & (sigma < end_r[0]), point, end_r)
        chord = end_l[0] + end_l[1] * (end_r[0] - end_l[0]) / (end_l[1] - end_r[1])
        chord = chord - rounding  # mu carries rounding of order P eps ||S||, and |mu'| >= 1
        both = jnp.isfinite(end_l[0]) & jnp.isfinite(end_r[0])
        lo = jnp.where(both & (chord < hi), jnp.maximum(lo, chord), lo)
        # right of the root, Newton is slow near the pole: the root of the model mu ~ a + b /
        # (delta - sigma) matching mu and mu' (concave, below the tangent) is the next estimate
        gap = delta - sigma
        a = ev[0] - dmu * gap
        rational = jnp.where((ev[0] < 0) & (a > 0), delta + dmu * gap**2 / a, t)
        # left of the root: the root of mu ~ alpha - sigma - beta / (delta - sigma) through the
        # two chord end points (exact for one pole, e.g. at the origin); the tangent root instead
        # after two left points in a row (it lies right of the root, so the right end point
        # moves too: no regula-falsi stall) unless it gives nothing new (a mode that does not
        # couple to the features, mu' = -1)
        two_point = left & both & (~prev_left | (t >= hi_before))
        rational = jnp.where(two_point, _pole_model_root(end_l, end_r, delta), rational)
        guess = jnp.where(theta < hi, theta, rational)  # the Ritz value while it is informative
        search = (hi - lo > xtol) & (n_search < max_iter)
        nxt = jnp.minimum(hi, guess) - ctol
        nxt = jnp.where((nxt > lo) & (nxt < hi), nxt, 0.5 * (lo + hi))
        nxt = jnp.minimum(nxt, cap)
        nxt = jnp.where(search, nxt, jnp.where(n_lt[0] == -1, shifts[0], shifts[1]))
        state = (k + 1, n_search + search.astype(jnp.int32), nxt, lo, hi, n_lt, end_l, end_r)
        return state + (left,)

    def cond(state):
        k, n_search, _, lo, hi, n_lt, *_ = state
        open_ = (hi - lo > xtol) & (n_search < max_iter)
        # the first evaluation, at most max_iter search steps and one per inertia shift (exact
        # at its own shift): the bound, and the finiteness of scale (any nan or inf in the
        # structure), only bite at a non-finite point, where nothing is ever certified
        return (jnp.any(n_lt == -1) | open_) & (k < max_iter + 3) & jnp.isfinite(scale)

    hi_est = jnp.minimum(hi0, theta)
    # first shift: in the zero band [-zero_tol, zero_tol], just left of the estimate (at a minimum
    # with zero modes this one evaluation decides everything)
    first = jnp.minimum(jnp.clip(hi_est - ctol, -zero_tol, zero_tol), cap)
    first = jnp.where((first > lo0) & (first < hi0), first, -zero_tol)
    # a bracket already closed (by the class reduction): straight to a count still unknown
    unknown = jnp.where(n_lt0[0] == -1, shifts[0], shifts[1])
    first = jnp.where(hi0 - lo0 <= xtol, unknown, first)
    none_left = jnp.array([-jnp.inf, jnp.nan], dtype)  # (sigma, mu) of the chord's end points
    none_right = jnp.array([jnp.inf, jnp.nan], dtype)
    init = (
        jnp.int32(0),
        jnp.int32(0),
        first,
        lo0,
        hi0,
        n_lt0,
        none_left,
        none_right,
        jnp.asarray(False),
    )
    k, _, _, lo, hi, n_lt, *_ = jax.lax.while_loop(cond, body, init)
    known = jnp.all(n_lt >= 0)
    return BlockArrowResult(
        n_neg=jnp.where(known, n_lt[0], -1),
        n_zero=jnp.where(known, n_lt[1] - n_lt[0], -1),
        n_pos=jnp.where(known, n_vec - n_lt[1], -1).astype(jnp.int32),
        lambda_min=hi,
        lambda_min_lower=lo,
        zero_tol=zero_tol,
        scale=scale,
        converged=hi - lo <= xtol,
        num_iters=k,
    )
