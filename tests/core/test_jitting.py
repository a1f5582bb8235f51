"""adaptive_jit: the quick-compiling (XLA level 0) and default versions compute the same thing, the
spec decides which one runs (never the batch size), and calls inside a trace are inlined."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.core import jitting
from ufm.core.jitting import adaptive_jit, is_small

SPEC = ufm.UFMSpec(K=3, n=2, d=3)  # no bias: 3*3 + 3*6 = 27 parameters


def _f(spec, x):
    return jnp.tanh(x @ x.T) * spec.K + jnp.linalg.norm(x)


def _counted(fn):
    calls = {"quick": 0, "full": 0}
    for name in ("quick", "full"):
        inner = getattr(fn, name)

        def wrapped(*a, _inner=inner, _name=name, **kw):
            calls[_name] += 1
            return _inner(*a, **kw)

        setattr(fn, name, wrapped)
    return calls


def test_versions_agree():
    fn = adaptive_jit(_f)
    x = jax.random.normal(jax.random.key(0), (6, 5))
    np.testing.assert_allclose(fn.quick(SPEC, x), fn.full(SPEC, x), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(fn(SPEC, x), _f(SPEC, x), rtol=1e-13, atol=1e-13)


def test_the_spec_decides_not_the_batch(monkeypatch):
    fn = adaptive_jit(_f)
    calls = _counted(fn)
    assert SPEC.num_params == 27
    monkeypatch.setattr(jitting, "SMALL_PARAMS", 27)
    assert is_small(SPEC) and not is_small(object())  # a spec without num_params: full
    fn(SPEC, jnp.ones((3, 2)))
    fn(SPEC, jnp.ones((3000, 2)))  # a big batch of the same spec: the same version
    assert calls == {"quick": 2, "full": 0}
    monkeypatch.setattr(jitting, "SMALL_PARAMS", 26)
    fn(SPEC, jnp.ones((3, 2)))
    assert calls == {"quick": 2, "full": 1}


def test_inside_traces_the_call_is_inlined():
    fn = adaptive_jit(_f)
    calls = _counted(fn)
    x = jnp.ones((3, 2))
    out = jax.jit(lambda y: fn(SPEC, y))(x)  # a tracer argument: the plain version
    np.testing.assert_allclose(out, _f(SPEC, x), rtol=1e-14)
    assert calls == {"quick": 0, "full": 1}
    # a concrete argument inside eval_shape: the quick version refuses (nested compiler options)
    z = jnp.zeros((4, 2))
    shape = jax.eval_shape(lambda: fn(SPEC, z))
    assert shape.shape == (4, 4) and calls == {"quick": 1, "full": 2}


def test_other_errors_are_not_swallowed():
    fn = adaptive_jit(lambda spec, x: x.reshape(7))  # 6 elements cannot be reshaped into 7
    with pytest.raises((TypeError, ValueError), match="reshape|size"):
        fn(SPEC, jnp.ones((2, 3)))


def test_public_functions_compile_once_when_eager_and_trace_plainly_inside():
    """jit_when_eager: an eager call of ufm.loss / the dense Hessian spectrum is one compiled
    program (not one per primitive), equal to the function traced inside a user's jit, vmap and
    grad."""
    from ufm.hessian import hessian_spectrum_dense

    spec = ufm.UFMSpec(K=3, n=2, d=3, loss="ce", bias="free", lambda_W=0.01, lambda_H=0.02)
    p = ufm.init_params(spec, jax.random.key(3))
    calls = {"jitted": 0}
    inner = ufm.loss.jitted

    def counted(*a, **kw):
        calls["jitted"] += 1
        return inner(*a, **kw)

    ufm.loss.jitted = counted
    try:
        eager = ufm.loss(spec, p)
        assert calls["jitted"] == 1
        traced = jax.jit(ufm.loss)(spec, p)  # inside: the plain function, no second program
        batched = jax.vmap(lambda q: ufm.loss(spec, q))(
            jax.tree_util.tree_map(lambda x: x[None], p)
        )
        grad = jax.grad(lambda q: ufm.loss(spec, q))(p)
        assert calls["jitted"] == 1
    finally:
        ufm.loss.jitted = inner
    np.testing.assert_allclose(float(eager), float(traced), rtol=1e-14)
    np.testing.assert_allclose(float(eager), float(batched[0]), rtol=1e-14)
    assert float(ufm.grad_norm(spec, p)) == pytest.approx(
        float(np.sqrt(sum(float((g**2).sum()) for g in jax.tree_util.tree_leaves(grad)))), rel=1e-12
    )
    ev = hessian_spectrum_dense(spec, p)
    w_block = jax.jit(jax.hessian(lambda W: ufm.loss(spec, p._replace(W=W))))(p.W)
    ev_plain = jnp.linalg.eigvalsh(w_block.reshape(9, 9))
    assert ev.shape == (spec.num_params,) and np.all(np.diff(np.asarray(ev)) >= 0)
    # Cauchy interlacing: the W-block's spectrum lies inside the full Hessian's range
    assert ev[0] <= ev_plain[0] + 1e-12 and ev_plain[-1] <= ev[-1] + 1e-12


@pytest.mark.xla_default
def test_xla_default_tests_run_with_xla_default_flags():
    """The harness of tests/conftest.py: a marked test runs in a subprocess without the test
    suite's XLA flags (level 0, older loop emitters)."""
    import os

    assert os.environ.get("UFM_TEST_XLA_DEFAULT") == "1"
    flags = os.environ.get("XLA_FLAGS", "")
    assert "xla_backend_optimization_level" not in flags and "fusion_emitters" not in flags


def test_setup_functions_ignore_full_optimisation_for_small_specs(monkeypatch):
    """adaptive_jit(setup=True) (random starts, the optimiser's initial state): level 0 for a small
    spec even inside full_optimisation(); a large spec keeps XLA's default level."""
    fn = adaptive_jit(_f, setup=True)
    plain = adaptive_jit(_f)
    calls, plain_calls = _counted(fn), _counted(plain)
    x = jnp.ones((3, 2))
    with jitting.full_optimisation():
        fn(SPEC, x)
        plain(SPEC, x)
    assert calls == {"quick": 1, "full": 0} and plain_calls == {"quick": 0, "full": 1}
    monkeypatch.setattr(jitting, "SMALL_PARAMS", 26)  # SPEC is now large
    fn(SPEC, x)
    assert calls == {"quick": 1, "full": 1}
