"""Run a feature-collapse experiment: sample the data, train seeds, measure, compare to theory.

Feature collapse: Laurent, von Brecht, Bresson (2023), arXiv 2305.16162 (ICLR 2024).

:func:`run_experiment` returns plain numpy columns, one row per (seed, checkpoint), and does no
I/O (the result store, CLI, figures and notebooks call it). :func:`train_seeds` is the lower
level: it returns the trainer's :class:`ufm.optim.TrainResult` (final parameters included) and
the data set. Seed ``s`` initialises its network with ``split(key(s))[0]`` and draws its
minibatch order from ``split(key(s))[1]``; the data set depends only on ``spec.data_seed``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ...optim.training import TrainResult, train
from . import metrics as M
from .data import FCData, make_data
from .model import features, init_batch, make_loss_fn, make_optimizer, scores
from .objective import cached_data
from .spec import FeatureCollapseSpec
from .theory import type1_optimum, type2_optimum, type3_solve

__all__ = [
    "default_checkpoints",
    "experiment_rows",
    "make_evaluate",
    "predictions",
    "run_experiment",
    "train_seeds",
]


def predictions(spec: FeatureCollapseSpec, data: FCData) -> dict:
    """The paper's predicted norms for ``spec`` (NaN where no closed form applies).

    Keys: ``collapse_type`` (1, 2 or 3), ``predicted_w_norm`` (mean ``||w||`` over seen words),
    ``predicted_u_norm`` (``||u_{k,l}||``), ``predicted_phi_norm`` (``||phi(w)||``) and
    ``type3_r`` (``(s_c,)`` predicted norm per ``beta``, or ``None``). Type I needs positive
    decays on W and U; type III needs ``latents="all"`` and equal decays.
    """
    nan = float("nan")
    out = {
        "collapse_type": spec.collapse_type,
        "predicted_w_norm": nan,
        "predicted_u_norm": nan,
        "predicted_phi_norm": nan,
        "type3_r": None,
    }
    if spec.collapse_type == 1 and spec.wd_w > 0 and spec.wd_u > 0:
        opt = type1_optimum(spec.n_c, spec.n_w, spec.K, spec.L, spec.wd_w, spec.wd_u)
        out.update(predicted_w_norm=opt.w_norm, predicted_u_norm=opt.u_norm)
        out["predicted_phi_norm"] = opt.w_norm
    elif spec.collapse_type == 2 and spec.wd_u > 0:
        opt = type2_optimum(spec.n_c, spec.K, spec.L, spec.d, spec.wd_u)
        out.update(predicted_u_norm=opt.u_norm, predicted_phi_norm=opt.phi_norm)
    elif (
        spec.collapse_type == 3
        and spec.latents == "all"
        and spec.wd_w == spec.wd_u > 0
        and (sol := type3_solve(data.mu, spec.n_c, spec.L, spec.wd_u)) is not None
    ):
        r_word = sol.r[data.word_beta]
        out.update(predicted_u_norm=sol.b, type3_r=sol.r)
        out["predicted_w_norm"] = float(np.mean(r_word[data.seen]))
        out["predicted_phi_norm"] = out["predicted_w_norm"]
    return out


def make_evaluate(spec: FeatureCollapseSpec, data: FCData):
    """``evaluate(params) -> dict`` of scalars for one seed (the trainer vmaps it).

    Loss and accuracy over the whole training and test sets; norm statistics and embedding
    metrics over the words seen at least once in training (``data.seen``); classifier metrics
    over all ``u_{k,l}`` grouped by ``z_{k,l}``. Embedding metrics use ``phi(w)`` (after
    LayerNorm when it is on); norms are those of the raw ``w`` and of ``phi(w)``.
    """
    dtype = jnp.dtype(spec.dtype)
    ln, eps, n_c = spec.layernorm, spec.ln_eps, spec.n_c
    train_x, train_y = jnp.asarray(data.train_x), jnp.asarray(data.train_y)
    test_x, test_y = jnp.asarray(data.test_x), jnp.asarray(data.test_y)
    seen = jnp.asarray(data.seen)
    concept = jnp.asarray(data.word_concept)
    word_mu = jnp.asarray(data.word_mu, dtype)
    z_flat = jnp.asarray(data.Z.reshape(-1))
    r3 = predictions(spec, data)["type3_r"]
    r_word = None if r3 is None else jnp.asarray(r3[data.word_beta], dtype)

    def loss_acc(params, x, y):
        logits = scores(params, x, ln, eps)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, jnp.mean((jnp.argmax(logits, axis=1).astype(y.dtype) == y).astype(dtype))

    def masked_mean_std(v, mask):
        w = mask.astype(v.dtype)
        mean = jnp.sum(w * v) / w.sum()
        return mean, jnp.sqrt(jnp.sum(w * (v - mean) ** 2) / w.sum())

    def evaluate(params):
        W, U = params["W"], params["U"]
        phi = features(W, ln, eps)
        u = U.reshape(-1, U.shape[-1])
        w_norm = jnp.linalg.norm(W, axis=1)
        u_norm = jnp.linalg.norm(u, axis=1)
        out = {}
        out["train_loss"], out["train_acc"] = loss_acc(params, train_x, train_y)
        out["test_loss"], out["test_acc"] = loss_acc(params, test_x, test_y)
        out["w_norm_mean"], out["w_norm_std"] = masked_mean_std(w_norm, seen)
        out["phi_norm_mean"], _ = masked_mean_std(jnp.linalg.norm(phi, axis=1), seen)
        out["u_norm_mean"], out["u_norm_std"] = masked_mean_std(
            u_norm, jnp.ones(u_norm.shape, bool)
        )
        out["w_norm_mu_spearman"] = M.spearman(w_norm, word_mu, seen)
        out["w_trace_ratio"] = M.trace_ratio(phi, concept, n_c, seen)
        out["w_dir_collapse"] = M.directional_collapse(phi, concept, n_c, seen)
        out["w_etf_error"] = M.etf_error(phi, concept, n_c, seen)
        out["w_pca_ratio"] = M.pca_ratio(phi, n_c, seen)
        out["u_trace_ratio"] = M.trace_ratio(u, z_flat, n_c)
        out["u_dir_collapse"] = M.directional_collapse(u, z_flat, n_c)
        out["u_etf_error"] = M.etf_error(u, z_flat, n_c)
        out["u_pca_ratio"] = M.pca_ratio(u, n_c)
        if r_word is not None:
            err = jnp.where(seen, w_norm - r_word, 0.0)
            out["w_norm_type3_relerr"] = jnp.linalg.norm(err) / jnp.linalg.norm(
                jnp.where(seen, r_word, 0.0)
            )
        return out

    return evaluate


@functools.lru_cache(maxsize=32)
def _evaluate_for(key: FeatureCollapseSpec):
    return make_evaluate(key, make_data(key))


def _cached_evaluate(spec: FeatureCollapseSpec):
    """The same evaluation function object for specs that differ only in training settings
    (it is a static argument of the trainer's compiled evaluation: no recompilation)."""
    key = spec.replace(lr=1.0, epochs=0, batch_size=1, init_scale_divisor=1.0)
    return _evaluate_for(key)


def default_checkpoints(epochs: int, num: int = 10) -> list[int]:
    """``num + 1`` evenly spaced epochs from 0 to ``epochs`` (duplicates removed)."""
    return sorted({round(e) for e in np.linspace(0, epochs, num + 1)})


def _seed_keys(seeds):
    base = jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))
    pairs = jax.vmap(jax.random.split)(base)
    return pairs[:, 0], pairs[:, 1]


def _check_seeds(seeds):
    seeds = np.asarray(list(seeds) if not isinstance(seeds, int) else range(seeds))
    if seeds.ndim != 1 or seeds.size == 0 or not np.issubdtype(seeds.dtype, np.integer):
        raise ValueError(f"seeds must be a non-empty list of integers (or a count), got {seeds!r}")
    if np.any(seeds < 0) or len(set(seeds.tolist())) != seeds.size:
        raise ValueError("seeds must be distinct non-negative integers")
    return seeds


def train_seeds(
    spec: FeatureCollapseSpec,
    seeds=3,
    *,
    checkpoints=None,
    data: FCData | None = None,
    progress=None,
    sharding=None,
    epochs_per_call=None,
) -> tuple[TrainResult, FCData]:
    """Train one network per seed on the data set of ``spec``; returns the trainer's result
    (history of :func:`make_evaluate` at the checkpoints) and the data set.

    ``seeds``: list of distinct integers, or a count (``range(seeds)``). ``sharding``: an
    optional ``NamedSharding`` of the seed axis (e.g. over several GPUs); the number of seeds
    must then be a multiple of the device count.
    """
    seeds = _check_seeds(seeds)
    own_data = data is None
    data = cached_data(spec) if own_data else data
    k_init, k_train = _seed_keys(seeds)
    params0 = init_batch(spec, k_init)
    if sharding is not None:
        params0 = jax.device_put(params0, sharding)
        k_train = jax.device_put(k_train, sharding)
    checkpoints = default_checkpoints(spec.epochs) if checkpoints is None else checkpoints
    res = train(
        make_loss_fn(spec.layernorm, spec.ln_eps),
        params0,
        {"x": jnp.asarray(data.train_x), "y": jnp.asarray(data.train_y)},
        optimizer=make_optimizer(spec),
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        keys=k_train,
        checkpoints=checkpoints,
        evaluate=_cached_evaluate(spec) if own_data else make_evaluate(spec, data),
        progress=progress,
        epochs_per_call=epochs_per_call,
    )
    return res, data


def run_experiment(
    spec: FeatureCollapseSpec,
    seeds=3,
    checkpoints=None,
    *,
    progress=None,
    sharding=None,
    epochs_per_call=None,
) -> dict:
    """Train ``seeds`` networks and return one row per (seed, checkpoint) as numpy columns.

    Columns: ``seed``, ``epoch``, ``status`` (final trainer status of the seed: 0 finished,
    2 diverged, 3 NaN), ``epoch_loss`` (mean minibatch loss of the epoch ending at the
    checkpoint; NaN at epoch 0), every :func:`make_evaluate` value (``train_loss``,
    ``train_acc``, ``test_loss``, ``test_acc``, ``w_norm_mean``, ``w_norm_std``,
    ``phi_norm_mean``, ``u_norm_mean``, ``u_norm_std``, ``w_norm_mu_spearman``, ``w_*`` and
    ``u_*`` trace ratio, directional collapse, ETF error and PCA ratio), the
    :func:`predictions` (``collapse_type``, ``predicted_*_norm``), the relative errors
    ``w_norm_relerr`` / ``u_norm_relerr`` of the means against the predictions, and the timings
    ``wall_time_s`` / ``compile_time_s`` of the whole run.

    Example (the ``tiny`` preset for 20 of its 300 epochs: it fits the training set first and
    generalises later, see the tests):
        >>> from ufm.systems.feature_collapse import PRESETS
        >>> spec = PRESETS["tiny"].replace(epochs=20)
        >>> rows = run_experiment(spec, seeds=[0, 1], checkpoints=[10])
        >>> rows["seed"].tolist(), rows["epoch"].tolist()
        ([0, 0, 0, 1, 1, 1], [0, 10, 20, 0, 10, 20])
        >>> bool(np.all(rows["train_acc"][rows["epoch"] == 20] > 0.9))
        True
    """
    res, data = train_seeds(
        spec,
        seeds,
        checkpoints=checkpoints,
        progress=progress,
        sharding=sharding,
        epochs_per_call=epochs_per_call,
    )
    rows = experiment_rows(spec, seeds, res, data)
    n = len(rows["seed"])
    rows["wall_time_s"] = np.full(n, res.wall_time)
    rows["compile_time_s"] = np.full(n, res.compile_time)
    return rows


def experiment_rows(spec: FeatureCollapseSpec, seeds, res: TrainResult, data: FCData) -> dict:
    """The rows of :func:`run_experiment` (without the timings) from a :func:`train_seeds`
    result: one row per (seed, checkpoint), seed-major, as numpy columns."""
    seeds = _check_seeds(seeds)
    C, S = len(res.history_epochs), len(seeds)
    rows = {
        "seed": np.repeat(seeds, C),
        "epoch": np.tile(res.history_epochs, S),
        "status": np.repeat(res.status, C),
    }
    ep = res.history_epochs
    loss_at = np.full((C, S), np.nan)
    loss_at[ep > 0] = res.epoch_loss[ep[ep > 0] - 1]
    rows["epoch_loss"] = loss_at.T.ravel()
    for name, values in res.history.items():
        rows[name] = np.asarray(values, np.float64).T.ravel()  # (C, S) -> seed-major rows
    pred = predictions(spec, data)
    for name in ("collapse_type", "predicted_w_norm", "predicted_u_norm", "predicted_phi_norm"):
        rows[name] = np.full(C * S, pred[name])
    rows["w_norm_relerr"] = rows["w_norm_mean"] / rows["predicted_w_norm"] - 1.0
    rows["u_norm_relerr"] = rows["u_norm_mean"] / rows["predicted_u_norm"] - 1.0
    return rows


def summarize(rows: dict, epoch: int | None = None) -> dict:
    """Mean and standard deviation over seeds of every float column at ``epoch`` (default: the
    last checkpoint): ``{name: (mean, std)}``."""
    ep = rows["epoch"].max() if epoch is None else epoch
    sel = rows["epoch"] == ep
    out = {}
    for name, col in rows.items():
        if name in ("seed", "epoch") or not np.issubdtype(np.asarray(col).dtype, np.floating):
            continue
        v = np.asarray(col)[sel]
        out[name] = (float(np.mean(v)), float(np.std(v))) if v.size else (math.nan, math.nan)
    return out
