"""Every registered system passes the same checks; adding one changes nothing generic.

Parametrised over the registry (the package's systems and the test-only ``toy_system`` folder,
registered by importing it): the objective is finite and a scalar of the parameters' dtype, its
gradient matches central finite differences (float64), ``vmap`` over seeds equals a loop, a spec
with a bad value is refused with an error naming the field, and every hook is callable. The toy
system then runs through the generic pipeline (optimiser, polish, closed-form analysis, a sweep
into the store) with no generic code knowing about it.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import toy_system  # noqa: E402  (registers "toy_ridge": one folder, one registration call)

import ufm  # noqa: E402
from ufm.core import OPTIONAL_HOOKS, registered_systems  # noqa: E402

CASES = [
    (name, i)
    for name, system in registered_systems().items()
    for i in range(len(system.examples()))
]


def _example(name, i):
    return registered_systems()[name].examples()[i]


def _dtype(spec):
    return np.dtype(getattr(spec, "dtype", "float64"))


@pytest.mark.parametrize("name", sorted(registered_systems()))
def test_hooks_present(name):
    system = registered_systems()[name]
    assert system.name == name and isinstance(system.spec_type, type)
    assert callable(system.loss) and callable(system.init) and system.examples()
    for hook in OPTIONAL_HOOKS:
        fn = getattr(system, hook)
        if hook == "planted":
            assert fn is None or all(callable(x) for x in fn)
        else:
            assert fn is None or callable(fn), hook
    for spec in system.examples():
        assert ufm.core.system_of(spec) is system


@pytest.mark.parametrize("name,i", CASES)
def test_objective_finite_scalar_dtype_in_dtype_out(name, i):
    spec = _example(name, i)
    p = ufm.init_params(spec, jax.random.key(1))
    f = ufm.loss(spec, p)
    assert f.shape == () and bool(jnp.isfinite(f))
    leaf_dtypes = {x.dtype for x in jax.tree_util.tree_leaves(p)}
    assert leaf_dtypes == {_dtype(spec)} and f.dtype == _dtype(spec)
    g = jax.grad(ufm.objective(spec))(p)
    assert jax.tree_util.tree_structure(g) == jax.tree_util.tree_structure(p)
    assert {x.dtype for x in jax.tree_util.tree_leaves(g)} == {_dtype(spec)}


@pytest.mark.parametrize("name,i", [c for c in CASES if _dtype(_example(*c)) == np.float64])
def test_gradient_matches_finite_differences(name, i):
    spec = _example(name, i)
    p = ufm.init_params(spec, jax.random.key(2))
    f = jax.jit(ufm.objective(spec))
    g = jax.grad(ufm.objective(spec))(p)
    direction = jax.tree_util.tree_map(
        lambda x: jax.random.normal(jax.random.key(3), x.shape, x.dtype), p
    )
    h = 1e-5
    shift = lambda t: jax.tree_util.tree_map(lambda x, v: x + t * v, p, direction)  # noqa: E731
    fd = (float(f(shift(h))) - float(f(shift(-h)))) / (2 * h)
    exact = sum(
        float(jnp.vdot(a, b))
        for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(direction))
    )
    assert abs(fd - exact) <= 1e-6 * max(1.0, abs(exact)), (fd, exact)


@pytest.mark.parametrize("name,i", CASES)
def test_vmap_equals_loop(name, i):
    spec = _example(name, i)
    batch = ufm.init_batch(spec, jax.random.key(4), num_seeds=3)
    vm = jax.vmap(ufm.objective(spec))(batch)
    for s in range(3):
        one = jax.tree_util.tree_map(lambda x: x[s], batch)
        single = ufm.init_params(spec, jax.random.fold_in(jax.random.key(4), s))
        tol = 1e-12 if _dtype(spec) == np.float64 else 1e-5
        for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(single)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol * 1e-3)
        np.testing.assert_allclose(float(vm[s]), float(ufm.loss(spec, one)), rtol=tol)


def _bad_values(field: dataclasses.Field, value):
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [-(10**9)]
    if isinstance(value, float):
        return [-1.0, float("nan")]
    if isinstance(value, str):
        return ["no-such-option"]
    return []


@pytest.mark.parametrize("name", sorted(n for n, s in registered_systems().items() if s.sweepable))
def test_spec_validation_names_the_field(name):
    spec = registered_systems()[name].examples()[0]
    checked = 0
    for field in dataclasses.fields(spec):
        for bad in _bad_values(field, getattr(spec, field.name)):
            with pytest.raises((ValueError, TypeError)) as err:
                dataclasses.replace(spec, **{field.name: bad})
            assert field.name in str(err.value), (field.name, bad, str(err.value))
            assert len(str(err.value).splitlines()) == 1
            checked += 1
    assert checked >= 2


def test_new_system_runs_through_the_generic_layers(tmp_path):
    """The toy system, unknown to every generic module, is optimised, polished, compared with its
    reference value and swept into the store."""
    spec = toy_system.RidgeSpec(m=8, p=3, lam=0.1)
    p0, meta = ufm.make_starts(spec, ["random"] * 4, np.arange(4))
    out = ufm.run_points(
        spec,
        p0,
        optimizer=ufm.OptimizerSettings(learning_rate=0.5, max_steps=2000),
        analyses=[("closed_form", ())],
    )
    assert out.columns["at_optimum"].all()
    assert np.abs(out.columns["f_gap"]).max() < 1e-12
    sweep = ufm.runs.SweepSpec.from_dict(
        {
            "model": "toy_ridge",
            "analyses": ["closed_form"],
            "grid": {"m": 8, "p": 3, "lam": [0.1, 0.5]},
            "seeds": {"count": 3},
            "optimizer": {"learning_rate": 0.5, "max_steps": 2000},
        }
    )
    ufm.run_sweep(sweep, tmp_path / "toy", devices=2, progress=False)
    rows = ufm.load_results(tmp_path / "toy")
    assert len(rows) == 6 and set(rows.model) == {"toy_ridge"} and rows.at_optimum.all()
    with pytest.raises(TypeError, match="toy_ridge.*metrics"):
        ufm.nc_metrics(spec, p0)
