"""One point at a time on every CPU device at once (ufm.core.map_points): the Newton polish, the
Hessian classification and the NC metrics of a batch sharded over several CPU devices give the
numbers of the same batch on one device; analyses not registered ``device_parallel`` get the batch
gathered on one device; ``ufm sweep run`` asks for one CPU device per core by default."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import ufm
from ufm.cli.sweep import default_cpu_devices
from ufm.core import map_points, seed_mesh_of, spread_points
from ufm.core.cliargs import available_cores
from ufm.kernels import eigvalsh
from ufm.runs.analyses import _ANALYSES, register_analysis

SPEC = ufm.UFMSpec(K=3, n=2, d=3, loss="ce", lambda_W=5e-3, lambda_H=5e-3)


def _mesh(k):
    return Mesh(np.asarray(jax.devices()[:k]), ("seeds",))


def _devices(tree):
    out = set()
    for x in jax.tree_util.tree_leaves(tree):
        out |= set(x.sharding.device_set)
    return out


def _near_optimum(num, scale=1e-6, seed=0):
    """``num`` points near the closed-form optimum (leading axis)."""
    opt = ufm.optimum(SPEC).params
    keys = jax.random.split(jax.random.key(seed), num)
    return jax.vmap(
        lambda k: jax.tree_util.tree_map(
            lambda x: x + scale * jax.random.normal(jax.random.fold_in(k, x.size), x.shape), opt
        )
    )(keys)


def test_seed_mesh_of():
    mesh = _mesh(4)
    x = jnp.arange(8.0).reshape(8, 1)
    assert seed_mesh_of(x) is None  # one device
    assert seed_mesh_of(np.ones((8, 2))) is None
    assert seed_mesh_of(spread_points(x, mesh)) == mesh
    assert seed_mesh_of({"a": spread_points(x, mesh), "b": x}) is None  # mixed layouts
    # split along another axis, or replicated: not a seed layout
    y = jax.device_put(jnp.ones((2, 8)), NamedSharding(mesh, P(None, "seeds")))
    assert seed_mesh_of(y) is None
    assert seed_mesh_of(jax.device_put(x, NamedSharding(mesh, P()))) is None


def test_map_points_equals_lax_map():
    """Per-point LAPACK (eigenvalues of random symmetric matrices) on 4 devices at once."""
    a = jax.random.normal(jax.random.key(1), (12, 9, 9))
    a = a + jnp.swapaxes(a, 1, 2)
    mesh = _mesh(4)
    plain = jax.jit(lambda v: map_points(eigvalsh, v))(a)
    spread = jax.jit(lambda v: map_points(eigvalsh, v, mesh))(spread_points(a, mesh))
    assert seed_mesh_of(spread) == mesh and len(_devices(spread)) == 4
    np.testing.assert_allclose(np.asarray(spread), np.asarray(plain), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(np.asarray(plain), np.linalg.eigvalsh(np.asarray(a)), atol=1e-12)


@pytest.mark.parametrize("num", [8, 6])  # 6 over 4 devices: padded to 8, the padding dropped
def test_classify_batch_sharded_equals_one_device(num):
    pts = _near_optimum(num, scale=1e-9)
    pts = jax.tree_util.tree_map(lambda x: x.at[-1].multiply(0.0), pts)  # the origin: a saddle
    one = ufm.classify_batch(SPEC, pts, warn=False)
    mesh = _mesh(2) if num % 4 else _mesh(4)
    spread = ufm.classify_batch(SPEC, spread_points(pts, mesh), warn=False)
    assert list(spread["class"]) == list(one["class"])
    assert list(one["class"][:-1]) == ["global_min"] * (num - 1)
    assert one["class"][-1] == "strict_saddle"
    for k, v in one.items():
        if np.asarray(v).dtype.kind == "f":
            np.testing.assert_allclose(spread[k], v, rtol=1e-12, atol=1e-15, err_msg=k)
        else:
            np.testing.assert_array_equal(spread[k], v, err_msg=k)
    # a batched map (batch_size > 1) never runs on several CPU devices: gathered, same classes
    batched = ufm.classify_batch(SPEC, spread_points(pts, _mesh(2)), batch_size=2, warn=False)
    assert list(batched["class"]) == list(one["class"])


def test_polish_sharded_equals_one_device():
    pts = _near_optimum(8, scale=1e-3, seed=3)
    one = ufm.polish(SPEC, pts)
    spread = ufm.polish(SPEC, spread_points(pts, _mesh(4)))
    assert seed_mesh_of(spread.params) is not None  # stays spread
    assert bool(np.all(spread.converged)) and bool(np.all(one.converged))
    np.testing.assert_array_equal(spread.iterations, one.iterations)
    leaves = jax.tree_util.tree_leaves
    for a, b in zip(leaves(spread.params), leaves(one.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)


def test_run_points_spread_batch_and_gathered_analyses():
    """run_points on a batch sharded over 4 devices: same columns as on one device; an analysis
    registered without ``device_parallel`` sees its batch on one device, a ``device_parallel``
    one the sharded batch."""
    seen = {}

    def probe(name):
        def fn(spec, result):
            seen[name] = len(_devices(result.params))
            return {f"{name}_x": np.zeros(np.asarray(result.loss).shape[0])}

        return fn

    register_analysis("probe_plain", probe("probe_plain"))
    register_analysis("probe_parallel", probe("probe_parallel"), device_parallel=True)
    try:
        p0, _ = ufm.make_starts(SPEC, ["random"] * 7 + ["origin"], list(range(7)) + [0])
        settings = ufm.OptimizerSettings(max_steps=3000, tol=1e-7)
        analyses = [(n, ()) for n in ("closed_form", "hessian", "metrics")]
        analyses += [("probe_plain", ()), ("probe_parallel", ())]
        one = ufm.run_points(SPEC, p0, optimizer=settings, analyses=analyses)
        assert seen == {"probe_plain": 1, "probe_parallel": 1}
        spread = ufm.run_points(
            SPEC, spread_points(p0, _mesh(4)), optimizer=settings, analyses=analyses
        )
        assert seen == {"probe_plain": 1, "probe_parallel": 4}
    finally:
        for name in ("probe_plain", "probe_parallel"):
            _ANALYSES.pop(name, None)
    assert list(spread.columns["class"]) == list(one.columns["class"])
    assert list(one.columns["class"]) == ["global_min"] * 7 + ["strict_saddle"]
    for k in ("f", "grad_norm", "lambda_min", "nc1_pinv", "f_gap"):
        np.testing.assert_allclose(spread.columns[k], one.columns[k], rtol=1e-9, atol=1e-14)


def test_sweep_cli_default_devices():
    """``ufm sweep run`` without ``--devices``: one CPU device per available core for a single
    process; JAX's default for multi-process runs and when ``--devices`` is given."""
    assert default_cpu_devices(None, None, None) == available_cores() >= 1
    assert default_cpu_devices(None, None, 1) == available_cores()
    assert default_cpu_devices(3, None, None) is None
    assert default_cpu_devices(None, "127.0.0.1:1234", 2) is None
    assert default_cpu_devices(None, None, 2) is None


def test_landscape_devices_flag_creates_cpu_devices(tmp_path):
    """``ufm landscape --devices 2`` in a fresh process (one CPU device by default) shards the
    seeds over 2 CPU devices instead of failing for want of devices."""
    import subprocess

    from helpers import cli_cmd, cli_env

    out = tmp_path / "res"
    args = ["landscape", "--K", "3", "--n", "2", "--seeds", "2", "--loss", "mse", "--bias"]
    args += [
        "none",
        "--lambda-W",
        "0.005",
        "--no-hessian",
        "--no-origin",
        "--saddle-seeds",
        "0",
        "--steps",
        "500",
    ]
    args += ["--devices", "2", "--no-figures", "--quiet", "--out", out]
    proc = subprocess.run(cli_cmd(*args), env=cli_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = ufm.load_results(out)
    assert set(rows["num_devices"]) == {2} and int((rows["source"] == "random").sum()) == 2


def test_optimize_on_a_mesh_compiles_its_chunk_once():
    """The initial state is laid out along the seed axis like the chunks' output, so the first
    chunk does not compile a second program for replicated optimiser buffers."""
    import importlib

    optimize_module = importlib.import_module("ufm.optim.optimize")

    spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce", lambda_W=0.013, lambda_H=0.017)
    mesh = Mesh(np.asarray(jax.devices("cpu")[:2]), ("seeds",))
    p0 = spread_points(ufm.init_batch(spec, jax.random.key(0), 8), mesh)
    optimize_module._run_chunk.clear_cache()
    opt = ufm.make_optimizer("momentum", 0.1, beta=0.9)
    res = ufm.optimize(spec, p0, optimizer=opt, max_steps=60, chunk=20, tol=0.0)
    assert int(np.asarray(res.steps).min()) == 60  # three chunks ran
    assert optimize_module._run_chunk._cache_size() == 1
