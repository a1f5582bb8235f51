"""The deep unconstrained feature model (L-DUFM): spec, parameters, objective, initialisation.

``H_1`` (``d_1 x N``, class-major columns) is free; ``H_{l+1} = sigma(W_l H_l + b_l 1^T)`` for
``l = 1..L-1``; the output is ``Z_L = W_L H_L + b_L 1^T`` with ``W_L`` of shape ``(K, d_L)``. The
objective (docs/theory.md section 4) is

    g(Z_L) + lambda_H1/2 ||H_1||^2 + sum_l lambda_W[l]/2 ||W_l||^2 (+ sum_l lambda_b[l]/2 ||b_l||^2)

with ``g`` the MSE ``1/(2N)||Z - Y||^2`` of the papers or the mean cross-entropy. ``L = 1`` is the
single-layer UFM with ``d = d_1`` (:class:`ufm.UFMSpec`).

References:
    Sukenik, Mondelli, Lampert 2023, "Deep neural collapse is provably optimal for the deep
    unconstrained features model" (arXiv 2305.13165): ReLU, MSE, no biases, binary case.
    Sukenik, Lampert, Mondelli 2024, "Neural collapse versus low-rank bias: is deep neural collapse
    really optimal?" (arXiv 2405.14468): multi-class, low-rank solutions beat DNC for ``L >= 3``.
    Garrod & Keating 2024 (arXiv 2410.23169): the cross-entropy variant.

Initialise at ``O(1)`` scale (:func:`ufm.init_params`: ``H_1 ~ N(0, 1)``,
``W_l ~ N(0, 1/fan_in)``): without biases and with ``sigma(0) = 0`` (ReLU, leaky ReLU, identity,
tanh, GELU, SiLU), for ``L >= 2`` the origin is a strict local minimum (the fit term is
``O(||theta||^{L+1})`` there, so the Hessian is ``diag(lambda)``), and small initialisations get
stuck at the zero solution of value 1/2 (MSE). With biases, or softplus (``sigma(0) = log 2``),
the origin is not even critical (docs/theory.md section 4.3).
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ...core.jitting import jit_when_eager
from ...core.pytree import register_spec
from ...core.validation import (
    SpecError,
    check_choice,
    check_dtype,
    check_int,
    check_lambda,
    is_concrete,
)
from ...hessian.structure import FeatureSplit
from ..ufm.objective import fit_term
from ..ufm.spec import DTYPES, LOSSES

__all__ = [
    "ACTIVATIONS",
    "DeepFeatures",
    "DeepUFMParams",
    "DeepUFMSpec",
    "activation_fn",
    "deep_class_means",
    "deep_features",
    "deep_loss_terms",
]

ACTIVATIONS = ("relu", "leaky_relu", "identity", "tanh", "softplus", "gelu", "silu")
"""Activation names. ``relu`` (the papers), ``leaky_relu`` (slope 0.01), ``identity`` (deep linear);
the smooth ones (``tanh``, ``softplus``, ``gelu`` (exact erf form), ``silu``) have exact
Hessians."""

POSITIVE_LINEAR = ("relu", "leaky_relu", "identity")
"""Activations with ``sigma(x) = x`` for ``x >= 0``: non-negative features pass unchanged, so the
DNC point (:func:`ufm.deep.dnc_point`) is a critical point and its value is
:func:`ufm.deep.dnc_loss`."""

NONNEGATIVE = ("relu",)
"""Activations whose outputs are non-negative (post-activation class means are compared with an
orthogonal frame, uncentred)."""

BIASES = ("none", "free", "regularized")
_ACT_ALIASES = {"linear": "identity", "none": "identity", "leaky": "leaky_relu", "swish": "silu"}
_BIAS_ALIASES = {"regularised": "regularized", "reg": "regularized", "no": "none"}
LEAKY_SLOPE = 0.01


def activation_fn(name: str):
    """The elementwise activation called ``name`` (one of :data:`ACTIVATIONS`)."""
    name = check_choice("activation", name, ACTIVATIONS, _ACT_ALIASES)
    return {
        "relu": jax.nn.relu,
        "leaky_relu": lambda x: jax.nn.leaky_relu(x, LEAKY_SLOPE),
        "identity": lambda x: x,
        "tanh": jnp.tanh,
        "softplus": jax.nn.softplus,
        "gelu": lambda x: jax.nn.gelu(x, approximate=False),
        "silu": jax.nn.silu,
    }[name]


def _per_layer(name: str, value, L: int) -> tuple:
    """A per-layer lambda: one number for every layer, or a sequence / 1-d array of ``L``
    numbers."""
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1):
        if len(value) != L:
            raise SpecError(
                f"{name} must be a number or a sequence of L = {L} numbers, got {len(value)}"
            )
        return tuple(check_lambda(f"{name}[{i}]", v) for i, v in enumerate(value))
    if isinstance(value, jax.Array) and value.ndim == 1:  # traced or device array of L values
        if value.shape[0] != L:
            raise SpecError(f"{name} must have L = {L} entries, got shape {value.shape}")
        return tuple(value[i] for i in range(L))
    return (check_lambda(name, value),) * L


def _widths(value, L: int) -> tuple:
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        return (check_int("widths", value, 1),) * L
    try:
        items = tuple(value)
    except TypeError:
        raise SpecError(
            f"widths must be an int or a sequence of L = {L} ints, got {value!r}"
        ) from None
    if len(items) != L:
        raise SpecError(
            f"widths must be an int or a sequence of L = {L} ints (d_1..d_L), got {len(items)}"
        )
    return tuple(check_int(f"widths[{i}]", w, 1) for i, w in enumerate(items))


@dataclasses.dataclass(frozen=True)
class DeepUFMSpec:
    """The deep unconstrained feature model with ``L`` layers (module docstring; docs/theory.md
    section 4).

    Args:
        K: classes (``>= 2``). n: samples per class (``>= 1``), ``N = n K`` class-major.
        L: number of weight matrices (``>= 1``; ``L = 1`` is the UFM).
        widths: ``d_1..d_L`` (``H_l`` has ``d_l`` rows); an int sets every layer.
        activation: one of :data:`ACTIVATIONS` (default ``"relu"``, the papers').
        loss: ``"mse"`` (the papers') or ``"ce"``.
        lambda_H1: weight decay of ``H_1``. lambda_W: of ``W_1..W_L``, one number or ``L`` numbers.
        bias: ``"none"`` (default, the papers' setting), ``"free"`` or ``"regularized"``: biases
            ``b_l`` of size ``d_{l+1}`` (``K`` for ``l = L``) in every layer.
        lambda_b: weight decay of the biases (``"regularized"`` only), one number or ``L`` numbers.
        dtype: ``"float64"`` (default) or ``"float32"``.

    A frozen dataclass registered as a pytree: the lambdas are leaves (``lambda_W`` and ``lambda_b``
    are stored as tuples of ``L``), sizes and kinds are static, so a jitted function of the spec
    compiles once per shape and the lambdas can be traced or vmapped.

    Example:
        >>> spec = DeepUFMSpec(K=10, n=5, L=4, widths=30, lambda_H1=4e-3, lambda_W=4e-3)
        >>> spec.dims, spec.N
        ((30, 30, 30, 30, 10), 50)
        >>> DeepUFMSpec(K=3, n=2, L=2, widths=(4, 4, 4))
        Traceback (most recent call last):
        ...
        ufm.core.validation.SpecError: widths must be an int or a sequence of L = 2 ints (d_1..d_L),
        got 3
    """

    K: int
    n: int
    L: int
    widths: tuple
    activation: str = "relu"
    loss: str = "mse"
    lambda_H1: float = 5e-3
    lambda_W: tuple = 5e-3
    bias: str = "none"
    lambda_b: tuple = 0.0
    dtype: str = "float64"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("K", check_int("K", self.K, 2))
        set_("n", check_int("n", self.n, 1))
        set_("L", check_int("L", self.L, 1))
        set_("widths", _widths(self.widths, self.L))
        set_("activation", check_choice("activation", self.activation, ACTIVATIONS, _ACT_ALIASES))
        set_("loss", check_choice("loss", self.loss, LOSSES))
        set_("bias", check_choice("bias", self.bias, BIASES, _BIAS_ALIASES))
        set_("dtype", check_dtype("dtype", self.dtype, DTYPES))
        set_("lambda_H1", check_lambda("lambda_H1", self.lambda_H1))
        set_("lambda_W", _per_layer("lambda_W", self.lambda_W, self.L))
        set_("lambda_b", _per_layer("lambda_b", self.lambda_b, self.L))
        for i, lb in enumerate(self.lambda_b):
            if not is_concrete(lb):
                continue
            if self.bias == "regularized" and not lb > 0:
                raise SpecError(
                    f"lambda_b[{i}] must be > 0 for bias='regularized' (use bias='free')"
                )
            if self.bias != "regularized" and lb != 0:
                raise SpecError(
                    f"lambda_b is set but bias={self.bias!r}; lambda_b needs bias='regularized'"
                )

    # Derived quantities -------------------------------------------------------------------
    @property
    def N(self) -> int:
        """Number of samples, ``n K``."""
        return self.n * self.K

    @property
    def dims(self) -> tuple:
        """``(d_1, ..., d_L, K)``: ``W_l`` maps ``dims[l-1]`` to ``dims[l]``."""
        return self.widths + (self.K,)

    @property
    def weight_shapes(self) -> tuple:
        """Shapes of ``W_1..W_L``: ``(d_{l+1}, d_l)``, the last ``(K, d_L)``."""
        d = self.dims
        return tuple((d[i + 1], d[i]) for i in range(self.L))

    @property
    def has_bias(self) -> bool:
        return self.bias != "none"

    @property
    def num_params(self) -> int:
        d = self.dims
        n_w = sum(d[i + 1] * d[i] for i in range(self.L))
        return n_w + d[0] * self.N + (sum(d[1:]) if self.has_bias else 0)

    @property
    def jnp_dtype(self):
        return np.dtype(self.dtype)

    def replace(self, **changes) -> DeepUFMSpec:
        """A copy with fields changed (validated again).

        When ``L`` changes, per-layer fields not given (``widths``, ``lambda_W``, ``lambda_b``)
        carry
        over if they are uniform across layers; otherwise pass them explicitly.
        """
        if "L" in changes and changes["L"] != self.L:
            for name in ("widths", "lambda_W", "lambda_b"):
                if name in changes:
                    continue
                vals = getattr(self, name)
                if not all(is_concrete(v) for v in vals) or len(set(float(v) for v in vals)) != 1:
                    raise SpecError(f"{name} differs across layers: pass {name} when changing L")
                changes[name] = vals[0]
        return dataclasses.replace(self, **changes)

    def static_key(self) -> tuple:
        """Hashable key of the static (shape-determining) fields."""
        return (
            type(self).__name__,
            self.K,
            self.n,
            self.L,
            self.widths,
            self.activation,
            self.loss,
            self.bias,
            self.dtype,
        )

    def as_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        conv = lambda v: float(v) if is_concrete(v) else v  # noqa: E731
        out["lambda_H1"] = conv(out["lambda_H1"])
        out["lambda_W"] = tuple(conv(v) for v in out["lambda_W"])
        out["lambda_b"] = tuple(conv(v) for v in out["lambda_b"])
        out["widths"] = tuple(out["widths"])
        return out


register_spec(DeepUFMSpec, ("lambda_H1", "lambda_W", "lambda_b"))


class DeepUFMParams(NamedTuple):
    """Deep-UFM parameters: ``Ws = (W_1, ..., W_L)``, ``H1 (d_1, N)``, ``biases = (b_1..b_L)`` or
    ``None``.

    ``W_l`` has shape ``(d_{l+1}, d_l)`` and ``W_L`` ``(K, d_L)``; ``b_l`` has ``d_{l+1}`` entries
    (``K`` for ``l = L``). ``biases`` is ``None`` when ``spec.bias == "none"``.
    """

    Ws: tuple
    H1: jax.Array
    biases: tuple | None = None


class DeepFeatures(NamedTuple):
    """All features of a deep-UFM point (or their class means), layer by layer.

    ``H[l-1] = H_l`` is the input of layer ``l`` (``H_1`` the free features, ``H_l`` for ``l >= 2``
    the post-activations); ``Z[l-1] = W_l H_l + b_l 1^T`` is its pre-activation (``Z_L`` the
    output), so ``H_{l+1} = sigma(Z_l)``.
    """

    H: tuple
    Z: tuple


@jit_when_eager
def deep_features(spec: DeepUFMSpec, params: DeepUFMParams) -> DeepFeatures:
    """Forward pass: every layer's input ``H_l`` and pre-activation ``Z_l`` (:class:`DeepFeatures`).

    Example:
        >>> import jax, ufm
        >>> spec = ufm.DeepUFMSpec(K=3, n=2, L=3, widths=(5, 4, 6))
        >>> f = ufm.deep.deep_features(spec, ufm.init_params(spec, jax.random.key(0)))
        >>> [h.shape for h in f.H], [z.shape for z in f.Z]
        ([(5, 6), (4, 6), (6, 6)], [(4, 6), (6, 6), (3, 6)])
    """
    sigma = activation_fn(spec.activation)
    Hs, Zs = [params.H1], []
    for i, W in enumerate(params.Ws):
        Z = W @ Hs[-1]
        if params.biases is not None:
            Z = Z + params.biases[i][:, None]
        Zs.append(Z)
        if i < spec.L - 1:
            Hs.append(sigma(Z))
    return DeepFeatures(tuple(Hs), tuple(Zs))


@jit_when_eager
def deep_class_means(spec: DeepUFMSpec, params: DeepUFMParams) -> DeepFeatures:
    """Uncentred class means (``d x K``) of every ``H_l`` and ``Z_l``: class-major reshapes."""
    K, n = spec.K, spec.n
    cm = lambda X: jnp.mean(X.reshape(X.shape[0], K, n), axis=2)  # noqa: E731
    f = deep_features(spec, params)
    return DeepFeatures(tuple(cm(h) for h in f.H), tuple(cm(z) for z in f.Z))


def _sq(x):
    return jnp.sum(x**2)


@jit_when_eager
def deep_loss_terms(spec: DeepUFMSpec, params: DeepUFMParams) -> dict:
    """The objective split into its terms: ``fit``, ``reg_H1``, ``reg_W1..reg_WL``, ``reg`` (total).

    ``reg_b1..`` are added for ``bias="regularized"``. ``fit + reg`` is :func:`ufm.loss`.
    """
    f = deep_features(spec, params)
    out = {
        "fit": fit_term(f.Z[-1], spec.loss, spec.n),
        "reg_H1": 0.5 * spec.lambda_H1 * _sq(params.H1),
    }
    for i, W in enumerate(params.Ws):
        out[f"reg_W{i + 1}"] = 0.5 * spec.lambda_W[i] * _sq(W)
    if spec.bias == "regularized":
        for i, b in enumerate(params.biases):
            out[f"reg_b{i + 1}"] = 0.5 * spec.lambda_b[i] * _sq(b)
    out["reg"] = sum(v for k, v in out.items() if k != "fit")
    return out


@jit_when_eager
def deep_loss(spec: DeepUFMSpec, params: DeepUFMParams):
    """The deep-UFM objective (docs/theory.md section 4)."""
    Z = deep_features(spec, params).Z[-1]
    f = fit_term(Z, spec.loss, spec.n) + 0.5 * spec.lambda_H1 * _sq(params.H1)
    for lam, W in zip(spec.lambda_W, params.Ws):
        f = f + 0.5 * lam * _sq(W)
    if spec.bias == "regularized":
        for lam, b in zip(spec.lambda_b, params.biases):
            f = f + 0.5 * lam * _sq(b)
    return f


def deep_init(spec: DeepUFMSpec, key, scale=None):
    """Deep-UFM initialisation: ``H_1 ~ N(0, s_H^2)``, ``W_l ~ N(0, s_W^2 / d_l)`` (fan-in), biases
    0.

    ``scale`` is ``None`` (``s_W = s_H = 1``, the recommended ``O(1)`` start), one number for both,
    or a pair ``(s_W, s_H)``. ``s_W = sqrt(2)`` is He initialisation. Do not start near the origin:
    for ``L >= 2`` it is a strict local minimum (module docstring).
    """
    scale = 1.0 if scale is None else scale
    sw, sh = (scale, scale) if np.ndim(scale) == 0 else scale
    sw, sh = float(sw), float(sh)
    dtype = spec.jnp_dtype
    # one normal draw for all blocks (a single RNG kernel to compile), then sliced per block
    shapes = ((spec.widths[0], spec.N),) + spec.weight_shapes
    sizes = [a * b for a, b in shapes]
    z = jax.random.normal(key, (sum(sizes),), dtype)
    offsets = np.cumsum([0] + sizes)
    blocks = [z[offsets[i] : offsets[i + 1]].reshape(shape) for i, shape in enumerate(shapes)]
    H1 = sh * blocks[0]
    Ws = tuple((sw / float(np.sqrt(shape[1]))) * B for B, shape in zip(blocks[1:], shapes[1:]))
    biases = tuple(jnp.zeros((d,), dtype) for d in spec.dims[1:]) if spec.has_bias else None
    return DeepUFMParams(Ws, H1, biases)


def deep_split_features(spec: DeepUFMSpec, params: DeepUFMParams) -> FeatureSplit:
    """Block-arrow split: ``theta = (W_1..W_L, biases)``, per-sample features ``H_1``.

    Column ``i`` of ``H_1`` enters only the loss of sample ``i`` (and its weight decay), so the
    Hessian is block-arrow (docs/theory.md section 3) with ``d_1 x d_1`` feature blocks. Block-arrow
    order:
    ``ravel_pytree((Ws, biases))`` then ``H_1`` row-major (``ravel_pytree(params)`` without biases).
    """
    return FeatureSplit(
        (params.Ws, params.biases), params.H1, lambda th, F: DeepUFMParams(th[0], F, th[1])
    )
