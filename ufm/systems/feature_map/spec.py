"""The configuration of one trained-network experiment of the forward-feature-map system.

Nam, Mingard, Lee, Hayou & Louis 2024 (arXiv 2410.04264) train MLPs and CNNs and follow the
spectrum of the penultimate feature operator over epochs; the fixed simplex-ETF classifier at
``d = K`` follows Hoffer et al. 2018 (arXiv 1801.04540) and Zhu et al. 2021 (arXiv 2105.02375).
:class:`FeatureMapSpec` holds the network, the data set, the loss, the optimiser, the training
mode and the analysis settings as plain Python values (all static: a change recompiles); every
invalid value raises a one-line :class:`ufm.core.SpecError` naming the field. Checks that need
the data (class count against ``widths[-1]`` for the ETF head on user data, ``n_train`` against
the data set's size) run when the data are loaded (:func:`ufm.systems.feature_map.dataset`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers

from ...core.pytree import register_spec
from ...core.validation import SpecError, check_choice, check_int

__all__ = ["FeatureMapSpec", "default_checkpoints", "NETS", "HEADS", "DATA", "LOSSES"]

NETS = ("mlp", "cnn")
HEADS = ("linear", "etf")
DATA = ("digits", "mixture", "folder")
LOSSES = ("mse", "ce")
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
TRAINING = ("full", "last_layer", "lazy")
ACTIVATIONS = ("relu", "tanh", "gelu")
FEATURE_ACTIVATIONS = ("same", "identity", "relu", "leaky_relu", "tanh")
DTYPES = ("float32", "float64")
METHODS = ("svd", "eigh")

#: Classes of the built-in data sets (the ETF head's ``d = K`` is checked up front for them).
KNOWN_CLASSES = {"digits": 10, "mixture": 10}


def default_checkpoints(epochs: int) -> tuple[int, ...]:
    """``0, 1, 2, 5, 10, 20, 50, ...`` up to ``epochs`` (1-2-5 steps), and ``epochs`` itself.

    >>> default_checkpoints(300)
    (0, 1, 2, 5, 10, 20, 50, 100, 200, 300)
    """
    out, base = {0, int(epochs)}, 1
    while base <= epochs:
        out |= {m * base for m in (1, 2, 5) if m * base <= epochs}
        base *= 10
    return tuple(sorted(out))


def _positive(name: str, value, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok and math.isfinite(float(value)) and (value > 0 or (allow_zero and value == 0)):
        return float(value)
    need = ">= 0" if allow_zero else "> 0"
    raise SpecError(f"{name} must be a finite number {need}, got {value!r}")


def _ints(name: str, value, minimum: int, *, allow_empty: bool = False) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise SpecError(f"{name} must be a sequence of integers >= {minimum}, got {value!r}")
    items = tuple(value)
    if not items and not allow_empty:
        raise SpecError(f"{name} must be a non-empty sequence of integers >= {minimum}")
    try:
        return tuple(check_int(name, v, minimum) for v in items)
    except SpecError:
        raise SpecError(
            f"{name} must be a sequence of integers >= {minimum}, got {value!r}"
        ) from None


def _setter(obj):
    """``set(name, value)`` on a frozen dataclass instance (normalised field values)."""

    def s(name, value):
        object.__setattr__(obj, name, value)

    return s


@dataclasses.dataclass(frozen=True)
class FeatureMapSpec:
    """Network, data, loss, optimiser, training mode and analysis of one experiment.

    Network: ``net="mlp"`` (``widths`` = hidden widths, ``p = widths[-1]``) or ``"cnn"``
    (``channels`` of the 3x3 convolutions, then a dense feature layer of width
    ``widths[0] = p``; ``widths`` has one entry); ``activation`` of the hidden layers,
    ``feature_activation`` of the feature layer (``"same"``: ``activation``). ``head="linear"``
    learns ``W Phi + b``; ``head="etf"`` fixes ``W = etf_scale * sqrt(K/(K-1)) (I - J/K)``
    (:class:`ufm.nets.ETFHead`, needs ``p = K``).

    Data: ``"digits"`` (sklearn's bundled 8x8 digits, 1438 / 359), ``"mixture"`` (the seeded
    Gaussian mixture of :func:`ufm.data.gaussian_mixture`, 2000 / 1000, 16 inputs) or ``"folder"``
    (``data_path`` with ``x_train.npy, y_train.npy, x_test.npy, y_test.npy``; ``channels_last``
    for ``(n, H, W, C)`` images). ``data_seed`` seeds the mixture and the ``n_train`` subsample
    (``n_train = 0``: every training sample).

    Training: ``loss`` ``"mse"`` (``(1/2B) sum ||f - y||^2``, one-hot ``y``) or ``"ce"``;
    ``optimizer`` ``"sgd"``, ``"momentum"`` (0.9), ``"adam"`` or ``"adamw"`` with ``lr``;
    ``weight_decay`` coupled (added to the gradient: PyTorch's ``weight_decay``) except for
    ``"adamw"`` (decoupled); ``epochs`` of shuffled minibatches of ``batch_size`` (last partial
    batch dropped). ``training``: ``"full"``, ``"last_layer"`` (the head only: coefficient
    learning on frozen random features) or ``"lazy"`` (Chizat et al. 2019, arXiv 1812.07956:
    ``alpha (f - f_0)`` trained with the loss divided by ``alpha^2``).

    Analysis: at the ``checkpoints`` (epochs; ``()`` = :func:`default_checkpoints`) on the first
    ``analysis_n`` training samples (0, or more than there are: all of them) with
    ``analysis_method`` (``"svd"`` or ``"eigh"``, :func:`ufm.systems.feature_map.feature_spectrum`).
    ``dtype``: ``"float32"`` or ``"float64"``.

    Example:
        >>> spec = FeatureMapSpec(widths=(32, 32), epochs=20)
        >>> spec.width, spec.checkpoint_epochs
        (32, (0, 1, 2, 5, 10, 20))
        >>> FeatureMapSpec(loss="hinge")
        Traceback (most recent call last):
        ...
        ufm.core.validation.SpecError: loss must be one of mse, ce; got 'hinge'
    """

    net: str = "mlp"
    widths: tuple = (128, 128)
    channels: tuple = (16, 32)
    head: str = "linear"
    etf_scale: float = 1.0
    activation: str = "relu"
    feature_activation: str = "same"
    data: str = "digits"
    data_path: str = ""
    channels_last: bool = False
    data_seed: int = 0
    n_train: int = 0
    loss: str = "mse"
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    epochs: int = 300
    batch_size: int = 128
    checkpoints: tuple = ()
    training: str = "full"
    alpha: float = 100.0
    dtype: str = "float32"
    analysis_n: int = 0
    analysis_method: str = "svd"

    def __post_init__(self):
        s = _setter(self)
        s("net", check_choice("net", self.net, NETS))
        s("widths", _ints("widths", self.widths, 1))
        s("channels", _ints("channels", self.channels, 1))
        s("head", check_choice("head", self.head, HEADS))
        s("etf_scale", _positive("etf_scale", self.etf_scale))
        s("activation", check_choice("activation", self.activation, ACTIVATIONS))
        s(
            "feature_activation",
            check_choice("feature_activation", self.feature_activation, FEATURE_ACTIVATIONS),
        )
        s("data", check_choice("data", self.data, DATA))
        if not isinstance(self.data_path, str):
            raise SpecError(f"data_path must be a string (a folder), got {self.data_path!r}")
        if self.data == "folder" and not self.data_path:
            raise SpecError("data_path must name a folder of .npy files when data='folder'")
        if self.data != "folder" and self.data_path:
            raise SpecError(
                f"data_path is only used with data='folder' (got data={self.data!r}, "
                f"data_path={self.data_path!r})"
            )
        if not isinstance(self.channels_last, bool):
            raise SpecError(f"channels_last must be True or False, got {self.channels_last!r}")
        s("data_seed", check_int("data_seed", self.data_seed, 0))
        s("n_train", check_int("n_train", self.n_train, 0))
        s("loss", check_choice("loss", self.loss, LOSSES))
        s("optimizer", check_choice("optimizer", self.optimizer, OPTIMIZERS))
        s("lr", _positive("lr", self.lr))
        s("weight_decay", _positive("weight_decay", self.weight_decay, allow_zero=True))
        s("epochs", check_int("epochs", self.epochs, 0))
        s("batch_size", check_int("batch_size", self.batch_size, 1))
        if self.n_train and self.batch_size > self.n_train:
            raise SpecError(
                f"batch_size must be <= n_train (got batch_size={self.batch_size}, "
                f"n_train={self.n_train})"
            )
        cps = _ints("checkpoints", self.checkpoints, 0, allow_empty=True)
        if cps and max(cps) > self.epochs:
            raise SpecError(f"checkpoints must lie in [0, epochs={self.epochs}], got {cps}")
        s("checkpoints", tuple(sorted(set(cps))))
        s("training", check_choice("training", self.training, TRAINING))
        s("alpha", _positive("alpha", self.alpha))
        s("dtype", check_choice("dtype", self.dtype, DTYPES))
        s("analysis_n", check_int("analysis_n", self.analysis_n, 0))
        s("analysis_method", check_choice("analysis_method", self.analysis_method, METHODS))
        if self.net == "cnn" and len(self.widths) != 1:
            raise SpecError(
                f"widths must hold one entry (the dense feature width p) for net='cnn', "
                f"got widths={self.widths}"
            )
        known = KNOWN_CLASSES.get(self.data)
        if self.head == "etf" and known is not None and self.widths[-1] != known:
            raise SpecError(
                f"head='etf' needs widths[-1] = number of classes = {known} (d = K), "
                f"got widths={self.widths}"
            )
        if self.head == "etf" and self.training == "last_layer":
            raise SpecError(
                "training='last_layer' has nothing to train with head='etf' (the ETF head is fixed)"
            )

    # -- derived -------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        """The penultimate width ``p``."""
        return self.widths[-1]

    @property
    def checkpoint_epochs(self) -> tuple[int, ...]:
        """The analysed epochs: ``checkpoints`` (or :func:`default_checkpoints`), 0 and
        ``epochs``."""
        cps = self.checkpoints or default_checkpoints(self.epochs)
        return tuple(sorted({0, self.epochs, *cps}))

    def replace(self, **changes) -> FeatureMapSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


register_spec(FeatureMapSpec, ())


def spec_label(spec: FeatureMapSpec) -> str:
    """A short label: ``mlp 128-128 linear mse adam lr=0.001 digits`` (+ training mode)."""
    arch = "-".join(map(str, spec.widths))
    if spec.net == "cnn":
        arch = "c" + "-".join(map(str, spec.channels)) + "-" + arch
    parts = [spec.net, arch, spec.head, spec.loss, f"{spec.optimizer} lr={spec.lr:g}", spec.data]
    if spec.weight_decay:
        parts.append(f"wd={spec.weight_decay:g}")
    if spec.training == "lazy":
        parts.append(f"lazy alpha={spec.alpha:g}")
    elif spec.training == "last_layer":
        parts.append("last layer only")
    return " ".join(parts)
