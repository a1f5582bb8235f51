"""MF / EF verdict on constructed feature maps: collapsed (MF), random (EF), and a mixed case
whose targets sit in the top eigenfunctions while the centred spectrum is spread."""

import math

import numpy as np
import pytest

from ufm.systems import feature_map as fm


def rand_orth(rng, d):
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    return Q * np.sign(np.diag(R))


def test_collapsed_features_are_mf():
    rng = np.random.default_rng(0)
    C, n_c, p = 5, 8, 12
    means = np.zeros((C, p))
    means[:, :C] = np.eye(C) - 1.0 / C
    means = means @ rand_orth(rng, p).T + 0.7  # post-ReLU-like offset: uncentred mean direction
    labels = np.repeat(np.arange(C), n_c)
    F = means[labels] + 1e-3 * rng.standard_normal((C * n_c, p))  # small within-class noise
    f_hat = F @ rng.standard_normal((p, C))
    a = fm.analyse(F, f_hat, labels)
    v = fm.verdict(a)
    assert v.label == "MF", v.reason
    assert all(v.checks.values())
    assert v.numbers["k_target"] <= C
    assert v.numbers["pi_star_C"] == float(a.pi_star_C) and v.numbers["d_lr"] == float(a.d_lr)
    assert v.numbers["effective_rank_max"] == 2.0 * (C - 1)
    # the noise makes every direction non-zero: an eigenvalue count would say "extended"
    assert int(a.rank) == p + 1


def test_random_features_are_ef():
    rng = np.random.default_rng(1)
    n, p, C = 300, 60, 4
    F = np.maximum(rng.standard_normal((n, p)), 0.0)  # random ReLU features
    labels = rng.integers(0, C, n)
    f_hat = F @ rng.standard_normal((p, C))
    v = fm.verdict(fm.analyse(F, f_hat, labels))
    assert v.label == "EF", v.reason
    assert not v.checks["target_mass"] and not v.checks["effective_rank"]
    assert v.numbers["k_target"] > C
    assert "eigenfunctions" in v.reason


def test_targets_captured_but_spectrum_spread_is_mixed():
    rng = np.random.default_rng(2)
    n, C, extra = 600, 3, 50
    labels = rng.integers(0, C, n)
    Y = np.eye(C)[labels]
    F = np.hstack([3.0 * Y, np.sqrt(0.5) * rng.standard_normal((n, extra))])
    v = fm.verdict(fm.analyse(F, Y, labels))
    assert v.label == "mixed", v.reason
    assert v.checks["target_mass"] and not v.checks["effective_rank"]
    assert "effective_rank" in v.reason
    # a looser criterion accepts it
    loose = fm.MFCriterion(rank_factor=100.0, max_gap=1.0, max_d_lr=1.0)
    assert fm.verdict(fm.analyse(F, Y, labels), loose).label == "MF"


def test_k_target_inf_and_criterion_errors():
    rng = np.random.default_rng(3)
    n, C = 40, 2
    labels = np.arange(n) % C
    F = rng.standard_normal((n, 3))  # a 4-dim readout cannot carry 90% of random labels
    v = fm.verdict(fm.analyse(F, F[:, :C], labels, bias=False))
    assert v.numbers["k_target"] == math.inf and v.label in ("EF", "mixed")
    with pytest.raises(ValueError, match="target_mass"):
        fm.MFCriterion(target_mass=1.5)
    with pytest.raises(ValueError, match="rank_factor"):
        fm.MFCriterion(rank_factor=0.5)
