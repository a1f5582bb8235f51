"""Latent-factor data: known rank, seeding, class structure, validation."""

import numpy as np
import pytest

from ufm.data.latent import latent_factor_data


def test_noise_free_rank_and_structure():
    data = latent_factor_data(300, 20, 5, n_classes=4, seed=1)
    assert data.features.shape == (300, 20) and data.features.dtype == np.float64
    assert data.labels.shape == (300,) and data.labels.dtype == np.int64
    assert data.rank == 5 and np.linalg.matrix_rank(data.features) == 5
    np.testing.assert_allclose(data.mixing.T @ data.mixing, np.eye(5), atol=1e-12)
    np.testing.assert_allclose(data.features, data.factors @ data.mixing.T)
    cov_eigs = np.linalg.eigvalsh(np.cov(data.features, rowvar=False))
    assert np.sum(cov_eigs > 1e-10 * cov_eigs.max()) == 5
    assert np.bincount(data.labels).tolist() == [75, 75, 75, 75]


def test_factor_scales_set_the_spectrum():
    scales = np.array([4.0, 2.0, 1.0])
    data = latent_factor_data(20000, 10, 3, factor_scales=scales, seed=2)
    eigs = np.sort(np.linalg.eigvalsh(np.cov(data.features, rowvar=False)))[::-1]
    np.testing.assert_allclose(eigs[:3], scales**2, rtol=0.05)  # unit-variance factors
    assert eigs[3] < 1e-10


def test_class_means_separate_the_classes():
    data = latent_factor_data(400, 8, 3, n_classes=2, class_sep=5.0, seed=3)
    means = np.stack([data.factors[data.labels == c].mean(0) for c in range(2)])
    for c in range(2):
        assert np.linalg.norm(means[c]) == pytest.approx(5.0, abs=0.4)


def test_noise_makes_full_rank_and_seeding():
    a = latent_factor_data(50, 10, 2, noise_std=0.1, seed=4)
    assert np.linalg.matrix_rank(a.features) == 10
    b = latent_factor_data(50, 10, 2, noise_std=0.1, seed=4)
    c = latent_factor_data(50, 10, 2, noise_std=0.1, seed=5)
    np.testing.assert_array_equal(a.features, b.features)
    assert not np.allclose(a.features, c.features)
    assert np.all(a.labels == 0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_samples": 1, "dim": 4, "rank": 2}, "n_samples"),
        ({"n_samples": 10, "dim": 4, "rank": 5}, "rank"),
        ({"n_samples": 10, "dim": 4, "rank": 0}, "rank"),
        ({"n_samples": 10, "dim": 4, "rank": 2, "n_classes": 11}, "n_classes"),
        ({"n_samples": 10, "dim": 4, "rank": 2, "noise_std": -1.0}, "noise_std"),
        ({"n_samples": 10, "dim": 4, "rank": 2, "factor_scales": [1.0]}, "factor_scales"),
        ({"n_samples": 10, "dim": 4, "rank": 2, "seed": -1}, "seed"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        latent_factor_data(**kwargs)
