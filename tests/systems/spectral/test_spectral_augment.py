"""Augmentations: shapes, determinism, exact shifts, Monte-Carlo rates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ufm.systems import spectral as sp


def _np_shift(img, dy, dx):
    out = np.zeros_like(img)
    h, w = img.shape
    for i in range(h):
        for j in range(w):
            if 0 <= i - dy < h and 0 <= j - dx < w:
                out[i, j] = img[i - dy, j - dx]
    return out


def test_shift_image_matches_numpy_for_all_offsets():
    img = np.arange(64.0).reshape(8, 8)
    shift = jax.jit(sp.shift_image, static_argnums=3)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            np.testing.assert_array_equal(
                shift(jnp.asarray(img), dy, dx, 2), _np_shift(img, dy, dx)
            )


def test_shift_moves_a_single_pixel():
    img = np.zeros((8, 8))
    img[3, 4] = 1.0
    out = np.asarray(sp.shift_image(jnp.asarray(img), 1, -2, 2))
    assert out[4, 2] == 1.0 and out.sum() == 1.0
    edge = np.zeros((8, 8))
    edge[0, 0] = 1.0  # shifted off the image: zero fill, nothing wraps around
    assert np.asarray(sp.shift_image(jnp.asarray(edge), -1, 0, 1)).sum() == 0.0


# every test below uses float32 batches of shape (400, 64) so that make_views compiles only
# once per kind (noise level and dropout rate are traced)
X32 = jnp.tile(jnp.asarray(np.random.default_rng(0).random(64), dtype=jnp.float32), (400, 1))


def test_image_views_are_shifts_and_every_shift_occurs():
    aug = sp.ImageAugment(max_shift=1, noise_std=0.0, drop_prob=0.0)
    img = np.asarray(X32[0]).reshape(8, 8)
    candidates = {
        (dy, dx): _np_shift(img, dy, dx).ravel() for dy in range(-1, 2) for dx in range(-1, 2)
    }
    views = np.asarray(sp.make_views(jax.random.key(0), X32, aug)).reshape(-1, 64)
    seen = []
    for v in views:
        hits = [k for k, c in candidates.items() if np.array_equal(v, c)]
        assert len(hits) == 1
        seen.append(hits[0])
    counts = np.array([seen.count(k) for k in candidates])
    assert counts.min() > 800 / 9 - 4 * np.sqrt(800 / 9)  # all nine shifts, about uniformly


def test_make_views_is_deterministic_and_matches_single_views():
    aug = sp.ImageAugment()
    a = sp.make_views(jax.random.key(1), X32, aug)
    assert a.shape == (2, 400, 64) and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, sp.make_views(jax.random.key(1), X32, aug))
    assert not np.array_equal(a, sp.make_views(jax.random.key(2), X32, aug))
    assert not np.array_equal(a[0], a[1])
    # view v of sample i is image_view with key fold_in(fold_in(key, v), i): it depends on
    # (key, v, i, x_i) only, never on the rest of the batch or its size
    single = jax.jit(lambda k, x: sp.image_view(k, x, aug))
    for v, i in [(0, 0), (1, 0), (0, 7), (1, 399)]:
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(1), v), i)
        np.testing.assert_array_equal(a[v, i], single(key, X32[i]))


def test_vector_views_noise_std_and_dropout_rate_monte_carlo():
    n = 2 * 400 * 64
    vec = sp.make_views(jax.random.key(4), jnp.zeros_like(X32), sp.VectorAugment(0.3, 0.0))
    assert vec.shape == (2, 400, 64) and vec.dtype == jnp.float32
    assert float(jnp.std(vec)) == pytest.approx(0.3, rel=0.02)
    assert abs(float(jnp.mean(vec))) < 4 * 0.3 / np.sqrt(n)
    drop = sp.make_views(jax.random.key(5), jnp.ones_like(X32), sp.VectorAugment(0.0, 0.35))
    assert abs(float(jnp.mean(drop == 0.0)) - 0.35) < 4 * np.sqrt(0.35 * 0.65 / n)
    assert set(np.unique(np.asarray(drop)).tolist()) == {0.0, 1.0}


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: sp.ImageAugment(max_shift=8), "max_shift"),
        (lambda: sp.ImageAugment(drop_prob=1.0), "drop_prob"),
        (lambda: sp.ImageAugment(noise_std=-1.0), "noise_std"),
        (lambda: sp.VectorAugment(drop_prob=-0.1), "drop_prob"),
        (lambda: sp.image_view(jax.random.key(0), jnp.ones(63)), "flat image"),
        (lambda: sp.image_view(jax.random.key(0), jnp.ones(64, dtype=jnp.int32)), "floating"),
        (lambda: sp.make_views(jax.random.key(0), jnp.ones((2, 64)), "digits"), "aug"),
        (
            lambda: sp.make_views(jax.random.key(0), jnp.ones((2, 64)), sp.ImageAugment(), 0),
            "n_views",
        ),
    ],
)
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()
