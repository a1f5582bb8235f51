"""adaptive_jit: the quick-compiling (XLA level 0) and default versions compute the same thing, the
choice follows the input size, and calls inside a trace are inlined instead of failing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ufm.core import jitting
from ufm.core.jitting import adaptive_jit, array_bytes


def _f(x, k):
    return jnp.tanh(x @ x.T) * k + jnp.linalg.norm(x)


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
    fn = adaptive_jit(_f, static_argnames=("k",))
    x = jax.random.normal(jax.random.key(0), (6, 5))
    np.testing.assert_allclose(fn.quick(x, k=2), fn.full(x, k=2), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(fn(x, k=2), _f(x, 2), rtol=1e-13, atol=1e-13)
    assert array_bytes((x, {"k": 2})) == x.nbytes


def test_size_decides(monkeypatch):
    fn = adaptive_jit(_f, static_argnames=("k",))
    calls = _counted(fn)
    x = jnp.ones((3, 2))  # 48 bytes
    monkeypatch.setattr(jitting, "SMALL_BYTES", 48)
    fn(x, k=1)
    assert calls == {"quick": 1, "full": 0}
    monkeypatch.setattr(jitting, "SMALL_BYTES", 47)
    fn(x, k=1)
    assert calls == {"quick": 1, "full": 1}


def test_inside_traces_the_call_is_inlined():
    fn = adaptive_jit(_f, static_argnames=("k",))
    calls = _counted(fn)
    x = jnp.ones((3, 2))
    out = jax.jit(lambda y: fn(y, k=3))(x)  # a tracer argument: the plain version
    np.testing.assert_allclose(out, _f(x, 3), rtol=1e-14)
    assert calls == {"quick": 0, "full": 1}
    # a concrete argument inside eval_shape: the quick version refuses (nested compiler options)
    z = jnp.zeros((4, 2))
    shape = jax.eval_shape(lambda: fn(z, k=1))
    assert shape.shape == (4, 4) and calls == {"quick": 1, "full": 2}


def test_other_errors_are_not_swallowed():
    fn = adaptive_jit(lambda x: x.reshape(7))  # 6 elements cannot be reshaped into 7
    with pytest.raises((TypeError, ValueError), match="reshape|size"):
        fn(jnp.ones((2, 3)))
