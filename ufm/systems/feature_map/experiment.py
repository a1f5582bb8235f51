"""Train several seeds of a :class:`FeatureMapSpec` and analyse their feature maps at checkpoints.

Nam, Mingard, Lee, Hayou & Louis 2024 (arXiv 2410.04264): the spectrum of the penultimate
feature operator over epochs, minimal (MF) vs extended (EF) features. Training is
:func:`ufm.optim.train` (``vmap`` over seeds of a ``lax.scan`` over minibatches, one compiled
chunk per checkpoint interval); with ``devices > 1`` the seed axis is sharded over a
``("seeds",)`` mesh (:func:`ufm.runs.seed_mesh`) after padding the seeds to a multiple of the
device count (the copies are dropped).

Seeds: seed ``s`` initialises its network with ``fold_in(key(0), s)`` (what
``ufm.init_batch(spec, key(0), seeds=[s])`` gives) and draws its minibatch order from
``fold_in(key(1), s)``; the data depend only on the spec. A seed's rows therefore depend only on
``s``, never on the other seeds, the chunking or the devices.

At every checkpoint the trainer's ``evaluate`` hook (vmapped over seeds, matrix products only)
returns the losses and accuracies on the full training and test splits, the penultimate
features ``F`` and outputs on the first ``analysis_n`` training samples and the learned head's
weights. The analysis (:func:`ufm.systems.feature_map.analyse`: SVDs) then runs on the host, one
(seed, checkpoint) at a time on the default device: jaxlib's CPU LAPACK kernels must not run
batched on several CPU devices at once (:mod:`ufm.core.devices`).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ... import metrics as nc
from ...core.model import init_batch
from ...nets import etf_matrix
from ...optim.training import TrainResult, train
from ...runs.sharding import pad_seeds, seed_mesh, shard_seeds
from .analysis import analyse
from .model import (
    analysis_size,
    arch_key,
    data_loss,
    dataset,
    forward,
    make_loss_fn,
    make_optimizer,
    param_counts,
    static_of,
)
from .spec import FeatureMapSpec
from .verdict import MFCriterion, verdict

__all__ = [
    "STATUS_NAMES",
    "make_evaluate",
    "train_seeds",
    "analyse_checkpoint",
    "run_experiment",
    "check_seeds",
]

#: Trainer status codes (:class:`ufm.optim.TrainResult`) as the store's status strings.
STATUS_NAMES = {0: "max_steps", 2: "diverged", 3: "nan"}
_BLOCK = 4096  # samples per block of the evaluation forward passes


def check_seeds(seeds) -> np.ndarray:
    """Distinct non-negative integer seeds from a list or a count (``range(count)``)."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = range(int(seeds))
    arr = np.asarray(list(seeds))
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"seeds must be a non-empty list of integers (or a count), got {seeds!r}")
    if np.any(arr < 0) or len(set(arr.tolist())) != arr.size:
        raise ValueError(f"seeds must be distinct non-negative integers, got {arr.tolist()}")
    return arr.astype(np.int64)


def _blocked(fn, x):
    n = x.shape[0]
    if n <= _BLOCK:
        return fn(x)
    nb = -(-n // _BLOCK)
    xp = jnp.concatenate([x, jnp.zeros((nb * _BLOCK - n, *x.shape[1:]), x.dtype)])
    out = jax.lax.map(fn, xp.reshape((nb, _BLOCK, *x.shape[1:])))
    return out.reshape((nb * _BLOCK, *out.shape[2:]))[:n]


def _eval_key(spec: FeatureMapSpec) -> FeatureMapSpec:
    """Fields that do not change the evaluation normalised (same compiled evaluation)."""
    return spec.replace(
        optimizer="adam",
        lr=1.0,
        weight_decay=0.0,
        epochs=0,
        checkpoints=(),
        batch_size=1,
        training="lazy" if spec.training == "lazy" else "full",
        analysis_method="svd",
    )


@functools.lru_cache(maxsize=32)
def _evaluate_for(key: FeatureMapSpec):
    ds = dataset(key)
    dtype = jnp.dtype(key.dtype)
    static = static_of(key)
    x_tr, y_tr = jnp.asarray(ds.x_train, dtype), jnp.asarray(ds.y_train)
    x_te, y_te = jnp.asarray(ds.x_test, dtype), jnp.asarray(ds.y_test)
    n_a = analysis_size(key, ds.n_train)
    linear = key.head == "linear"

    def evaluate(params):
        model = eqx.combine(params, static)
        out_tr = _blocked(lambda x: forward(model, x), x_tr)
        out_te = _blocked(lambda x: forward(model, x), x_te)
        res = {}
        for name, out, y in (("train", out_tr, y_tr), ("test", out_te, y_te)):
            res[f"{name}_loss"] = data_loss(key.loss, out, y)
            hit = jnp.argmax(out, axis=-1).astype(y.dtype) == y
            res[f"{name}_acc"] = jnp.mean(hit.astype(dtype))
        res["features"] = jax.vmap(model.features)(x_tr[:n_a])
        res["outputs"] = out_tr[:n_a]
        if linear:
            res["head_weight"] = model.head.weight
            res["head_bias"] = model.head.bias
        return res

    return evaluate


def make_evaluate(spec: FeatureMapSpec):
    """``evaluate(params) -> dict`` for one seed (the trainer vmaps it): ``train_loss``,
    ``train_acc``, ``test_loss``, ``test_acc`` (unscaled data loss of the network's outputs),
    ``features`` ``(n_a, p)``, ``outputs`` ``(n_a, K)`` on the first ``n_a = analysis_n``
    training samples, and ``head_weight`` / ``head_bias`` for a learned head. Cached: specs that
    differ only in optimiser or epochs share it (a static argument of the compiled evaluation).
    """
    return _evaluate_for(_eval_key(spec))


def _seed_keys(seeds: np.ndarray):
    s = jnp.asarray(seeds, jnp.uint32)
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(1), i))(s)


def train_seeds(
    spec: FeatureMapSpec, seeds, *, devices: int | None = None, progress=None
) -> tuple[TrainResult, np.ndarray]:
    """Train one network per seed; returns the trainer's result (history of
    :func:`make_evaluate` at ``spec.checkpoint_epochs``; padded seeds removed) and the seeds.

    ``devices``: shard the seed axis over that many local devices (default: 1 on CPU, every
    local device otherwise).
    """
    seeds = check_seeds(seeds)
    ds = dataset(spec)
    if devices is None:
        devices = 1 if jax.default_backend() == "cpu" else jax.local_device_count()
    run = pad_seeds(seeds, devices) if devices > 1 else seeds
    params0 = init_batch(arch_key(spec), jax.random.key(0), seeds=run)  # = init_batch(spec, ...)
    keys = _seed_keys(run)
    if devices > 1:
        mesh = seed_mesh(devices)
        params0, keys = shard_seeds(params0, mesh), shard_seeds(keys, mesh)
    dtype = jnp.dtype(spec.dtype)
    res = train(
        make_loss_fn(spec),
        params0,
        (jnp.asarray(ds.x_train, dtype), jnp.asarray(ds.y_train)),
        optimizer=make_optimizer(spec),
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        keys=keys,
        checkpoints=spec.checkpoint_epochs,
        evaluate=make_evaluate(spec),
        progress=progress,
    )
    S = seeds.size
    if run.size != S:
        res = res._replace(
            params=jax.tree_util.tree_map(lambda x: x[:S], res.params),
            status=res.status[:S],
            steps=res.steps[:S],
            epoch_loss=np.asarray(res.epoch_loss)[:, :S],
            history={k: np.asarray(v)[:, :S] for k, v in res.history.items()},
        )
    return res, seeds


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def _numbers(F, outputs, labels, W, K: int, bias: bool, method: str):
    """The analysis and the NC metrics of one (seed, checkpoint) in one compiled program."""
    a = analyse(F, outputs, labels, bias=bias, method=method)
    H = F.T
    metrics = {
        "nc1_quotient": nc.nc1_quotient(H, labels, K),
        "nc1_cdnv": nc.nc1_cdnv(H, labels, K),
        "nc2_etf_means": nc.nc2_etf_means(H, labels, K),
        "nc2_etf_weights": nc.nc2_etf_weights(W),
        "nc3_zhu": nc.nc3_zhu(W, H, labels, K),
    }
    return a, metrics


def analyse_checkpoint(
    spec: FeatureMapSpec,
    F,
    outputs,
    labels,
    num_classes: int,
    head_weight=None,
    criterion: MFCriterion = MFCriterion(),
) -> dict:
    """Every number of one (seed, checkpoint): the feature-map analysis, the verdict and the
    NC metrics (host-side; arrays as numpy). ``head_weight`` ``(K, p)`` of a learned head
    (``None``: the fixed ETF head's ``etf_scale * etf_matrix(K)``)."""
    F = jnp.asarray(F)
    if head_weight is None:
        head_weight = spec.etf_scale * etf_matrix(num_classes, F.dtype)
    a, metrics = _numbers(
        F,
        jnp.asarray(outputs, F.dtype),
        jnp.asarray(labels),
        jnp.asarray(head_weight, F.dtype),
        int(num_classes),
        spec.head == "linear",
        spec.analysis_method,
    )
    v = verdict(a, criterion)
    row = {
        "pi_star_C": v.numbers["pi_star_C"],
        "pi_hat_C": v.numbers["pi_hat_C"],
        "k_target": float(v.numbers["k_target"]),
        "effective_rank": v.numbers["effective_rank"],
        "participation_ratio": v.numbers["participation_ratio"],
        "centred_gap": v.numbers["centred_gap"],
        "d_lr": v.numbers["d_lr"],
        "feature_rank": int(a.rank),
        "verdict": v.label,
        "verdict_failed": ",".join(k for k, ok in v.checks.items() if not ok),
        **{k: float(x) for k, x in metrics.items()},
        "rho": np.asarray(a.rho, np.float64),
        "rho_centred": np.asarray(a.rho_centred, np.float64),
        "pi_star": np.asarray(a.pi_star, np.float64),
        "pi_hat": np.asarray(a.pi_hat, np.float64),
    }
    return row


_LIST_COLUMNS = ("rho", "rho_centred", "pi_star", "pi_hat")


def run_experiment(
    spec: FeatureMapSpec,
    seeds=3,
    *,
    criterion: MFCriterion = MFCriterion(),
    devices: int | None = None,
    progress=None,
) -> dict:
    """Train ``seeds`` networks and return one row per (seed, checkpoint) as numpy columns.

    Columns: ``seed``, ``epoch``, ``status`` (``max_steps`` = finished its epochs, ``diverged``,
    ``nan``), ``steps``, ``epoch_loss`` (mean minibatch loss of the epoch ending at the
    checkpoint, as trained: ``/alpha^2`` for lazy runs; NaN at epoch 0), ``train_loss``,
    ``train_acc``, ``test_loss``, ``test_acc``, the analysis (:func:`analyse_checkpoint`:
    ``pi_star_C``, ``pi_hat_C``, ``k_target``, ``effective_rank``, ``participation_ratio``,
    ``centred_gap``, ``d_lr``, ``feature_rank``, ``verdict``, ``verdict_failed``, NC metrics
    ``nc1_quotient``, ``nc1_cdnv``, ``nc2_etf_means``, ``nc2_etf_weights``, ``nc3_zhu``), the
    list columns ``rho``, ``rho_centred``, ``pi_star``, ``pi_hat`` (object arrays of 1-d float64
    arrays: full spectra and mass curves), ``num_classes``, ``params_trainable``, ``params_total``,
    ``wall_time_s`` and ``compile_time_s`` (of the whole training call).

    Example (the ``tiny`` preset's MLP on 500 digits, 40 epochs: a few seconds):
        >>> from ufm.systems.feature_map import PRESETS
        >>> [(name, role, spec)] = PRESETS["tiny"].specs("spectra", only=["mlp-mse"])
        >>> rows = run_experiment(spec, seeds=[0, 1])
        >>> rows["seed"].tolist(), rows["epoch"].tolist()[:7]
        ([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1], [0, 1, 2, 5, 10, 20, 40])
        >>> rows["rho"][0].shape, rows["verdict"][[0, 6]].tolist()  # 128 features + bias
        ((129,), ['EF', 'MF'])
    """
    res, seeds = train_seeds(spec, seeds, devices=devices, progress=progress)
    ds = dataset(spec)
    n_a = analysis_size(spec, ds.n_train)
    labels = np.asarray(ds.y_train[:n_a])
    hist = res.history
    epochs = np.asarray(res.history_epochs)
    C, S = epochs.size, seeds.size
    per_row = []
    for s in range(S):
        for c in range(C):
            W = hist["head_weight"][c, s] if "head_weight" in hist else None
            per_row.append(
                analyse_checkpoint(
                    spec,
                    hist["features"][c, s],
                    hist["outputs"][c, s],
                    labels,
                    ds.num_classes,
                    W,
                    criterion,
                )
            )
    loss_at = np.full((C, S), np.nan)
    if res.epoch_loss.size:
        loss_at[epochs > 0] = np.asarray(res.epoch_loss, np.float64)[epochs[epochs > 0] - 1]
    trainable, total = param_counts(spec)
    rows = {
        "seed": np.repeat(seeds, C),
        "epoch": np.tile(epochs, S).astype(np.int64),
        "status": np.array(
            [STATUS_NAMES.get(int(x), "nan") for x in np.repeat(res.status, C)], dtype=object
        ),
        "steps": np.repeat(np.asarray(res.steps, np.int64), C),
        "epoch_loss": loss_at.T.ravel(),
    }
    for name in ("train_loss", "train_acc", "test_loss", "test_acc"):
        rows[name] = np.asarray(hist[name], np.float64).T.ravel()
    for name in per_row[0]:
        values = [r[name] for r in per_row]
        if name in _LIST_COLUMNS:
            col = np.empty(len(values), dtype=object)
            col[:] = values
        elif isinstance(values[0], str):
            col = np.array(values, dtype=object)
        else:
            col = np.asarray(values)
        rows[name] = col
    n = C * S
    rows["num_classes"] = np.full(n, ds.num_classes, np.int64)
    rows["params_trainable"] = np.full(n, trainable, np.int64)
    rows["params_total"] = np.full(n, total, np.int64)
    rows["wall_time_s"] = np.full(n, res.wall_time)
    rows["compile_time_s"] = np.full(n, res.compile_time)
    return rows


def criterion_settings(criterion: MFCriterion) -> dict:
    """The criterion's thresholds as a plain dict (a setting of the result rows)."""
    return {k: float(v) for k, v in dataclasses.asdict(criterion).items()}


def first_epoch(rows: dict, label: str = "MF") -> dict:
    """``{seed: first checkpoint epoch whose verdict is label}`` (``inf`` if none)."""
    out = {}
    seed, epoch, ver = (np.asarray(rows[k]) for k in ("seed", "epoch", "verdict"))
    for s in dict.fromkeys(seed.tolist()):
        hit = epoch[(seed == s) & (ver == label)]
        out[s] = int(hit.min()) if hit.size else math.inf
    return out
