"""A batch of polished critical points with provenance (the critical-point finders' output)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CriticalPoints", "concat_points", "points_from_polish"]


class CriticalPoints(NamedTuple):
    """A batch of polished points with provenance (all fields have a leading axis ``M``).

    Attributes:
        params: :class:`ufm.UFMParams` with a leading axis, float64.
        loss, grad_norm: ``f`` and ``||grad f||`` after polishing (numpy).
        converged: ``grad_norm <= tol`` of the finder's polishing.
        source: ``"random"`` (minima from random starts), ``"planted"``, ``"rank_restricted"``,
        ``"newton"`` or
            ``"gradnorm"`` (numpy ``object`` array of str).
        seed: index of the random start within its source (``d'``-group for planted saddles).
        dim: ``d'`` of a planted saddle (``0``: the origin), ``r`` of a rank-restricted start,
            ``-1`` otherwise.
        scale: standard deviation of the random start (``nan`` for the origin).
    """

    params: Any
    loss: np.ndarray
    grad_norm: np.ndarray
    converged: np.ndarray
    source: np.ndarray
    seed: np.ndarray
    dim: np.ndarray
    scale: np.ndarray

    @property
    def num_points(self) -> int:
        """Number of points ``M`` (``len`` of a NamedTuple counts its fields)."""
        return int(self.loss.shape[0])

    def select(self, mask) -> CriticalPoints:
        """The points where ``mask`` (bool or integer indices) selects."""
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        params = jax.tree_util.tree_map(lambda x: x[idx], self.params)
        return CriticalPoints(params, *(np.asarray(v)[idx] for v in self[1:]))


def points_from_polish(params, pol, source, seed, dim, scale) -> CriticalPoints:
    """A :class:`CriticalPoints` batch from a polish result and provenance (scalars broadcast)."""
    m = int(np.asarray(pol.loss).shape[0])

    def full(v, dt):
        return np.full(m, v, dtype=dt) if np.ndim(v) == 0 else np.asarray(v, dt)

    return CriticalPoints(
        params,
        np.asarray(pol.loss),
        np.asarray(pol.grad_norm),
        np.asarray(pol.converged),
        np.full(m, source, dtype=object),
        full(seed, np.int64),
        full(dim, np.int64),
        full(scale, np.float64),
    )


def concat_points(*points: CriticalPoints) -> CriticalPoints:
    """Concatenate :class:`CriticalPoints` batches of the same spec along the point axis."""
    points = [p for p in points if p is not None and p.num_points]
    if not points:
        raise ValueError("concat_points needs at least one non-empty batch")
    params = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *(p.params for p in points))
    return CriticalPoints(params, *(np.concatenate([p[i] for p in points]) for i in range(1, 8)))
