"""The many-seed runner on the ``tiny`` preset's specs (shared compiled code with the CLI test):
a seed's rows depend only on its key (not on its batch, nor on sharding), the stored analysis
equals an independent recomputation from the trained network, the initialisation is
``ufm.init_batch``'s, and the ETF memory measures follow the parameter counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm import nets
from ufm.systems import feature_map as fm

TINY = {name: spec for name, _, spec in fm.PRESETS["tiny"].specs()}
SPEC = TINY["mlp-mse"]
SCALARS = ("train_loss", "test_acc", "pi_star_C", "effective_rank", "d_lr", "nc1_quotient")


@pytest.fixture(scope="module")
def runs():
    """Seeds [0, 1] together and [1, 2] together (seed 1 in another batch and position)."""
    res01, _ = fm.train_seeds(SPEC, [0, 1])
    rows01 = fm.run_experiment(SPEC, [0, 1])
    rows12 = fm.run_experiment(SPEC, [1, 2])
    return res01, rows01, rows12


def test_a_seed_depends_only_on_its_key(runs):
    _, rows01, rows12 = runs
    a, b = rows01["seed"] == 1, rows12["seed"] == 1
    assert a.sum() == b.sum() == len(SPEC.checkpoint_epochs)
    for k in (*SCALARS, "epoch_loss"):
        np.testing.assert_allclose(rows01[k][a], rows12[k][b], rtol=1e-6, atol=1e-7, err_msg=k)
    assert rows01["verdict"][a].tolist() == rows12["verdict"][b].tolist()
    # different seeds differ
    assert not np.allclose(
        rows01["train_loss"][rows01["seed"] == 0][1:], rows01["train_loss"][a][1:]
    )


def test_rows_match_an_independent_recomputation(runs):
    """Final-epoch rows recomputed from the trainer's final parameters with ufm.nets and the
    analysis functions; the epoch-0 loss is the system objective of the initial network."""
    res, rows, _ = runs
    ds = fm.dataset(SPEC)
    static = fm.model.static_of(SPEC)
    last = rows["epoch"] == SPEC.epochs
    for s in (0, 1):
        model = nets.combine(jax.tree_util.tree_map(lambda x: x[s], res.params), static)
        F = nets.batch_features(model, jnp.asarray(ds.x_train))
        out = nets.batch_outputs(model, jnp.asarray(ds.x_train))
        a = fm.analyse(F, out, ds.y_train)
        v = fm.verdict(a)
        row = np.flatnonzero(last & (rows["seed"] == s))[0]
        np.testing.assert_allclose(rows["pi_star_C"][row], float(a.pi_star_C), rtol=1e-5)
        np.testing.assert_allclose(rows["d_lr"][row], float(a.d_lr), rtol=1e-4)
        np.testing.assert_allclose(rows["rho"][row], np.asarray(a.rho), rtol=1e-4, atol=1e-6)
        assert rows["verdict"][row] == v.label
        out_test = np.asarray(nets.batch_outputs(model, jnp.asarray(ds.x_test)))
        acc = np.mean(np.argmax(out_test, 1) == ds.y_test)
        np.testing.assert_allclose(rows["test_acc"][row], acc, rtol=1e-6)
        nc1 = ufm.metrics.nc1_quotient(F.T, jnp.asarray(ds.y_train), 10)
        np.testing.assert_allclose(rows["nc1_quotient"][row], float(nc1), rtol=1e-4)
    p0 = ufm.init_batch(SPEC, jax.random.key(0), seeds=np.array([0, 1]))
    for s in (0, 1):
        one = jax.tree_util.tree_map(lambda x: x[s], p0)
        first = np.flatnonzero((rows["epoch"] == 0) & (rows["seed"] == s))[0]
        np.testing.assert_allclose(rows["train_loss"][first], float(ufm.loss(SPEC, one)), rtol=1e-5)
    # the tiny preset's claim: full MSE training ends MF, epoch 0 is EF
    assert set(rows["verdict"][last]) == {"MF"}
    assert set(rows["verdict"][rows["epoch"] == 0]) == {"EF"}
    assert set(rows["status"]) == {"max_steps"}
    assert rows["steps"][0] == SPEC.epochs * (500 // 50)


def test_sharded_over_devices_equals_one_device(runs):
    """Seeds sharded over 2 devices (SPMD) give the single-device rows: to float32 rounding over
    the first 10 epochs (100 Adam steps); later, rounding differences of the differently
    partitioned matmuls grow through training (about 1e-2 relative in the loss after 400
    steps), so there only the verdicts and the test accuracies (to 2 test samples) must agree."""
    _, rows01, _ = runs
    if len(jax.devices()) < 2:
        pytest.skip("needs 2 devices (tests/conftest.py provides 8 CPU devices)")
    sharded = fm.run_experiment(SPEC, [0, 1, 2], devices=2)  # padded to 4 seeds, 2 per device
    assert sharded["seed"].tolist() == np.repeat([0, 1, 2], len(SPEC.checkpoint_epochs)).tolist()
    sharded = {k: v[sharded["seed"] <= 1] for k, v in sharded.items()}
    early = rows01["epoch"] <= 10
    for k in SCALARS:
        np.testing.assert_allclose(
            sharded[k][early], rows01[k][early], rtol=1e-5, atol=1e-6, err_msg=k
        )
    assert sharded["verdict"].tolist() == rows01["verdict"].tolist()
    np.testing.assert_allclose(sharded["test_acc"], rows01["test_acc"], atol=2.5 / 359)


def test_last_layer_only_moves_exactly_the_head():
    spec = TINY["mlp-mse-last-layer"]
    res, _ = fm.train_seeds(spec, [0, 1])
    p0 = fm.model.arch_key(spec)  # the runner's initialisation key spec
    p0 = ufm.init_batch(p0, jax.random.key(0), seeds=np.array([0, 1]))
    mask = jax.tree_util.tree_leaves(fm.model.mask_of(spec))
    moved = [
        bool(np.any(np.asarray(a) != np.asarray(b)))
        for a, b in zip(jax.tree_util.tree_leaves(res.params), jax.tree_util.tree_leaves(p0))
    ]
    assert moved == mask and sum(mask) == 2  # the head's weight and bias, nothing else
    F = res.history["features"]
    np.testing.assert_array_equal(F[0], F[-1])  # frozen random features at every checkpoint
    assert res.history["test_acc"][-1].min() > 0.8


def test_train_step_memory_and_parameter_counts():
    learned, etf = TINY["learned-128"], TINY["etf-10"]
    ml, me = fm.train_step_memory(learned), fm.train_step_memory(etf)
    pl, pe = fm.param_counts(learned)[0], fm.param_counts(etf)[0]
    assert (pl, pe) == (64 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10, 64 * 128 + 128 + 1290)
    assert ml["param_bytes"] == 4 * pl and me["param_bytes"] == 4 * pe
    # Adam: two moments per parameter, plus a count
    assert 2 * 4 * pe <= me["opt_state_bytes"] <= 2 * 4 * pe + 64
    for m in (ml, me):
        assert m["step_bytes"] >= m["param_bytes"] + m["opt_state_bytes"]
    assert me["step_bytes"] < ml["step_bytes"]


def test_peak_rss_helpers_see_an_allocation():
    """The helpers of the peak-RSS subprocess: after a reset the peak follows a 64 MiB buffer."""
    from ufm.systems.feature_map import etf

    if not etf.reset_peak_rss():
        pytest.skip("no /proc/self/clear_refs (not Linux)")
    before = etf.rss_bytes()
    buf = np.ones(8 * 2**20)  # 64 MiB, touched
    peak = etf.peak_rss_bytes()
    del buf
    assert peak - before >= 60 * 2**20
