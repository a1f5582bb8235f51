"""Losses: hand-computed values, the official INTL / W-MSE code, beta, symmetry, minima."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from spectral_numpy_reference import official_intl, official_trace_loss, official_wmse

from ufm.systems import spectral as sp

Z3 = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 3.0]])


def test_trace_loss_hand_computed():
    # feature side: column variances 1 and 3 -> (1-1)^2 + (3-1)^2 = 4
    assert float(sp.trace_loss(jnp.asarray(Z3), side="feature")) == pytest.approx(4.0, abs=1e-14)
    # instance side: row variances over 2 features 0.5, 2, 0 -> 0.25 + 1 + 1 = 2.25
    assert float(sp.trace_loss(jnp.asarray(Z3), side="instance")) == pytest.approx(2.25, abs=1e-14)


@pytest.mark.parametrize("axis", [0, 1])
def test_trace_loss_matches_official(axis):
    z = np.random.default_rng(0).standard_normal((12, 5)) * 2.0
    got = sp.trace_loss(jnp.asarray(z), side=sp.side_from_axis(axis))
    assert float(got) == pytest.approx(official_trace_loss(z, axis), rel=1e-13)


def test_cosine_alignment_hand_computed():
    a = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    b = jnp.array([[1.0, 1.0], [0.0, -3.0]])  # cosines 1/sqrt(2) and -1
    expected = 2.0 - (1.0 / np.sqrt(2.0) - 1.0)
    assert float(sp.cosine_alignment(a, b)) == pytest.approx(expected, abs=1e-14)
    assert float(sp.cosine_alignment(a, jnp.zeros((2, 2)))) == 2.0  # zero rows: cosine 0, no NaN


def test_intl_beta_formula():
    assert sp.intl_beta(256, 2048) == pytest.approx(0.05)
    assert sp.intl_beta(128, 64) == pytest.approx(0.04)
    assert sp.intl_beta(8, 64) == 0.0
    assert sp.intl_beta(4, 2048, "feature") == pytest.approx(0.08)
    with pytest.raises(ValueError, match="batch_size"):
        sp.intl_beta(4, 64)
    with pytest.raises(ValueError, match="dim"):
        sp.intl_beta(256, 4, "feature")


def _views(v, m=16, d=12, seed=1):
    base = np.random.default_rng(seed).standard_normal((m, d))
    noise = np.random.default_rng(seed + 1).standard_normal((v, m, d))
    return base + 0.5 * noise


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("v", [2, 3])
def test_intl_matches_official(axis, v):
    views = _views(v)
    got = sp.intl_loss(jnp.asarray(views), side=sp.side_from_axis(axis))
    expected = official_intl(list(views), axis, 4, bs=16, emb=12)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_intl_terms_add_up():
    views = jnp.asarray(_views(3))
    terms = sp.intl_terms(views, beta=0.3)
    manual = np.mean(
        [terms.alignment[i] + 0.3 * (terms.trace[i + 1] + terms.trace[0]) for i in range(2)]
    )
    assert float(terms.total) == pytest.approx(manual, rel=1e-14)
    assert terms.beta == 0.3 and terms.alignment.shape == (2,) and terms.trace.shape == (3,)


def test_two_view_losses_are_symmetric():
    a, b = jnp.asarray(_views(2))
    ab, ba = jnp.stack([a, b]), jnp.stack([b, a])
    for loss in (sp.intl_loss, sp.cosine_alignment_loss, sp.wmse_loss):
        assert float(loss(ab)) == pytest.approx(float(loss(ba)), rel=1e-12)


@pytest.mark.parametrize("norm", [True, False])
def test_wmse_matches_official(norm):
    views = _views(3)
    got = sp.wmse_loss(jnp.asarray(views), normalize=norm)
    assert float(got) == pytest.approx(official_wmse(list(views), norm=norm), rel=1e-12)


def test_minimum_at_aligned_whitened_views():
    # m = 8 instances, d = 32 features: the 8 x 8 Gram has full rank, so IterNorm with enough
    # iterations (10: converged, before the kappa > 2.44 drift) whitens it (unit variances,
    # TL = 0); identical views then reach the minimum 0 and different views do not.
    z = jnp.asarray(np.random.default_rng(2).standard_normal((8, 32)))
    same = jnp.stack([z, z])
    assert float(sp.intl_loss(same, n_iter=10, beta=0.1)) < 1e-12
    other = jnp.stack([z, z + 0.3 * jnp.asarray(np.random.default_rng(3).standard_normal(z.shape))])
    assert float(sp.intl_loss(other, n_iter=10, beta=0.1)) > 1e-3
    assert float(sp.wmse_loss(jnp.stack([z.T, z.T]))) < 1e-12
    # at the official T = 4 the aligned loss is exactly the trace term 2 beta TL(zhat) > 0
    terms = sp.intl_terms(same, beta=0.1)
    assert float(terms.alignment[0]) == pytest.approx(0.0, abs=1e-13)
    assert float(terms.total) == pytest.approx(0.2 * float(terms.trace[0]), rel=1e-12)
    assert float(terms.trace[0]) > 1e-3


def test_collapsed_views_minimise_cosine_alignment_but_not_intl():
    m, d = 16, 12
    collapsed = jnp.ones((2, m, d)) * jnp.arange(1.0, d + 1.0)  # every embedding the same vector
    assert float(sp.cosine_alignment_loss(collapsed)) == pytest.approx(0.0, abs=1e-14)
    # feature side: the centred batch is 0, so is IterNorm's output: alignment 2 (zero rows),
    # trace loss d per view (all variances 0)
    beta = sp.intl_beta(m, d, "feature")
    got = sp.intl_loss(collapsed, side="feature")
    assert float(got) == pytest.approx(2.0 + beta * 2 * d, rel=1e-12)
    # instance side: the Gram is rank one (all samples equal after centring over features);
    # IterNorm maps its eigenvalue x = 1 to 1, the rows stay equal (alignment 0) and each
    # instance variance is 1/m: trace loss m (1/m - 1)^2 per view
    beta = sp.intl_beta(m, d, "instance")
    got = sp.intl_loss(collapsed, side="instance")
    assert float(got) == pytest.approx(beta * 2 * m * (1 / m - 1) ** 2, rel=1e-12)


def test_transformed_alignment_loss():
    views = jnp.asarray(_views(2))
    white = functools.partial(sp.whiten, side="feature")
    expected = sp.cosine_alignment(white(views[1]), white(views[0]))
    got = sp.transformed_alignment_loss(views, white)
    assert float(got) == pytest.approx(float(expected), rel=1e-13)


def test_intl_gradient_is_finite_under_jit_also_at_collapse():
    grad = jax.jit(jax.grad(sp.intl_loss))
    views = jnp.asarray(_views(2))
    collapsed = jnp.ones((2, 16, 12)) * jnp.arange(1.0, 13.0)
    for v in (views, collapsed, jnp.zeros_like(views)):
        g = grad(v)
        assert g.shape == views.shape and np.all(np.isfinite(g))
    assert grad._cache_size() == 1


def test_intl_float32_matches_float64():
    views = _views(2)
    got = sp.intl_loss(jnp.asarray(views, dtype=jnp.float32))
    assert got.dtype == jnp.float32
    assert float(got) == pytest.approx(float(sp.intl_loss(jnp.asarray(views))), rel=1e-4)


@pytest.mark.parametrize("shape", [(1, 16, 12), (16, 12), (2, 1, 12)])
def test_bad_views_shape(shape):
    with pytest.raises(ValueError, match="views"):
        sp.intl_loss(jnp.ones(shape), beta=0.1)
