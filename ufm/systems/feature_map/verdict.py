"""Minimal features (MF) or extended features (EF)? A documented, multi-criterion verdict.

Nam, Mingard, Lee, Hayou & Louis 2024 (arXiv 2410.04264) call a trained network "minimal
features" when its feature operator is dominated by about ``C`` eigenfunctions (``C`` classes)
and "extended features" when it uses significantly more. A bare eigenvalue threshold cannot
decide this: the uncentred mean direction (post-ReLU features are non-negative) dominates the
uncentred spectrum, and any small noise makes every direction non-zero. The verdict therefore
combines four scale-free numbers from :func:`analyse`:

* target mass ``Pi*(C) >= target_mass`` (0.9): the first ``C`` eigenfunctions of the readout's
  operator carry the targets;
* effective rank of the centred spectrum ``<= rank_factor * (C - 1)`` (2): the centred operator
  has about ``C - 1`` effective directions (the class means span ``C - 1``; small noise barely
  moves an entropy-based rank, unlike a count of eigenvalues above a threshold);
* centred gap ``rho^c_C / rho^c_{C-1} <= max_gap`` (0.5): a visible gap after ``C - 1``;
* ``D_LR <= max_d_lr`` (0.5): the centred kernel is close to the projection onto the outputs.

``"MF"`` when all four hold. ``"EF"`` when the targets need more than ``C`` eigenfunctions *and*
the centred operator spreads over many directions (target mass and effective rank both fail).
``"mixed"`` otherwise (the failed checks are listed). Defaults were set on sklearn's digits (MLP
64-128-128-10, docs/feature_map.md): trained with MSE it is MF; at initialisation, with only the
last layer trained, or in the lazy regime (``alpha = 100``) it is EF.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from .analysis import FeatureMapAnalysis

__all__ = ["MFCriterion", "Verdict", "verdict"]


@dataclasses.dataclass(frozen=True)
class MFCriterion:
    """Thresholds of :func:`verdict` (see the module docstring for their meaning)."""

    target_mass: float = 0.9
    rank_factor: float = 2.0
    max_gap: float = 0.5
    max_d_lr: float = 0.5

    def __post_init__(self):
        for name in ("target_mass", "max_gap", "max_d_lr"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0.0 < v <= 1.0):
                raise ValueError(f"{name} must lie in (0, 1] (got {v!r})")
        if not (isinstance(self.rank_factor, int | float) and self.rank_factor >= 1.0):
            raise ValueError(f"rank_factor must be >= 1 (got {self.rank_factor!r})")


class Verdict(NamedTuple):
    """``label`` in ``{"MF", "EF", "mixed"}``, the checks, and the numbers that decided them.

    Attributes:
        label: the verdict.
        checks: ``{name: passed}`` for ``target_mass``, ``effective_rank``, ``centred_gap``,
            ``d_lr`` (a nan number fails its check).
        numbers: the measured values and the thresholds they were compared with, plus
            ``k_target`` (eigenfunctions needed for ``target_mass`` of the targets; ``inf`` when
            even all of them carry less), the participation ratio and ``Pi_hat(C)``.
        reason: one line saying why.
    """

    label: str
    checks: dict
    numbers: dict
    reason: str


def verdict(analysis: FeatureMapAnalysis, criterion: MFCriterion = MFCriterion()) -> Verdict:
    """The MF / EF verdict of one :class:`FeatureMapAnalysis` (host-side, Python floats).

    Example:
        >>> import jax.numpy as jnp
        >>> from ufm.systems.feature_map import analyse
        >>> F = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
        >>> v = verdict(analyse(F, F, jnp.array([0, 1, 0, 1])))
        >>> v.label, v.checks["target_mass"], v.numbers["pi_star_C"]
        ('MF', True, 1.0)
    """
    C = analysis.num_classes
    pi_star = np.asarray(analysis.pi_star, dtype=np.float64)
    reached = np.flatnonzero(pi_star >= criterion.target_mass)
    numbers = {
        "num_classes": C,
        "pi_star_C": float(analysis.pi_star_C),
        "pi_hat_C": float(analysis.pi_hat_C),
        "k_target": int(reached[0]) + 1 if reached.size else math.inf,
        "effective_rank": float(analysis.effective_rank),
        "participation_ratio": float(analysis.participation_ratio),
        "centred_gap": float(analysis.centred_gap),
        "d_lr": float(analysis.d_lr),
        "target_mass_min": criterion.target_mass,
        "effective_rank_max": criterion.rank_factor * (C - 1),
        "centred_gap_max": criterion.max_gap,
        "d_lr_max": criterion.max_d_lr,
    }
    checks = {
        "target_mass": numbers["pi_star_C"] >= criterion.target_mass,
        "effective_rank": numbers["effective_rank"] <= numbers["effective_rank_max"],
        "centred_gap": numbers["centred_gap"] <= criterion.max_gap,
        "d_lr": numbers["d_lr"] <= criterion.max_d_lr,
    }
    failed = [k for k, ok in checks.items() if not ok]
    if not failed:
        label = "MF"
        reason = (
            f"Pi*(C) = {numbers['pi_star_C']:.3f} >= {criterion.target_mass}, centred effective "
            f"rank {numbers['effective_rank']:.2f} <= {numbers['effective_rank_max']:.1f}, gap "
            f"{numbers['centred_gap']:.3f}, D_LR {numbers['d_lr']:.3f}"
        )
    elif not checks["target_mass"] and not checks["effective_rank"]:
        label = "EF"
        reason = (
            f"targets need {numbers['k_target']} > C = {C} eigenfunctions for "
            f"{criterion.target_mass:.0%} of their mass (Pi*(C) = {numbers['pi_star_C']:.3f}) and "
            f"the centred effective rank is {numbers['effective_rank']:.2f} > "
            f"{numbers['effective_rank_max']:.1f}"
        )
    else:
        label = "mixed"
        reason = "failed: " + ", ".join(f"{k} ({numbers[_NUMBER[k]]:.3f})" for k in failed)
    return Verdict(label, checks, numbers, reason)


_NUMBER = {
    "target_mass": "pi_star_C",
    "effective_rank": "effective_rank",
    "centred_gap": "centred_gap",
    "d_lr": "d_lr",
}
