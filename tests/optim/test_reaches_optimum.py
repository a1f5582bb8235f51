"""The toolkit's optimiser reaches the closed-form optimum, with the stated minimiser structure.

Random (K, n, lambdas) for every loss/bias variant at d = K and d > K: optimise from random
initialisations (ufm.optimize), polish (ufm.polish), and compare with ufm.optimum in float64.
"""

import zlib

import jax
import numpy as np
import pytest

import ufm

VARIANTS = [
    ("ce", "none"),
    ("ce", "free"),
    ("ce", "regularized"),
    ("mse", "none"),
    ("mse", "free"),
    ("mse", "regularized"),
]


def _random_spec(rng, loss, bias, d_extra):
    K = int(rng.integers(2, 6))
    n = int(rng.integers(1, 5))
    lw, lh = np.exp(rng.uniform(np.log(1e-3), np.log(2e-2), size=2))
    lb = float(np.exp(rng.uniform(np.log(1e-3), np.log(1.0)))) if bias == "regularized" else 0.0
    return ufm.UFMSpec(
        K=K,
        n=n,
        d=K + d_extra,
        loss=loss,
        bias=bias,
        lambda_W=float(lw),
        lambda_H=float(lh),
        lambda_b=lb,
    )


@pytest.mark.parametrize("loss,bias", VARIANTS)
@pytest.mark.parametrize("d_extra", [0, 2])
def test_optimiser_reaches_closed_form(loss, bias, d_extra):
    rng = np.random.default_rng(zlib.crc32(f"{loss}-{bias}-{d_extra}".encode()))
    spec = _random_spec(rng, loss, bias, d_extra)
    opt = ufm.optimum(spec)
    p0 = ufm.init_batch(spec, jax.random.key(int(rng.integers(1 << 30))), 4)
    # MSE: the bias block of the Hessian is about (1 + lambda_b) I, so GD needs lr < 2/(1 +
    # lambda_b)
    lr = 1.0 / (1.0 + spec.lambda_b) if loss == "mse" else 1.0
    res = ufm.optimize(spec, p0, optimizer=ufm.gd(lr), max_steps=20_000, tol=1e-5, chunk=1000)
    assert res.converged.all(), (spec, res.status_counts())
    # first-order stage to a moderate tolerance; the float64 polish (Newton) finishes the job
    pol = ufm.polish(spec, res.params, tol=1e-11)
    assert bool(pol.converged.all())
    rel = np.abs(np.asarray(pol.loss) - opt.value) / max(1.0, abs(opt.value))
    assert rel.max() <= 1e-8, (spec, rel)

    for i in range(4):
        W, H = np.asarray(pol.params.W[i]), np.asarray(pol.params.H[i])
        # W W^T is rotation invariant: equal to the closed-form Gram (ETF / frame / bias phase)
        np.testing.assert_allclose(W @ W.T, opt.gram, atol=2e-7 * max(1.0, np.abs(opt.gram).max()))
        np.testing.assert_allclose(np.sum(W**2, axis=1), opt.w_norm_sq, atol=2e-7)
        # h_{k,i} = sqrt(lW/(n lH)) w_k for every sample of class k
        c = np.sqrt(spec.lambda_W / (spec.n * spec.lambda_H))
        np.testing.assert_allclose(H, c * np.repeat(W.T, spec.n, axis=1), atol=2e-7)
        if bias == "regularized" or (bias == "free" and loss == "mse"):
            np.testing.assert_allclose(np.asarray(pol.params.b[i]), opt.bias, atol=2e-7)
        if (
            bias == "free" and loss == "ce"
        ):  # flat direction b -> b + c 1: only the centred part is fixed
            b = np.asarray(pol.params.b[i])
            np.testing.assert_allclose(b - b.mean(), 0.0, atol=2e-7)


def test_trivial_regime_collapses_to_zero():
    # s >= 1/K: W = H = 0 is the optimum (CE: f* = log K; MSE no bias: 1/2)
    for loss, fstar in [("ce", np.log(3.0)), ("mse", 0.5)]:
        spec = ufm.UFMSpec(K=3, n=2, d=3, loss=loss, lambda_W=0.3, lambda_H=0.3)
        assert spec.s >= 1 / 3
        res = ufm.optimize(
            spec, ufm.init_batch(spec, jax.random.key(0), 3), max_steps=5000, tol=1e-9
        )
        pol = ufm.polish(spec, res.params)
        np.testing.assert_allclose(pol.loss, fstar, rtol=1e-10)
        assert np.abs(np.asarray(pol.params.W)).max() < 1e-8
        assert ufm.optimal_value(spec) == pytest.approx(fstar, rel=1e-14)
