"""The feature-collapse network: embedding -> optional LayerNorm -> position-wise linear scores.

Paper: Laurent, von Brecht, Bresson (2023), "Feature collapse", arXiv 2305.16162.

``score_k(x) = sum_l <u_{k,l}, phi(w_{x_l})>`` with ``phi`` the identity or LayerNorm without
affine parameters (biased variance, ``eps = 1e-5``, per token), exactly the paper's PyTorch
``SimpleNet`` (``nn.Embedding(n_w, d)``, ``nn.LayerNorm(d, elementwise_affine=False)``,
``nn.Linear(L*d, K, bias=False)`` applied to the flattened ``(L, d)`` features). Parameters are a
dict ``{"W": (n_w, d), "U": (K, L, d)}``; ``U[k, l]`` is ``u_{k,l}``, i.e. PyTorch's
``clf.weight.view(K, L, d)``.

Initialisation as in the paper's notebooks: the framework default divided by 1000, i.e.
``W ~ N(0, 1) / 1000`` (``nn.Embedding``) and ``U ~ Uniform(-1/sqrt(L d), 1/sqrt(L d)) / 1000``
(``nn.Linear``'s kaiming-uniform with ``a = sqrt(5)``).

Training: mean cross-entropy, plain SGD with coupled weight decay (PyTorch ``SGD``'s
``weight_decay``: the gradient gets ``+ wd * theta``), i.e.
``optax.chain(add_decayed_weights(wd_w on W), add_decayed_weights(wd_u on U), sgd(lr))``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from .spec import FeatureCollapseSpec

__all__ = [
    "features",
    "init_batch",
    "init_params",
    "layer_norm",
    "make_loss_fn",
    "make_optimizer",
    "scores",
]


@functools.partial(jax.jit, static_argnums=0)
def init_params(spec: FeatureCollapseSpec, key: jax.Array) -> dict:
    """One network: ``W ~ N(0,1)/c``, ``U ~ U(+-1/sqrt(L d))/c`` with ``c = init_scale_divisor``.

    >>> import jax
    >>> p = init_params(FeatureCollapseSpec(n_w=120, L=8, K=64, d=32), jax.random.key(0))
    >>> p["W"].shape, p["U"].shape, p["W"].dtype
    ((120, 32), (64, 8, 32), dtype('float32'))
    """
    dtype = jnp.dtype(spec.dtype)
    k_w, k_u = jax.random.split(key)
    c = spec.init_scale_divisor
    bound = 1.0 / (spec.L * spec.d) ** 0.5
    W = jax.random.normal(k_w, (spec.n_w, spec.d), dtype) / c
    U = jax.random.uniform(k_u, (spec.K, spec.L, spec.d), dtype, -bound, bound) / c
    return {"W": W, "U": U}


@functools.partial(jax.jit, static_argnums=0)
def init_batch(spec: FeatureCollapseSpec, keys: jax.Array) -> dict:
    """``init_params`` for a batch of keys: leaves with a leading seed axis."""
    return jax.vmap(functools.partial(init_params, spec))(keys)


def layer_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
    """LayerNorm over the last axis without affine parameters (PyTorch ``nn.LayerNorm``):
    ``(x - mean) / sqrt(var + eps)`` with the biased variance."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps)


def features(W: jax.Array, layernorm: bool, eps: float = 1e-5) -> jax.Array:
    """``phi(w)`` for every row of ``W``: the word representations seen by the classifier."""
    return layer_norm(W, eps) if layernorm else W


def scores(params: dict, x: jax.Array, layernorm: bool, eps: float = 1e-5) -> jax.Array:
    """``(B, K)`` scores of token-id sentences ``x`` of shape ``(B, L)``."""
    phi = features(params["W"][x], layernorm, eps)  # (B, L, d), LayerNorm per token
    return jnp.einsum("bld,kld->bk", phi, params["U"])


@functools.cache
def make_loss_fn(layernorm: bool, eps: float = 1e-5):
    """``loss_fn(params, batch, key)``: mean cross-entropy of a minibatch ``{"x", "y"}``.

    Cached, so equal settings give the same function object (a static argument of the trainer's
    compiled chunk). The key is unused (no augmentation or dropout).
    """

    def loss_fn(params, batch, key):
        logits = scores(params, batch["x"], layernorm, eps)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

    return loss_fn


@functools.cache
def _optimizer(lr: float, wd_w: float, wd_u: float) -> optax.GradientTransformation:
    parts = []
    if wd_w > 0:
        parts.append(optax.add_decayed_weights(wd_w, mask={"W": True, "U": False}))
    if wd_u > 0:
        parts.append(optax.add_decayed_weights(wd_u, mask={"W": False, "U": True}))
    parts.append(optax.sgd(lr))
    return optax.chain(*parts)


def make_optimizer(spec: FeatureCollapseSpec) -> optax.GradientTransformation:
    """Plain SGD with the paper's coupled weight decay (``wd_w`` on W, ``wd_u`` on U); cached."""
    return _optimizer(float(spec.lr), spec.wd_w, spec.wd_u)
