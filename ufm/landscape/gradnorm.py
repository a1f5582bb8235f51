"""The squared-gradient-norm objective ``0.5 ||grad f||^2`` of any registered system.

Its minimisers with value ``0`` are the critical points of ``f`` of every index, so the ordinary
many-seed optimiser (:func:`ufm.optimize`, any optax optimiser) finds saddles with it unchanged.
:class:`GradNormSpec` is registered as a system of its own (name ``"grad_norm"``) whose objective,
initialisation and examples come from the wrapped spec's system.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from ..core.model import init_params, loss
from ..core.pytree import register_spec
from ..core.registry import System, register_system, registered_systems
from ..core.trees import tree_norm

__all__ = ["GradNormSpec"]


@dataclasses.dataclass(frozen=True)
class GradNormSpec:
    """Wrapper spec whose :func:`ufm.loss` is ``0.5 ||grad f||^2`` of the ``inner`` spec.

    Its minimisers with value ``0`` are the critical points of ``inner`` of every index, so
    :func:`ufm.optimize` (any optax optimiser) finds saddles with it unchanged. A pytree: the
    ``inner`` spec's lambdas stay traced leaves.
    """

    inner: Any

    @property
    def jnp_dtype(self):
        return self.inner.jnp_dtype


register_spec(GradNormSpec, ("inner",))


def _gradnorm_loss(spec: GradNormSpec, params):
    g = jax.grad(loss, argnums=1)(spec.inner, params)
    return 0.5 * tree_norm(g) ** 2


def _examples():
    out = []
    for system in registered_systems().values():
        if system.spec_type is not GradNormSpec:
            out.extend(GradNormSpec(e) for e in system.examples()[:1])
    return tuple(out[:1])


register_system(
    System(
        name="grad_norm",
        spec_type=GradNormSpec,
        loss=_gradnorm_loss,
        init=lambda spec, key, scale=None: init_params(spec.inner, key, scale),
        examples=_examples,
        summary="0.5 ||grad f||^2 of a wrapped spec: its zeros are critical points of any index",
        label=lambda spec: "grad-norm of " + type(spec.inner).__name__,
        sweepable=False,
    )
)
