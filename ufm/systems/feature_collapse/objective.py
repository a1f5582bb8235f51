"""The registry hooks of the feature-collapse system: the full-data objective and one random start.

Feature collapse: Laurent, von Brecht, Bresson (2023), arXiv 2305.16162 (ICLR 2024).

:func:`fc_objective` is the regularised empirical risk that the paper's SGD minimises: the mean
cross-entropy over the whole training set of ``spec`` plus the coupled weight-decay penalty
``(wd_w / 2) ||W||_F^2 + (wd_u / 2) ||U||_F^2`` (PyTorch ``SGD(weight_decay=wd)`` adds
``wd * theta`` to the minibatch gradient, which is the gradient of this penalty). Its global
minimisers are what the collapse theorems describe. The data set is sampled once per data
configuration (``data_seed`` and the sizes; cached), so the objective is a pure function of the
parameters. :func:`fc_init` is :func:`.model.init_params` with an optional scale.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .data import FCData, make_data
from .model import init_params, scores
from .spec import FeatureCollapseSpec

__all__ = ["cached_data", "fc_init", "fc_label", "fc_objective"]

#: The fields that determine the data set (everything else is the network or the training).
DATA_FIELDS = ("n_c", "n_w", "L", "K", "nspl", "n_test", "law", "latents", "data_seed")


def _data_key(spec: FeatureCollapseSpec) -> FeatureCollapseSpec:
    """The spec with every non-data field at its default (equal keys share one data set)."""
    return FeatureCollapseSpec(
        **{k: getattr(spec, k) for k in DATA_FIELDS}, batch_size=1, d=1, epochs=0
    )


@functools.lru_cache(maxsize=16)
def _cached(key: FeatureCollapseSpec) -> FCData:
    return make_data(key)


def cached_data(spec: FeatureCollapseSpec) -> FCData:
    """:func:`.data.make_data` of ``spec``, cached per data configuration (read-only arrays).

    >>> from ufm.systems.feature_collapse import PRESETS
    >>> cached_data(PRESETS["tiny"]) is cached_data(PRESETS["tiny"].replace(lr=0.5, d=8))
    True
    """
    return _cached(_data_key(spec))


def fc_objective(spec: FeatureCollapseSpec, params: dict) -> jax.Array:
    """Mean cross-entropy over the training set of ``spec`` plus
    ``(wd_w / 2) ||W||^2 + (wd_u / 2) ||U||^2`` (a scalar of the parameters' dtype).

    ``params = {"W": (n_w, d), "U": (K, L, d)}``. Pure and differentiable; ``vmap`` over a
    leading seed axis works (the data are constants).

    >>> import functools, jax, math
    >>> from ufm.systems.feature_collapse import PRESETS, init_params
    >>> spec = PRESETS["tiny"]
    >>> f = jax.jit(functools.partial(fc_objective, spec))(init_params(spec, jax.random.key(0)))
    >>> abs(float(f) - math.log(spec.K)) < 1e-3  # nothing learned at init / 1000
    True
    """
    data = cached_data(spec)
    x, y = jnp.asarray(data.train_x), jnp.asarray(data.train_y)
    W, U = params["W"], params["U"]
    logits = scores(params, x, spec.layernorm, spec.ln_eps)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    penalty = 0.5 * spec.wd_w * jnp.sum(W * W) + 0.5 * spec.wd_u * jnp.sum(U * U)
    return (ce + penalty).astype(W.dtype)


def fc_init(spec: FeatureCollapseSpec, key: jax.Array, scale=None) -> dict:
    """One random network: ``W ~ N(0, 1) c``, ``U ~ U(+-1/sqrt(L d)) c`` with
    ``c = 1 / init_scale_divisor`` (the paper's PyTorch defaults / 1000) or ``c = scale``.

    With ``scale=None`` this is exactly :func:`.model.init_params` (the start of a trained seed).
    """
    if scale is None:
        return init_params(spec, key)
    dtype = jnp.dtype(spec.dtype)
    k_w, k_u = jax.random.split(key)
    bound = 1.0 / float(np.sqrt(spec.L * spec.d))
    W = jax.random.normal(k_w, (spec.n_w, spec.d), dtype) * scale
    U = jax.random.uniform(k_u, (spec.K, spec.L, spec.d), dtype, -bound, bound) * scale
    return {"W": W, "U": U}


def fc_label(spec: FeatureCollapseSpec) -> str:
    """A short label: ``K=50 nspl=100 uniform`` plus ``+LN`` (and non-default sizes).

    >>> from ufm.systems.feature_collapse import PRESETS
    >>> fc_label(PRESETS["zipf-gap-ln"])
    'K=200 nspl=5 zipf +LN'
    """
    base = FeatureCollapseSpec()
    parts = [f"K={spec.K}", f"nspl={spec.nspl}", spec.law]
    for name in ("n_c", "n_w", "L", "d"):
        if getattr(spec, name) != getattr(base, name):
            parts.append(f"{name}={getattr(spec, name)}")
    if spec.latents != base.latents:
        parts.append(f"latents={spec.latents}")
    return " ".join(parts) + (" +LN" if spec.layernorm else "")
