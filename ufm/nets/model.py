"""Networks ``f(x) = W Phi(x) + b`` with an exposed feature map, and the lazy (large-alpha) wrapper.

:class:`Net` pairs a body ``Phi`` (:mod:`ufm.nets.bodies`) with a head (:mod:`ufm.nets.heads`);
:func:`mlp` and :func:`cnn` build the two shared architectures. :class:`Lazy` is the centred,
``alpha``-scaled model of Chizat, Oyallon & Bach 2019 ("On lazy training in differentiable
programming", arXiv 1812.07956).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .bodies import CNNBody, MLPBody
from .heads import ETFHead, LinearHead

__all__ = ["Lazy", "Net", "batch_features", "batch_outputs", "cnn", "mlp"]

_HEADS = ("linear", "etf")


class Net(eqx.Module):
    """``f(x) = head(body(x))``: ``features(x) = Phi(x)`` and ``__call__(x) = W Phi(x) + b``.

    One sample per call (equinox convention); :func:`batch_features` / :func:`batch_outputs`
    vmap over a batch.
    """

    body: eqx.Module
    head: eqx.Module

    def features(self, x: jax.Array) -> jax.Array:
        """Penultimate post-activations ``Phi(x)``, shape ``(p,)``."""
        return self.body(x)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.body(x))


class Lazy(eqx.Module):
    """Lazy-training scaling: ``f_alpha(x) = alpha * (f(x) - f_0(x))``.

    ``f`` is the wrapped network (trained), ``f_0`` a frozen copy of it at initialisation, so
    ``f_alpha = 0`` at initialisation. Chizat, Oyallon & Bach 2019 (arXiv 1812.07956) train
    ``f_alpha`` with the loss divided by ``alpha^2``, ``L_alpha(w) = L(alpha (f_w - f_{w_0})) /
    alpha^2``; pass ``scale=1/alpha**2`` to :func:`ufm.nets.mse_loss` / :func:`ufm.nets.ce_loss`
    for that normalisation. As ``alpha -> inf`` (with that loss and a fixed learning rate) the
    parameters move by ``O(1/alpha)`` and training follows the linearised (tangent-kernel) model:
    the features ``Phi`` stay at their initial values. ``features(x)`` is ``Phi(x)`` of the
    trained copy ``f``.

    ``f_0`` is excluded from training by :func:`ufm.nets.trainable_mask` (its arrays are
    ``stop_gradient``-ed by :func:`ufm.nets.combine`, and the inner ``f_0(x)`` below is also under
    ``jax.lax.stop_gradient``).
    """

    model: Net
    model0: Net
    alpha: float = eqx.field(static=True)

    def __init__(self, model: Net, alpha: float):
        if not (np.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be a finite positive number (got {alpha})")
        self.model = model
        self.model0 = model
        self.alpha = float(alpha)

    @property
    def head(self) -> eqx.Module:
        return self.model.head

    def features(self, x: jax.Array) -> jax.Array:
        return self.model.features(x)

    def __call__(self, x: jax.Array) -> jax.Array:
        f0 = jax.lax.stop_gradient(self.model0(x))
        return self.alpha * (self.model(x) - f0)


def _check_head(head: str, width, num_classes: int, etf_scale: float) -> None:
    """Validate the head options before any array is built."""
    if head not in _HEADS:
        raise ValueError(f"head must be one of {_HEADS} (got {head!r})")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2 (got {num_classes!r})")
    if head == "etf":
        if width != num_classes:
            raise ValueError(
                f"head='etf' needs penultimate width = num_classes (got width {width}, "
                f"num_classes={num_classes})"
            )
        if not (np.isfinite(etf_scale) and etf_scale > 0):
            raise ValueError(f"etf_scale must be a finite positive number (got {etf_scale})")


def _head(head: str, width: int, num_classes: int, etf_scale: float, key, dtype):
    if head == "linear":
        return LinearHead(width, num_classes, key=key, dtype=dtype)
    return ETFHead(num_classes, scale=etf_scale)


def mlp(
    in_dim: int,
    widths=(128, 128),
    num_classes: int = 10,
    *,
    key,
    head: str = "linear",
    etf_scale: float = 1.0,
    activation=jax.nn.relu,
    final_activation=None,
    dtype=jnp.float32,
) -> Net:
    """A ReLU MLP ``in_dim - widths... - num_classes``; ``Phi`` = last hidden layer.

    Defaults give the 64-128-128-10 digits network of Nam et al. 2024 (arXiv 2410.04264).
    ``head="etf"`` fixes the last layer to a scaled simplex ETF (:class:`ufm.nets.ETFHead`) and
    needs ``widths[-1] == num_classes`` (``d = K``); ``head="linear"`` learns ``W, b``.
    ``final_activation`` (default: ``activation``) is the activation of the feature layer.

    With ``head="etf"`` and ReLU features only ``K`` units feed the classifier: a unit that dies
    (stays at 0 on every input) removes its class from the arg-max for good. On digits
    (64-128-10, Adam 1e-3, ``etf_scale=3``) 4 of the 10 units were dead after 20 epochs and the
    test accuracy stayed at 0.49; with ``final_activation=lambda h: h`` it reached 0.95.

    Example:
        >>> import jax
        >>> net = mlp(64, (32, 10), 10, key=jax.random.key(0), head="etf")
        >>> x = jax.numpy.ones(64, dtype=jax.numpy.float32)
        >>> net.features(x).shape, net(x).shape, net(x).dtype
        ((10,), (10,), dtype('float32'))
    """
    last = tuple(widths)[-1] if len(tuple(widths)) else None
    _check_head(head, last, num_classes, etf_scale)
    kb, kh = jax.random.split(key)
    body = MLPBody(
        in_dim,
        widths,
        key=kb,
        activation=activation,
        final_activation=final_activation,
        dtype=dtype,
    )
    return Net(body, _head(head, body.width, num_classes, etf_scale, kh, dtype))


def cnn(
    image_shape=(1, 8, 8),
    channels=(16, 32),
    width: int = 64,
    num_classes: int = 10,
    *,
    key,
    head: str = "linear",
    etf_scale: float = 1.0,
    activation=jax.nn.relu,
    final_activation=None,
    dtype=jnp.float32,
) -> Net:
    """A small CNN on channels-first images (default: the ``(1, 8, 8)`` digits); see
    :class:`ufm.nets.CNNBody`. Takes flat rows or images. ``head`` as in :func:`mlp` (``"etf"``
    needs ``width == num_classes``).
    """
    _check_head(head, width, num_classes, etf_scale)
    kb, kh = jax.random.split(key)
    body = CNNBody(
        image_shape,
        channels,
        width,
        key=kb,
        activation=activation,
        final_activation=final_activation,
        dtype=dtype,
    )
    return Net(body, _head(head, body.width, num_classes, etf_scale, kh, dtype))


def batch_features(model, x: jax.Array) -> jax.Array:
    """``Phi`` on a batch: ``(n, ...) -> (n, p)`` (the ``F`` of the feature-map analysis)."""
    return jax.vmap(model.features)(x)


def batch_outputs(model, x: jax.Array) -> jax.Array:
    """Outputs on a batch: ``(n, ...) -> (n, K)``."""
    return jax.vmap(model)(x)
