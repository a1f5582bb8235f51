"""Training many seeds of an SSL spec and measuring collapse at checkpoints; rows for the store.

:func:`train_seeds` trains ``S`` seeds at once with :func:`ufm.optim.train` (``vmap`` over seeds,
shuffled minibatches of ``batch_size``, the last partial batch dropped). Seed ``s`` starts from
``init_params(spec, fold_in(key(INIT_KEY), s))`` (as :func:`ufm.core.init_batch`) and trains with
the key ``fold_in(key(TRAIN_KEY), s)``; every step draws two fresh augmented views of its minibatch
from the step's loss key (:func:`ufm.systems.spectral.augment.make_views`). A seed's run depends
only on its seed.

At every checkpoint (epoch 0 and ``checkpoints`` evenly spaced epochs up to ``epochs``) the
evaluation (:class:`Evaluator`, run on parameter snapshots after training) measures, on clean
(unaugmented) inputs:

* ``H`` (encoder output, the representation) and ``Z`` (projector output, the embedding the loss
  sees) of the training samples (at most ``EVAL_MAX_TRAIN``): covariance effective rank, RankMe,
  count above ``rel * lambda_max`` (``erank_h``, ``erank_z``, ...), and the trace-normalised
  spectrum of ``Z``;
* ``Z`` and ``Z_hat = batch_transform(Z)`` on the fixed evaluation batches of ``batch_size``
  samples (the batch size the transform sees in training): the same measures averaged over the
  batches (``erank_zb``, ``erank_zhat``, ...) and the mean normalised spectra;
* kNN (cosine, weighted votes, ``k``) and ridge linear-probe accuracies on the test split, from
  ``H`` and from ``Z`` (``knn_acc_h``, ``probe_acc_h``, ``knn_acc_z``, ``probe_acc_z``).

:func:`rows_from_result` turns a :class:`ufm.optim.TrainResult` into one row per seed x checkpoint
(the spectra as list columns); :func:`run_spec` runs or resumes one spec through
:func:`ufm.runs.run_experiment_job`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ufm.core import SpecError, check_int, init_batch
from ufm.optim import train
from ufm.runs import run_experiment_job
from ufm.systems.spectral.augment import make_views
from ufm.systems.spectral.data import (
    augmentation,
    eval_batches,
    eval_train_indices,
    spec_data,
)
from ufm.systems.spectral.measures import collapse_measures
from ufm.systems.spectral.model import batch_transform, embed, views_loss
from ufm.systems.spectral.probes import knn_predict, ridge_probe
from ufm.systems.spectral.spec import SpectralSpec, spec_label

#: PRNG key of the initialisations (seed ``s``: ``fold_in(key(INIT_KEY), s)``).
INIT_KEY = 0
#: PRNG key of the minibatch orders and views (seed ``s``: ``fold_in(key(TRAIN_KEY), s)``).
TRAIN_KEY = 1
#: Trainer status codes -> the ``status`` column (``ufm.Status`` names).
STATUS_NAMES = {0: "max_steps", 2: "diverged", 3: "nan"}
MEASURES = ("erank", "rankme", "count")
SPECTRA = ("spectrum_z", "spectrum_zb", "spectrum_zhat")


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """Evaluation options (they shape the rows: stored as settings columns and hashed).

    ``knn_k`` neighbours of the weighted kNN (cosine, temperature 0.07), ``ridge`` penalty of the
    linear probe, ``rel`` threshold of the eigenvalue count.
    """

    knn_k: int = 20
    ridge: float = 1e-3
    rel: float = 1e-3

    def __post_init__(self):
        object.__setattr__(self, "knn_k", check_int("knn_k", self.knn_k, 1))
        for name in ("ridge", "rel"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
                raise SpecError(f"{name} must lie in (0, 1), got {v!r}")

    def as_settings(self) -> dict:
        return {"eval_knn_k": self.knn_k, "eval_ridge": self.ridge, "eval_rel": self.rel}


def checkpoint_epochs(spec: SpectralSpec) -> np.ndarray:
    """Epochs evaluated: ``round(k epochs / checkpoints)`` for ``k = 0..checkpoints`` (unique)."""
    k = np.arange(spec.checkpoints + 1)
    return np.unique(np.round(k * spec.epochs / spec.checkpoints).astype(np.int64))


def make_optimizer(spec: SpectralSpec) -> optax.GradientTransformation:
    """``adam(lr)`` (with coupled decay when ``weight_decay > 0``), ``adamw(lr, weight_decay)`` or
    SGD with momentum 0.9 and coupled decay; one object per setting (shared by the methods)."""
    return _optimizer(spec.optimizer, spec.lr, spec.weight_decay)


@functools.lru_cache(maxsize=16)
def _optimizer(name, lr, wd) -> optax.GradientTransformation:
    if name == "adam":
        return optax.chain(optax.add_decayed_weights(wd), optax.adam(lr)) if wd else optax.adam(lr)
    if name == "adamw":
        return optax.adamw(lr, weight_decay=wd)
    return optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr, momentum=0.9))


@functools.lru_cache(maxsize=64)
def make_loss_fn(spec: SpectralSpec) -> Callable:
    """``loss_fn(params, batch, key)`` for :func:`ufm.optim.train`: two fresh views of the
    minibatch from ``key``, then the objective (one stable object per spec: no recompiles)."""
    aug = augmentation(spec, spec_data(spec))

    def loss_fn(params, batch, key):
        return views_loss(spec, params, make_views(key, batch["x"], aug, 2))

    return loss_fn


def _measures(z, rel):
    m = collapse_measures(z, rel=rel)
    return m.spectrum, tuple(getattr(m, k).astype(z.dtype) for k in MEASURES)


def snapshot(params) -> dict:
    """The trainer's ``evaluate`` hook: the parameters themselves (``{"p000": leaf, ...}``); the
    measurements run after training on these snapshots (:class:`Evaluator`)."""
    return {f"p{i:03d}": x for i, x in enumerate(jax.tree_util.tree_leaves(params))}


def _batched(zb, rel):
    spectra, cols = jax.vmap(lambda a: _measures(a, rel))(zb)
    return jnp.mean(spectra, axis=0), tuple(jnp.mean(v) for v in cols)


def _accuracies(train_x, test_x, y_train, y_test, n_classes, k, ridge):
    knn = knn_predict(train_x, y_train, test_x, n_classes=n_classes, k=k)
    mean, std, w, b = ridge_probe(train_x, y_train, n_classes=n_classes, ridge=ridge)
    probe = jnp.argmax(((test_x - mean) / std) @ w + b, axis=1)
    dt = train_x.dtype
    hit = lambda pred: jnp.mean((pred == y_test.astype(pred.dtype)).astype(dt))  # noqa: E731
    return hit(knn), hit(probe)


# Shared compiled pieces (vmapped over seeds): they depend on shapes and options only, so every
# method of a comparison reuses them.
_full_jit = jax.jit(jax.vmap(_measures, (0, None)), static_argnums=1)
_batched_jit = jax.jit(jax.vmap(_batched, (0, None)), static_argnums=1)
_acc_jit = jax.jit(
    jax.vmap(_accuracies, (0, 0, None, None, None, None, None)), static_argnums=(4, 5, 6)
)


@functools.partial(jax.jit, static_argnums=0)
def _embed_jit(arch, params, x):
    return jax.vmap(lambda p: embed(arch, p, x))(params)


@functools.partial(jax.jit, static_argnums=0)
def _transform_jit(spec, zb):
    return jax.vmap(jax.vmap(functools.partial(batch_transform, spec)))(zb)


def arch_spec(spec: SpectralSpec) -> SpectralSpec:
    """``spec`` with the fields that do not shape the network or the data reset to their
    defaults: the key under which the compiled embedding is shared by every method."""
    d = SpectralSpec()
    return spec.replace(
        method="alignment",
        p=d.p,
        n_iter=d.n_iter,
        beta=d.beta,
        side=d.side,
        eps=d.eps,
        optimizer=d.optimizer,
        lr=d.lr,
        weight_decay=d.weight_decay,
        epochs=d.epochs,
        checkpoints=d.checkpoints,
        max_shift=min(spec.max_shift, d.max_shift),
        noise_std=d.noise_std,
        drop_prob=d.drop_prob,
    )


class Evaluator:
    """Checkpoint measurements of a batch of seeds' parameters (module docstring).

    ``Evaluator(spec, settings)(params)`` takes parameters with a leading seed axis and returns a
    dict of ``(S,)`` (spectra: ``(S, d)``) NumPy arrays. Each quantity is its own small compiled
    function, vmapped over seeds and called one after the other (the embedding, the measures and
    the probes are shared by every method with the same network and data). XLA:CPU (jaxlib 0.10)
    was seen to hang for good on one fused graph holding all of them (every worker idle, the
    result never ready) unless ``--xla_cpu_enable_concurrency_optimized_scheduler=false`` was set.
    """

    def __init__(self, spec: SpectralSpec, settings: EvalSettings = EvalSettings()):
        data = spec_data(spec)
        n_train = data.x_train.shape[0]
        idx = eval_train_indices(spec, n_train)
        if settings.knn_k > len(idx):
            raise SpecError(f"knn_k must be <= {len(idx)} training samples, got {settings.knn_k}")
        self.spec, self.settings = spec, settings
        self.arch = arch_spec(spec)
        self.x_train = jnp.asarray(data.x_train[idx])
        self.x_test = jnp.asarray(data.x_test)
        self.y_train = jnp.asarray(data.y_train[idx])
        self.y_test = jnp.asarray(data.y_test)
        self.batches = np.asarray(eval_batches(spec, n_train))
        self.n_classes = data.num_classes

    def __call__(self, params) -> dict:
        rel, st = self.settings.rel, self.settings
        h_tr, z_tr = _embed_jit(self.arch, params, self.x_train)
        h_te, z_te = _embed_jit(self.arch, params, self.x_test)
        out = {}
        for name, a in (("h", h_tr), ("z", z_tr)):
            spectrum, cols = _full_jit(a, rel)
            out.update({f"{k}_{name}": v for k, v in zip(MEASURES, cols)})
            if name == "z":
                out["spectrum_z"] = spectrum
        zb = z_tr[:, self.batches]
        for name, a in (("zb", zb), ("zhat", _transform_jit(self.spec, zb))):
            out[f"spectrum_{name}"], cols = _batched_jit(a, rel)
            out.update({f"{k}_{name}": v for k, v in zip(MEASURES, cols)})
        for name, (a, b) in (("h", (h_tr, h_te)), ("z", (z_tr, z_te))):
            acc = _acc_jit(a, b, self.y_train, self.y_test, self.n_classes, st.knn_k, st.ridge)
            out[f"knn_acc_{name}"], out[f"probe_acc_{name}"] = acc
        return {k: np.asarray(v) for k, v in out.items()}


@functools.lru_cache(maxsize=16)
def make_evaluator(spec: SpectralSpec, settings: EvalSettings = EvalSettings()) -> Evaluator:
    """The cached :class:`Evaluator` of ``(spec, settings)`` (compiled once)."""
    return Evaluator(spec, settings)


def evaluate_history(spec: SpectralSpec, params0, result, settings=EvalSettings()) -> dict:
    """Run the :class:`Evaluator` on every checkpoint snapshot of ``result`` (a
    :class:`ufm.optim.TrainResult` trained with ``evaluate=snapshot``); returns ``{name: (C, S,
    ...)}`` arrays."""
    treedef = jax.tree_util.tree_structure(params0)
    names = sorted(result.history)
    evaluator = make_evaluator(spec, settings)
    per_checkpoint = []
    for c in range(len(result.history_epochs)):
        leaves = [jnp.asarray(result.history[k][c]) for k in names]
        per_checkpoint.append(evaluator(jax.tree_util.tree_unflatten(treedef, leaves)))
    return {k: np.stack([h[k] for h in per_checkpoint]) for k in per_checkpoint[0]}


def train_seeds(
    spec: SpectralSpec,
    seeds,
    *,
    settings: EvalSettings = EvalSettings(),
    progress: Callable | None = None,
):
    """Train the ``seeds`` of ``spec`` at once; returns the :class:`ufm.optim.TrainResult`."""
    seeds = np.asarray(seeds, np.int64)
    if seeds.ndim != 1 or seeds.size == 0 or seeds.min() < 0:
        raise SpecError(f"seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    data = spec_data(spec)
    params0 = init_batch(arch_spec(spec), jax.random.key(INIT_KEY), seeds=seeds)
    base = jax.random.key(TRAIN_KEY)
    keys = jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.asarray(seeds, jnp.uint32))
    result = train(
        make_loss_fn(spec),
        params0,
        {"x": data.x_train},
        optimizer=make_optimizer(spec),
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        keys=keys,
        checkpoints=checkpoint_epochs(spec),
        evaluate=snapshot,
        progress=progress,
    )
    return result._replace(history=evaluate_history(spec, params0, result, settings))


def _object_column(rows: list) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    out[:] = [np.asarray(r, np.float64).tolist() for r in rows]
    return out


def rows_from_result(spec: SpectralSpec, seeds, result) -> dict:
    """One row per seed x checkpoint (seed-major) from a :class:`ufm.optim.TrainResult`."""
    seeds = np.asarray(seeds, np.int64)
    epochs = np.asarray(result.history_epochs)
    n_s, n_c = seeds.size, epochs.size
    loss = np.asarray(result.epoch_loss, np.float64)  # (epochs, S)
    failed = ~np.isfinite(loss)
    fail_epoch = np.where(failed.any(axis=0), failed.argmax(axis=0) + 1, -1)
    final = np.asarray(result.status)
    spe = result.steps_per_epoch
    cols: dict[str, list] = {k: [] for k in ("seed", "epoch", "status", "steps", "fail_epoch")}
    cols["epoch_loss"] = []
    hist = {k: np.asarray(v) for k, v in result.history.items()}
    for k in hist:
        cols[k] = []
    for i in range(n_s):
        for c in range(n_c):
            e = int(epochs[c])
            bad = fail_epoch[i] != -1 and fail_epoch[i] <= e
            cols["seed"].append(int(seeds[i]))
            cols["epoch"].append(e)
            cols["status"].append(STATUS_NAMES[int(final[i])] if bad else "max_steps")
            cols["steps"].append(int(result.steps[i]) if bad else e * spe)
            cols["fail_epoch"].append(int(fail_epoch[i]))
            cols["epoch_loss"].append(float(loss[e - 1, i]) if e > 0 else float("nan"))
            for k, v in hist.items():
                cols[k].append(v[c, i])
    out = {"label": np.full(len(cols["seed"]), spec_label(spec), dtype=object)}
    for k, v in cols.items():
        if k in SPECTRA:
            out[k] = _object_column(v)
        elif k == "status":
            out[k] = np.asarray(v, dtype=object)
        elif k in ("seed", "epoch", "steps", "fail_epoch"):
            out[k] = np.asarray(v, np.int64)
        else:
            out[k] = np.asarray(v, np.float64)
    return out


def run_spec(
    folder,
    spec: SpectralSpec,
    seeds,
    *,
    settings: EvalSettings = EvalSettings(),
    progress: Callable | None = None,
    extend: bool = False,
    log=None,
):
    """Run (or resume) the ``seeds`` of ``spec`` into the results ``folder``; returns the
    :class:`ufm.runs.experiment.ExperimentJob` (its ``rows`` hold every stored row of ``spec``)."""

    def run_seeds(spec_, todo):
        result = train_seeds(spec_, todo, settings=settings, progress=progress)
        return rows_from_result(spec_, todo, result)

    return run_experiment_job(
        folder,
        system="spectral",
        spec=spec,
        seeds=seeds,
        run_seeds=run_seeds,
        settings=settings.as_settings(),
        label=spec_label(spec),
        extend=extend,
        log=log,
        job="spectral",
    )
