"""Classes of critical points, the classification record, and counterexample warnings."""

from __future__ import annotations

import enum
import warnings
from typing import NamedTuple

import jax
import numpy as np

__all__ = [
    "PointClass",
    "CLASS_NAMES",
    "COUNTEREXAMPLE_CLASSES",
    "CounterexampleWarning",
    "CriticalPointRecord",
    "warn_counterexamples",
    "RECORD_DOCS",
]


class PointClass(enum.IntEnum):
    """Class codes of :class:`CriticalPointRecord` (stored as ``int8``; rules in
    :mod:`ufm.landscape.classify`).

    ``UNDECIDED`` (no negative curvature, not certified, and a zero-mode count that differs from
    the prediction only through eigenvalues within a factor ``undecided_factor`` of ``zero_tol``:
    the second-order test cannot be resolved at this precision, e.g. next to a collapse
    threshold) and ``NON_FINITE`` (the point, its loss or its gradient is not finite: nothing
    was computed from it) are never counted as counterexamples.
    """

    GLOBAL_MIN = 0
    STRICT_SADDLE = 1
    LOCAL_MIN = 2
    SPURIOUS_MIN = 3
    DEGENERATE = 4
    NOT_CRITICAL = 5
    UNDECIDED = 6
    NON_FINITE = 7


#: Lower-case class names indexed by code (the ``class`` column of :func:`classify_batch`).
CLASS_NAMES = tuple(c.name.lower() for c in PointClass)

#: Classes that contradict "every non-global critical point is a strict saddle".
COUNTEREXAMPLE_CLASSES = (PointClass.SPURIOUS_MIN, PointClass.DEGENERATE)


class CounterexampleWarning(UserWarning):
    """A critical point without negative curvature that is not a certified global minimum."""


class CriticalPointRecord(NamedTuple):
    """Classification of one point (every field an array; a leading axis for batches).

    Attributes:
        code: ``int8`` :class:`PointClass` code.
        loss, grad_norm: ``f`` and ``||grad f||``.
        f_star: closed-form ``f*`` (``nan`` when ``d`` is below the minimiser's rank); for the
            deep UFM the reference ``L_DNC`` (not a global minimum value; ``nan`` without one).
        f_gap: ``f - f*`` (``nan`` when ``f*`` is unknown).
        sigma_1, certificate_gap: ``sigma_1(grad_Z g)`` and ``sigma_1 - sqrt(lW lH)`` (deep:
            ``nan``).
        curvature_bound: the Rayleigh quotient of :func:`ufm.negative_curvature_direction`
            (balanced mix), an upper bound on ``lambda_min`` (``nan`` when ``W`` and ``H^T`` have
            no common null direction).
        lambda_min: smallest Hessian eigenvalue (a Ritz value, i.e. an upper bound, for Lanczos).
        lambda_max: largest eigenvalue (``nan`` for block-arrow).
        hess_norm: ``||Hess||_2`` (block-arrow: the routine's estimate ``scale``).
        lambda_pos_min: smallest eigenvalue ``>= zero_tol_upper``, the curvature margin of the
            classification: exact for dense, within relative
            :data:`ufm.landscape.curvature.POS_MIN_RTOL` (from above) for block-arrow (bisection
            on inertia counts), the smallest Ritz value ``>= zero_tol`` for Lanczos; ``nan``
            without such an eigenvalue or when the block-arrow bracket does not close.
        zero_max: largest ``|lambda|`` counted as zero (dense only, else ``nan``).
        n_neg, n_zero, n_pos: eigenvalues ``< -zero_tol``, in ``[-zero_tol, zero_tol_upper)``,
            ``>= zero_tol_upper`` (``-1``: unknown, Lanczos or a non-finite point).
        rank: numerical rank of ``W`` (deep: of ``[W_1; H_1^T]``).
        zero_modes_predicted: dimension of the orbit of the continuous symmetries through the
            point (UFM: :func:`ufm.systems.ufm.facts.orbit_facts`, which is
            :func:`ufm.zero_mode_count` for CE; deep: :func:`ufm.deep.deep_zero_mode_count`).
        orbit_scale: smallest non-zero singular value of the map from (unit Frobenius norm)
            symmetry generators to tangent vectors at the point; the symmetry modes lie within
            ``2 ||grad f|| / orbit_scale`` of zero (``inf`` without continuous symmetries).
        grad_tol, zero_tol, f_tol, cert_tol: the tolerances used (see the module docstring).
        zero_tol_upper: eigenvalues ``>= zero_tol_upper`` count as positive: ``zero_tol``,
            except that ``block_arrow`` caps it at half the smallest eigenvalue of the feature
            blocks (``lambda_H / 2`` for the UFM), where its inertia shift must stay.
    """

    code: jax.Array
    loss: jax.Array
    grad_norm: jax.Array
    f_star: jax.Array
    f_gap: jax.Array
    sigma_1: jax.Array
    certificate_gap: jax.Array
    curvature_bound: jax.Array
    lambda_min: jax.Array
    lambda_max: jax.Array
    hess_norm: jax.Array
    lambda_pos_min: jax.Array
    zero_max: jax.Array
    n_neg: jax.Array
    n_zero: jax.Array
    n_pos: jax.Array
    rank: jax.Array
    zero_modes_predicted: jax.Array
    orbit_scale: jax.Array
    grad_tol: jax.Array
    zero_tol: jax.Array
    zero_tol_upper: jax.Array
    f_tol: jax.Array
    cert_tol: jax.Array


def warn_counterexamples(cols: dict, context: str = "") -> list[int]:
    """Warn (:class:`CounterexampleWarning`) about ``SPURIOUS_MIN``/``DEGENERATE`` rows.

    Returns the indices of those rows.
    """
    bad = np.flatnonzero(np.isin(cols["class_code"], [int(c) for c in COUNTEREXAMPLE_CLASSES]))
    if bad.size:
        lines = [
            f"  row {i}: {cols['class'][i]} f-f*={cols['f_gap'][i]:.3e} "
            f"cert_gap={cols['certificate_gap'][i]:.3e} lambda_min={cols['lambda_min'][i]:.3e} "
            f"n_zero={cols['n_zero'][i]} (predicted {cols['zero_modes_predicted'][i]}, "
            f"zero_tol={cols['zero_tol'][i]:.1e}) grad={cols['grad_norm'][i]:.1e}"
            for i in bad[:20]
        ]
        more = f"\n  ... and {bad.size - 20} more" if bad.size > 20 else ""
        warnings.warn(
            f"{bad.size} critical point(s) without negative curvature that are not certified "
            f"global minima {context}(candidate counterexamples to the strict-saddle property):\n"
            + "\n".join(lines)
            + more,
            CounterexampleWarning,
            stacklevel=3,
        )
    return bad.tolist()


#: Meaning of the columns of :func:`ufm.classify_batch` (and of the ``hessian`` analysis).
RECORD_DOCS = {
    "class": "class of the point: global_min, strict_saddle, local_min (no closed form, not "
    "certified), spurious_min, degenerate (second-order test inconclusive), not_critical, "
    "undecided (zero-mode count unresolved at this precision, e.g. near a collapse threshold; "
    "not a counterexample), non_finite (non-finite point, loss or gradient)",
    "class_code": "int8 code of class (ufm.PointClass)",
    "counterexample": "spurious_min or degenerate: a candidate counterexample to the "
    "strict-saddle theorems (bool; never set for a seed whose first-order run diverged or went "
    "NaN)",
    "sigma_1": "top singular value of grad_Z g (the certificate's left side)",
    "certificate_gap": "sigma_1 - sqrt(lambda_W lambda_H); <= cert_tol certifies global optimality",
    "curvature_bound": "upper bound on lambda_min from the negative-curvature direction, up to "
    "round-off (computed lambda_min - curvature_bound is <= 0 to a few eps |curvature_bound|, "
    "about 1e-16 in float64); nan if W and H^T share no null direction",
    "lambda_min": "smallest Hessian eigenvalue (a Ritz upper bound for method lanczos)",
    "lambda_max": "largest Hessian eigenvalue (nan for block_arrow)",
    "hess_norm": "||Hessian||_2 (block_arrow: an upper estimate)",
    "lambda_pos_min": "smallest Hessian eigenvalue >= zero_tol_upper: the curvature after the "
    "zero modes (dense: eigh; block_arrow: inertia bisection, relative accuracy 1e-6; lanczos: "
    "smallest Ritz value >= zero_tol)",
    "zero_max": "largest |eigenvalue| counted as zero (dense only)",
    "n_neg": "Hessian eigenvalues < -zero_tol (count; -1 unknown)",
    "n_zero": "Hessian eigenvalues in [-zero_tol, zero_tol) (count; -1 unknown)",
    "n_pos": "Hessian eigenvalues >= zero_tol (count; -1 unknown)",
    "rank": "numerical rank of W (deep UFM: of [W_1; H_1^T])",
    "zero_modes_predicted": "symmetry zero modes predicted at the point: dimension of the orbit "
    "of its continuous symmetries (count)",
    "orbit_scale": "smallest non-zero singular value of the symmetry-generator tangents; the "
    "symmetry modes lie within 2 ||grad f|| / orbit_scale of zero",
    "grad_tol": "gradient-norm tolerance of the classification",
    "zero_tol": "eigenvalue tolerance counted as zero",
    "zero_tol_upper": "eigenvalues >= this count as positive (zero_tol; block_arrow caps it at "
    "half the smallest feature-block eigenvalue)",
    "f_tol": "tolerance of |f - f*|",
    "cert_tol": "tolerance of the certificate gap",
}
