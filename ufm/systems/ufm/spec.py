"""Problem specification of the unconstrained feature model (UFM).

A :class:`UFMSpec` is a frozen dataclass registered as a JAX pytree: the sizes and kinds
(``K, n, d, loss, bias, dtype``) are static metadata, the regularisation strengths
(``lambda_W, lambda_H, lambda_b``) and the optional convex reference value ``f_convex`` are
leaves. Passing a spec as an argument of a jitted function therefore traces the lambdas, so a
sweep over lambdas with fixed sizes compiles once, and the lambdas can even be vmapped.

Class sizes (docs/theory.md section 10): ``n`` is an int (balanced classes, the default and the
fast path) or a tuple of ``K`` positive ints ``(n_1, ..., n_K)`` (samples ordered class-major:
the first ``n_1`` columns of ``H`` are class 0, and so on). A tuple of equal sizes is stored as
the int (the balanced spec, with the same compiled code).
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

    ``n`` is the number of samples per class (an int) or the class sizes (a tuple of ``K``
    positive ints, class-major order; ``spec.class_sizes`` always gives the tuple,
    ``spec.balanced`` says which). ``f_convex`` (default ``None``) is the value of the convex
    program of docs/theory.md section 9 attached by :func:`ufm.systems.ufm.with_convex_reference`:
    the classifier then compares ``f`` with it where no closed form exists (section 10).

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
        >>> imb = UFMSpec(K=3, n=(4, 4, 1), d=3)
        >>> imb.class_sizes, imb.N, imb.balanced, UFMSpec(K=2, n=(3, 3), d=2).n
        ((4, 4, 1), 9, False, 3)
        >>> UFMSpec(K=3, n=(4, 1), d=3)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ufm.core.validation.SpecError: n must be an int or a tuple of K=3 class sizes, got 2 ...
    """

    K: int
    n: int | tuple
    d: int
    loss: str = "ce"
    bias: str = "none"
    lambda_W: float = 5e-3
    lambda_H: float = 5e-3
    lambda_b: float = 0.0
    dtype: str = "float64"
    f_convex: float | None = None

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("K", check_int("K", self.K, 2))
        set_("n", _check_sizes(self.n, self.K))
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
        if self.f_convex is not None:
            set_("f_convex", check_lambda("f_convex", self.f_convex))

    # Derived quantities -------------------------------------------------------------------
    @property
    def balanced(self) -> bool:
        """Whether every class has ``n`` samples (``n`` an int)."""
        return not isinstance(self.n, tuple)

    @property
    def class_sizes(self) -> tuple:
        """``(n_1, ..., n_K)``, samples per class (class-major order)."""
        return (self.n,) * self.K if self.balanced else self.n

    @property
    def N(self) -> int:
        """Number of samples, ``sum_k n_k`` (``n K`` when balanced)."""
        return self.n * self.K if self.balanced else sum(self.n)

    @property
    def s(self):
        """The key scalar ``s = sqrt(n lambda_W lambda_H)`` of the balanced closed forms.

        Balanced classes only (``SpecError`` otherwise): with class sizes ``n_k`` the closed forms
        use ``sqrt(lambda_W lambda_H)`` and the sizes themselves (docs/theory.md section 10)."""
        if not self.balanced:
            raise SpecError(
                f"s = sqrt(n lambda_W lambda_H) needs balanced classes (got n={self.n}); "
                "imbalanced closed forms use sqrt(lambda_W lambda_H) and the class sizes"
            )
        return (self.n * self.lambda_W * self.lambda_H) ** 0.5

    def require_balanced(self, what: str) -> None:
        """Raise a one-line ``SpecError`` naming ``what`` when the classes are imbalanced."""
        if not self.balanced:
            raise SpecError(
                f"{what} supports balanced classes only (an int n), got class sizes n={self.n}"
            )

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
        """A copy with fields changed (validated again).

        An attached ``f_convex`` is dropped when anything but ``dtype`` changes (unless
        ``f_convex`` itself is given): the convex value belongs to the sizes and lambdas it was
        computed for."""
        if self.f_convex is not None and "f_convex" not in changes and set(changes) - {"dtype"}:
            changes["f_convex"] = None
        return dataclasses.replace(self, **changes)

    def static_key(self) -> tuple:
        """Hashable key of the static (shape-determining) fields."""
        return (type(self).__name__, self.K, self.n, self.d, self.loss, self.bias, self.dtype)

    def as_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for k in ("lambda_W", "lambda_H", "lambda_b"):
            if is_concrete(out[k]):
                out[k] = float(out[k])
        if out["f_convex"] is None:  # unchanged fields (and config hashes) without a reference
            del out["f_convex"]
        elif is_concrete(out["f_convex"]):
            out["f_convex"] = float(out["f_convex"])
        return out


def _check_sizes(n, K: int):
    """``n`` as an int (balanced) or a tuple of ``K`` positive ints; equal sizes give the int."""
    if isinstance(n, (tuple, list, np.ndarray)):
        sizes = tuple(np.asarray(n).ravel().tolist()) if isinstance(n, np.ndarray) else tuple(n)
        if len(sizes) != K:
            raise SpecError(
                f"n must be an int or a tuple of K={K} class sizes, got {len(sizes)} sizes {sizes}"
            )
        bad = [v for v in sizes if isinstance(v, bool) or not isinstance(v, (int, np.integer))]
        if bad or min(sizes) < 1:
            raise SpecError(f"n must hold K={K} positive integer class sizes, got {sizes}")
        sizes = tuple(int(v) for v in sizes)
        return sizes[0] if len(set(sizes)) == 1 else sizes
    return check_int("n", n, 1)


register_spec(UFMSpec, ("lambda_W", "lambda_H", "lambda_b", "f_convex"))


def ufm_label(spec: UFMSpec) -> str:
    """Short label of a configuration, e.g. ``ce-free K=3 n=2 d=3 lW=0.005 lH=0.005``."""
    n = spec.n if spec.balanced else ",".join(map(str, spec.n))
    lab = (
        f"{spec.loss}-{spec.bias} K={spec.K} n={n} d={spec.d} "
        f"lW={float(spec.lambda_W):g} lH={float(spec.lambda_H):g}"
    )
    return lab + (f" lb={float(spec.lambda_b):g}" if spec.bias == "regularized" else "")
