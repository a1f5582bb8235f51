"""Deduplication of critical points modulo the symmetries of the objective.

An objective invariant under a group (the UFM under ``W -> W Q, H -> Q^T H``, ``Q in O(d)``, and,
for CE with a free bias, ``b -> b + c 1``) has every critical point on an orbit; finders started
from different seeds return different members. :func:`deduplicate` compares complete orbit
invariants, which the system provides (its ``invariants`` hook; the UFM's in
:mod:`ufm.systems.ufm.invariants`, docs/theory.md section 3).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from ..core.model import evaluate_points
from ..core.registry import system_of

__all__ = ["Deduplicated", "deduplicate"]


class Deduplicated(NamedTuple):
    """Result of :func:`deduplicate`.

    Attributes:
        index: ``(U,)`` index of each group's representative (its first member) in the input.
        counts: ``(U,)`` multiplicity of each group.
        labels: ``(M,)`` group of every input point (``0..U-1``, in order of first appearance).
        params: the representatives, ``params[index]``.
    """

    index: np.ndarray
    counts: np.ndarray
    labels: np.ndarray
    params: Any


def orbit_invariants(spec, params) -> dict:
    """Per point: the loss and the system's orbit invariants (``invariants`` hook), numpy float64
    blocks of shape ``(M, size)``."""
    fn = system_of(spec).require("invariants", "deduplication modulo symmetries")
    f, _ = evaluate_points(spec, params)
    return {"loss": f[:, None], **fn(spec, params)}


def deduplicate(spec, points, *, rtol: float = 1e-6, atol: float = 1e-8) -> Deduplicated:
    """Group points that are equal up to ``W -> W Q``, ``H -> Q^T H`` (``Q`` orthogonal).

    Two points are merged when every invariant block agrees,
    ``||v_i - v_j|| <= atol + rtol * max(||v_i||, ||v_j||)``, for the blocks: loss, singular values
    of ``W``, ``W W^T`` (``K x K``), ``W H`` (``K x N``), ``H^T H`` (``N x N``; a fixed random
    ``N x 16`` sketch of it when ``N > 64``) and the bias (centred for CE with a free bias, whose
    shift ``b + c 1`` is a symmetry). The three Gram blocks are those of the stacked ``[W; H^T]``,
    so equal blocks imply that the points lie on one ``O(d)`` orbit. Class and sample permutations
    are *not* quotiented out: points related by relabelling classes stay distinct. Greedy
    single-pass grouping in input order (the first member represents the group), ``O(M U)``.
    Defaults suit points polished to ``||grad f|| <= 1e-10`` (invariants then agree to
    ``~1e-9``); loosen ``rtol`` for less polished points.

    Args:
        spec: the :class:`ufm.UFMSpec` of the points.
        points: :class:`CriticalPoints` or params with a leading point axis.

    Example:
        >>> import jax, jax.numpy as jnp, ufm
        >>> spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce")
        >>> p = ufm.optimum(spec).params
        >>> Q = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (3, 3)))[0]
        >>> batch = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), p,
        ...                                ufm.UFMParams(p.W @ Q, Q.T @ p.H))
        >>> ufm.landscape.deduplicate(spec, batch).counts.tolist()
        [2]
    """
    params = getattr(points, "params", points)  # CriticalPoints or a params batch
    blocks = orbit_invariants(spec, params)
    M = next(iter(blocks.values())).shape[0]
    norms = {k: np.linalg.norm(v, axis=1) for k, v in blocks.items()}
    labels = np.full(M, -1, np.int64)
    reps: list[int] = []
    for i in range(M):
        if reps:
            r = np.asarray(reps)
            same = np.ones(r.size, bool)
            for k, v in blocks.items():
                dist = np.linalg.norm(v[r] - v[i], axis=1)
                same &= dist <= atol + rtol * np.maximum(norms[k][r], norms[k][i])
            hit = np.flatnonzero(same)
            if hit.size:
                labels[i] = hit[0]
                continue
        labels[i] = len(reps)
        reps.append(i)
    index = np.asarray(reps, np.int64)
    counts = np.bincount(labels, minlength=index.size)
    return Deduplicated(index, counts, labels, jax.tree_util.tree_map(lambda x: x[index], params))
