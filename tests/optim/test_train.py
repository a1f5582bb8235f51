"""ufm.optim.training: vmap == loop, seed independence, numpy SGD oracle, failures, sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import ufm
from ufm.optim import train
from ufm.optim.training import DIVERGED, NAN, RUNNING, _run_epochs

W_TRUE = np.array([1.0, -2.0, 0.5])
OPT = optax.sgd(0.05)


def _data(n=43, dtype=np.float64, noise=0.1):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(dtype)
    y = (x @ W_TRUE + noise * rng.normal(size=n)).astype(dtype)
    return {"x": x, "y": y}


def lsq(params, batch, key):
    r = batch["x"] @ params["w"] - batch["y"]
    return jnp.mean(r**2)


def noisy_lsq(params, batch, key):
    """Least squares plus a key-dependent term: checks that the loss keys are per seed."""
    xi = jax.random.normal(key, (3,), jnp.float32).astype(params["w"].dtype)  # same in f32, f64
    return lsq(params, batch, key) + 0.1 * jnp.sum(params["w"] * xi)


def evaluate(params):
    return {"w_norm": jnp.linalg.norm(params["w"]), "w0": params["w"][0]}


def _params(num, dtype=jnp.float64, seed=3):
    return {"w": jax.random.normal(jax.random.key(seed), (num, 3), dtype)}


def _keys(num, seed=1):
    return jax.random.split(jax.random.key(seed), num)


def _run(params, keys, **kw):
    kw = {
        "optimizer": OPT,
        "epochs": 6,
        "batch_size": 8,
        "loss_fn": noisy_lsq,
        "data": _data(),
    } | kw
    loss_fn = kw.pop("loss_fn")
    data = kw.pop("data")
    return train(loss_fn, params, data, keys=keys, **kw)


def test_status_codes_match_ufm_status():
    assert (RUNNING, DIVERGED, NAN) == (
        ufm.Status.MAX_STEPS,
        ufm.Status.DIVERGED,
        ufm.Status.NAN,
    )


S = 8
KEYS = jax.random.split(jax.random.key(1), 2 * S)  # seeds 0..7 in the base run, 8..15 spare
BASE = {
    "epochs": 6,
    "batch_size": 8,
    "checkpoints": [3],
    "evaluate": evaluate,
}  # 5 steps per epoch


@pytest.fixture(scope="module")
def base():
    """The reference run: 8 seeds, noisy least squares; most tests reuse its compiled chunk."""
    p0 = _params(S)
    return p0, _run(p0, KEYS[:S], **BASE)


def _take(tree, idx):
    return jax.tree.map(lambda x: x[jnp.asarray(idx)], tree)


def test_vmap_equals_loop(base):
    """Each seed alone (a Python loop of 1-seed runs) == the same seed in the vmapped batch."""
    p0, together = base
    for i in (0, 5):
        alone = _run(_take(p0, [i]), KEYS[i : i + 1], **BASE)
        np.testing.assert_allclose(alone.params["w"][0], together.params["w"][i], rtol=1e-12)
        np.testing.assert_allclose(alone.epoch_loss[:, 0], together.epoch_loss[:, i], rtol=1e-12)
        np.testing.assert_allclose(
            alone.history["w_norm"][:, 0], together.history["w_norm"][:, i], rtol=1e-12
        )
    # different keys give different runs (the keys are really used)
    assert not np.allclose(together.params["w"][0], together.params["w"][1])


def test_seed_independent_of_companions(base):
    """Seeds 3 and 1 at other positions among other companions (seeds 8..13): same results."""
    p0, together = base
    pother = _params(2 * S, seed=11)
    idx = [3, 1]
    mixed_p0 = jax.tree.map(lambda a, b: jnp.concatenate([a[jnp.array(idx)], b[8:14]]), p0, pother)
    mixed_keys = jnp.concatenate([KEYS[jnp.array(idx)], KEYS[8:14]])
    other = _run(mixed_p0, mixed_keys, **BASE)
    np.testing.assert_allclose(
        other.params["w"][:2], together.params["w"][jnp.array(idx)], rtol=1e-12
    )
    np.testing.assert_allclose(other.epoch_loss[:, :2], together.epoch_loss[:, idx], rtol=1e-12)


@pytest.mark.xla_default  # bit for bit: XLA default flags (tests/conftest.py)
def test_sgd_matches_numpy_oracle(base):
    """Plain SGD == a hand-written numpy SGD that follows the documented key scheme: epoch e of
    seed i uses (k_perm, k_loss) = split(fold_in(keys[i], e)); the minibatches are
    permutation(k_perm, n) cut into n // batch_size batches (the rest dropped) and step s gets
    split(k_loss, steps)[s] as its loss key (here: a random linear term 0.1 <w, xi>)."""
    p0, res = base
    data, lr, bs, n, steps = _data(), 0.05, 8, 43, 5
    assert res.steps_per_epoch == steps
    x, y = data["x"], data["y"]
    for i in (0, 6):
        w = np.array(p0["w"][i])
        losses = []
        for e in range(6):
            k_perm, k_loss = jax.random.split(jax.random.fold_in(KEYS[i], e))
            perm = np.asarray(jax.random.permutation(k_perm, n))
            step_keys = jax.random.split(k_loss, steps)
            batch_losses = []
            for s in range(steps):
                idx = perm[s * bs : (s + 1) * bs]
                xi = np.asarray(jax.random.normal(step_keys[s], (3,), jnp.float32), np.float64)
                r = x[idx] @ w - y[idx]
                batch_losses.append(np.mean(r**2) + 0.1 * w @ xi)
                w = w - lr * ((2.0 / bs) * x[idx].T @ r + 0.1 * xi)
            losses.append(np.mean(batch_losses))
        np.testing.assert_allclose(res.params["w"][i], w, rtol=1e-12)
        np.testing.assert_allclose(res.epoch_loss[:, i], losses, rtol=1e-12)
    np.testing.assert_array_equal(res.steps, np.full(S, 30))  # 43 // 8 = 5: 3 samples dropped
    np.testing.assert_array_equal(res.status, np.full(S, RUNNING))


def nan_when_crossing(params, batch, key):
    """NaN once w[0] exceeds the seed's own (untrained) ceiling c: sqrt of a negative number."""
    return lsq(params, batch, key) + 0.0 * jnp.sqrt(params["c"] - params["w"][0])


def test_nan_seed_frozen_others_continue():
    p0 = {"w": jnp.zeros((3, 3)), "c": jnp.array([10.0, 0.5, 1e7])}
    # seed 2 starts with a huge loss: flagged DIVERGED before its first step
    p0["w"] = p0["w"].at[2].set(1e6)
    kw = {
        "optimizer": OPT,
        "epochs": 8,
        "batch_size": 8,
        "keys": KEYS[:3],
        "divergence_threshold": 1e8,
    }
    res = train(nan_when_crossing, p0, _data(), **kw)
    np.testing.assert_array_equal(res.status, [RUNNING, NAN, DIVERGED])
    w = np.asarray(res.params["w"])
    assert np.all(np.isfinite(w))
    # frozen at the first (finite) point where its loss is NaN; seed 0 went on to ~1
    assert 0.5 < w[1, 0] < 0.7 < w[0, 0]
    assert np.isnan(nan_when_crossing(jax.tree.map(lambda x: x[1], res.params), _data(), None))
    assert 0 < res.steps[1] < res.steps[0] == 8 * 5
    assert res.steps[2] == 0
    np.testing.assert_array_equal(w[2], 1e6)
    failed_epoch = res.steps[1] // 5
    assert np.all(np.isnan(res.epoch_loss[failed_epoch:, 1]))
    assert np.all(np.isfinite(res.epoch_loss[:failed_epoch, 1]))
    assert np.all(np.isnan(res.epoch_loss[:, 2]))
    # the same seeds without the ceiling on seed 1: seed 0 is unaffected by its failing
    # companions, and seed 1 followed the same trajectory until it failed
    healthy = train(nan_when_crossing, dict(p0, c=jnp.array([10.0, 10.0, 1e7])), _data(), **kw)
    np.testing.assert_allclose(healthy.params["w"][0], w[0], rtol=1e-12)
    np.testing.assert_allclose(
        healthy.epoch_loss[:failed_epoch, :2], res.epoch_loss[:failed_epoch, :2], rtol=1e-12
    )
    assert res.status_counts() == {"finished": 1, "diverged": 1, "nan": 1}


def test_float32_in_float32_out(base):
    p0, ref = base
    res = _run(
        jax.tree.map(lambda x: x.astype(jnp.float32), p0),
        KEYS[:S],
        data=_data(dtype=np.float32),
        **BASE,
    )
    assert res.params["w"].dtype == jnp.float32
    assert res.epoch_loss.dtype == np.float32
    assert res.history["w_norm"].dtype == np.float32
    assert np.all(np.isfinite(res.epoch_loss))
    # float32 follows the float64 run closely (same permutations and keys)
    np.testing.assert_allclose(res.params["w"], ref.params["w"], rtol=1e-4, atol=1e-5)


def test_checkpoints_history_chunking_progress(base):
    p0, _ = base
    calls = []
    kw = dict(BASE, epochs=7, checkpoints=[5, 2])  # gaps 2, 3, 2: the base chunk (3 epochs)
    res = _run(p0, KEYS[:S], progress=lambda done, total: calls.append((done, total)), **kw)
    np.testing.assert_array_equal(res.history_epochs, [0, 2, 5, 7])
    assert res.history["w_norm"].shape == (4, S) and res.epoch_loss.shape == (7, S)
    np.testing.assert_allclose(res.history["w_norm"][0], np.linalg.norm(p0["w"], axis=1))
    np.testing.assert_allclose(res.history["w0"][-1], res.params["w"][:, 0])
    assert calls == [(2, 7), (5, 7), (7, 7)]
    # one epoch per call: same numbers (epoch keys depend on the global epoch index only)
    calls.clear()
    fine = _run(
        p0,
        KEYS[:S],
        epochs_per_call=1,
        progress=lambda done, total: calls.append(done),
        **kw,
    )
    assert calls == list(range(1, 8))
    np.testing.assert_allclose(fine.params["w"], res.params["w"], rtol=1e-12)
    np.testing.assert_allclose(fine.history["w_norm"], res.history["w_norm"], rtol=1e-12)
    np.testing.assert_allclose(fine.epoch_loss, res.epoch_loss, rtol=1e-12)
    assert res.wall_time >= res.compile_time > 0
    # epochs = 0: evaluation only
    zero = _run(p0, KEYS[:S], **dict(BASE, epochs=0, checkpoints=None))
    assert zero.epoch_loss.shape == (0, S) and zero.history["w_norm"].shape == (1, S)
    np.testing.assert_array_equal(zero.params["w"], p0["w"])


def test_no_recompile_params0_survives_raw_keys(base):
    """A second call with the same settings reuses the compiled chunk; the caller's params0 is
    not donated; raw uint32 keys (S, 2) are the same keys as the typed ones."""
    p0, ref = base
    size = _run_epochs._cache_size()
    res = _run(p0, jax.random.key_data(KEYS[:S]), **BASE)
    assert _run_epochs._cache_size() == size
    assert not p0["w"].is_deleted()
    np.testing.assert_array_equal(res.params["w"], ref.params["w"])


def test_sharded_equals_single_device(base):
    assert len(jax.devices()) == S  # tests/conftest.py: 8 fake CPU devices
    p0, ref = base
    sh = NamedSharding(Mesh(np.asarray(jax.devices()), ("seeds",)), P("seeds"))
    res = _run(jax.device_put(p0, sh), jax.device_put(KEYS[:S], sh), **BASE)
    assert len(res.params["w"].sharding.device_set) == S
    np.testing.assert_allclose(res.params["w"], ref.params["w"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.epoch_loss, ref.epoch_loss, rtol=1e-12)
    np.testing.assert_allclose(res.history["w_norm"], ref.history["w_norm"], rtol=1e-12)


def test_equinox_models_with_adam():
    eqx = pytest.importorskip("equinox")
    models = eqx.filter_vmap(lambda k: eqx.nn.Linear(3, "scalar", key=k))(KEYS[8:10])
    params0, static = eqx.partition(models, eqx.is_inexact_array)

    def loss_fn(params, batch, key):
        model = eqx.combine(params, static)
        return jnp.mean((jax.vmap(model)(batch["x"]) - batch["y"]) ** 2)

    res = train(
        loss_fn,
        params0,
        _data(),
        optimizer=optax.adam(0.05),
        epochs=40,
        batch_size=8,
        keys=KEYS[:2],
    )
    trained = eqx.combine(res.params, static)
    np.testing.assert_allclose(trained.weight[:, 0], np.tile(W_TRUE, (2, 1)), atol=0.1)
    assert np.all(res.epoch_loss[-1] < 0.1 * res.epoch_loss[0])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"batch_size": 44}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": -1}, "epochs"),
        ({"checkpoints": [7]}, "checkpoints"),
        ({"keys": KEYS[:2]}, "keys"),
        ({"epochs_per_call": 0}, "epochs_per_call"),
        ({"divergence_threshold": -1.0}, "divergence_threshold"),
    ],
)
def test_errors_name_the_field(kw, match):
    kw = {"keys": KEYS[:3]} | kw
    keys = kw.pop("keys")
    with pytest.raises(ValueError, match=match):
        _run(_params(3), keys, **kw)
