"""ufm.nets: shapes, seeds-vmapped construction, fixed ETF head, features, dtypes, freezing, losses.

Independent references: the MLP and the CNN recomputed in numpy/scipy from their stored weights;
losses recomputed by hand and with optax; vmapped construction compared with a loop.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ufm
from ufm import nets

F32, F64 = jnp.float32, jnp.float64


def relu(x):
    return np.maximum(x, 0.0)


def np_mlp_features(net, x):
    h = np.asarray(x, dtype=np.float64)
    for layer in net.body.layers:
        h = relu(h @ np.asarray(layer.weight, np.float64).T + np.asarray(layer.bias, np.float64))
    return h


def np_cnn_features(net, x):
    from scipy.signal import correlate2d

    body = net.body
    h = np.asarray(x, np.float64).reshape(body.image_shape)
    for conv in body.convs:
        w, b = np.asarray(conv.weight, np.float64), np.asarray(conv.bias, np.float64)
        out = np.stack(
            [
                sum(correlate2d(h[c], w[o, c], mode="same") for c in range(h.shape[0])) + b[o, 0, 0]
                for o in range(w.shape[0])
            ]
        )
        h = relu(out)
    C, H, W = h.shape
    h = h[:, : H // 2 * 2, : W // 2 * 2].reshape(C, H // 2, 2, W // 2, 2).mean(axis=(2, 4))
    d = body.dense
    return relu(np.asarray(d.weight, np.float64) @ h.ravel() + np.asarray(d.bias, np.float64))


def run_steps(loss, opt, params, batch, steps=3):
    """A few jitted optimiser steps (optax's Adam needs standard dtype promotion)."""

    @jax.jit
    def step(p, state):
        upd, state = opt.update(jax.grad(loss)(p, batch, None), state, p)
        return optax.apply_updates(p, upd), state

    with jax.numpy_dtype_promotion("standard"):
        state = opt.init(params)
        for _ in range(steps):
            params, state = step(params, state)
    return params


# One set of tiny sizes everywhere: eager JAX compiles each op once per shape, so shared shapes
# keep this file fast. Inputs: D = 16 = a (1, 4, 4) image; K = 4 classes; widths end at K so the
# same bodies carry both heads.
D, IMG, K = 16, (1, 4, 4), 4


def rkey(i):
    return jax.random.key(i, impl="rbg")  # cheap to compile; the vmap test uses threefry


def make_nets(dtype):
    k = rkey(0)
    return [
        (nets.mlp(D, (6, K), K, key=k, dtype=dtype), K, np_mlp_features),
        (nets.mlp(D, (6, K), K, key=k, head="etf", etf_scale=2.0, dtype=dtype), K, np_mlp_features),
        (nets.cnn(IMG, (2,), K, K, key=k, dtype=dtype), K, np_cnn_features),
        (nets.cnn(IMG, (2,), K, K, key=k, head="etf", dtype=dtype), K, np_cnn_features),
    ]


@pytest.mark.parametrize("dtype", [F32, F64])
def test_shapes_features_and_dtype(dtype):
    x = jax.random.uniform(rkey(1), (5, D), dtype=dtype)
    tol = 1e-5 if dtype == F32 else 1e-12
    cases = make_nets(dtype)
    for net, p, ref in cases:
        phi, out = nets.batch_features(net, x), nets.batch_outputs(net, x)
        assert phi.shape == (5, p) and out.shape == (5, K)
        assert phi.dtype == dtype and out.dtype == dtype
        # features() is the penultimate layer of the full forward pass
        if isinstance(net.head, nets.ETFHead):
            W, b = net.head.weight, 0.0
        else:
            W, b = net.head.weight, net.head.bias
        np.testing.assert_allclose(out, phi @ W.T.astype(dtype) + b, rtol=tol, atol=tol)
        ref_phi = np.stack([ref(net, xi) for xi in np.asarray(x)])
        np.testing.assert_allclose(phi, ref_phi, rtol=tol, atol=tol)
    cnn = cases[2][0]
    img = x.reshape(5, *IMG)
    np.testing.assert_array_equal(nets.batch_outputs(cnn, img), nets.batch_outputs(cnn, x))
    lazy = nets.Lazy(cases[0][0], alpha=10.0)
    out = nets.batch_outputs(lazy, x)
    assert out.dtype == dtype and float(jnp.max(jnp.abs(out))) == 0.0  # f_alpha = 0 at init
    np.testing.assert_array_equal(nets.batch_features(lazy, x), nets.batch_features(cases[0][0], x))


@pytest.mark.parametrize(
    "make",
    [
        lambda k: nets.mlp(D, (K,), K, key=k),
        lambda k: nets.Lazy(nets.mlp(D, (K,), K, key=k), alpha=4.0),
    ],
)
def test_init_models_vmap_equals_loop(make):
    """Threefry keys: vmapped construction == one construction per key (the CNN uses the same
    equinox initialisers and is left out to save compile time)."""
    keys = jax.random.split(jax.random.key(7), 3)  # default (threefry) keys
    models = nets.init_models(make, keys)
    params, static = nets.split(models)
    for s in range(3):
        one = make(keys[s])
        sliced = jax.tree.map(lambda a, s=s: a[s], params)
        p1, s1 = nets.split(one)
        assert jax.tree.structure(sliced) == jax.tree.structure(p1)
        for a, b in zip(jax.tree.leaves(sliced), jax.tree.leaves(p1), strict=True):
            np.testing.assert_array_equal(a, b)
        assert eqx.tree_equal(static, s1)
    # seeds differ
    leaves = jax.tree.leaves(params)
    assert not np.allclose(leaves[0][0], leaves[0][1])


def test_etf_head_fixed_gram_and_zero_gradient():
    scale = 1.5
    W = np.asarray(nets.etf_matrix(K, F64))
    np.testing.assert_allclose(W @ W.T, K / (K - 1) * (np.eye(K) - 1 / K), atol=1e-14)
    np.testing.assert_allclose(W.sum(axis=0), 0.0, atol=1e-14)
    net = nets.mlp(D, (6, K), K, key=rkey(0), head="etf", etf_scale=scale, dtype=F64)
    G = np.asarray(net.head.weight) @ np.asarray(net.head.weight).T
    np.testing.assert_allclose(G, scale**2 * K / (K - 1) * (np.eye(K) - 1 / K), atol=1e-13)
    assert float(ufm.metrics.etf_error(jnp.asarray(G))) < 1e-12
    # no array leaf in the head: gradients have nothing for it; the body gets a gradient
    assert jax.tree.leaves(eqx.filter(net.head, eqx.is_array)) == []
    params, static = nets.split(net)
    x = jax.random.normal(rkey(1), (7, D), F64)
    y = jnp.arange(7) % K
    grads = jax.jit(jax.grad(nets.ce_loss(static)))(params, (x, y), None)
    assert jax.tree.leaves(grads.head) == []
    assert sum(float(jnp.sum(g**2)) for g in jax.tree.leaves(grads.body)) > 0
    # a few Adam steps leave the head exactly the ETF
    params = run_steps(nets.ce_loss(static), optax.adam(1e-2), params, (x, y))
    trained = nets.combine(params, static)
    np.testing.assert_array_equal(trained.head.weight, net.head.weight)
    phi = nets.batch_features(trained, x)
    np.testing.assert_allclose(nets.batch_outputs(trained, x), phi @ (scale * W).T, atol=1e-13)


def test_last_layer_only_and_lazy_freezing():
    x = jax.random.normal(rkey(2), (9, D), F64)
    y = jnp.arange(9) % K
    for model, frozen in [
        (nets.mlp(D, (6, K), K, key=rkey(3), dtype=F64), "body"),
        (nets.Lazy(nets.mlp(D, (6, K), K, key=rkey(4), dtype=F64), alpha=3.0), "model0"),
    ]:
        last = frozen == "body"
        params, static = nets.split(model)
        mask = nets.trainable_mask(model, last_layer_only=last)
        loss = nets.mse_loss(static, mask=mask, scale=1.0 if last else 1 / 9.0)
        grads = jax.jit(jax.grad(loss))(params, (x, y), None)
        frozen_g = getattr(grads, frozen)
        assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree.leaves(frozen_g))
        head_g = grads.head if last else grads.model
        assert sum(float(jnp.sum(g**2)) for g in jax.tree.leaves(head_g)) > 0
        # weight decay would move frozen arrays; freeze() keeps them exactly
        opt = nets.freeze(optax.adamw(1e-2, weight_decay=0.5), mask)
        new = run_steps(loss, opt, params, (x, y))
        for a, b in zip(
            jax.tree.leaves(getattr(new, frozen)),
            jax.tree.leaves(getattr(params, frozen)),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
        moved = jax.tree.leaves(new.head if last else new.model)
        before = jax.tree.leaves(params.head if last else params.model)
        assert any(not np.array_equal(a, b) for a, b in zip(moved, before, strict=True))
    etf = nets.mlp(D, (6, K), K, key=rkey(0), head="etf")
    with pytest.raises(ValueError, match="nothing to train"):
        nets.trainable_mask(etf, last_layer_only=True)


def test_losses_match_hand_and_optax_and_vmap_over_seeds():
    S, B = 3, 6
    keys = jax.random.split(rkey(5), S)
    models = nets.init_models(lambda k: nets.mlp(D, (6, K), K, key=k, dtype=F64), keys)
    params, static = nets.split(models)
    x = jax.random.normal(rkey(6), (B, D), F64)
    y = jnp.arange(B) % K
    mse, ce = nets.mse_loss(static, scale=2.0), nets.ce_loss(static)
    vm = jax.jit(jax.vmap(mse, in_axes=(0, None, None)))(params, (x, y), None)
    vc = jax.jit(jax.vmap(ce, in_axes=(0, None, None)))(params, (x, y), None)
    for s in range(S):
        net = jax.tree.map(lambda a, s=s: a[s], params)
        out = np.asarray(nets.batch_outputs(nets.combine(net, static), x))
        t = np.eye(K)[np.asarray(y)]
        np.testing.assert_allclose(
            vm[s], 2.0 * 0.5 * np.mean(np.sum((out - t) ** 2, -1)), rtol=1e-13
        )
        ref = optax.softmax_cross_entropy_with_integer_labels(jnp.asarray(out), y).mean()
        np.testing.assert_allclose(vc[s], ref, rtol=1e-13)
        # float one-hot targets give the same loss as integer labels
        np.testing.assert_allclose(ce(net, (x, jnp.asarray(t)), None), ref, rtol=1e-13)


def test_errors_name_the_field():
    k = rkey(0)
    with pytest.raises(ValueError, match="head must be one of"):
        nets.mlp(4, (3,), 3, key=k, head="cosine")
    with pytest.raises(ValueError, match="penultimate width = num_classes"):
        nets.mlp(4, (8,), 3, key=k, head="etf")
    with pytest.raises(ValueError, match="widths"):
        nets.mlp(4, (), 3, key=k, head="linear")
    with pytest.raises(ValueError, match="alpha"):
        nets.Lazy(nets.mlp(D, (6, K), K, key=k), alpha=0.0)
    with pytest.raises(ValueError, match="etf_scale"):
        nets.mlp(4, (3,), 3, key=k, head="etf", etf_scale=-1.0)
    with pytest.raises(ValueError, match="image_shape"):
        nets.cnn((8, 8), key=k)
    with pytest.raises(ValueError, match="CNN input has 10 entries"):
        nets.cnn(IMG, (2,), K, K, key=k)(jnp.ones(10, F32))
