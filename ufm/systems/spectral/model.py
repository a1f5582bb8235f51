"""Network, objective and batch transform of an SSL spec; the system's ``loss`` / ``init`` hooks.

Network (from :mod:`ufm.nets`; equinox is imported on first use): an encoder ``f`` and a projector
``g``. ``encoder="mlp"``: :class:`ufm.nets.MLPBody` ``D -> widths`` with ``activation`` on every
layer (the representation ``H = f(x)`` is post-activation, like a ResNet's pooled features);
``encoder="cnn"``: :class:`ufm.nets.CNNBody` with conv channels ``widths[:-1]`` and dense width
``widths[-1]``. Projector: an MLP ``widths[-1] -> proj_widths -> proj_dim`` with a linear last
layer (no batch normalisation: ``ufm.nets`` has none), output ``Z = g(H)`` of dimension
``d = proj_dim``. Parameters are the floating-point arrays of the pair ``(encoder, projector)``
(``eqx.partition``); the static part is rebuilt from the spec.

Objective (:func:`method_loss`) on views ``(2, m, d)`` of ``Z``: see
:mod:`ufm.systems.spectral.spec` for the methods. :func:`batch_transform` is the transform whose
output the loss aligns (``Z_hat``; ``Z`` itself for plain alignment).

The ``loss`` hook (:func:`ssl_loss`) is the objective on one **fixed deterministic batch of views**
(:func:`ufm.systems.spectral.data.fixed_views`): the first ``batch_size`` training samples, two
views from a fixed key. It is what the generic layers (conformance checks, gradients, Hessians) see;
training (:mod:`ufm.systems.spectral.experiment`) draws fresh views of fresh minibatches every step.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ufm.systems.spectral.data import fixed_views, spec_data
from ufm.systems.spectral.iternorm import iternorm
from ufm.systems.spectral.losses import (
    cosine_alignment_loss,
    intl_loss,
    transformed_alignment_loss,
    wmse_loss,
)
from ufm.systems.spectral.spec import SpectralSpec
from ufm.systems.spectral.transforms import cholesky_whiten, power_transform


def _identity(x):
    return x


_ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu}


def _input_shape(spec: SpectralSpec) -> tuple[int, tuple | None]:
    data = spec_data(spec)
    return int(data.x_train.shape[1]), data.image_shape


def build_network(spec: SpectralSpec, key):
    """``(encoder, projector)`` equinox modules of ``spec`` (arrays in ``spec.dtype``)."""
    from ufm.nets import CNNBody, MLPBody

    in_dim, image_shape = _input_shape(spec)
    act = _ACTIVATIONS[spec.activation]
    dtype = jnp.dtype(spec.dtype)
    k_enc, k_proj = jax.random.split(key)
    if spec.encoder == "mlp":
        enc = MLPBody(in_dim, spec.widths, key=k_enc, activation=act, dtype=dtype)
    else:
        enc = CNNBody(
            image_shape,
            spec.widths[:-1],
            spec.widths[-1],
            key=k_enc,
            activation=act,
            dtype=dtype,
        )
    proj = MLPBody(
        spec.widths[-1],
        (*spec.proj_widths, spec.proj_dim),
        key=k_proj,
        activation=act,
        final_activation=_identity,
        dtype=dtype,
    )
    return enc, proj


@functools.lru_cache(maxsize=64)
def network_static(spec: SpectralSpec):
    """The non-array part of the network of ``spec`` (activations, shapes), cached."""
    import equinox as eqx

    shapes = eqx.filter_eval_shape(build_network, spec, jax.random.key(0))
    return eqx.partition(
        shapes, lambda x: isinstance(x, jax.ShapeDtypeStruct) or eqx.is_inexact_array(x)
    )[1]


@functools.partial(jax.jit, static_argnums=(0, 2))
def _init_params(spec, key, scale):
    import equinox as eqx

    params = eqx.partition(build_network(spec, key), eqx.is_inexact_array)[0]
    if scale is not None:
        params = jax.tree_util.tree_map(lambda x: x * jnp.asarray(scale, x.dtype), params)
    return params


def init_params(spec: SpectralSpec, key, scale=None):
    """The system's ``init`` hook: the network's arrays for one seed (compiled once per spec).

    ``scale=None`` keeps equinox's default initialisation (uniform ``+-1/sqrt(fan_in)`` weights and
    biases); a number multiplies every initial array by it.
    """
    spec_data(spec)  # load (and check) the data outside the trace
    return _init_params(spec, key, None if scale is None else float(scale))


def network(spec: SpectralSpec, params):
    """``(encoder, projector)`` of one seed's ``params``."""
    import equinox as eqx

    return eqx.combine(params, network_static(spec))


def embed(spec: SpectralSpec, params, x):
    """``(H, Z)``: encoder and projector outputs of a batch ``x`` ``(n, D)``."""
    enc, proj = network(spec, params)
    h = jax.vmap(enc)(x)
    return h, jax.vmap(proj)(h)


def method_loss(spec: SpectralSpec, views):
    """The objective of ``spec.method`` on embedding views ``(V, m, d)`` (view 0 the anchor)."""
    m = spec.method
    if m == "alignment":
        return cosine_alignment_loss(views)
    if m == "intl":
        return intl_loss(views, side=spec.side, n_iter=spec.n_iter, beta=spec.beta)
    if m == "wmse":
        return wmse_loss(views, eps=spec.eps)
    return transformed_alignment_loss(views, functools.partial(batch_transform, spec))


def batch_transform(spec: SpectralSpec, z):
    """``Z_hat`` of one batch ``z`` ``(m, d)``: the transformed embedding the method aligns.

    ``alignment``: ``z`` itself; ``power``: the power ST with ``p``; ``whiten``: ZCA (``p = 1/2``);
    ``iternorm`` / ``intl``: IterNorm with ``n_iter`` steps; ``wmse``: Cholesky whitening.
    """
    m = spec.method
    if m == "alignment":
        return z
    if m in ("power", "whiten"):
        p = 0.5 if m == "whiten" else spec.p
        return power_transform(z, p, side=spec.side, eps=spec.eps)
    if m in ("iternorm", "intl"):
        return iternorm(z, spec.n_iter, side=spec.side)
    return cholesky_whiten(z, eps=spec.eps)


def views_loss(spec: SpectralSpec, params, views):
    """The objective of ``spec`` for input views ``(V, m, D)``: embed every view, then
    :func:`method_loss`."""
    v, m, dim = views.shape
    _, z = embed(spec, params, views.reshape(v * m, dim))
    return method_loss(spec, z.reshape(v, m, -1))


@functools.partial(jax.jit, static_argnums=0)
def _ssl_loss(spec, params, views):
    return views_loss(spec, params, views)


def ssl_loss(spec: SpectralSpec, params):
    """The system's ``loss`` hook: the objective on the fixed views (module docstring); compiled
    once per spec (differentiable, vmappable)."""
    views = fixed_views(spec)
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    return _ssl_loss(spec, params, jnp.asarray(views, dtype))


def param_count(spec: SpectralSpec) -> int:
    """Number of trainable scalars of the network of ``spec``."""
    import equinox as eqx

    shapes = eqx.filter_eval_shape(build_network, spec, jax.random.key(0))
    leaves = [x for x in jax.tree_util.tree_leaves(shapes) if isinstance(x, jax.ShapeDtypeStruct)]
    return int(sum(np.prod(x.shape) for x in leaves))
