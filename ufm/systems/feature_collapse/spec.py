"""Feature-collapse configuration (Laurent, von Brecht, Bresson 2023, arXiv 2305.16162).

:class:`FeatureCollapseSpec` holds the data model, the network and the training settings as
plain Python values; every invalid value raises :class:`ufm.core.SpecError` (a ``ValueError``)
with a one-line message naming the field.
Defaults are the paper's (n_c = 3 concepts, n_w = 1200 words, sentences of length L = 15,
K = 1000 latent variables, embedding dimension d = 100, plain SGD lr 0.1, batch 100, coupled
weight decay 1e-3, init = PyTorch default / 1000).
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from ...core.validation import SpecError, check_choice, check_dtype, check_int, check_lambda

__all__ = ["DTYPES", "LATENTS", "LAWS", "FeatureCollapseSpec"]

LAWS = ("uniform", "zipf")
LATENTS = ("random", "all")
DTYPES = ("float32", "float64")


def _number(name, value, *, positive=False):
    """A finite Python number ``>= 0`` (``> 0`` when ``positive``) as a float, or
    :class:`SpecError` naming ``name`` (spec fields are never traced here)."""
    if not isinstance(value, (numbers.Real, np.floating)) or isinstance(value, bool):
        need = "> 0" if positive else ">= 0"
        raise SpecError(f"{name} must be a finite number {need}, got {value!r}")
    v = check_lambda(name, value)
    if positive and v == 0:
        raise SpecError(f"{name} must be a finite number > 0, got {value!r}")
    return float(v)


@dataclasses.dataclass(frozen=True)
class FeatureCollapseSpec:
    """Data model, network and training settings of one feature-collapse experiment.

    Data model (paper Sec. 2): ``n_c`` concepts, ``n_w`` words, ``s_c = n_w / n_c`` words per
    concept; word ``(alpha, beta)`` has token id ``alpha * s_c + beta``. ``K`` latent variables
    ``z_k in [n_c]^L`` (label ``k``) are drawn uniformly once (``latents="random"``) or are all
    ``n_c^L`` sequences (``latents="all"``, needs ``K = n_c^L``: the setting of the type-III
    theory). Each latent generates ``nspl`` training and ``n_test`` test sentences: position
    ``l`` holds a word of concept ``z_{k,l}`` whose index ``beta`` follows the law ``mu``
    (``"uniform"`` or ``"zipf"``: ``mu_beta ∝ 1/beta``, beta = 1..s_c), shared by all concepts.

    Network: embedding ``W`` (n_w x d) -> LayerNorm without affine when ``layernorm`` ->
    position-specific flatten -> linear classifier ``U`` (K x L d), no bias; mean cross-entropy.

    Training: plain SGD (``lr``, ``batch_size``) with coupled weight decay ``weight_decay`` on
    ``U`` and ``weight_decay_w`` on ``W`` (``None``: ``weight_decay`` without LayerNorm and 0
    with it, as in the paper); ``epochs`` epochs; init = PyTorch default / ``init_scale_divisor``.

    Attributes beyond the above: ``data_seed`` (numpy PCG64 seed of the data set),
    ``dtype`` (``"float32"`` like the paper, or ``"float64"``), ``ln_eps`` (LayerNorm epsilon).

    Example:
        >>> spec = FeatureCollapseSpec(n_w=120, L=8, K=64, d=32)
        >>> spec.s_c, spec.n_train, spec.wd_w, spec.wd_u
        (40, 320, 0.001, 0.001)
        >>> FeatureCollapseSpec(n_w=100)
        Traceback (most recent call last):
        ...
        ufm.core.validation.SpecError: n_w must be a multiple of n_c (got n_w=100, n_c=3)
    """

    n_c: int = 3
    n_w: int = 1200
    L: int = 15
    K: int = 1000
    d: int = 100
    nspl: int = 5
    n_test: int = 5
    law: str = "uniform"
    latents: str = "random"
    layernorm: bool = False
    lr: float = 0.1
    batch_size: int = 100
    weight_decay: float = 1e-3
    weight_decay_w: float | None = None
    epochs: int = 1200
    init_scale_divisor: float = 1000.0
    data_seed: int = 0
    dtype: str = "float32"
    ln_eps: float = 1e-5

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        for name, minimum in (("n_c", 2), ("n_w", 1)):
            put(name, check_int(name, getattr(self, name), minimum))
        if self.n_w % self.n_c:
            raise SpecError(f"n_w must be a multiple of n_c (got n_w={self.n_w}, n_c={self.n_c})")
        for name, minimum in (("L", 1), ("K", 2), ("d", 1), ("nspl", 1), ("n_test", 1)):
            put(name, check_int(name, getattr(self, name), minimum))
        put("law", check_choice("law", self.law, LAWS))
        put("latents", check_choice("latents", self.latents, LATENTS))
        if self.latents == "all" and self.K != self.n_c**self.L:
            raise SpecError(
                f"K must equal n_c**L = {self.n_c**self.L} when latents='all' (got K={self.K})"
            )
        if not isinstance(self.layernorm, bool):
            raise SpecError(f"layernorm must be True or False, got {self.layernorm!r}")
        put("lr", _number("lr", self.lr, positive=True))
        put("batch_size", check_int("batch_size", self.batch_size, 1))
        if self.batch_size > self.n_train:
            raise SpecError(
                f"batch_size must be <= the number of training sentences K*nspl={self.n_train} "
                f"(got batch_size={self.batch_size})"
            )
        put("weight_decay", _number("weight_decay", self.weight_decay))
        if self.weight_decay_w is not None:
            put("weight_decay_w", _number("weight_decay_w", self.weight_decay_w))
        put("epochs", check_int("epochs", self.epochs, 0))
        put(
            "init_scale_divisor",
            _number("init_scale_divisor", self.init_scale_divisor, positive=True),
        )
        put("data_seed", check_int("data_seed", self.data_seed, 0))
        put("dtype", check_dtype("dtype", self.dtype, DTYPES))
        put("ln_eps", _number("ln_eps", self.ln_eps, positive=True))

    def as_dict(self) -> dict:
        """The fields as a plain dict (the columns of a result row)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    # -- derived sizes and settings ------------------------------------------------------------
    @property
    def s_c(self) -> int:
        """Words per concept, ``n_w / n_c``."""
        return self.n_w // self.n_c

    @property
    def n_train(self) -> int:
        """Number of training sentences, ``K * nspl``."""
        return self.K * self.nspl

    @property
    def n_test_total(self) -> int:
        """Number of test sentences, ``K * n_test``."""
        return self.K * self.n_test

    @property
    def wd_u(self) -> float:
        """Coupled weight decay on the classifier ``U``."""
        return float(self.weight_decay)

    @property
    def wd_w(self) -> float:
        """Coupled weight decay on the embedding ``W`` (paper: 0 with LayerNorm)."""
        if self.weight_decay_w is not None:
            return float(self.weight_decay_w)
        return 0.0 if self.layernorm else float(self.weight_decay)

    @property
    def steps_per_epoch(self) -> int:
        """Minibatch steps per epoch (the last partial batch is dropped)."""
        return self.n_train // self.batch_size

    @property
    def collapse_type(self) -> int:
        """The collapse the paper predicts: 1 (uniform law, no LayerNorm), 2 (LayerNorm),
        3 (non-uniform law, no LayerNorm; its closed form needs ``latents="all"``)."""
        if self.layernorm:
            return 2
        return 1 if self.law == "uniform" else 3

    def replace(self, **changes) -> FeatureCollapseSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
