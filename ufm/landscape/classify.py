"""Second-order classification of critical points of the UFM (docs/theory.md section 3) and deep
UFM.

:func:`classify` examines one point: gradient norm, loss and ``f - f*`` (closed form,
:func:`ufm.optimal_value`), the global-optimality certificate ``sigma_1(grad_Z g) - sqrt(lW lH)``
(:func:`ufm.certificate`), the Hessian inertia and extreme eigenvalues, the numerical rank of ``W``
and the predicted number of symmetry zero modes with the scale of their orbit (UFM:
:func:`ufm.systems.ufm.facts.orbit_facts`), and returns a
:class:`CriticalPointRecord` with a class code (:class:`PointClass`). It is a pure jax function
(jit-compiled, vmappable over points). :func:`classify_batch` runs it over a batch of points and
returns numpy columns for a table or Parquet file, warning loudly about candidate counterexamples
to the strict-saddle theorems (Shen & Gu 2024, arXiv 2407.10702 for ``d = K``; Zhu et al. 2021,
arXiv 2105.02375 and Zhou et al. 2022, arXiv 2203.01238 for ``d > K``).

Tolerances (float64 defaults; float32 in brackets), all recorded in the output (docs/theory.md
section 3.7 gives the measurements behind them):

* ``grad_tol = 1e-8`` [``1e-4``]: absolute. Points come from :func:`ufm.polish` at ``1e-10``.
* ``zero_tol = max(zero_rtol ||Hess||_2, zero_gtol ||grad f|| max(1, 1/orbit_scale))`` with
  ``zero_rtol = 1e-8`` [``1e-3``] and ``zero_gtol = 10``. (i) Round-off: ``eigh`` of an autodiff
  Hessian is accurate to a few ``p eps ||Hess||_2``; ``1e-8 ~ sqrt(eps)`` leaves a margin of
  ``10^3``, and the smallest non-zero curvature at the closed-form optima away from the collapse
  thresholds is ``>= 6e-5 ||Hess||_2``. (ii) Non-exact criticality: for a symmetry generator
  ``xi``, ``Hess(x) (xi x) = xi grad f(x)`` exactly, so the predicted symmetry modes lie within
  ``2 ||grad f|| / orbit_scale`` of zero (:func:`ufm.landscape.facts.orbit_rank_and_scale`;
  ``orbit_scale ~ sigma_r(W)``, which tends to 0 at a collapse threshold: at ``s = 1/K - 1e-6``
  the rotation modes of a polished minimum sit at ``1e-8 > 100 ||grad f||``, and a fixed
  multiple of ``||grad f||`` made such minima "degenerate" or even "strict saddles").
  ``zero_gtol = 10`` is 5 times the rigorous factor 2.
* ``f_tol = f_rtol max(1, |f*|)`` with ``f_rtol = 1e-8`` [``1e-4``] for ``|f - f*|``.
* ``cert_tol = cert_rtol sqrt(lW lH) + cert_gtol ||grad f||`` (``1e-6``, ``1``) [``1e-3``, ``1``]:
  ``sigma_1(G)`` is Lipschitz in ``Z``, so near a critical point the certificate moves by
  ``O(dist)``; the relative part absorbs round-off.
* rank of ``W`` and of the symmetry tangents: singular values above ``max(rank_rtol sigma_1,
  rank_atol)`` (``1e-8``, ``1e-6`` [``1e-3``, ``1e-3``]); the absolute floor matters at the
  origin, which Newton reaches only to ``W ~ 1e-11``-``1e-20``.
* ``undecided_factor = 100``: a zero-mode mismatch is *firm* when it survives changing
  ``zero_tol`` by this factor (extra modes within ``zero_tol / 100`` of zero, or missing ones
  still missing at ``100 zero_tol``), else the point is ``UNDECIDED``.

Every point first passes a finiteness guard (params, loss and gradient finite, ``sum(x^2) <=
sqrt(finfo.max)``): a point that fails it is replaced by zeros before any LAPACK call (jaxlib's
CPU ``svd`` never returns on some ``inf`` inputs) and classified ``NON_FINITE``.

Classes, in order of precedence:

* ``NON_FINITE``: the point, its loss or its gradient is not finite (or overflows).
* ``NOT_CRITICAL``: ``||grad f|| > grad_tol``.
* ``STRICT_SADDLE``: ``lambda_min < -zero_tol`` (``n_neg > 0``; for Lanczos the Ritz value, an
  upper bound of ``lambda_min``, is below ``-zero_tol``).
* ``GLOBAL_MIN``: no negative eigenvalue, ``|f - f*| <= f_tol`` and the certificate holds (or,
  when ``f*`` has no closed form at this ``d``, the certificate holds): a critical point meeting
  the certificate is a global minimum, whatever its zero modes (at a collapse threshold the
  global minimum has more zero modes than the symmetry predicts: ``n_zero`` records them).
* ``SPURIOUS_MIN``: no negative eigenvalue, exactly the symmetry zero modes, ``f - f* > f_tol``: a
  (Morse-Bott) local minimum that is not global. A counterexample: warned about.
* ``LOCAL_MIN``: as ``SPURIOUS_MIN`` but undecided: ``f*`` unknown at this ``d`` (``d`` below the
  rank of the minimiser) and the certificate does not hold (it is only sufficient there).
* ``UNDECIDED``: no negative eigenvalue, not certified, and a zero-mode count that differs from
  the prediction only at this tolerance (see ``undecided_factor``): never a counterexample.
* ``DEGENERATE``: no negative eigenvalue, not certified, and anything else: firmly extra (or
  missing) zero modes, ``f < f* - f_tol``, or ``f = f*`` with a violated certificate. The
  second-order test is inconclusive: a candidate counterexample, warned about.

Model-specific facts (reference value, certificate, rank, predicted zero modes) come from the
system's hooks (:mod:`ufm.landscape.facts`; the UFM's in :mod:`ufm.systems.ufm.facts`); the deep
UFM registers its own in :mod:`ufm.systems.deep_ufm.facts` (reference ``L_DNC``, no certificate:
never ``GLOBAL_MIN``; minima without negative curvature are ``LOCAL_MIN``, ``UNDECIDED`` or
``DEGENERATE``).

Hessian routines (``method``): ``"dense"`` (all eigenvalues of the autodiff Hessian,
:func:`ufm.hessian.hessian_dense`), ``"block_arrow"`` (exact inertia and ``lambda_min`` by
Haynsworth's Schur complement, :func:`ufm.hessian.block_arrow_spectrum`; no ``lambda_max``; the
system's fast structure where it applies, the generic autodiff one otherwise, e.g. for
``lambda_H = 0``, :func:`ufm.hessian.structure.fast_path_applies`; its ``+zero_tol`` shift is
capped at half the smallest feature-block eigenvalue, recorded as ``zero_tol_upper``),
``"lanczos"`` (extreme Ritz values only, :func:`ufm.hessian.lanczos_extremes`: a Ritz
``lambda_min < -zero_tol`` certifies a saddle, but counts are unknown, ``-1``, and the zero-mode
check is skipped), ``"auto"`` (dense up to :data:`DENSE_CLASSIFY_MAX_PARAMS` parameters,
block-arrow above).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..core.devices import map_points, on_cpu, on_one_cpu_device, seed_mesh_of, spread_points
from ..core.jitting import adaptive_jit
from ..core.model import grad_norm as _grad_norm
from ..core.model import loss as _loss
from ..core.registry import system_of
from ..hessian.structure import fast_path_applies
from .classes import (
    CLASS_NAMES,
    CriticalPointRecord,
    PointClass,
    warn_counterexamples,
)
from .curvature import hessian_facts, tolerance_dependent
from .facts import Tolerances, all_finite, default_tolerances

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


def _structure(spec, method: str) -> str:
    """The block-arrow structure: the system's fast path, or the generic autodiff one where the
    fast path does not apply (``lambda_H = 0`` for the UFM:
    :func:`ufm.hessian.structure.fast_path_applies`; the generic path is exact for any
    ``lambda_H``, at ``P d N`` memory)."""
    if method != "block_arrow":
        return "auto"
    return "auto" if fast_path_applies(spec) else "autodiff"


def _dtype(params):
    return jax.tree_util.tree_leaves(params)[0].dtype


def _classify_one(spec, params, tols: Tolerances, method: str, num_matvecs: int, key, structure):
    dtype = _dtype(params)
    c = lambda v: jnp.asarray(v, dtype)  # noqa: E731
    f = _loss(spec, params)
    g = _grad_norm(spec, params)
    # Finiteness guard before any LAPACK call: a non-finite (or overflowing) point is replaced
    # by zeros, its facts computed there and discarded (a select, not a cond: safe under vmap).
    finite = all_finite(params) & jnp.isfinite(f) & jnp.isfinite(g)
    safe = jax.tree_util.tree_map(lambda x: jnp.where(finite, x, jnp.zeros_like(x)), params)
    gs = jnp.where(finite, g, 0.0)
    mf = system_of(spec).require("classification", "ufm.classify")(spec, safe, tols)
    f_star = mf.f_star
    known = mf.ref_is_optimum & jnp.isfinite(f_star)
    f_gap = f - f_star
    rank, predicted = mf.rank, mf.zero_modes_predicted
    orbit = jnp.where(jnp.isfinite(mf.orbit_scale), mf.orbit_scale, jnp.inf)

    def tol_of_norm(hnorm):
        # round-off of eigh, and the symmetry modes' distance from zero at an inexact critical
        # point: at most 2 ||grad f|| / orbit_scale (ufm.landscape.facts.orbit_rank_and_scale)
        return jnp.maximum(
            c(tols.zero_rtol) * hnorm, c(tols.zero_gtol) * gs * jnp.maximum(1.0, 1.0 / orbit)
        )

    sp = hessian_facts(spec, safe, method, tol_of_norm, num_matvecs, key, structure)
    finite = finite & sp.finite
    n_neg, n_zero, zero_tol = sp.n_neg, sp.n_zero, sp.zero_tol

    grad_tol = c(tols.grad_tol)
    f_tol = c(tols.f_rtol) * jnp.maximum(1.0, jnp.abs(jnp.where(jnp.isfinite(f_star), f_star, 0.0)))
    cert_tol = c(tols.cert_rtol) * mf.cert_bound + c(tols.cert_gtol) * gs
    cert_ok = mf.certificate_gap <= cert_tol  # False when there is no certificate (nan)
    at_fstar = known & (jnp.abs(f_gap) <= f_tol)
    above = known & (f_gap > f_tol)
    zero_ok = (n_zero == predicted) | (n_zero < 0)  # unknown counts (Lanczos): not checked
    # exact inertia where known (dense, block-arrow); a Ritz value (an upper bound) for Lanczos
    negative = jnp.where(n_neg >= 0, n_neg > 0, sp.lambda_min < -zero_tol)
    # a critical point meeting the certificate is a global minimum whatever its zero modes
    certified = jnp.where(known, at_fstar & cert_ok, cert_ok)
    undecided = tolerance_dependent(sp, predicted, c(tols.undecided_factor))

    i8 = lambda k: jnp.asarray(int(k), jnp.int8)  # noqa: E731
    code = jnp.select(
        [
            ~finite,
            g > grad_tol,
            negative,
            certified,
            zero_ok & above,
            zero_ok & ~known & ~cert_ok,
            ~zero_ok & undecided,
        ],
        [
            i8(PointClass.NON_FINITE),
            i8(PointClass.NOT_CRITICAL),
            i8(PointClass.STRICT_SADDLE),
            i8(PointClass.GLOBAL_MIN),
            i8(PointClass.SPURIOUS_MIN),
            i8(PointClass.LOCAL_MIN),
            i8(PointClass.UNDECIDED),
        ],
        i8(PointClass.DEGENERATE),
    )
    nanf = lambda x: jnp.where(finite, x, jnp.nan)  # noqa: E731
    minus = lambda x: jnp.where(finite, x, -1).astype(jnp.int32)  # noqa: E731
    return CriticalPointRecord(
        code=code,
        loss=f,
        grad_norm=g,
        f_star=f_star,
        f_gap=f_gap,
        sigma_1=nanf(mf.sigma_1),
        certificate_gap=nanf(mf.certificate_gap),
        curvature_bound=nanf(mf.curvature_bound),
        lambda_min=nanf(sp.lambda_min),
        lambda_max=nanf(sp.lambda_max),
        hess_norm=nanf(sp.hess_norm),
        lambda_pos_min=nanf(sp.lambda_pos_min),
        zero_max=nanf(sp.zero_max),
        n_neg=minus(n_neg),
        n_zero=minus(n_zero),
        n_pos=minus(sp.n_pos),
        rank=minus(rank),
        zero_modes_predicted=minus(predicted),
        orbit_scale=nanf(mf.orbit_scale),
        grad_tol=grad_tol,
        zero_tol=nanf(zero_tol),
        zero_tol_upper=nanf(sp.zero_tol_upper),
        f_tol=f_tol,
        cert_tol=nanf(cert_tol),
    )


@adaptive_jit(static_argnames=("method", "num_matvecs", "structure"))
def _classify_jit(spec, params, tols, key, method, num_matvecs, structure):
    return _classify_one(spec, params, tols, method, num_matvecs, key, structure)


@adaptive_jit(static_argnames=("method", "num_matvecs", "batch_size", "structure", "mesh"))
def _classify_many(
    spec, params, valid, tols, key, method, num_matvecs, batch_size, structure, mesh=None
):
    """``lax.map`` of ``_classify_one``; padding rows (``valid`` False) are skipped by a
    ``lax.cond`` when ``batch_size == 1`` (under a batched map both branches run). With ``mesh``
    (``batch_size == 1``) every CPU device maps over its own points at once
    (:func:`ufm.core.map_points`)."""
    # jitted: the shape probe below and the cond trace it once between them
    one = jax.jit(lambda p: _classify_one(spec, p, tols, method, num_matvecs, key, structure))
    blank = jax.tree_util.tree_map(
        lambda s: jnp.zeros(s.shape, s.dtype),
        jax.eval_shape(one, jax.tree_util.tree_map(lambda x: x[0], params)),
    )
    fn = lambda pv: jax.lax.cond(pv[1], one, lambda _: blank, pv[0])  # noqa: E731
    # batch_size 1: a plain scan (lax.map with a batch size vmaps its body: a batch of one would
    # turn the cond into a select and batch every LAPACK call, and tracing the vmap costs ~1 s)
    if batch_size == 1:
        return map_points(fn, (params, valid), mesh)
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
    undecided_factor=None,
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
        grad_tol, zero_rtol, zero_gtol, f_rtol, cert_rtol, cert_gtol, rank_rtol, rank_atol,
            undecided_factor: tolerances (module docstring); ``None`` takes the dtype's default.
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
        undecided_factor,
    )
    _validate(spec, params, batched=False, tols=tols)
    method = resolve_method(spec, method)
    key = jax.random.key(0) if key is None else key
    return _classify_jit(
        spec, params, tols, key, method, int(num_matvecs), _structure(spec, method)
    )


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
    point at a time on CPU, on every device of a batch sharded over several CPU devices at once,
    :func:`ufm.core.map_points`; else a dense-Hessian memory budget of about 256 MB). On CPU,
    batched LAPACK calls (``eigh``/``svd`` of a whole batch) once deadlocked inside jaxlib's
    thread pool in a sweep, and one point at a time was faster anyway (2048 points of 100
    parameters in 1.2 s).
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
    mesh = seed_mesh_of(params) if batch_size == 1 else None
    if batch_size != 1:  # batched LAPACK calls: never on several CPU devices at once
        params = on_one_cpu_device(params)
    bucket = 1 << max(0, num - 1).bit_length()
    if mesh is not None:  # every device the same number of points
        bucket = -(-bucket // mesh.size) * mesh.size
    # padding on the host (NumPy), then placed where the batch was: eager jnp ops would each
    # compile a small XLA program (about 0.05 s each on CPU)
    where = getattr(jax.tree_util.tree_leaves(params)[0], "sharding", None)
    if where is not None and len(where.device_set) > 1:
        where = None  # mesh is None here: a batch gathered for batched calls
    if bucket > num:

        def pad(x):
            x = np.asarray(x)
            return np.concatenate([x, np.broadcast_to(x[:1], (bucket - num,) + x.shape[1:])])

        params = jax.tree_util.tree_map(pad, params)
        if mesh is None:
            params = jax.device_put(params, where)
    batch_size = min(int(batch_size), bucket)
    valid = np.arange(bucket) < num
    if mesh is not None:  # padding may have moved the points: spread them again
        params, valid = spread_points((params, valid), mesh)
    else:
        valid = jax.device_put(valid, where)
    rec = _classify_many(
        spec,
        params,
        valid,
        tols,
        key,
        method,
        num_matvecs,
        batch_size,
        _structure(spec, method),
        mesh,
    )
    cols = {k: np.asarray(v)[:num] for k, v in rec._asdict().items()}
    cols["class_code"] = cols.pop("code")
    cols["class"] = np.asarray(CLASS_NAMES, dtype=object)[cols["class_code"]]
    if warn:
        warn_counterexamples(cols)
    return cols
