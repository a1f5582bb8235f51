"""Neural-collapse summaries of penultimate features, self-contained for the feature-map system.

Features are rows of ``F`` (``(n, p)``, the convention of this system; the toolkit's UFM metrics
take columns ``H = F^T``). ``mu_c`` class means, ``mu_G`` the mean of all samples (an empty class
has mean 0, as in the toolkit's metrics).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["class_means", "etf_error_means", "nc1_quotient"]


def class_means(F, labels, num_classes: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(means (C, p), global mean (p,), counts (C,))``."""
    F = jnp.asarray(F)
    labels = jnp.asarray(labels)
    if F.ndim != 2 or labels.shape != (F.shape[0],):
        raise ValueError(f"labels must be (n,) for F (n, p) (got {labels.shape}, {F.shape})")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2 (got {num_classes!r})")
    counts = jax.ops.segment_sum(jnp.ones(F.shape[0], F.dtype), labels, num_classes)
    sums = jax.ops.segment_sum(F, labels, num_classes)
    means = sums / jnp.maximum(counts, 1.0)[:, None]
    return means, jnp.mean(F, axis=0), counts


def nc1_quotient(F, labels, num_classes: int) -> jax.Array:
    """NC1 as the trace quotient ``Tr Sigma_W / Tr Sigma_B`` (Tirer, Huang & Niles-Weed 2023,
    arXiv 2210.16658): ``Sigma_W = (1/n) sum_i (h_i - mu_{y_i})(...)^T``,
    ``Sigma_B = (1/C) sum_c (mu_c - mu_G)(...)^T``. 0 at neural collapse; 0 if both traces
    vanish, inf if only ``Tr Sigma_B`` does.

    Example:
        >>> import jax.numpy as jnp
        >>> F = jnp.array([[-1.0], [1.0], [9.0], [11.0]])
        >>> round(float(nc1_quotient(F, jnp.array([0, 0, 1, 1]), 2)), 6)  # 1 / 25
        0.04
    """
    F = jnp.asarray(F)
    means, mu_G, _ = class_means(F, labels, num_classes)
    within = jnp.sum((F - means[jnp.asarray(labels)]) ** 2) / F.shape[0]
    between = jnp.sum((means - mu_G) ** 2) / num_classes
    return jnp.where(within == 0, 0.0, within / jnp.where(between == 0, 0.0, between))


def etf_error_means(F, labels, num_classes: int) -> jax.Array:
    """Simplex-ETF error of the centred class means ``|| G/||G||_F - (I - J/C)/sqrt(C-1) ||_F``,
    ``G = M^T M``, ``M = [mu_c - mu_G]`` (Zhu et al. 2021, arXiv 2105.02375). In ``[0, 2]``;
    0 iff the centred means form a simplex ETF up to scale; 1 when all means coincide."""
    means, mu_G, _ = class_means(F, labels, num_classes)
    M = means - mu_G
    G = M @ M.T
    C = num_classes
    target = (jnp.eye(C, dtype=G.dtype) - 1.0 / C) / jnp.sqrt(jnp.asarray(C - 1, G.dtype))
    norm = jnp.linalg.norm(G)
    return jnp.linalg.norm(jnp.where(norm > 0, G / jnp.where(norm > 0, norm, 1.0), 0.0) - target)
