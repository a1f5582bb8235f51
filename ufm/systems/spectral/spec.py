"""The configuration of one self-supervised (SSL) training experiment: :class:`SpectralSpec`.

One spec is one *method* on one data set with one network and one optimiser; a comparison (the
presets of :mod:`ufm.systems.spectral.presets`) is a list of specs that differ in ``method`` (and
``p``, ``side``). Every field is a plain Python value (static: a change recompiles); the spec is a
hashable frozen dataclass registered as a pytree with no leaves.

Methods (the loss applied to the two views ``z_1, z_2`` of the projector output, batch ``m x d``):

==============  =================================================================================
``alignment``   plain cosine alignment of the raw views (the collapsing baseline)
``power``       cosine alignment after the power ST ``g = lambda^(-p)`` on ``side`` (guard ``eps``)
``whiten``      cosine alignment after exact ZCA whitening on ``side`` (the power ST at ``p = 1/2``)
``iternorm``    cosine alignment after IterNorm (``n_iter`` Newton steps) on ``side``, no trace loss
``intl``        INTL: IterNorm + trace loss with weight ``beta`` (``None``: official
                ``0.01 (log2 size - 3)``)
``wmse``        W-MSE: Cholesky whitening of the feature covariance, shrinkage ``eps``
==============  =================================================================================

Data (``data``): ``"digits"`` (sklearn's bundled 8 x 8 digits, unit-scaled, the fixed stratified
1438 / 359 split of :func:`ufm.data.load_digits`), ``"latent"`` (latent-factor data of known rank,
:func:`ufm.data.latent.latent_factor_data`, split 80 / 20 stratified), ``"folder"`` (a user data set
of ``.npy`` files in ``data_dir``, :func:`ufm.data.load_npy_folder`: the paper-scale path).
"""

from __future__ import annotations

import dataclasses
import math
import os

from ufm.core import SpecError, check_choice, check_int, register_spec

METHODS = ("alignment", "power", "whiten", "iternorm", "intl", "wmse")
DATASETS = ("digits", "latent", "folder")
ENCODERS = ("mlp", "cnn")
ACTIVATIONS = ("relu", "tanh", "gelu")
OPTIMIZERS = ("adam", "adamw", "sgd")
DTYPES = ("float32", "float64")

#: Training samples of the digits split (``ufm.data.load_digits()``: 1438 train, 359 test).
DIGITS_TRAIN = 1438
#: Test fraction of the stratified split of the latent-factor data.
LATENT_TEST_FRACTION = 0.2


def _check_float(name, value, lo, hi=math.inf, *, lo_open=False, hi_open=True):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{name} must be a number, got {value!r}")
    v = float(value)
    low_ok = v > lo if lo_open else v >= lo
    high_ok = v < hi if hi_open else v <= hi
    if not (math.isfinite(v) and low_ok and high_ok):
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise SpecError(f"{name} must lie in {left}{lo:g}, {hi:g}{right}, got {value!r}")
    return v


def _check_widths(name, value, minimum=1):
    if isinstance(value, (int, str)) or not hasattr(value, "__iter__"):
        raise SpecError(f"{name} must be a tuple of integers >= {minimum}, got {value!r}")
    out = tuple(check_int(name, w, minimum) for w in value)
    if not out:
        raise SpecError(f"{name} must be a non-empty tuple of integers, got {value!r}")
    return out


def latent_train_size(n_samples: int) -> int:
    """Training samples of the latent-factor split: ``n - round(0.2 n)`` (stratified, 1 class
    per residue; exact for balanced labels)."""
    return n_samples - int(math.floor(LATENT_TEST_FRACTION * n_samples + 0.5))


@dataclasses.dataclass(frozen=True)
class SpectralSpec:
    """One SSL experiment (module docstring). Defaults: the digits setting of the issue (MLP
    encoder 64-256-256, projector 256-256-64, ``d = 64``, batch 128, Adam 1e-3), method INTL on
    the feature side.

    Fields: ``data``; ``method``, ``p`` (power of the ST, ``method="power"``; in ``[0, 2]``),
    ``n_iter`` (IterNorm's ``T``), ``beta`` (INTL trace-loss weight, ``None`` = official),
    ``side`` (``"feature"`` or ``"instance"``), ``eps`` (power-ST floor / W-MSE shrinkage);
    ``encoder`` (``"mlp"``: hidden ``widths``; ``"cnn"``: conv channels ``widths[:-1]`` and dense
    width ``widths[-1]``), ``proj_widths`` (projector hidden widths), ``proj_dim`` (``d``),
    ``activation``; ``batch_size``, ``optimizer``, ``lr``, ``weight_decay``, ``epochs``,
    ``checkpoints`` (evaluations after epoch 0, evenly spaced); augmentation ``max_shift``
    (images), ``noise_std``, ``drop_prob``; latent data ``latent_samples``, ``latent_dim``,
    ``latent_rank``, ``latent_classes``, ``latent_noise``; ``data_dir`` (``data="folder"`` only);
    ``data_seed`` (data draw, fixed views of the loss hook, evaluation batches); ``dtype``.

    >>> SpectralSpec(method="power", p=0.25).label()
    'power p=0.25 (feature)'
    >>> SpectralSpec(p=-1.0)
    Traceback (most recent call last):
    ...
    ufm.core.validation.SpecError: p must lie in [0, 2], got -1.0
    """

    data: str = "digits"
    method: str = "intl"
    p: float = 0.5
    n_iter: int = 4
    beta: float | None = None
    side: str = "feature"
    eps: float = 1e-5
    encoder: str = "mlp"
    widths: tuple = (256, 256)
    proj_widths: tuple = (256,)
    proj_dim: int = 64
    activation: str = "relu"
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    epochs: int = 50
    checkpoints: int = 5
    max_shift: int = 1
    noise_std: float = 0.1
    drop_prob: float = 0.1
    latent_samples: int = 2000
    latent_dim: int = 64
    latent_rank: int = 8
    latent_classes: int = 10
    latent_noise: float = 0.0
    data_dir: str = ""
    data_seed: int = 0
    dtype: str = "float32"

    def __post_init__(self):
        s = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        s("data", check_choice("data", self.data, DATASETS))
        s("method", check_choice("method", self.method, METHODS))
        s("p", _check_float("p", self.p, 0.0, 2.0, hi_open=False))
        s("n_iter", check_int("n_iter", self.n_iter, 0))
        if self.beta is not None:
            s("beta", _check_float("beta", self.beta, 0.0))
        s("side", check_choice("side", self.side, ("feature", "instance")))
        s("eps", _check_float("eps", self.eps, 0.0, 1.0))
        s("encoder", check_choice("encoder", self.encoder, ENCODERS))
        s("widths", _check_widths("widths", self.widths))
        s("proj_widths", _check_widths("proj_widths", self.proj_widths))
        s("proj_dim", check_int("proj_dim", self.proj_dim, 2))
        s("activation", check_choice("activation", self.activation, ACTIVATIONS))
        s("batch_size", check_int("batch_size", self.batch_size, 4))
        s("optimizer", check_choice("optimizer", self.optimizer, OPTIMIZERS))
        s("lr", _check_float("lr", self.lr, 0.0, lo_open=True))
        s("weight_decay", _check_float("weight_decay", self.weight_decay, 0.0))
        s("epochs", check_int("epochs", self.epochs, 0))
        s("checkpoints", check_int("checkpoints", self.checkpoints, 1))
        s("max_shift", check_int("max_shift", self.max_shift, 0))
        s("noise_std", _check_float("noise_std", self.noise_std, 0.0))
        s("drop_prob", _check_float("drop_prob", self.drop_prob, 0.0, 1.0))
        s("latent_samples", check_int("latent_samples", self.latent_samples, 10))
        s("latent_dim", check_int("latent_dim", self.latent_dim, 2))
        s("latent_rank", check_int("latent_rank", self.latent_rank, 1))
        s("latent_classes", check_int("latent_classes", self.latent_classes, 2))
        s("latent_noise", _check_float("latent_noise", self.latent_noise, 0.0))
        s("data_seed", check_int("data_seed", self.data_seed, 0))
        s("dtype", check_choice("dtype", self.dtype, DTYPES))
        if not isinstance(self.data_dir, str):
            raise SpecError(f"data_dir must be a folder path (str), got {self.data_dir!r}")
        self._check_combinations()

    def _check_combinations(self):
        if self.method in ("power", "whiten") and self.eps == 0:
            raise SpecError(
                f"eps must be > 0 for method={self.method!r} (the eigenvalue floor of the power "
                "ST; eps = 0 is allowed for wmse only)"
            )
        if self.data == "folder":
            if not self.data_dir or not os.path.isdir(self.data_dir):
                raise SpecError(
                    f"data_dir must be an existing folder of .npy files with data='folder' "
                    f"(got data_dir={self.data_dir!r})"
                )
        elif self.data_dir:
            raise SpecError(
                f"data_dir is only used with data='folder' (got data_dir={self.data_dir!r} "
                f"with data={self.data!r})"
            )
        if self.latent_rank > self.latent_dim:
            raise SpecError(
                f"latent_rank must be <= latent_dim (got latent_rank={self.latent_rank}, "
                f"latent_dim={self.latent_dim})"
            )
        if self.latent_classes > self.latent_samples // 5:
            raise SpecError(
                f"latent_classes must be <= latent_samples / 5 (got latent_classes="
                f"{self.latent_classes}, latent_samples={self.latent_samples})"
            )
        n_train = {"digits": DIGITS_TRAIN, "latent": latent_train_size(self.latent_samples)}
        if self.data in n_train and self.batch_size > n_train[self.data]:
            raise SpecError(
                f"batch_size must be <= the {n_train[self.data]} training samples of "
                f"data={self.data!r} (got batch_size={self.batch_size})"
            )
        if self.data == "digits" and self.max_shift >= 8:
            raise SpecError(f"max_shift must be < 8 for 8 x 8 digits (got {self.max_shift})")
        if self.encoder == "cnn":
            if self.data == "latent":
                raise SpecError("encoder='cnn' needs image data (data='digits' or 'folder')")
            if len(self.widths) < 2:
                raise SpecError(
                    f"widths of encoder='cnn' must be (channels..., dense width) with at least "
                    f"two entries (got widths={self.widths})"
                )
        if self.method == "intl" and self.beta is None:
            size, name = (
                (self.batch_size, "batch_size")
                if self.side == "instance"
                else (self.proj_dim, "proj_dim")
            )
            if size < 8:
                raise SpecError(
                    f"{name} must be >= 8 for the official INTL beta = 0.01 (log2 {name} - 3) "
                    f"on the {self.side} side (got {name}={size}); or pass beta"
                )

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes) -> SpectralSpec:
        return dataclasses.replace(self, **changes)

    def label(self) -> str:
        """Short label: the method with its parameters and side."""
        return spec_label(self)

    @property
    def input_kind(self) -> str:
        """``"image"`` (digits, image folders) or ``"vector"`` (latent, flat folders)."""
        return "vector" if self.data == "latent" else "image"


register_spec(SpectralSpec, ())


def spec_label(spec: SpectralSpec) -> str:
    """``"intl T=4 (feature)"``, ``"power p=0.25 (feature)"``, ``"alignment"``, ..."""
    m = spec.method
    if m == "alignment":
        return "alignment"
    if m == "power":
        core = f"power p={spec.p:g}"
    elif m in ("iternorm", "intl"):
        core = f"{m} T={spec.n_iter}"
        if m == "intl" and spec.beta is not None:
            core += f" beta={spec.beta:g}"
    else:
        core = m
    return core if m == "wmse" else f"{core} ({spec.side})"
