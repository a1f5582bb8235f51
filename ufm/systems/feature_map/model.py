"""Data, network, objective and optimiser of a :class:`FeatureMapSpec` (the system's hooks).

The network is an equinox module from :mod:`ufm.nets` (MLP or CNN body, learned or fixed-ETF
head, optionally wrapped by :class:`ufm.nets.Lazy`); its floating-point arrays are the parameters
(a pytree, one seed), everything else is static and rebuilt from the spec (:func:`static_of`).

* :func:`fm_init` (the ``init`` hook): the arrays of ``make_model(spec, key)``, PyTorch-style
  uniform initialisation (equinox's default), optionally multiplied by ``scale``.
* :func:`fm_objective` (the ``loss`` hook): the full-training-set objective
  ``c * L(f(X), Y) + (weight_decay / 2) ||theta_trainable||^2`` with ``c = 1/alpha^2`` for lazy
  training and 1 otherwise, as a function of *every* array (frozen ones included: their
  gradient is what they would get if they were trained; the lazy model's ``f_0`` enters
  without ``stop_gradient``). Coupled weight decay makes the optimiser follow its gradient;
  ``adamw``'s decoupled decay does not.
* :func:`make_loss_fn` / :func:`make_optimizer`: the minibatch loss and the optax optimiser of
  :func:`ufm.optim.train` (frozen arrays: ``stop_gradient`` and zero updates, see
  :mod:`ufm.nets.params`). Both cached per spec: they are static arguments of the compiled chunk.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ... import nets
from ...core.validation import SpecError
from ...data import Dataset, gaussian_mixture, load_digits, load_npy_folder
from .spec import FeatureMapSpec

__all__ = [
    "DataInfo",
    "dataset",
    "data_info",
    "analysis_size",
    "make_model",
    "static_of",
    "mask_of",
    "fm_init",
    "arch_key",
    "fm_objective",
    "make_loss_fn",
    "make_optimizer",
    "param_counts",
    "forward",
]


def _identity(x):
    return x


_ACT = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "identity": _identity,
    "leaky_relu": jax.nn.leaky_relu,
}


class DataInfo(NamedTuple):
    """Shapes of a spec's data set: ``input_dim``, ``image_shape`` (or None), ``num_classes``,
    ``n_train``, ``n_test``."""

    input_dim: int
    image_shape: tuple | None
    num_classes: int
    n_train: int
    n_test: int


@functools.lru_cache(maxsize=8)
def _load(data: str, data_path: str, channels_last: bool, data_seed: int, dtype: str) -> Dataset:
    if data == "digits":
        return load_digits(dtype=np.dtype(dtype))
    if data == "mixture":
        return gaussian_mixture(seed=data_seed, dtype=np.dtype(dtype))
    return load_npy_folder(data_path, channels_last=channels_last, dtype=np.dtype(dtype))


@functools.lru_cache(maxsize=8)
def _subsample(data, data_path, channels_last, data_seed, n_train, dtype) -> Dataset:
    ds = _load(data, data_path, channels_last, data_seed, dtype)
    if n_train == 0 or n_train == ds.n_train:
        return ds
    if n_train > ds.n_train:
        raise SpecError(
            f"n_train must be <= the {ds.n_train} training samples of {ds.name!r} (got {n_train})"
        )
    idx = np.sort(np.random.default_rng(data_seed).permutation(ds.n_train)[:n_train])
    missing = np.setdiff1d(np.arange(ds.num_classes), ds.y_train[idx])
    if missing.size:
        raise SpecError(
            f"n_train={n_train} leaves class(es) {missing.tolist()} without a training sample "
            f"(data_seed={data_seed}); raise n_train"
        )
    return Dataset(
        ds.x_train[idx],
        ds.y_train[idx],
        ds.x_test,
        ds.y_test,
        ds.num_classes,
        ds.name,
        ds.image_shape,
    )


def dataset(spec: FeatureMapSpec) -> Dataset:
    """The spec's data set (cached; ``n_train`` subsample drawn by ``default_rng(data_seed)``).

    Raises :class:`ufm.core.SpecError` naming the field when the data do not fit the spec
    (``n_train`` or ``batch_size`` larger than the data, ``net='cnn'`` on
    non-image data, the ETF head's ``widths[-1] != K``) and ``FileNotFoundError`` for a missing
    folder or file.
    """
    ds = _subsample(
        spec.data, spec.data_path, spec.channels_last, spec.data_seed, spec.n_train, spec.dtype
    )
    if spec.batch_size > ds.n_train:
        raise SpecError(
            f"batch_size must be <= the {ds.n_train} training samples (got {spec.batch_size})"
        )
    if spec.net == "cnn" and ds.image_shape is None:
        raise SpecError(f"net='cnn' needs image data; data set {ds.name!r} has no image_shape")
    if spec.head == "etf" and spec.width != ds.num_classes:
        raise SpecError(
            f"head='etf' needs widths[-1] = number of classes = {ds.num_classes} (d = K), "
            f"got widths={spec.widths}"
        )
    return ds


def analysis_size(spec: FeatureMapSpec, n_train: int) -> int:
    """Samples of the analysis: the first ``analysis_n`` (all when 0 or more than ``n_train``)."""
    return min(spec.analysis_n, n_train) if spec.analysis_n else n_train


def data_info(spec: FeatureMapSpec) -> DataInfo:
    ds = dataset(spec)
    return DataInfo(ds.input_dim, ds.image_shape, ds.num_classes, ds.n_train, ds.n_test)


def make_model(spec: FeatureMapSpec, key):
    """The network of ``spec`` initialised from ``key`` (a :class:`ufm.nets.Net`, or
    :class:`ufm.nets.Lazy` for ``training='lazy'``)."""
    info = data_info(spec)
    dtype = jnp.dtype(spec.dtype)
    act = _ACT[spec.activation]
    fact = None if spec.feature_activation == "same" else _ACT[spec.feature_activation]
    common = dict(
        key=key,
        head=spec.head,
        etf_scale=spec.etf_scale,
        activation=act,
        final_activation=fact,
        dtype=dtype,
    )
    if spec.net == "mlp":
        net = nets.mlp(info.input_dim, spec.widths, info.num_classes, **common)
    else:
        net = nets.cnn(info.image_shape, spec.channels, spec.width, info.num_classes, **common)
    return nets.Lazy(net, spec.alpha) if spec.training == "lazy" else net


def _zeros(x):
    return np.zeros(x.shape, x.dtype) if isinstance(x, jax.ShapeDtypeStruct) else x


@functools.lru_cache(maxsize=64)
def _reference_model(spec: FeatureMapSpec):
    """The spec's network with numpy zeros for its arrays (built by ``eval_shape``: no
    compilation); its static part and structure are those of every seed's network."""
    shapes = eqx.filter_eval_shape(make_model, spec, jax.random.key(0))
    return jax.tree_util.tree_map(_zeros, shapes)


def arch_key(spec: FeatureMapSpec) -> FeatureMapSpec:
    """The spec with every field that does not change the initial network normalised: specs
    with equal ``arch_key`` draw identical networks from a key (and share compiled code)."""
    return spec.replace(
        loss="mse",
        optimizer="adam",
        lr=1.0,
        weight_decay=0.0,
        epochs=0,
        checkpoints=(),
        batch_size=1,
        training="lazy" if spec.training == "lazy" else "full",
        analysis_n=0,
        analysis_method="svd",
    )


def static_of(spec: FeatureMapSpec):
    """The static part of the spec's network (shared by every seed; cached)."""
    return nets.split(_reference_model(spec))[1]


def mask_of(spec: FeatureMapSpec):
    """Booleans with the structure of the parameters: ``True`` = trained."""
    return nets.trainable_mask(
        _reference_model(spec), last_layer_only=spec.training == "last_layer"
    )


@functools.partial(jax.jit, static_argnums=(0, 2))
def _init(spec: FeatureMapSpec, key, scale):
    params = nets.split(make_model(spec, key))[0]
    if scale is not None:
        params = jax.tree_util.tree_map(lambda x: x * jnp.asarray(scale, x.dtype), params)
    return params


def fm_init(spec: FeatureMapSpec, key, scale=None):
    """One seed's parameters (the arrays of :func:`make_model`); ``scale`` multiplies them.
    Compiled once per spec (eager construction would compile every operation)."""
    if scale is not None and not isinstance(scale, (int, float)):
        return _init.__wrapped__(spec, key, scale)  # a traced scale: not a static argument
    return _init(spec, key, None if scale is None else float(scale))


def param_counts(spec: FeatureMapSpec) -> tuple[int, int]:
    """``(trainable, total)`` numbers of scalar parameters (the lazy model's frozen copy
    ``f_0`` counts in ``total``; the fixed ETF head has none)."""
    params = nets.split(_reference_model(spec))[0]
    leaves = jax.tree_util.tree_leaves(params)
    masks = jax.tree_util.tree_leaves(mask_of(spec))
    total = sum(int(x.size) for x in leaves)
    return sum(int(x.size) for x, m in zip(leaves, masks) if m), total


def forward(model, x):
    """Outputs on a batch without ``stop_gradient`` on the lazy model's ``f_0``."""
    if isinstance(model, nets.Lazy):
        return model.alpha * (jax.vmap(model.model)(x) - jax.vmap(model.model0)(x))
    return jax.vmap(model)(x)


def data_loss(kind: str, out, y):
    """Mean MSE ``(1/2n) sum ||f - onehot(y)||^2`` or cross-entropy over the rows of ``out``."""
    t = jax.nn.one_hot(y, out.shape[-1], dtype=out.dtype)
    if kind == "mse":
        return 0.5 * jnp.mean(jnp.sum((out - t) ** 2, axis=-1))
    return jnp.mean(jax.nn.logsumexp(out, axis=-1) - jnp.sum(t * out, axis=-1))


def _loss_scale(spec) -> float:
    return 1.0 / spec.alpha**2 if spec.training == "lazy" else 1.0


def fm_objective(spec: FeatureMapSpec, params):
    """The full-training-set objective (module docstring), a scalar of the parameters' dtype
    (compiled once per spec)."""
    return _objective(spec, params)


@functools.partial(jax.jit, static_argnums=0)
def _objective(spec: FeatureMapSpec, params):
    ds = dataset(spec)
    dtype = jnp.dtype(spec.dtype)
    model = eqx.combine(params, static_of(spec))
    out = forward(model, jnp.asarray(ds.x_train, dtype))
    value = _loss_scale(spec) * data_loss(spec.loss, out, jnp.asarray(ds.y_train))
    if spec.weight_decay:
        mask = jax.tree_util.tree_leaves(mask_of(spec))
        sq = sum(jnp.sum(x**2) for x, m in zip(jax.tree_util.tree_leaves(params), mask) if m)
        value = value + 0.5 * spec.weight_decay * sq
    return value


def _training_key(spec: FeatureMapSpec) -> FeatureMapSpec:
    """The spec with the fields that do not change the loss or optimiser normalised (cache
    key: specs that differ only in epochs or checkpoints share compiled code)."""
    return spec.replace(epochs=0, checkpoints=(), analysis_n=0, analysis_method="svd")


@functools.lru_cache(maxsize=64)
def _loss_fn(key: FeatureMapSpec):
    make = nets.mse_loss if key.loss == "mse" else nets.ce_loss
    return make(static_of(key), mask=mask_of(key), scale=_loss_scale(key))


def make_loss_fn(spec: FeatureMapSpec):
    """``loss_fn(params, (x, y), key)`` of one minibatch for :func:`ufm.optim.train` (cached)."""
    return _loss_fn(_training_key(spec))


@functools.lru_cache(maxsize=64)
def _optimizer(key: FeatureMapSpec):
    lr, wd = key.lr, key.weight_decay
    if key.optimizer == "adamw":
        base = optax.adamw(lr, weight_decay=wd)
    else:
        base = {
            "sgd": lambda: optax.sgd(lr),
            "momentum": lambda: optax.sgd(lr, momentum=0.9),
            "adam": lambda: optax.adam(lr),
        }[key.optimizer]()
        if wd:
            base = optax.chain(optax.add_decayed_weights(wd), base)
    return nets.freeze(base, mask_of(key))


def make_optimizer(spec: FeatureMapSpec) -> optax.GradientTransformation:
    """The optax optimiser of ``spec`` (coupled decay, frozen arrays never move; cached)."""
    return _optimizer(_training_key(spec))
