"""The registered ``spectral`` system: the loss hook against an independent NumPy computation.

The objective of a spec on its fixed views is recomputed from the network's weights with a NumPy
forward pass and the NumPy restatements of the official losses (``spectral_numpy_reference``), for
the power ST, INTL and W-MSE examples of the system (float64).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from spectral_numpy_reference import (
    norm_mse_loss,
    official_iternorm,
    official_trace_loss,
    official_wmse,
)

from ufm.systems import spectral as sp
from ufm.systems.spectral.data import FIXED_VIEWS_TAG, augmentation, fixed_views
from ufm.systems.spectral.model import network
from ufm.systems.spectral.system import examples

ACT = {"tanh": np.tanh, "gelu": lambda x: np.asarray(jax.nn.gelu(x)), "relu": lambda x: x * (x > 0)}


def _forward(spec, params, x):
    enc, proj = network(spec, params)
    act = ACT[spec.activation]
    h = x
    for layer in enc.layers:
        h = act(h @ np.asarray(layer.weight).T + np.asarray(layer.bias))
    z = h
    for i, layer in enumerate(proj.layers):
        z = z @ np.asarray(layer.weight).T + np.asarray(layer.bias)
        if i < len(proj.layers) - 1:
            z = act(z)
    return z


def _power_numpy(z, p, eps):
    x = z - z.mean(axis=0)
    sigma = x.T @ x / (x.shape[0] - 1)
    lam, u = np.linalg.eigh(sigma)
    tr = np.trace(sigma)
    g = np.maximum(lam / tr, eps) ** (-p) * tr ** (-p)
    return x @ (u * g) @ u.T


def _reference(spec, z0, z1):
    if spec.method == "power":
        return norm_mse_loss(_power_numpy(z1, spec.p, spec.eps), _power_numpy(z0, spec.p, spec.eps))
    if spec.method == "intl":
        t = [official_iternorm(z, 1, spec.n_iter) for z in (z0, z1)]
        tl = [official_trace_loss(a, 1) for a in t]
        return norm_mse_loss(t[1], t[0]) + spec.beta * (tl[0] + tl[1])
    if spec.method == "wmse":
        return official_wmse([z0, z1], eps=spec.eps)
    raise AssertionError(spec.method)


@pytest.mark.parametrize("i", [0, 1, 2])
def test_loss_hook_equals_numpy_forward_pass_and_official_loss(i):
    spec = examples()[i]
    assert spec.dtype == "float64" and spec.method in ("power", "intl", "wmse")
    params = sp.init_params(spec, jax.random.key(5))
    views = fixed_views(spec)
    data = sp.spec_data(spec)
    key = jax.random.fold_in(jax.random.key(spec.data_seed), FIXED_VIEWS_TAG)
    again = sp.make_views(key, data.x_train[: spec.batch_size], augmentation(spec, data), 2)
    np.testing.assert_array_equal(views, np.asarray(again))  # the documented fixed views
    z0, z1 = (_forward(spec, params, v) for v in views)
    expected = _reference(spec, z0, z1)
    got = float(sp.ssl_loss(spec, params))
    assert abs(got - expected) <= 1e-10 * max(1.0, abs(expected)), (got, expected)
