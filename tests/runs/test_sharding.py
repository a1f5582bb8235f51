"""Seed-axis sharding: 8 fake devices == 1 device, padding, ownership, chunk sizing."""

import jax
import numpy as np
import pytest
from helpers import run_script

import ufm
from ufm.runs.sharding import (
    bytes_per_seed,
    chunk_size,
    local_devices,
    pad_seeds,
    process_seeds,
    shard_seeds,
    split_chunks,
)
from ufm.runs.sweep import run_chunk
from ufm.runs.sweep_spec import OptimizerSettings

OPT = OptimizerSettings(name="gd", learning_rate=1.0, max_steps=300, tol=1e-6, chunk=100)
ANALYSES = (("closed_form", ()),)


def test_eight_devices_available():
    assert len(jax.local_devices()) == 8  # tests/conftest.py


def _assert_same(a, b, msg=""):
    assert set(a) == set(b)
    for k in a:
        if a[k].dtype == object:
            assert list(a[k]) == list(b[k]), msg + k
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-14, atol=1e-14, err_msg=msg + k)


def test_sharded_chunk_equals_single_device():
    """13 seeds (padded to 16) over an 8-device mesh vs a 1-device mesh vs plain optimize() and
    polish(): identical per-seed results and analysis columns in float64."""
    spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce", bias="free")
    seeds = np.arange(13)
    kw = dict(optimizer=OPT, base_seed=7, analyses=ANALYSES)
    a = run_chunk(spec, seeds, ufm.runs.seed_mesh(8), **kw)
    b = run_chunk(spec, seeds, ufm.runs.seed_mesh(1), **kw)
    _assert_same(a, b)
    assert len(a["f"]) == 13 and {"f_star", "f_gap"} <= set(a)
    np.testing.assert_array_equal(a["seed"], seeds)
    np.testing.assert_array_equal(a["f_gap"], a["f"] - a["f_star"])
    # independent path: no mesh, no padding, no sweep code; the polish stage (default "auto" in
    # float64) is ufm.polish of the first-order end points
    p0 = ufm.init_batch(spec, jax.random.key(7), seeds=seeds)
    res = ufm.optimize(spec, p0, optimizer=ufm.gd(1.0), max_steps=300, tol=1e-6, chunk=100)
    np.testing.assert_allclose(a["first_order_grad_norm"], np.asarray(res.grad_norm), rtol=1e-12)
    np.testing.assert_array_equal(a["steps"], np.asarray(res.steps))
    pol = ufm.polish(spec, res.params)
    np.testing.assert_allclose(a["f"], np.asarray(pol.loss), rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(a["polished"], np.asarray(pol.converged))
    assert np.all(a["grad_norm"] <= 1e-10) and a["polished"].all()


def test_chunking_does_not_change_results():
    """Seeds 0..12 in one chunk vs chunks {0..4}, {5..12}: same rows (a seed's start and its
    trajectory do not depend on its batch)."""
    spec = ufm.UFMSpec(K=3, n=2, d=3, loss="mse")
    mesh = ufm.runs.seed_mesh(8)
    whole = run_chunk(spec, np.arange(13), mesh, optimizer=OPT)
    parts = [run_chunk(spec, s, mesh, optimizer=OPT) for s in (np.arange(5), np.arange(5, 13))]
    _assert_same(whole, {k: np.concatenate([p[k] for p in parts]) for k in whole})


def test_optimizer_keeps_seed_sharding():
    """The optimiser runs SPMD: outputs stay split over all 8 devices (not gathered on one)."""
    spec = ufm.UFMSpec(K=3, n=2, d=3)
    mesh = ufm.runs.seed_mesh(8)
    p0 = shard_seeds(ufm.init_batch(spec, jax.random.key(0), 16), mesh)
    assert len(p0.W.sharding.device_set) == 8
    assert p0.W.addressable_shards[0].data.shape == (2, 3, 3)
    res = ufm.optimize(spec, p0, max_steps=20, chunk=10)
    for x in jax.tree_util.tree_leaves(res.params):
        assert len(x.sharding.device_set) == 8
        assert x.sharding.is_equivalent_to(ufm.runs.sharding.seed_sharding(mesh), x.ndim)


def test_pad_and_split():
    assert pad_seeds([1, 2, 3, 4], 4).tolist() == [1, 2, 3, 4]
    assert pad_seeds([7], 3).tolist() == [7, 7, 7]
    with pytest.raises(ValueError, match="non-empty"):
        pad_seeds([], 2)
    chunks = split_chunks(np.arange(10), 4)
    assert [c.tolist() for c in chunks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


@pytest.mark.parametrize(
    "n,size,multiple", [(10017, 2048, 1), (10025, 2048, 2), (2049, 2048, 8), (5, 8, 4), (64, 8, 8)]
)
def test_balanced_chunks_cover_every_seed_once_with_one_width(n, size, multiple):
    seeds = np.arange(100, 100 + n)
    chunks, width = ufm.runs.sharding.balanced_chunks(seeds, size, multiple)
    assert np.array_equal(np.concatenate(chunks), seeds)  # every seed once, in order
    assert len(chunks) == -(-n // size)  # as many chunks as the plain split
    assert width % multiple == 0 and width <= size
    assert all(c.size == width for c in chunks[:-1]) and 0 < chunks[-1].size <= width
    assert width - chunks[-1].size < len(chunks) * multiple  # the padding stays small
    assert ufm.runs.sharding.balanced_chunks([], size) == ([], 0)


def test_padded_chunk_equals_unpadded():
    """pad_to repeats the last start: the real rows are the unpadded run's, bit for bit."""
    spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce", bias="free")
    seeds = np.arange(5)
    kw = dict(optimizer=OPT, base_seed=7, analyses=ANALYSES)
    a = run_chunk(spec, seeds, ufm.runs.seed_mesh(1), **kw)
    b = run_chunk(spec, seeds, ufm.runs.seed_mesh(1), pad_to=9, **kw)
    assert len(b["f"]) == 5
    _assert_same(a, b)


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_process_seeds_partition(count):
    seeds = np.arange(50)
    parts = [process_seeds(seeds, i, count) for i in range(count)]
    assert sorted(np.concatenate(parts).tolist()) == seeds.tolist()
    assert max(p.size for p in parts) - min(p.size for p in parts) <= 1


def test_local_devices_errors():
    with pytest.raises(ValueError, match="devices=9 but this process has 8 cpu"):
        local_devices(9)
    with pytest.raises(ValueError, match="devices must be"):
        local_devices(0)
    assert ufm.runs.seed_mesh(3).size == 3


def test_chunk_size_rules():
    spec = ufm.UFMSpec(K=3, n=2, d=3)
    assert chunk_size(spec, 8, seeds_per_chunk=10) == 16  # rounded up to the device count
    assert chunk_size(spec, 8, seeds_per_chunk=100, num_seeds=5) == 8
    per = bytes_per_seed(spec)
    assert chunk_size(spec, 4, memory_budget=3 * per + per // 2) == 12  # 3 seeds per device
    with pytest.raises(ValueError, match="below"):
        chunk_size(spec, 1, memory_budget=per // 2)
    assert chunk_size(spec, 2) == 2 * 1024  # default cap per device


def test_bytes_per_seed_grows_with_problem():
    """XLA's footprint per seed is at least the parameters (+ copies) and grows with N."""
    small = ufm.UFMSpec(K=3, n=2, d=3)
    big = small.replace(n=200)
    param_bytes = 8 * big.num_params
    assert bytes_per_seed(big) >= 5 * param_bytes
    assert bytes_per_seed(big) > 20 * bytes_per_seed(small)
    assert bytes_per_seed(small.replace(dtype="float32")) < bytes_per_seed(small)


def test_bytes_per_seed_is_measured_once_per_shape_family(monkeypatch):
    """The footprint depends on shapes, not on the lambdas: configurations of one shape family
    share one measurement (each is a compilation), a new shape or loss measures again."""
    import ufm.runs.sharding as S

    calls = []
    real = S._measure_bytes_per_seed
    monkeypatch.setattr(S, "_FOOTPRINTS", {})
    monkeypatch.setattr(S, "_measure_bytes_per_seed", lambda *a: calls.append(a) or real(*a))
    spec = ufm.UFMSpec(K=3, n=2, d=3, lambda_W=1e-3, lambda_H=1e-3)
    first = bytes_per_seed(spec)
    assert bytes_per_seed(spec.replace(lambda_W=0.5, lambda_H=0.2)) == first
    assert len(calls) == 1
    bytes_per_seed(spec.replace(loss="mse"))
    bytes_per_seed(spec.replace(n=4))
    assert len(calls) == 3


def test_cpu_multi_device_analyses_do_not_deadlock():
    """Regression: batched LAPACK (SVD in ufm.nc_metrics) on 1024 seeds per CPU device, 2 devices,
    deadlocked jaxlib's shared thread pool (jax 0.10.2); run_chunk runs CPU analyses on one
    device. In a subprocess so that a hang fails the test instead of freezing the suite."""
    script = (
        "import jax, numpy as np\n"
        "jax.config.update('jax_num_cpu_devices', 2)\n"
        "jax.config.update('jax_enable_x64', True)\n"
        "import ufm\n"
        "from ufm.runs.sweep import run_chunk\n"
        "from ufm.runs.sweep_spec import OptimizerSettings\n"
        "c = run_chunk(ufm.UFMSpec(K=4, n=5, d=4), np.arange(2048), ufm.runs.seed_mesh(2),\n"
        "              optimizer=OptimizerSettings(max_steps=5, chunk=5, polish='none'),\n"
        "              analyses=(('metrics', ()),))\n"
        "print('rows', len(c['nc1_pinv']))\n"
    )
    r = run_script(script)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rows 2048" in r.stdout
