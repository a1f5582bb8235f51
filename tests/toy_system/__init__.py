"""A test-only system: ridge regression, added the way any system is (one folder, one
registration call), to prove that nothing generic changes when a system is added.

f(w) = 1/(2m) ||X w - y||^2 + lam/2 ||w||^2 with a fixed design ``X`` (m x p) and targets ``y``
drawn from ``data_seed``; the minimum has the closed form w* = (X^T X/m + lam I)^{-1} X^T y/m.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ufm.core import (
    SpecError,
    System,
    check_choice,
    check_int,
    check_lambda,
    register_spec,
    register_system,
)


@dataclasses.dataclass(frozen=True)
class RidgeSpec:
    m: int = 6
    p: int = 3
    lam: float = 0.1
    data_seed: int = 0
    dtype: str = "float64"

    def __post_init__(self):
        object.__setattr__(self, "m", check_int("m", self.m, 1))
        object.__setattr__(self, "p", check_int("p", self.p, 1))
        object.__setattr__(self, "lam", check_lambda("lam", self.lam))
        object.__setattr__(self, "data_seed", check_int("data_seed", self.data_seed, 0))
        object.__setattr__(self, "dtype", check_choice("dtype", self.dtype, ("float32", "float64")))

    def as_dict(self):
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


register_spec(RidgeSpec, ("lam",))


@functools.lru_cache(maxsize=16)
def _data(m, p, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, p)), rng.standard_normal(m)


def ridge_loss(spec, w):
    X, y = _data(spec.m, spec.p, spec.data_seed)
    X, y = jnp.asarray(X, w.dtype), jnp.asarray(y, w.dtype)
    r = X @ w - y
    return 0.5 * jnp.sum(r**2) / spec.m + 0.5 * spec.lam * jnp.sum(w**2)


def ridge_init(spec, key, scale=None):
    return (1.0 if scale is None else scale) * jax.random.normal(
        key, (spec.p,), np.dtype(spec.dtype)
    )


def ridge_optimum(spec) -> float:
    if spec.lam <= 0 and spec.m < spec.p:
        raise SpecError("lam must be > 0 when m < p (the minimiser is not unique)")
    X, y = _data(spec.m, spec.p, spec.data_seed)
    A = X.T @ X / spec.m + spec.lam * np.eye(spec.p)
    w = np.linalg.solve(A, X.T @ y / spec.m)
    r = X @ w - y
    return float(0.5 * r @ r / spec.m + 0.5 * spec.lam * w @ w)


SYSTEM = register_system(
    System(
        name="toy_ridge",
        spec_type=RidgeSpec,
        loss=ridge_loss,
        init=ridge_init,
        examples=lambda: (RidgeSpec(), RidgeSpec(m=4, p=5, lam=0.3, dtype="float32")),
        summary="test-only ridge regression",
        reference_value=ridge_optimum,
        label=lambda s: f"ridge m={s.m} p={s.p} lam={s.lam:g}",
    )
)
