"""ufm.optimize's fast paths (fused kernel, seeds sharded over devices, padding, seed blocks)
against the plain path: float64, identical statuses and step counts, parameters to 1e-12."""

import jax
import numpy as np
import pytest

import ufm

KW = dict(
    optimizer=ufm.gd(1.0),
    max_steps=220,
    tol=1e-6,
    chunk=40,
    record_every=20,
    divergence_threshold=1e6,
)


def _problem(num=70, loss="ce", bias="none"):
    lb = 2e-2 if bias == "regularized" else 0.0
    spec = ufm.UFMSpec(
        K=3, n=4, d=3, loss=loss, bias=bias, lambda_W=5e-2, lambda_H=5e-2, lambda_b=lb
    )
    p0 = ufm.init_batch(spec, jax.random.key(5), num, scale=0.5)
    # seed 0 diverges (starts past divergence_threshold), seed 1 starts at NaN: flagged per seed
    p0 = p0._replace(W=p0.W.at[0].multiply(1e4), H=p0.H.at[0].multiply(1e4).at[1, 0, 0].set(np.nan))
    return spec, p0


def _same(a, b, rtol=1e-12):
    assert a.status.tolist() == b.status.tolist()
    assert a.steps.tolist() == b.steps.tolist()
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=1e-13)
    np.testing.assert_allclose(a.trace["loss"], b.trace["loss"], rtol=rtol)
    np.testing.assert_array_equal(a.trace_steps, b.trace_steps)


@pytest.mark.parametrize("loss,bias", [("ce", "none"), ("mse", "regularized")])
def test_fused_kernel_equals_plain_autodiff(loss, bias):
    spec, p0 = _problem(24, loss, bias)
    fast = ufm.optimize(spec, p0, kernel="auto", devices=None, **KW)
    plain = ufm.optimize(spec, p0, kernel="plain", devices=None, **KW)
    _same(fast, plain, rtol=1e-11)
    st = fast.status.tolist()
    assert st[0] in (ufm.Status.DIVERGED, ufm.Status.NAN) and st[1] == ufm.Status.NAN
    assert ufm.Status.CONVERGED in st and ufm.Status.MAX_STEPS in st  # stops at various steps
    assert len(set(fast.steps.tolist())) > 3


@pytest.mark.xla_default  # bit for bit: XLA default flags (tests/conftest.py)
def test_sharded_equals_one_device_with_padding():
    spec, p0 = _problem(70)
    one = ufm.optimize(spec, p0, devices=None, **KW)
    for devices in (2, 4):  # 70 = 2 x 35; 4 devices: padded to 72, the padding dropped
        if len(jax.devices()) < devices:
            pytest.skip("needs fake CPU devices (tests/conftest.py)")
        sharded = ufm.optimize(spec, p0, devices=devices, **KW)
        _same(sharded, one, rtol=0)  # the same arithmetic per seed: bit for bit
        assert sharded.params.W.shape == p0.W.shape
        assert sharded.params.W.sharding.device_set == p0.W.sharding.device_set


def test_input_already_sharded_keeps_its_devices():
    spec, p0 = _problem(64)
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:2]), ("s",))
    sh = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("s"))
    res = ufm.optimize(spec, jax.device_put(p0, sh), **KW)
    assert res.params.H.sharding.device_set == set(jax.devices()[:2])
    _same(res, ufm.optimize(spec, p0, devices=None, **KW), rtol=0)


@pytest.mark.xla_default  # bit for bit: XLA default flags (tests/conftest.py)
def test_seed_blocks_and_loop_equal_vmap():
    spec, p0 = _problem(9)
    vm = ufm.optimize(spec, p0, devices=None, seed_block=None, **KW)
    _same(ufm.optimize(spec, p0, devices=None, seed_block=4, **KW), vm, rtol=0)
    for i in (0, 2, 8):  # a seed's result depends only on its start, not on the batch
        one = ufm.optimize(spec, jax.tree_util.tree_map(lambda x: x[i : i + 1], p0), **KW)
        assert one.status.tolist() == [vm.status.tolist()[i]]
        np.testing.assert_allclose(one.params.H[0], vm.params.H[i], rtol=1e-12, atol=1e-14)


def test_bad_fast_path_options():
    spec, p0 = _problem(4)
    with pytest.raises(ValueError, match="kernel"):
        ufm.optimize(spec, p0, kernel="fast", **KW)
    with pytest.raises(ValueError, match="devices"):
        ufm.optimize(spec, p0, devices=0, **KW)
