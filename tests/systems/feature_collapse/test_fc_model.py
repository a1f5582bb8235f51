"""Feature collapse network: forward vs numpy, LayerNorm identities, init, one SGD step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ufm.systems.feature_collapse import (
    PRESETS,
    init_batch,
    init_params,
    layer_norm,
    make_data,
    make_loss_fn,
    make_optimizer,
    scores,
)

SPEC = PRESETS["tiny"].replace(dtype="float64")


def _np_layer_norm(x, eps=1e-5):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)  # biased, as torch.nn.LayerNorm
    return (x - m) / np.sqrt(v + eps)


def _np_scores(W, U, x, ln):
    """Loop form of score_k(x) = sum_l <u_{k,l}, phi(w_{x_l})> (the paper's flatten + Linear)."""
    B, _L = x.shape
    K = U.shape[0]
    out = np.zeros((B, K))
    for b in range(B):
        feats = W[x[b]]
        if ln:
            feats = _np_layer_norm(feats)
        flat = feats.reshape(-1)  # (L*d,), position-major like x.view(-1, L*d)
        out[b] = U.reshape(K, -1) @ flat
    return out


@pytest.mark.parametrize("ln", [False, True])
def test_scores_and_loss_match_numpy(ln):
    rng = np.random.default_rng(0)
    params = {
        "W": jnp.asarray(rng.normal(size=(120, 32))),
        "U": jnp.asarray(rng.normal(size=(64, 8, 32))),
    }
    x = make_data(SPEC).train_x[:7]
    y = np.arange(7)
    got = np.asarray(scores(params, jnp.asarray(x), ln))
    ref = _np_scores(np.asarray(params["W"]), np.asarray(params["U"]), x, ln)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-10)
    loss = make_loss_fn(ln)(params, {"x": jnp.asarray(x), "y": jnp.asarray(y)}, None)
    lse = np.log(np.sum(np.exp(ref - ref.max(1, keepdims=True)), 1)) + ref.max(1)
    np.testing.assert_allclose(float(loss), np.mean(lse - ref[np.arange(7), y]), rtol=1e-12)
    assert make_loss_fn(ln) is make_loss_fn(ln)  # cached: one compiled chunk per setting


def test_layer_norm_identity():
    x = jax.random.normal(jax.random.key(0), (50, 17)) * 3.0 + 2.0
    y = layer_norm(x)
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-12)
    var = ((y - y.mean(-1, keepdims=True)) ** 2).mean(-1)
    xv = x.var(-1)
    np.testing.assert_allclose(var, xv / (xv + 1e-5), rtol=1e-12)  # biased variance ~ 1
    np.testing.assert_allclose(y, _np_layer_norm(np.asarray(x)), rtol=1e-10, atol=1e-13)
    # norm sqrt(d) up to eps: the type-II feature norm
    np.testing.assert_allclose(jnp.linalg.norm(y, axis=-1), np.sqrt(17 * xv / (xv + 1e-5)))


def test_init_matches_pytorch_defaults_over_1000():
    """W ~ N(0,1)/1000, U ~ Uniform(+-1/sqrt(L d))/1000 (nn.Embedding, nn.Linear defaults)."""
    spec = PRESETS["tiny"].replace(n_w=3000, K=300, d=40)
    p = init_batch(spec, jax.random.split(jax.random.key(1), 2))
    assert p["W"].shape == (2, 3000, 40) and p["U"].shape == (2, 300, 8, 40)
    assert p["W"].dtype == jnp.float32 and p["U"].dtype == jnp.float32
    W, U = np.asarray(p["W"], np.float64), np.asarray(p["U"], np.float64)
    assert abs(W.std() * 1000 - 1.0) < 0.01 and abs(W.mean() * 1000) < 0.01
    bound = 1 / np.sqrt(spec.L * spec.d) / 1000
    assert np.abs(U).max() <= bound and np.abs(U).max() > 0.999 * bound
    assert abs(U.std() - bound / np.sqrt(3)) < 0.01 * bound  # Uniform(-b, b) std = b/sqrt(3)
    assert not np.allclose(W[0], W[1])  # one network per key


@pytest.mark.parametrize("ln", [False, True])
def test_one_sgd_step_is_coupled_weight_decay(ln):
    """theta <- theta - lr (grad + wd theta), wd_w = 0 with LayerNorm (PyTorch SGD weight_decay)."""
    spec = SPEC.replace(layernorm=ln, lr=0.3, weight_decay=0.01)
    params = init_params(spec.replace(init_scale_divisor=1.0), jax.random.key(3))
    data = make_data(spec)
    batch = {"x": jnp.asarray(data.train_x[:32]), "y": jnp.asarray(data.train_y[:32])}
    loss_fn = make_loss_fn(ln)
    opt = make_optimizer(spec)

    @jax.jit
    def step(params):
        grads = jax.grad(loss_fn)(params, batch, None)
        return grads, opt.update(grads, opt.init(params), params)[0]

    grads, updates = step(params)
    wd_w = 0.0 if ln else 0.01
    np.testing.assert_allclose(
        updates["W"], -0.3 * (grads["W"] + wd_w * params["W"]), rtol=1e-12, atol=1e-15
    )
    np.testing.assert_allclose(
        updates["U"], -0.3 * (grads["U"] + 0.01 * params["U"]), rtol=1e-12, atol=1e-15
    )
    assert make_optimizer(spec) is opt
