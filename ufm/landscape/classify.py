"""Second-order classification of critical points of the UFM (docs/theory.md section 3) and deep
UFM.

:func:`classify` examines one point: gradient norm, loss and ``f - f*`` (closed form,
:func:`ufm.optimal_value`), the global-optimality certificate ``sigma_1(grad_Z g) - sqrt(lW lH)``
(:func:`ufm.certificate`), the Hessian inertia and extreme eigenvalues, the numerical rank of ``W``
and the predicted number of symmetry zero modes (:func:`ufm.zero_mode_count`), and returns a
:class:`CriticalPointRecord` with a class code (:class:`PointClass`). It is a pure jax function
(jit-compiled, vmappable over points). :func:`classify_batch` runs it over a batch of points and
returns numpy columns for a table or Parquet file, warning loudly about candidate counterexamples
to the strict-saddle theorems (Shen & Gu 2024, arXiv 2407.10702 for ``d = K``; Zhu et al. 2021,
arXiv 2105.02375 and Zhou et al. 2022, arXiv 2203.01238 for ``d > K``).

Tolerances (float64 defaults; float32 in brackets), all recorded in the output:

* ``grad_tol = 1e-8`` [``1e-4``]: absolute. Points come from :func:`ufm.polish` at ``1e-10``.
* ``zero_tol = max(zero_rtol ||Hess||_2, zero_gtol ||grad f||)`` with ``zero_rtol = 1e-8``
  [``1e-3``] and ``zero_gtol = 100``. Justification: (i) round-off: ``eigh`` of an autodiff
  Hessian is accurate to a few ``p eps ||Hess||_2`` (``<= 1e-11 ||Hess||`` for ``p <= 1e4``);
  ``1e-8 ~ sqrt(eps)`` leaves a margin of ``10^3`` over that, while the smallest non-zero curvature
  at the closed-form optima is ``>= 6e-5 ||Hess||_2`` (measured over all six variants, ``K`` in
  ``{3, 4, 5}``, ``d`` in ``{K, K + 2}``, ``lambda`` in ``[1e-4, 3e-2]``: zero modes ``<= 8e-16``,
  smallest positive ``>= 3e-5``, ``||Hess||_2 <= 2``; the ratio is smallest for MSE with a bias at
  ``lambda = 1e-4``), so both sides are ``> 10^3`` away from the threshold. (ii)
  Non-exact criticality: differentiating ``grad f(W Q, Q^T H) = (grad f) Q`` gives
  ``Hess(x) (xi x) = xi grad f(x)`` for every rotation generator ``xi``, so the symmetry modes sit
  at most ``||grad f|| ||xi|| / ||xi x|| ~ ||grad f|| / sigma_r(W)`` from zero; the factor ``100``
  covers ``sigma_r(W) >= 0.01``. A point is classified with both in mind.
* ``f_tol = f_rtol max(1, |f*|)`` with ``f_rtol = 1e-8`` [``1e-4``] for ``|f - f*|``.
* ``cert_tol = cert_rtol sqrt(lW lH) + cert_gtol ||grad f||`` (``1e-6``, ``1``) [``1e-3``, ``1``]:
  ``sigma_1(G)`` is Lipschitz in ``Z`` (constant ``||Hess_Z g|| <= 1/N``), so near a critical
  point the certificate moves by ``O(dist)`` (observed ``~0.1 ||grad f||`` after a random
  perturbation of an optimum); the relative part
  absorbs round-off. At polished points this is ``~1e-10``, against gaps ``>= 1e-2`` at the
  planted saddles.
* rank of ``W``: singular values above ``max(rank_rtol sigma_1, rank_atol)`` (``1e-8``, ``1e-6``
  [``1e-3``, ``1e-3``]). The absolute floor matters at the origin, which Newton reaches only to
  ``W ~ 1e-11``-``1e-20`` (a relative test alone would call that full rank); genuine non-zero
  critical points have ``sigma_r(W) >> 1e-6`` except within ``~1e-12`` of the collapse
  threshold (``||w||^2 ~ rho*``, ``rho* -> 0`` linearly in ``1/K - s``).

Classes, in order of precedence:

* ``NOT_CRITICAL``: ``||grad f|| > grad_tol``.
* ``STRICT_SADDLE``: ``lambda_min < -zero_tol`` (``n_neg > 0``; for Lanczos the Ritz value, an
  upper bound of ``lambda_min``, is below ``-zero_tol``).
* ``GLOBAL_MIN``: no negative eigenvalue, ``n_zero`` equals the predicted symmetry count and
  ``|f - f*| <= f_tol`` with the certificate holding (or, when ``f*`` has no closed form at this
  ``d``, the certificate holds: it proves global optimality on its own).
* ``SPURIOUS_MIN``: no negative eigenvalue, exactly the symmetry zero modes, ``f - f* > f_tol``: a
  (Morse-Bott) local minimum that is not global. A counterexample: warned about.
* ``LOCAL_MIN``: as ``SPURIOUS_MIN`` but undecided: ``f*`` unknown at this ``d`` (``d`` below the
  rank of the minimiser) and the certificate does not hold (it is only sufficient there).
* ``DEGENERATE``: no negative eigenvalue and anything else: extra (or missing) zero modes,
  ``f < f* - f_tol``, or ``f = f*`` with a violated certificate. The second-order test is
  inconclusive: a candidate counterexample, warned about.

Model-specific facts (reference value, certificate, rank, predicted zero modes) come from the
system's hooks (:mod:`ufm.landscape.facts`; the UFM's in :mod:`ufm.systems.ufm.facts`); the deep
UFM registers its own in :mod:`ufm.systems.deep_ufm.facts` (reference ``L_DNC``, no certificate:
never
``GLOBAL_MIN``, minima without negative curvature are ``LOCAL_MIN`` or ``DEGENERATE``).

Hessian routines (``method``): ``"dense"`` (all eigenvalues,
:func:`ufm.hessian.hessian_spectrum_dense`),
``"block_arrow"`` (exact inertia and ``lambda_min`` by Haynsworth's Schur complement,
:func:`ufm.hessian.block_arrow_spectrum`; no ``lambda_max``), ``"lanczos"`` (extreme Ritz values
only,
:func:`ufm.hessian.lanczos_extremes`: a Ritz ``lambda_min < -zero_tol`` certifies a saddle, but
counts are
unknown, ``-1``, and the zero-mode check is skipped), ``"auto"`` (dense up to
:data:`DENSE_CLASSIFY_MAX_PARAMS` parameters, block-arrow above).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..core.devices import on_cpu
from ..core.model import grad_norm as _grad_norm
from ..core.model import loss as _loss
from ..core.registry import system_of
from ..hessian.dense import hessian_spectrum_dense
from ..hessian.inertia import block_arrow_inertia, spectrum_of_structure
from ..hessian.lanczos import lanczos_extremes
from ..hessian.structure import BlockArrow, block_arrow
from .classes import (
    CLASS_NAMES,
    CriticalPointRecord,
    PointClass,
    warn_counterexamples,
)
from .facts import Tolerances, default_tolerances

__all__ = ["classify", "classify_batch", "resolve_method", "METHODS", "DENSE_CLASSIFY_MAX_PARAMS"]

#: Largest parameter count for which ``method="auto"`` builds the dense Hessian.
DENSE_CLASSIFY_MAX_PARAMS = 1500

METHODS = ("auto", "dense", "block_arrow", "lanczos")


def _validate(spec, params, *, batched: bool, tols) -> None:
    """The system's host-side checks of a point (or batch) before compilation."""
    system = system_of(spec)
    system.require("classification", "the Hessian classification (ufm.classify)")
    if system.validate_params is not None:
        system.validate_params(spec, params, batched=batched, tols=tols)


def _num_global_params(spec) -> int:
    """Size of the global (non-feature) block: the batch-size memory heuristic."""
    fn = system_of(spec).num_global_params
    return fn(spec) if fn is not None else spec.num_params


def resolve_method(spec, method: str) -> str:
    """The Hessian routine ``method="auto"`` picks for ``spec`` (static: sizes only)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if method != "auto":
        return method
    return "dense" if spec.num_params <= DENSE_CLASSIFY_MAX_PARAMS else "block_arrow"


def _dtype(params):
    return jax.tree_util.tree_leaves(params)[0].dtype


def _hessian_facts(spec, params, method, tol_of_norm, num_matvecs, key):
    """``(lambda_min, lambda_max, hess_norm, lambda_pos_min, zero_max, n_neg, n_zero, n_pos,
    zero_tol)`` of the Hessian by ``method``; ``tol_of_norm(||Hess||)`` gives ``zero_tol``."""
    dtype = _dtype(params)
    nan = jnp.asarray(jnp.nan, dtype)
    if method == "dense":
        ev = hessian_spectrum_dense(spec, params)
        hnorm = jnp.maximum(jnp.abs(ev[0]), jnp.abs(ev[-1]))
        tol = tol_of_norm(hnorm)
        neg, pos = ev < -tol, ev >= tol
        zero = ~neg & ~pos
        pos_min = jnp.min(jnp.where(pos, ev, jnp.inf))
        zmax = jnp.max(jnp.where(zero, jnp.abs(ev), 0.0))
        counts = [jnp.sum(m).astype(jnp.int32) for m in (neg, zero, pos)]
        return (
            ev[0],
            ev[-1],
            hnorm,
            jnp.where(jnp.isfinite(pos_min), pos_min, nan),
            zmax,
            *counts,
            tol,
        )
    if method == "block_arrow":
        # "standard" promotion: the inertia routines add int32 and int64 counts under x64
        # (they fail with jax_numpy_dtype_promotion="strict").
        with jax.numpy_dtype_promotion("standard"):
            ba = block_arrow(spec, params)  # built once (the generic path costs P + d HVPs)
            res = spectrum_of_structure(ba, zero_rtol=0.0, zero_atol=0.0, key=jax.random.key(0))
            tol = tol_of_norm(res.scale)
            if not isinstance(ba, BlockArrow):  # fast paths factor D_i - sigma I by Cholesky
                tol = jnp.where(ba.diag_min > 0, jnp.minimum(tol, 0.5 * ba.diag_min), tol)
            below_neg = block_arrow_inertia(ba, -tol)
            below_pos = block_arrow_inertia(ba, tol)
        total = spec.num_params
        counts = [
            x.astype(jnp.int32) for x in (below_neg, below_pos - below_neg, total - below_pos)
        ]
        return (res.lambda_min, nan, res.scale, nan, nan, *counts, tol)
    # lanczos
    m = min(num_matvecs, spec.num_params)
    res = lanczos_extremes(spec, params, key, m)
    hnorm = jnp.maximum(jnp.abs(res.lambda_min), jnp.abs(res.lambda_max))
    tol = tol_of_norm(hnorm)
    unknown = jnp.asarray(-1, jnp.int32)
    return (res.lambda_min, res.lambda_max, hnorm, nan, nan, unknown, unknown, unknown, tol)


def _classify_one(spec, params, tols: Tolerances, method: str, num_matvecs: int, key):
    dtype = _dtype(params)
    c = lambda v: jnp.asarray(v, dtype)  # noqa: E731
    f = _loss(spec, params)
    g = _grad_norm(spec, params)
    mf = system_of(spec).require("classification", "ufm.classify")(spec, params, tols)
    f_star = mf.f_star
    known = mf.ref_is_optimum & jnp.isfinite(f_star)
    f_gap = f - f_star
    rank, predicted = mf.rank, mf.zero_modes_predicted

    def tol_of_norm(hnorm):
        return jnp.maximum(c(tols.zero_rtol) * hnorm, c(tols.zero_gtol) * g)

    lam_min, lam_max, hnorm, pos_min, zmax, n_neg, n_zero, n_pos, zero_tol = _hessian_facts(
        spec, params, method, tol_of_norm, num_matvecs, key
    )

    grad_tol = c(tols.grad_tol)
    f_tol = c(tols.f_rtol) * jnp.maximum(1.0, jnp.abs(jnp.where(jnp.isfinite(f_star), f_star, 0.0)))
    cert_tol = c(tols.cert_rtol) * mf.cert_bound + c(tols.cert_gtol) * g
    cert_ok = mf.certificate_gap <= cert_tol  # False when there is no certificate (nan)
    at_fstar = known & (jnp.abs(f_gap) <= f_tol)
    above = known & (f_gap > f_tol)
    zero_ok = (n_zero == predicted) | (n_zero < 0)  # unknown counts (Lanczos): not checked
    # exact inertia where known (dense, block-arrow); a Ritz value (an upper bound) for Lanczos
    negative = jnp.where(n_neg >= 0, n_neg > 0, lam_min < -zero_tol)
    is_global = jnp.where(known, at_fstar & cert_ok, cert_ok)

    code = jnp.where(
        g > grad_tol,
        PointClass.NOT_CRITICAL,
        jnp.where(
            negative,
            PointClass.STRICT_SADDLE,
            jnp.where(
                zero_ok & is_global,
                PointClass.GLOBAL_MIN,
                jnp.where(
                    zero_ok & above,
                    PointClass.SPURIOUS_MIN,
                    jnp.where(
                        zero_ok & ~known & ~cert_ok, PointClass.LOCAL_MIN, PointClass.DEGENERATE
                    ),
                ),
            ),
        ),
    ).astype(jnp.int8)
    return CriticalPointRecord(
        code=code,
        loss=f,
        grad_norm=g,
        f_star=f_star,
        f_gap=f_gap,
        sigma_1=mf.sigma_1,
        certificate_gap=mf.certificate_gap,
        curvature_bound=mf.curvature_bound,
        lambda_min=lam_min,
        lambda_max=lam_max,
        hess_norm=hnorm,
        lambda_pos_min=pos_min,
        zero_max=zmax,
        n_neg=n_neg,
        n_zero=n_zero,
        n_pos=n_pos,
        rank=rank,
        zero_modes_predicted=predicted,
        grad_tol=grad_tol,
        zero_tol=zero_tol,
        f_tol=f_tol,
        cert_tol=cert_tol,
    )


@functools.partial(jax.jit, static_argnames=("method", "num_matvecs"))
def _classify_jit(spec, params, tols, key, method, num_matvecs):
    return _classify_one(spec, params, tols, method, num_matvecs, key)


@functools.partial(jax.jit, static_argnames=("method", "num_matvecs", "batch_size"))
def _classify_many(spec, params, valid, tols, key, method, num_matvecs, batch_size):
    """``lax.map`` of ``_classify_one``; padding rows (``valid`` False) are skipped by a
    ``lax.cond`` when ``batch_size == 1`` (under a batched map both branches run)."""
    one = lambda p: _classify_one(spec, p, tols, method, num_matvecs, key)  # noqa: E731
    blank = jax.tree_util.tree_map(
        lambda s: jnp.zeros(s.shape, s.dtype),
        jax.eval_shape(one, jax.tree_util.tree_map(lambda x: x[0], params)),
    )
    fn = lambda pv: jax.lax.cond(pv[1], one, lambda _: blank, pv[0])  # noqa: E731
    return jax.lax.map(fn, (params, valid), batch_size=batch_size)


def classify(
    spec,
    params,
    *,
    method: str = "auto",
    grad_tol=None,
    zero_rtol=None,
    zero_gtol=None,
    f_rtol=None,
    cert_rtol=None,
    cert_gtol=None,
    rank_rtol=None,
    rank_atol=None,
    kink_rtol=None,
    num_matvecs: int = 64,
    key=None,
) -> CriticalPointRecord:
    """Classify one (polished, float64) point of the UFM or deep UFM: minimum, saddle, or neither.

    Computes the gradient norm, ``f - f*`` against the closed form, the global-optimality
    certificate, the Hessian inertia with explicit tolerances, the numerical rank of ``W`` and
    the predicted symmetry zero modes, and combines them into a :class:`PointClass` code (rules and
    tolerance choices in the module docstring). Jit-compiled (``method`` and ``num_matvecs``
    static; the spec's lambdas and the tolerances traced, so sweeps do not recompile). For a batch
    use :func:`classify_batch` or ``jax.vmap(lambda p: classify(spec, p))``.

    Args:
        spec: a :class:`ufm.UFMSpec` or :class:`ufm.DeepUFMSpec` (float64 recommended; deep
            rules in :mod:`ufm.systems.deep_ufm.facts`).
        params: one point (no seed axis), best polished to ``||grad f|| <= 1e-10``.
        method: ``"auto"``, ``"dense"``, ``"block_arrow"`` or ``"lanczos"`` (see module docstring).
        grad_tol, zero_rtol, zero_gtol, f_rtol, cert_rtol, cert_gtol, rank_rtol, rank_atol:
            tolerances;
            ``None`` takes the dtype's default.
        kink_rtol: deep UFM with ReLU or leaky ReLU only: a pre-activation entry with ``|z| <=
            kink_rtol * max |Z_l|`` sits at the kink, where the Hessian is not defined:
            ``ValueError`` naming the layer (default ``1e-6`` [``1e-3``]).
        num_matvecs: Krylov depth for ``method="lanczos"`` (capped at the parameter count).
        key: PRNG key of the Lanczos start vector (default ``jax.random.key(0)``).

    Example:
        >>> import ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce", bias="free")
        >>> rec = ufm.classify(spec, ufm.optimum(spec).params)
        >>> ufm.CLASS_NAMES[int(rec.code)], int(rec.n_zero), int(rec.zero_modes_predicted)
        ('global_min', 4, 4)
    """
    tols = default_tolerances(
        _dtype(params),
        grad_tol,
        zero_rtol,
        zero_gtol,
        f_rtol,
        cert_rtol,
        cert_gtol,
        rank_rtol,
        rank_atol,
        kink_rtol,
    )
    _validate(spec, params, batched=False, tols=tols)
    method = resolve_method(spec, method)
    key = jax.random.key(0) if key is None else key
    return _classify_jit(spec, params, tols, key, method, int(num_matvecs))


def classify_batch(
    spec,
    params,
    *,
    method: str = "auto",
    batch_size: int | None = None,
    warn: bool = True,
    **tolerances,
) -> dict:
    """Classify a batch of points (leading axis) and return numpy columns, one row per point.

    Runs :func:`classify` under ``jax.lax.map`` in batches of ``batch_size`` points (default: one
    point at a time on CPU, else a dense-Hessian memory budget of about 256 MB). On CPU, batched
    LAPACK calls (``eigh``/``svd`` of a whole batch) once deadlocked inside jaxlib's thread pool
    in a sweep, and one point at a time was faster anyway (2048 points of 100 parameters in 1.2 s).
    The batch is padded to the next power of two
    (copies of the first point, skipped when ``batch_size`` is 1 and dropped), so that varying
    batch sizes reuse a few compilations. The columns are the
    :class:`CriticalPointRecord` fields plus ``class`` (names from :data:`CLASS_NAMES`) and
    ``class_code``, ready for ``pandas.DataFrame`` or ``pyarrow.table``. With ``warn=True`` a
    :class:`CounterexampleWarning` lists every ``SPURIOUS_MIN`` or ``DEGENERATE`` row.

    Example:
        >>> import jax, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse")
        >>> opt = ufm.optimum(spec).params
        >>> batch = jax.tree_util.tree_map(lambda x: x[None], opt)
        >>> ufm.classify_batch(spec, batch)["class"].tolist()
        ['global_min']
    """
    leaves = jax.tree_util.tree_leaves(params)
    num = leaves[0].shape[0]
    num_matvecs = int(tolerances.pop("num_matvecs", 64))
    key = tolerances.pop("key", None)
    key = jax.random.key(0) if key is None else key
    tols = default_tolerances(
        leaves[0].dtype, **{k: tolerances.pop(k, None) for k in Tolerances._fields}
    )
    if tolerances:
        raise TypeError(f"unknown keyword arguments {sorted(tolerances)}")
    _validate(spec, params, batched=True, tols=tols)
    method = resolve_method(spec, method)
    if batch_size is None and on_cpu(params):
        batch_size = 1  # no batched LAPACK calls on CPU (see below)
    if batch_size is None:
        p = spec.num_params
        per_point = 8 * 4 * (p * p if method == "dense" else p * max(_num_global_params(spec), 8))
        batch_size = int(max(1, min(num, (256 << 20) // per_point)))
    bucket = 1 << max(0, num - 1).bit_length()
    if bucket > num:
        params = jax.tree_util.tree_map(
            lambda x: jnp.concatenate([x, jnp.broadcast_to(x[:1], (bucket - num,) + x.shape[1:])]),
            params,
        )
    batch_size = min(int(batch_size), bucket)
    valid = jnp.arange(bucket) < num
    rec = _classify_many(spec, params, valid, tols, key, method, num_matvecs, batch_size)
    cols = {k: np.asarray(v)[:num] for k, v in rec._asdict().items()}
    cols["class_code"] = cols.pop("code")
    cols["class"] = np.asarray(CLASS_NAMES, dtype=object)[cols["class_code"]]
    if warn:
        warn_counterexamples(cols)
    return cols
