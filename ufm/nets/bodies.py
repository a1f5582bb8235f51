"""Feature extractors ``Phi``: a fully connected network and a small CNN for 8 x 8 images.

Each body maps one sample to its penultimate post-activations ``Phi(x)`` (``p = width``); the
network (:class:`ufm.nets.Net`) puts a head on top. Equinox convention: one sample per call, use
``jax.vmap`` over a batch (:func:`ufm.nets.batch_features`).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CNNBody", "MLPBody"]


def _check_widths(field: str, widths) -> tuple[int, ...]:
    widths = tuple(widths)
    if not widths or not all(isinstance(w, int) and w >= 1 for w in widths):
        raise ValueError(
            f"{field} must be a non-empty sequence of positive integers (got {widths})"
        )
    return widths


class MLPBody(eqx.Module):
    """``Phi(x) = act_L(A_L ... act(A_1 x + c_1) ... + c_L)``: ``len(widths)`` hidden layers.

    ``widths=(128, 128)`` on 64 inputs is the 64-128-128 body of the digits MLP (Nam et al. 2024,
    arXiv 2410.04264). ``p = widths[-1]``. ``final_activation`` (default: ``activation``) is
    ``act_L``, the activation of the feature layer itself.
    """

    layers: tuple[eqx.nn.Linear, ...]
    activation: Callable
    final_activation: Callable

    def __init__(
        self,
        in_dim: int,
        widths,
        *,
        key,
        activation=jax.nn.relu,
        final_activation=None,
        dtype=jnp.float32,
    ):
        widths = _check_widths("widths", widths)
        if not isinstance(in_dim, int) or in_dim < 1:
            raise ValueError(f"in_dim must be a positive integer (got {in_dim!r})")
        keys = jax.random.split(key, len(widths))
        sizes = (in_dim, *widths)
        self.layers = tuple(
            eqx.nn.Linear(sizes[i], sizes[i + 1], dtype=dtype, key=keys[i])
            for i in range(len(widths))
        )
        self.activation = activation
        self.final_activation = activation if final_activation is None else final_activation

    @property
    def width(self) -> int:
        return self.layers[-1].out_features

    def __call__(self, x: jax.Array) -> jax.Array:
        h = jnp.reshape(x, (-1,))
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        return self.final_activation(self.layers[-1](h))


class CNNBody(eqx.Module):
    """Small CNN: ``[conv 3x3 (padding 1) -> act] * len(channels) -> 2x2 average pool -> flatten
    -> linear -> final_activation`` (default: ``activation``); ``p = width``.

    Takes one sample either as a flat vector of ``prod(image_shape)`` entries (the rows of a
    :class:`ufm.data.Dataset`) or as a channels-first image ``image_shape``. Defaults suit the
    ``(1, 8, 8)`` digits: channels ``(16, 32)`` give a ``32 x 4 x 4`` pooled map.
    """

    convs: tuple[eqx.nn.Conv2d, ...]
    pool: eqx.nn.AvgPool2d
    dense: eqx.nn.Linear
    activation: Callable
    final_activation: Callable
    image_shape: tuple[int, int, int] = eqx.field(static=True)

    def __init__(
        self,
        image_shape=(1, 8, 8),
        channels=(16, 32),
        width: int = 64,
        *,
        key,
        activation=jax.nn.relu,
        final_activation=None,
        dtype=jnp.float32,
    ):
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise ValueError(f"image_shape must be (channels, H, W) (got {image_shape})")
        if image_shape[1] < 2 or image_shape[2] < 2:
            raise ValueError(f"image_shape must be at least 2 x 2 for the pool (got {image_shape})")
        channels = _check_widths("channels", channels)
        _check_widths("width", (width,))
        keys = jax.random.split(key, len(channels) + 1)
        chans = (image_shape[0], *channels)
        self.convs = tuple(
            eqx.nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, dtype=dtype, key=keys[i])
            for i in range(len(channels))
        )
        self.pool = eqx.nn.AvgPool2d(2, 2)
        pooled = channels[-1] * (image_shape[1] // 2) * (image_shape[2] // 2)
        self.dense = eqx.nn.Linear(pooled, width, dtype=dtype, key=keys[-1])
        self.activation = activation
        self.final_activation = activation if final_activation is None else final_activation
        self.image_shape = image_shape

    @property
    def width(self) -> int:
        return self.dense.out_features

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.size != int(np.prod(self.image_shape)):
            raise ValueError(
                f"CNN input has {x.size} entries, image_shape {self.image_shape} needs "
                f"{int(np.prod(self.image_shape))}"
            )
        h = jnp.reshape(x, self.image_shape)
        for conv in self.convs:
            h = self.activation(conv(h))
        h = self.pool(h)
        return self.final_activation(self.dense(jnp.reshape(h, (-1,))))
