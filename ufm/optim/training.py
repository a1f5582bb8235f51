"""Many-seed minibatch training: per-seed shuffled epochs, ``jit(scan(vmap(scan)))`` chunks.

One trainer for every system that trains networks with minibatch SGD/Adam over epochs (feature
collapse, trained networks on digits, self-supervised spectral transforms). ``S`` seeds train at
once on the same data set: the parameters carry a leading seed axis, every seed draws its own
minibatch order and loss keys from its own PRNG key, and the compiled chunk is ``vmap`` over
seeds of a ``lax.scan`` over the steps of one epoch, scanned over the epochs of the chunk and
``jit``-compiled once. The host loops over chunks between checkpoints (no per-step host sync),
evaluates a user metric function at each checkpoint and reports progress.

Epoch ``e`` (0-based) of seed ``i`` uses ``k = fold_in(keys[i], e)``; ``k`` is split into the
permutation key and the loss key, the permutation of the ``n`` samples gives ``n // batch_size``
minibatches (**the last partial batch is dropped**; its samples differ from epoch to epoch) and
the loss key is split into one key per step. A seed's run therefore depends only on its key,
never on the other seeds in the batch, on the chunking of the epochs or on sharding.

Failure handling follows :func:`ufm.optimize`: a seed whose loss, gradient or updated parameters
are non-finite is flagged ``Status.NAN``; one whose loss or gradient norm exceeds
``divergence_threshold`` is flagged ``Status.DIVERGED``. Either way it stays frozen at its last
finite parameters while the other seeds continue. Seeds that finish their epochs end with
``Status.MAX_STEPS`` (0); ``Status.CONVERGED`` is not used (there is no tolerance).

Equinox models: split a batch of models into arrays and static structure and train the arrays::

    import equinox as eqx
    models = eqx.filter_vmap(lambda k: eqx.nn.MLP(64, 10, 128, 2, key=k))(init_keys)
    params0, static = eqx.partition(models, eqx.is_inexact_array)

    def loss_fn(params, batch, key):
        model = eqx.combine(params, static)
        logits = jax.vmap(model)(batch["x"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

    res = train(loss_fn, params0, data, optimizer=optax.adam(1e-3), epochs=20,
                batch_size=128, keys=jax.random.split(jax.random.key(1), len(init_keys)))
    trained = eqx.combine(res.params, static)   # still batched over seeds

Weight decay is the caller's business: the paper-style *coupled* decay (PyTorch ``SGD``'s
``weight_decay``) is ``optax.chain(optax.add_decayed_weights(wd, mask), optax.sgd(lr))``;
decoupled decay is ``optax.adamw``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["TrainResult", "train"]

# Status codes of the full-batch optimiser (ufm.Status): 0 = finished its epochs (MAX_STEPS),
# 2 = diverged, 3 = non-finite. Repeated here as plain ints so that this module does not import
# the private optimiser module; tests check that they agree with ufm.Status.
RUNNING = 0
DIVERGED = 2
NAN = 3


class TrainResult(NamedTuple):
    """Output of :func:`train`; per-seed arrays have a leading seed axis ``S``.

    Attributes:
        params: final parameters (the last finite parameters for failed seeds).
        status: ``(S,)`` ``int8`` status codes: 0 finished (``ufm.Status.MAX_STEPS``),
            2 diverged (``Status.DIVERGED``), 3 non-finite (``Status.NAN``).
        steps: ``(S,)`` optimiser steps applied to each seed.
        epoch_loss: ``(epochs, S)`` mean minibatch loss of every epoch (NaN for the epoch in
            which a seed failed and all later ones).
        history: ``dict`` name -> ``(C, S)`` numpy array of the ``evaluate`` values at the
            checkpoints.
        history_epochs: ``(C,)`` epochs of the checkpoints (epoch 0 = before training).
        steps_per_epoch: ``n // batch_size``.
        wall_time: seconds for the whole call (compilation included).
        compile_time: seconds spent lowering and compiling the chunk and evaluation functions
            (ahead of time, before the first call; the steady-state time is the difference).
    """

    params: Any
    status: np.ndarray
    steps: np.ndarray
    epoch_loss: np.ndarray
    history: dict
    history_epochs: np.ndarray
    steps_per_epoch: int
    wall_time: float
    compile_time: float

    def status_counts(self) -> dict:
        names = {RUNNING: "finished", DIVERGED: "diverged", NAN: "nan"}
        return {v: int(np.sum(self.status == k)) for k, v in names.items()}


class _State(NamedTuple):
    params: Any
    opt_state: Any
    status: jax.Array
    steps: jax.Array


def _tree_where(pred, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


def _tree_norm(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.abs(x) ** 2) for x in leaves))


def _tree_finite(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    return functools.reduce(jnp.logical_and, [jnp.all(jnp.isfinite(x)) for x in leaves])


@functools.partial(jax.jit, static_argnames=("optimizer",))
def _init_state(params, *, optimizer):
    # `x + 0` is a fresh buffer: the chunk donates its state and must never consume params0.
    params = jax.tree_util.tree_map(lambda x: x + jnp.zeros((), x.dtype), params)
    with jax.numpy_dtype_promotion("standard"):  # optax internals mix int counts and floats
        opt_state = jax.vmap(optimizer.init)(params)
    num = jax.tree_util.tree_leaves(params)[0].shape[0]
    return _State(params, opt_state, jnp.zeros(num, jnp.int8), jnp.zeros(num, jnp.int32))


def _one_epoch(st, key, data, epoch, *, loss_fn, optimizer, steps, batch_size, threshold):
    """One shuffled epoch of one seed: ``steps`` minibatch updates; returns (state, mean loss)."""
    n = jax.tree_util.tree_leaves(data)[0].shape[0]
    k_perm, k_loss = jax.random.split(jax.random.fold_in(key, epoch))
    perm = jax.random.permutation(k_perm, n)[: steps * batch_size].reshape(steps, batch_size)
    step_keys = jax.random.split(k_loss, steps)

    def step(st: _State, inp):
        idx, k = inp
        batch = jax.tree_util.tree_map(lambda x: x[idx], data)
        value, grads = jax.value_and_grad(loss_fn)(st.params, batch, k)
        gnorm = _tree_norm(grads)
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, st.opt_state, st.params)
            new_params = optax.apply_updates(st.params, updates)
        finite = jnp.isfinite(value) & jnp.isfinite(gnorm) & _tree_finite(new_params)
        big = (jnp.abs(value) > threshold) | (gnorm > threshold)
        active = st.status == RUNNING
        status = jnp.where(
            ~finite,
            jnp.int8(NAN),
            jnp.where(big, jnp.int8(DIVERGED), jnp.int8(RUNNING)),
        )
        status = jnp.where(active, status, st.status)
        move = status == RUNNING
        new = _State(
            _tree_where(move, new_params, st.params),
            _tree_where(move, opt_state, st.opt_state),
            status,
            st.steps + move.astype(jnp.int32),
        )
        return new, jnp.where(move, value, jnp.nan)

    st, losses = jax.lax.scan(step, st, (perm, step_keys))
    return st, jnp.mean(losses)


@functools.partial(
    jax.jit,
    static_argnames=(
        "loss_fn",
        "optimizer",
        "steps",
        "batch_size",
        "threshold",
        "length",
    ),
    donate_argnames=("state",),
)
def _run_epochs(
    state,
    keys,
    data,
    start,
    n_active,
    *,
    loss_fn,
    optimizer,
    steps,
    batch_size,
    threshold,
    length,
):
    """``n_active <= length`` epochs from epoch ``start`` for every seed (one compiled call)."""
    epoch_fn = functools.partial(
        _one_epoch,
        loss_fn=loss_fn,
        optimizer=optimizer,
        steps=steps,
        batch_size=batch_size,
        threshold=threshold,
    )

    def run(st, epoch):
        return jax.vmap(epoch_fn, in_axes=(0, 0, None, None))(st, keys, data, epoch)

    out_shape = jax.eval_shape(run, state, start)[1]

    def body(st, i):
        skip = lambda s: (s, jnp.full(out_shape.shape, jnp.nan, out_shape.dtype))
        return jax.lax.cond(i < n_active, lambda s: run(s, start + i), skip, st)

    return jax.lax.scan(body, state, jnp.arange(length, dtype=jnp.int32))


@functools.partial(jax.jit, static_argnames=("evaluate",))
def _evaluate_all(params, *, evaluate):
    return jax.vmap(evaluate)(params)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _checkpoint_epochs(checkpoints, epochs) -> np.ndarray:
    if checkpoints is None:
        return np.array(sorted({0, epochs}), np.int64)
    cps = np.asarray(list(checkpoints))
    if cps.size and (
        not np.issubdtype(cps.dtype, np.integer) or cps.min() < 0 or cps.max() > epochs
    ):
        raise ValueError(
            f"checkpoints must be integer epochs in [0, epochs={epochs}], got {list(checkpoints)!r}"
        )
    return np.array(sorted({0, epochs, *map(int, cps)}), np.int64)


def _as_keys(keys, num):
    keys = jnp.asarray(keys) if not isinstance(keys, jax.Array) else keys
    if not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        if keys.ndim != 2 or keys.dtype != jnp.uint32:
            raise ValueError(
                "keys must be S typed PRNG keys (jax.random.split(jax.random.key(0), "
                f"S)) or raw uint32 keys of shape (S, 2); got {keys.dtype}{keys.shape}"
            )
        keys = jax.random.wrap_key_data(keys)
    if keys.shape != (num,):
        raise ValueError(
            f"keys must have shape (S,) = ({num},) like the seed axis of params0, got {keys.shape}"
        )
    return keys


def _place_data(data, params):
    """Data as device arrays; replicated over the mesh when the parameters are seed-sharded."""
    leaf = jax.tree_util.tree_leaves(params)[0]
    sharding = getattr(leaf, "sharding", None)
    if isinstance(sharding, NamedSharding) and len(sharding.device_set) > 1:
        rep = NamedSharding(sharding.mesh, P())
        return jax.tree_util.tree_map(lambda x: jax.device_put(jnp.asarray(x), rep), data)
    return jax.tree_util.tree_map(jnp.asarray, data)


def train(
    loss_fn: Callable,
    params0: Any,
    data: Any,
    *,
    optimizer: optax.GradientTransformation,
    epochs: int,
    batch_size: int,
    keys: jax.Array,
    checkpoints: Sequence[int] | None = None,
    evaluate: Callable | None = None,
    divergence_threshold: float = 1e10,
    progress: Callable | None = None,
    epochs_per_call: int | None = None,
) -> TrainResult:
    """Train ``S`` seeds at once with minibatch updates over shuffled epochs.

    Args:
        loss_fn: ``loss_fn(params, batch, key) -> scalar``, the mean loss of one minibatch for
            one seed (``key``: for augmentation or dropout; may be ignored). ``batch`` has the
            structure of ``data`` with leading axis ``batch_size``. Must be a stable function
            object (it is a static argument of the compiled chunk: a new lambda recompiles).
        params0: pytree of arrays with a leading seed axis ``S`` (e.g. equinox models split with
            ``eqx.partition``, see the module docstring). Leaves sharded along the seed axis with
            a ``NamedSharding`` stay sharded: the chunk then runs SPMD over the devices (the
            data are replicated over the same mesh).
        data: pytree of arrays with a common leading sample axis ``n``, shared by all seeds.
        optimizer: an optax ``GradientTransformation`` (coupled weight decay:
            ``optax.chain(optax.add_decayed_weights(wd, mask), optax.sgd(lr))``). Reuse the same
            object to avoid recompiling.
        epochs: number of epochs (``>= 0``).
        batch_size: minibatch size; an epoch has ``n // batch_size`` steps and the last partial
            batch of each (fresh) permutation is dropped.
        keys: ``(S,)`` PRNG keys (typed, or raw ``uint32`` of shape ``(S, 2)``); seed ``i``'s
            minibatch order and loss keys come only from ``keys[i]``.
        checkpoints: epochs at which to evaluate; 0 and ``epochs`` are always included.
        evaluate: ``evaluate(params) -> dict`` of scalars for one seed (vmapped by the trainer)
            evaluated at every checkpoint -> ``history[name]`` of shape ``(C, S)``.
        divergence_threshold: loss or gradient norm above this flags a seed ``DIVERGED``.
        progress: ``progress(epochs_done, epochs)`` called after every compiled chunk.
        epochs_per_call: epochs per compiled call (default: the largest gap between
            checkpoints, i.e. one call per checkpoint interval). Every call has the same static
            length (shorter intervals skip the spare epochs with ``lax.cond``), so the chunk is
            compiled once.

    Returns:
        :class:`TrainResult`.

    Example (least squares, 3 seeds):
        >>> import jax, jax.numpy as jnp, optax
        >>> X = jax.random.normal(jax.random.key(0), (64, 3))
        >>> data = {"x": X, "y": X @ jnp.array([1.0, -2.0, 0.5])}
        >>> def loss_fn(w, batch, key):
        ...     return jnp.mean((batch["x"] @ w - batch["y"]) ** 2)
        >>> res = train(loss_fn, jnp.zeros((3, 3)), data, optimizer=optax.sgd(0.1), epochs=30,
        ...             batch_size=16, keys=jax.random.split(jax.random.key(1), 3))
        >>> res.params.round(3).tolist()[0], res.status.tolist(), res.epoch_loss.shape
        ([1.0, -2.0, 0.5], [0, 0, 0], (30, 3))
    """
    start_time = time.perf_counter()
    epochs = _check_int("epochs", epochs, 0)
    batch_size = _check_int("batch_size", batch_size, 1)
    leaves = jax.tree_util.tree_leaves(params0)
    if not leaves:
        raise ValueError("params0 must contain at least one array")
    num = leaves[0].shape[0] if np.ndim(leaves[0]) else 0
    if num < 1 or any(np.ndim(x) == 0 or x.shape[0] != num for x in leaves):
        raise ValueError("params0 leaves must share a leading seed axis of length S >= 1")
    data_leaves = jax.tree_util.tree_leaves(data)
    if not data_leaves:
        raise ValueError("data must contain at least one array")
    n = np.shape(data_leaves[0])[0]
    if any(np.shape(x)[0] != n for x in data_leaves):
        raise ValueError("data leaves must share a leading sample axis")
    if batch_size > n:
        raise ValueError(f"batch_size must be <= the number of samples n={n}, got {batch_size}")
    keys = _as_keys(keys, num)
    if not divergence_threshold > 0:
        raise ValueError(f"divergence_threshold must be > 0, got {divergence_threshold!r}")
    cps = _checkpoint_epochs(checkpoints, epochs)
    gaps = np.diff(cps)
    length = int(gaps.max()) if gaps.size else 1
    if epochs_per_call is not None:
        length = min(_check_int("epochs_per_call", epochs_per_call, 1), max(length, 1))
    steps = n // batch_size
    data = _place_data(data, params0)
    static = {
        "loss_fn": loss_fn,
        "optimizer": optimizer,
        "steps": steps,
        "batch_size": batch_size,
        "threshold": float(divergence_threshold),
        "length": length,
    }

    state = _init_state(params0, optimizer=optimizer)
    compile_time = 0.0
    if evaluate is not None:
        t0 = time.perf_counter()
        _evaluate_all.lower(state.params, evaluate=evaluate).compile()
        compile_time += time.perf_counter() - t0
    if epochs > 0:
        t0 = time.perf_counter()
        _run_epochs.lower(state, keys, data, 0, length, **static).compile()
        compile_time += time.perf_counter() - t0

    history = []
    epoch_losses = []

    def checkpoint():
        if evaluate is not None:
            vals = _evaluate_all(state.params, evaluate=evaluate)
            history.append({k: np.asarray(v) for k, v in vals.items()})

    checkpoint()
    done = 0
    for target in cps[1:]:
        while done < target:
            todo = min(length, int(target) - done)
            state, losses = _run_epochs(state, keys, data, done, todo, **static)
            epoch_losses.append(np.asarray(losses[:todo]))
            done += todo
            if progress is not None:
                progress(done, epochs)
        checkpoint()

    if history:
        hist = {k: np.stack([h[k] for h in history]) for k in history[0]}
    else:
        hist = {}
    if epoch_losses:
        epoch_loss = np.concatenate(epoch_losses)
    else:
        out = jax.eval_shape(
            loss_fn,
            jax.tree_util.tree_map(lambda x: x[0], params0),
            jax.tree_util.tree_map(lambda x: x[:batch_size], data),
            keys[0],
        )
        epoch_loss = np.zeros((0, num), out.dtype)
    return TrainResult(
        params=state.params,
        status=np.asarray(state.status),
        steps=np.asarray(state.steps),
        epoch_loss=epoch_loss,
        history=hist,
        history_epochs=cps,
        steps_per_epoch=steps,
        wall_time=time.perf_counter() - start_time,
        compile_time=compile_time,
    )
