"""Problem specification of the unconstrained feature model (UFM).

A :class:`UFMSpec` is a frozen dataclass registered as a JAX pytree: the sizes and kinds
(``K, n, d, loss, bias, dtype``) are static metadata, the regularisation strengths
(``lambda_W, lambda_H, lambda_b``) are leaves. Passing a spec as an argument of a jitted
function therefore traces the lambdas, so a sweep over lambdas with fixed sizes compiles once,
and the lambdas can even be vmapped.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ...core.pytree import register_spec
from ...core.validation import (
    SpecError,
    check_choice,
    check_dtype,
    check_int,
    check_lambda,
    is_concrete,
)

__all__ = ["UFMSpec", "LOSSES", "BIASES", "DTYPES", "ufm_label"]

LOSSES = ("ce", "mse")
BIASES = ("none", "free", "regularized")
DTYPES = ("float32", "float64")

_BIAS_ALIASES = {"regularised": "regularized", "reg": "regularized", "no": "none"}


@dataclasses.dataclass(frozen=True)
class UFMSpec:
    """The single-layer unconstrained feature model (docs/theory.md section 1).

    ``f(W, H, b) = g(W H + b 1^T) + lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2 + lambda_b/2 ||b||^2``
    with ``W`` of shape ``(K, d)``, class-major features ``H`` of shape ``(d, N)``, ``N = n K``,
    ``g`` the mean cross-entropy (``loss="ce"``) or ``1/(2N) ||Z - Y||^2`` (``loss="mse"``).

    Bias variants: ``"none"`` (``b = 0``, no bias parameter), ``"free"`` (``lambda_b = 0``),
    ``"regularized"`` (``lambda_b > 0``). References: Zhu et al. 2021 (arXiv 2105.02375),
    Zhou et al. 2022 (arXiv 2203.01238), Shen & Gu 2024 (arXiv 2407.10702, ``d = K``).

    Example:
        >>> spec = UFMSpec(K=4, n=5, d=4, loss="ce", lambda_W=5e-3, lambda_H=5e-3)
        >>> spec.N, round(spec.s, 6)
        (20, 0.011180)
        >>> UFMSpec(K=1, n=5, d=4)
        Traceback (most recent call last):
        ...
        ufm.core.validation.SpecError: K must be an integer >= 2, got 1
    """

    K: int
    n: int
    d: int
    loss: str = "ce"
    bias: str = "none"
    lambda_W: float = 5e-3
    lambda_H: float = 5e-3
    lambda_b: float = 0.0
    dtype: str = "float64"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("K", check_int("K", self.K, 2))
        set_("n", check_int("n", self.n, 1))
        set_("d", check_int("d", self.d, 1))
        set_("loss", check_choice("loss", self.loss, LOSSES))
        set_("bias", check_choice("bias", self.bias, BIASES, _BIAS_ALIASES))
        set_("dtype", check_dtype("dtype", self.dtype, DTYPES))
        for name in ("lambda_W", "lambda_H", "lambda_b"):
            set_(name, check_lambda(name, getattr(self, name)))
        lb = self.lambda_b
        if is_concrete(lb):
            if self.bias == "regularized" and not lb > 0:
                raise SpecError(
                    "lambda_b must be > 0 for bias='regularized' (use bias='free' for lambda_b = 0)"
                )
            if self.bias != "regularized" and lb != 0:
                raise SpecError(
                    f"lambda_b={lb!r} is set but bias={self.bias!r}; "
                    "lambda_b needs bias='regularized'"
                )

    # Derived quantities -------------------------------------------------------------------
    @property
    def N(self) -> int:
        """Number of samples, ``n K``."""
        return self.n * self.K

    @property
    def s(self):
        """The key scalar ``s = sqrt(n lambda_W lambda_H)`` of the closed forms."""
        return (self.n * self.lambda_W * self.lambda_H) ** 0.5

    @property
    def has_bias(self) -> bool:
        return self.bias != "none"

    @property
    def num_params(self) -> int:
        return self.K * self.d + self.d * self.N + (self.K if self.has_bias else 0)

    @property
    def jnp_dtype(self):
        return np.dtype(self.dtype)

    def replace(self, **changes) -> UFMSpec:
        """A copy with fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def static_key(self) -> tuple:
        """Hashable key of the static (shape-determining) fields."""
        return (type(self).__name__, self.K, self.n, self.d, self.loss, self.bias, self.dtype)

    def as_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for k in ("lambda_W", "lambda_H", "lambda_b"):
            if is_concrete(out[k]):
                out[k] = float(out[k])
        return out


register_spec(UFMSpec, ("lambda_W", "lambda_H", "lambda_b"))


def ufm_label(spec: UFMSpec) -> str:
    """Short label of a configuration, e.g. ``ce-free K=3 n=2 d=3 lW=0.005 lH=0.005``."""
    lab = (
        f"{spec.loss}-{spec.bias} K={spec.K} n={spec.n} d={spec.d} "
        f"lW={float(spec.lambda_W):g} lH={float(spec.lambda_H):g}"
    )
    return lab + (f" lb={float(spec.lambda_b):g}" if spec.bias == "regularized" else "")
